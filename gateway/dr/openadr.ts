// OpenADR 3 `event` objects (3.0.1 and 3.1.0; see test/fixtures/openadr/SOURCES.md) → WIRE.md bodies.
//
// The two versions are not compatible (3.1.0 changeLog): targets are valuesMap objects in 3.0.1 and
// plain strings in 3.1.0; 3.1.0 lets an interval's intervalPeriod leave out `start` (it then follows
// the previous interval), adds an event-level `duration`, "0001-01-01" for "now" and "P9999Y" for
// "no end". Both are read here; fields gridlet acts on are checked strictly, the rest is read leniently
// (the 3.1.0 User Guide's own examples break the schema in places that do not matter here).
//
// Mapping, one interval at a time (intervals inherit the event's intervalPeriod, and an interval
// without a start begins where the previous one ended):
//   SIMPLE (level 0–3) and IMPORT_CAPACITY_LIMIT (W, KW or MW) → one dr-event, id
//     `<event id, or programID/eventName>#<interval id>`, modification = `modificationNumber`, else
//     `modificationDateTime` in unix seconds, else the gateway's clock; randomizeStart → window.
//   PRICE (per KWH or MWH, one value, a currency from payloadDescriptors or ?currency=) → tariff.
//   Any other payload type is not sent, and the answer's notes say so.

import { Body, type DrEvent, type Tariff } from '../../firmware/core/wire/bodies.js';
import { scaleDecimal } from './decimal.js';
import { FieldError, isObject, shown } from './field.js';
import { checkEventId, currencyField, levelField, MAX_RANDOMIZE_S, TARIFF_PLACES } from './native.js';
import { durationSeconds, parseInstant } from './time.js';

export const MAPPED_PAYLOAD_TYPES = ['SIMPLE', 'IMPORT_CAPACITY_LIMIT', 'PRICE'] as const;
/** At most this many events in one list (a VTN's GET /events answer). */
export const MAX_EVENTS = 32;
export const MAX_INTERVALS = 96;

export type OpenAdrVersion = '3.0.1' | '3.1.0' | '3.0.1 or 3.1.0';

export interface OpenAdrEventSummary {
  /** The id the dr-events are named after (before `#<interval id>`). */
  event: string;
  /** The shape the object has, as far as it shows: 3.0.1 valuesMap targets, 3.1.0 string targets or event duration. */
  version: OpenAdrVersion;
}

export interface OpenAdrMapping {
  events: OpenAdrEventSummary[];
  bodies: (DrEvent | Tariff)[];
  notes: string[];
}

/** Nothing in the object maps to a body gridlet sends (HTTP 422); the notes say why. */
export class NothingToSend extends Error {
  constructor(readonly notes: string[]) {
    super(`nothing in this OpenADR event maps to a gridlet dr-event or tariff: ${notes.join('; ')}`);
    this.name = 'NothingToSend';
  }
}

/** Does this JSON look like an OpenADR 3 event (or a list of them) rather than gridlet's own form? */
export function isOpenAdr(v: unknown): boolean {
  if (Array.isArray(v)) return true;
  return isObject(v) && ['programID', 'objectType', 'intervals', 'intervalPeriod'].some((k) => k in v);
}

export interface OpenAdrOptions {
  /** Unix seconds: "now" for a start of 0001-01-01, and the default modification number. */
  nowS: number;
  /** Currency for PRICE payloads whose payloadDescriptor names none (ISO 4217). */
  currency?: string;
}

/** Maps an event or a list of events. Throws FieldError (400) or NothingToSend (422). */
export function mapOpenAdr(v: unknown, o: OpenAdrOptions): OpenAdrMapping {
  const out: OpenAdrMapping = { events: [], bodies: [], notes: [] };
  if (Array.isArray(v)) {
    if (v.length === 0) throw new FieldError('body', 'is an empty list of OpenADR events');
    if (v.length > MAX_EVENTS) throw new FieldError('body', `lists ${v.length} events; send at most ${MAX_EVENTS} at once`);
    v.forEach((ev, i) => mapEvent(ev, o, `[${i}].`, out));
  } else {
    mapEvent(v, o, '', out);
  }
  if (out.bodies.length === 0) throw new NothingToSend(out.notes);
  return out;
}

const OBJECT_ID = /^[a-zA-Z0-9_-]{1,128}$/;
const NOW = /^0001-01-01(?:[Tt ]00:00:00(?:\.0+)?(?:[Zz]|[+-]00:00)?)?$/;

