// gridlet's own JSON for a demand-response event and a tariff (ARCHITECTURE.md "Operator interface"),
// checked field by field and turned into WIRE.md bodies 21 (dr-event) and 25 (tariff).

import { utf8Encode } from '../../firmware/core/bytes.js';
import { Body, type DrEvent, type Tariff } from '../../firmware/core/wire/bodies.js';
import { scaleDecimal } from './decimal.js';
import { FieldError, isObject, onlyFields, shown } from './field.js';
import { parseInstant } from './time.js';

/** Event ids travel in every dr-event and in the device's `dr` events: keep them short. */
export const MAX_EVENT_ID_BYTES = 200;
/** The start randomisation window (WIRE.md dr-event field 7) is at most a day. */
export const MAX_RANDOMIZE_S = 86_400;
/** WIRE.md tariff field 1: price per kWh in 1/100000 of the currency unit. */
export const TARIFF_PLACES = 5;

export const DR_EVENT_FIELDS = ['id', 'start', 'duration', 'level', 'limitW', 'modification', 'randomizeS'] as const;
export const TARIFF_FIELDS = ['price', 'currency', 'from', 'until'] as const;

export function checkEventId(id: unknown, field: string): string {
  if (typeof id !== 'string' || id.length === 0) throw new FieldError(field, 'must be a non-empty text naming the event');
  if (/[\u0000-\u001f\u007f]/.test(id)) throw new FieldError(field, 'must not contain control characters');
  if (utf8Encode(id).length > MAX_EVENT_ID_BYTES) throw new FieldError(field, `must be at most ${MAX_EVENT_ID_BYTES} bytes of UTF-8`);
  return id;
}

export function uintField(v: unknown, field: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) {
    throw new FieldError(field, `must be an integer from 0 to ${max}, not ${shown(v)}`);
  }
  return v;
}

export function levelField(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 3) {
    throw new FieldError(field, `must be a level 0, 1, 2 or 3 (0 normal operation … 3 the strongest request), not ${shown(v)}`);
  }
  return v;
}

/**
 * `{"id", "start", "duration", "level", "limitW"?, "modification"?, "randomizeS"?}` → dr-event.
 * Without `modification` the event gets `nowS` (the gateway's unix seconds), so that sending an event
 * again, changed or cancelled (duration 0), replaces what the device has.
 */
export function nativeDrEvent(v: unknown, nowS: number): DrEvent {
  if (!isObject(v)) throw new FieldError('body', 'must be a JSON object {"id", "start", "duration", "level", …} or an OpenADR 3 event');
  onlyFields(v, DR_EVENT_FIELDS, '');
  for (const f of ['id', 'start', 'duration', 'level'] as const) {
    if (v[f] === undefined) throw new FieldError(f, `is required (fields: id, start, duration, level, and optional limitW, modification, randomizeS)`);
  }
  const start = parseInstant(v.start, 'start');
  const duration = uintField(v.duration, 'duration');
  if (start + duration > Number.MAX_SAFE_INTEGER) throw new FieldError('duration', 'is too long');
  const body: DrEvent = {
    type: Body.drEvent,
    id: checkEventId(v.id, 'id'),
    start,
    duration,
    level: levelField(v.level, 'level'),
    modification: v.modification === undefined ? nowS : uintField(v.modification, 'modification'),
  };
  if (v.limitW !== undefined) body.limit = uintField(v.limitW, 'limitW');
  if (v.randomizeS !== undefined) {
    const w = uintField(v.randomizeS, 'randomizeS', MAX_RANDOMIZE_S);
    if (w > 0) body.window = w;
  }
  return body;
}

export function currencyField(v: unknown, field: string): string {
  if (typeof v !== 'string' || !/^[A-Z]{3}$/.test(v)) throw new FieldError(field, `must be an ISO 4217 currency code such as "EUR", not ${shown(v)}`);
  return v;
}

/** A price per kWh in currency units (decimal text or number) → 1/100000 units, exactly. */
export function priceField(v: unknown, field: string): number {
  const p = scaleDecimal(v, TARIFF_PLACES);
  if (typeof p === 'string') throw new FieldError(field, `${shown(v)} ${p} (the tariff body carries 1/100000 of the currency unit)`);
  return p;
}

/** `{"price", "currency", "from", "until"}` → tariff. */
export function nativeTariff(v: unknown): Tariff {
  if (!isObject(v)) throw new FieldError('body', 'must be a JSON object {"price", "currency", "from", "until"}');
  onlyFields(v, TARIFF_FIELDS, '');
  for (const f of TARIFF_FIELDS) {
    if (v[f] === undefined) throw new FieldError(f, 'is required (fields: price per kWh in currency units, currency, from, until)');
  }
  const from = parseInstant(v.from, 'from');
  const until = parseInstant(v.until, 'until');
  if (until <= from) throw new FieldError('until', 'must be later than from');
  return { type: Body.tariff, price: priceField(v.price, 'price'), currency: currencyField(v.currency, 'currency'), from, until };
}

/** A body as the HTTP answer shows it: WIRE.md names, and the body's name beside its type. */
export function bodyJson(b: DrEvent | Tariff): { [k: string]: unknown } {
  if (b.type === Body.drEvent) return { body: 'dr-event', ...b };
  return { body: 'tariff', ...b };
}