function objectId(v: unknown, field: string): string {
  if (typeof v !== 'string' || !OBJECT_ID.test(v)) throw new FieldError(field, `must be an OpenADR objectID (1–128 of a-z A-Z 0-9 _ -), not ${shown(v)}`);
  return v;
}

function optional(v: unknown): boolean {
  return v === undefined || v === null;
}

interface Period {
  start?: unknown;
  duration?: unknown;
  randomizeStart?: unknown;
}

function period(v: unknown, field: string): Period | undefined {
  if (optional(v)) return undefined;
  if (!isObject(v)) throw new FieldError(field, 'must be an intervalPeriod object {"start", "duration", "randomizeStart"}');
  return v as Period;
}

interface Descriptor {
  units?: string;
  currency?: string;
  field: string;
}

interface Timing {
  start: number;
  duration: number;
  window: number;
  /** Field names for messages. */
  durationField: string;
}

function mapEvent(ev: unknown, o: OpenAdrOptions, p: string, out: OpenAdrMapping): void {
  const notes = out.notes;
  // Sentences about a whole event of a list start with its place in the list.
  const lead = p ? `event ${p.slice(0, -1)}: ` : '';
  const note = (s: string) => {
    if (!notes.includes(s)) notes.push(s);
  };
  if (!isObject(ev)) throw new FieldError(p ? p.slice(0, -1) : 'body', 'must be an OpenADR 3 event object');
  if (!optional(ev.objectType) && ev.objectType !== 'EVENT') {
    throw new FieldError(`${p}objectType`, `is ${shown(ev.objectType)}; only an EVENT carries demand-response intervals`);
  }
  if (ev.programID === undefined) throw new FieldError(`${p}programID`, 'is required (every OpenADR 3 event belongs to a program)');
  const programID = objectId(ev.programID, `${p}programID`);
  const id = optional(ev.id) ? undefined : objectId(ev.id, `${p}id`);
  if (!optional(ev.eventName) && typeof ev.eventName !== 'string') throw new FieldError(`${p}eventName`, 'must be text');
  const eventName = optional(ev.eventName) ? undefined : (ev.eventName as string);
  if (id === undefined && !eventName) {
    throw new FieldError(`${p}eventName`, 'is needed when the event has no id: dr-events are named <id, or programID/eventName>#<interval id>');
  }
  const base = id ?? `${programID}/${eventName}`;

  // Which version's shape: targets tell (objects in 3.0.1, strings in 3.1.0), else an event duration (3.1.0 only).
  let version: OpenAdrVersion = '3.0.1 or 3.1.0';
  if (!optional(ev.targets)) {
    if (!Array.isArray(ev.targets)) throw new FieldError(`${p}targets`, 'must be a list (3.0.1: valuesMap objects, 3.1.0: strings)');
    ev.targets.forEach((t, i) => {
      const kind: OpenAdrVersion = typeof t === 'string' ? '3.1.0' : '3.0.1';
      if (typeof t === 'string' ? t.length === 0 || t.length > 128 : !(isObject(t) && typeof t.type === 'string' && Array.isArray(t.values))) {
        throw new FieldError(`${p}targets[${i}]`, `must be a target string (3.1.0) or a valuesMap {"type", "values": […]} (3.0.1), not ${shown(t)}`);
      }
      if (version !== '3.0.1 or 3.1.0' && version !== kind) throw new FieldError(`${p}targets[${i}]`, 'mixes 3.1.0 target strings with 3.0.1 valuesMap objects');
      version = kind;
    });
    if (ev.targets.length) note(`${lead}targets are not used for routing: the gateway sends to the device or label group named in the request`);
  }
  if (!optional(ev.duration) && version === '3.0.1 or 3.1.0') version = '3.1.0';

  let modification: number;
  if (!optional(ev.modificationNumber)) {
    const m = ev.modificationNumber;
    if (typeof m !== 'number' || !Number.isSafeInteger(m) || m < 0) throw new FieldError(`${p}modificationNumber`, `must be an unsigned integer, not ${shown(m)}`);
    modification = m;
  } else if (!optional(ev.modificationDateTime)) {
    if (typeof ev.modificationDateTime !== 'string') throw new FieldError(`${p}modificationDateTime`, 'must be an RFC 3339 date-time text');
    modification = parseInstant(ev.modificationDateTime, `${p}modificationDateTime`);
  } else {
    modification = o.nowS;
  }

  const descriptors = new Map<string, Descriptor>();
  if (!optional(ev.payloadDescriptors)) {
    if (!Array.isArray(ev.payloadDescriptors)) throw new FieldError(`${p}payloadDescriptors`, 'must be a list of payloadDescriptor objects');
    ev.payloadDescriptors.forEach((d, i) => {
      const field = `${p}payloadDescriptors[${i}]`;
      if (!isObject(d) || typeof d.payloadType !== 'string') throw new FieldError(field, 'must be an object with a payloadType text');
      for (const k of ['units', 'currency'] as const) {
        if (!optional(d[k]) && typeof d[k] !== 'string') throw new FieldError(`${field}.${k}`, 'must be text');
      }
      if (!descriptors.has(d.payloadType)) {
        descriptors.set(d.payloadType, {
          units: optional(d.units) ? undefined : (d.units as string), currency: optional(d.currency) ? undefined : (d.currency as string), field,
        });
      }
    });
  }

  const eventPeriod = period(ev.intervalPeriod, `${p}intervalPeriod`);
  let intervals: unknown[] = [];
  if (!optional(ev.intervals)) {
    if (!Array.isArray(ev.intervals)) throw new FieldError(`${p}intervals`, 'must be a list of interval objects');
    intervals = ev.intervals;
  }
  if (intervals.length > MAX_INTERVALS) throw new FieldError(`${p}intervals`, `has ${intervals.length} intervals; at most ${MAX_INTERVALS} in one event`);
  if (intervals.length === 0) note(`${lead}the event has no intervals (a report request?): nothing to send`);
  out.events.push({ event: base, version });

  const ids = new Set<number>();
  // The previous interval's end, or why it is unknown (only an error if a later interval needs it).
  let prevEnd: number | FieldError | undefined;
  let firstStart: number | undefined;
  let lastEnd: number | undefined;
  intervals.forEach((iv, i) => {
    const f = `${p}intervals[${i}]`;
    if (!isObject(iv)) throw new FieldError(f, 'must be an interval object {"id", "payloads", "intervalPeriod"?}');
    if (typeof iv.id !== 'number' || !Number.isInteger(iv.id) || iv.id < -2147483648 || iv.id > 2147483647) {
      throw new FieldError(`${f}.id`, `must be an integer (int32), not ${shown(iv.id)}`);
    }
    if (ids.has(iv.id)) throw new FieldError(`${f}.id`, `repeats interval id ${iv.id}`);
    ids.add(iv.id);
    if (!Array.isArray(iv.payloads)) throw new FieldError(`${f}.payloads`, 'must be a list of valuesMap objects {"type", "values"}');

    let timing: Timing | FieldError;
    // Notes about an interval's timing matter only if something in it is sent.
    const timingNotes: string[] = [];
    try {
      timing = intervalTiming(i, f, p, period(iv.intervalPeriod, `${f}.intervalPeriod`), eventPeriod, prevEnd, o.nowS, (s) => timingNotes.push(s));
      prevEnd = timing.start + timing.duration;
      firstStart ??= timing.start;
      lastEnd = prevEnd;
    } catch (e) {
      if (!(e instanceof FieldError)) throw e;
      timing = e;
      prevEnd = e;
    }
    const need = (): Timing => {
      if (timing instanceof FieldError) throw timing;
      timingNotes.forEach(note);
      return timing;
    };

    let level: number | undefined;
    let limit: number | undefined;
    let price: Tariff | undefined;
    iv.payloads.forEach((pl, j) => {
      const pf = `${f}.payloads[${j}]`;
      if (!isObject(pl) || typeof pl.type !== 'string' || pl.type.length === 0 || !Array.isArray(pl.values)) {
        throw new FieldError(pf, `must be a valuesMap {"type": text, "values": […]}, not ${shown(pl)}`);
      }
      const values = pl.values as unknown[];
      const single = (what: string) => {
        if (values.length !== 1) throw new FieldError(`${pf}.values`, `${what} carries exactly one value, not ${values.length}`);
        return values[0];
      };
      switch (pl.type) {
        case 'SIMPLE':
          if (level !== undefined) throw new FieldError(pf, 'is a second SIMPLE payload in one interval');
          level = levelField(single('SIMPLE'), `${pf}.values[0]`);
          return;
        case 'IMPORT_CAPACITY_LIMIT': {
          if (limit !== undefined) throw new FieldError(pf, 'is a second IMPORT_CAPACITY_LIMIT payload in one interval');
          limit = watts(single('IMPORT_CAPACITY_LIMIT'), `${pf}.values[0]`, descriptors.get('IMPORT_CAPACITY_LIMIT'), lead, note);
          return;
        }
        case 'PRICE': {
          if (price !== undefined) throw new FieldError(pf, 'is a second PRICE payload in one interval');
          if (values.length !== 1) {
            note(`${pf}: PRICE with ${values.length} values is not sent (a tariff body carries one price)`);
            return;
          }
          const t = tariff(values[0], `${pf}.values[0]`, descriptors.get('PRICE'), o.currency, lead, note);
          if (!t) return;
          const tm = need();
          if (tm.duration === 0) {
            note(`${f}: PRICE is not sent: ${tm.durationField} is PT0S, and a tariff needs an end`);
            return;
          }
          price = { ...t, from: tm.start, until: tm.start + tm.duration };
          return;
        }
        default:
          note(`${pf}: payload type ${pl.type.slice(0, 60)} is not mapped (gridlet maps ${MAPPED_PAYLOAD_TYPES.join(', ')}); not sent`);
      }
    });

    if (level !== undefined || limit !== undefined) {
      const tm = need();
      if (tm.duration === 0) {
        throw new FieldError(tm.durationField, 'is PT0S (instantaneous or open-ended in OpenADR 3), but a dr-event needs a length: duration 0 would cancel it');
      }
      const body: DrEvent = {
        type: Body.drEvent, id: checkEventId(`${base}#${iv.id}`, id === undefined ? `${p}eventName` : `${p}id`),
        start: tm.start, duration: tm.duration, level: level ?? 0, modification,
      };
      if (limit !== undefined) body.limit = limit;
      if (tm.window > 0) body.window = tm.window;
      if (tm.start + tm.duration <= o.nowS) note(`${f} ended before now (${new Date((tm.start + tm.duration) * 1000).toISOString()}); sent anyway`);
      out.bodies.push(body);
    }
    if (price) {
      if (price.until <= o.nowS) note(`${f}: the PRICE interval ended before now; sent anyway`);
      if (!(timing instanceof FieldError) && timing.window > 0) note(`${f}: randomizeStart does not apply to a tariff`);
      out.bodies.push(price);
    }
  });

  if (!optional(ev.duration)) {
    const total = firstStart !== undefined && lastEnd !== undefined ? lastEnd - firstStart : undefined;
    const d = durationSeconds(ev.duration, firstStart ?? o.nowS, `${p}duration`);
    if (total !== d) note(`${p}duration ${shown(ev.duration)} (3.1.0: repeat the intervals over it) is not applied: each interval is sent once`);
  }
}

function intervalTiming(
  i: number, f: string, p: string, own: Period | undefined, event: Period | undefined, prevEnd: number | FieldError | undefined,
  nowS: number, note: (s: string) => void,
): Timing {
  let start: number;
  const ownStart = own && !optional(own.start);
  if (ownStart || (i === 0 && event && !optional(event.start))) {
    const field = ownStart ? `${f}.intervalPeriod.start` : `${p}intervalPeriod.start`;
    const raw = ownStart ? own!.start : event!.start;
    if (typeof raw === 'string' && NOW.test(raw)) {
      start = nowS;
      note(`${field} ${raw} means now (OpenADR 3.1.0): ${new Date(nowS * 1000).toISOString()}`);
    } else {
      if (typeof raw !== 'string') throw new FieldError(field, `must be an RFC 3339 date-time text, not ${shown(raw)}`);
      start = parseInstant(raw, field);
    }
  } else if (i === 0) {
    throw new FieldError(`${p}intervalPeriod.start`, `(or ${f}.intervalPeriod.start) is required: when does the event begin?`);
  } else if (prevEnd instanceof FieldError) {
    throw new FieldError(`${f}.intervalPeriod.start`, `is not given, and the previous interval's end is unknown (${prevEnd.message})`);
  } else {
    start = prevEnd!;
  }
  const ownDuration = own && !optional(own.duration);
  const durationField = ownDuration ? `${f}.intervalPeriod.duration` : `${p}intervalPeriod.duration`;
  const rawDuration = ownDuration ? own!.duration : event && !optional(event.duration) ? event.duration : 'PT0S';
  const duration = durationSeconds(rawDuration, start, durationField);
  if (rawDuration === 'P9999Y') note(`${durationField} P9999Y means no end (OpenADR 3.1.0): sent as ${duration} s`);
  const ownRandom = own && !optional(own.randomizeStart);
  const randomField = ownRandom ? `${f}.intervalPeriod.randomizeStart` : `${p}intervalPeriod.randomizeStart`;
  const rawRandom = ownRandom ? own!.randomizeStart : event && !optional(event.randomizeStart) ? event.randomizeStart : undefined;
  const window = rawRandom === undefined ? 0 : durationSeconds(rawRandom, start, randomField);
  if (window > MAX_RANDOMIZE_S) throw new FieldError(randomField, `is ${window} s; at most ${MAX_RANDOMIZE_S} s (a day)`);
  return { start, duration, window, durationField };
}

const WATTS: { [units: string]: number } = { W: 0, KW: 3, MW: 6 };

function watts(v: unknown, field: string, d: Descriptor | undefined, lead: string, note: (s: string) => void): number {
  let places = 3;
  if (d?.units === undefined) {
    note(`${lead}IMPORT_CAPACITY_LIMIT has no units in payloadDescriptors: KW assumed`);
  } else {
    const u = WATTS[d.units.toUpperCase()];
    if (u === undefined) throw new FieldError(`${d.field}.units`, `IMPORT_CAPACITY_LIMIT units must be W, KW or MW, not ${shown(d.units)}`);
    places = u;
  }
  if (typeof v !== 'number') throw new FieldError(field, `IMPORT_CAPACITY_LIMIT must be a number, not ${shown(v)}`);
  const w = scaleDecimal(v, places);
  if (typeof w === 'string') throw new FieldError(field, `${shown(v)} ${d?.units ?? 'KW'} ${w === 'is out of range' ? w : 'is not a whole number of watts'}`);
  if (w < 0) throw new FieldError(field, `an import limit cannot be negative (${shown(v)})`);
  return w;
}

/** The price part of a tariff body, or undefined (with a note) when the event does not say enough. */
function tariff(
  v: unknown, field: string, d: Descriptor | undefined, fallbackCurrency: string | undefined, lead: string, note: (s: string) => void,
): Omit<Tariff, 'from' | 'until'> | undefined {
  let currency: string;
  if (d?.currency !== undefined) currency = currencyField(d.currency, `${d.field}.currency`);
  else if (fallbackCurrency !== undefined) currency = fallbackCurrency;
  else {
    note(`${lead}PRICE is not sent: no payloadDescriptor gives its currency (add ?currency=EUR, or a PRICE payloadDescriptor with "currency")`);
    return undefined;
  }
  // A tariff body is per kWh in 1/100000 units: per MWh, that is 1/100 units of the price as given.
  let places = TARIFF_PLACES;
  const units = d?.units?.toUpperCase();
  if (units === undefined) note(`${lead}PRICE has no units in payloadDescriptors: per KWH assumed`);
  else if (units === 'MWH') places = TARIFF_PLACES - 3;
  else if (units !== 'KWH') {
    note(`${lead}PRICE per ${d!.units} is not sent (a tariff is per KWH or MWH)`);
    return undefined;
  }
  if (typeof v !== 'number') throw new FieldError(field, `PRICE must be a number, not ${shown(v)}`);
  const price = scaleDecimal(v, places);
  if (typeof price === 'string') throw new FieldError(field, `${shown(v)} ${price} (a tariff carries 1/100000 of the currency unit per kWh)`);
  return { type: Body.tariff, price, currency };
}

export interface IntervalTime {
  id: number;
  /** Unix seconds. */
  start: number;
  duration: number;
}

/**
 * The start and length of each interval of an event, as mapOpenAdr times them (an interval without a
 * start follows the previous one; "0001-01-01" is `nowS`), whatever its payloads: a VEN's reports follow
 * these intervals. Throws FieldError when a time is missing or malformed.
 */
export function eventIntervals(ev: { [k: string]: unknown }, nowS: number): IntervalTime[] {
  const eventPeriod = period(ev.intervalPeriod, 'intervalPeriod');
  const intervals = Array.isArray(ev.intervals) ? ev.intervals : [];
  const out: IntervalTime[] = [];
  let prevEnd: number | undefined;
  intervals.slice(0, MAX_INTERVALS).forEach((iv, i) => {
    const f = `intervals[${i}]`;
    if (!isObject(iv) || typeof iv.id !== 'number') throw new FieldError(`${f}.id`, 'must be an integer');
    const t = intervalTiming(i, f, '', period(iv.intervalPeriod, `${f}.intervalPeriod`), eventPeriod, prevEnd, nowS, () => {});
    prevEnd = t.start + t.duration;
    out.push({ id: iv.id, start: t.start, duration: t.duration });
  });
  return out;
}
