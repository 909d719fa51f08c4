// Instants and durations in the operator's JSON, turned into the whole unix seconds WIRE.md carries:
// an instant is unix seconds or an RFC 3339 date-time (OpenADR 3 `dateTime`); a duration is ISO 8601
// (OpenADR 3 `duration`, e.g. PT1H, P1D, P9999Y). Calendar parts (years, months) are added in UTC.

import { FieldError, shown } from './field.js';

/** 9999-12-31T23:59:59Z: nothing later is a plausible start or end. */
export const MAX_UNIX_S = 253_402_300_799;

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|([+-])(\d{2}):(\d{2}))$/;
// OpenADR 3's `duration` pattern without the sign: a negative length means nothing here.
const DURATION = /^P(?=\d|T\d)(?:(\d{1,9})Y)?(?:(\d{1,9})M)?(?:(\d{1,9})([DW]))?(?:T(?=\d)(?:(\d{1,9})H)?(?:(\d{1,9})M)?(?:(\d{1,12}(?:\.\d{1,9})?)S)?)?$/;

function daysIn(year: number, month0: number): number {
  return new Date(Date.UTC(year, month0 + 1, 0)).getUTCDate();
}

/** Unix seconds (fractions dropped) of an RFC 3339 date-time, or the reason it is not one. */
export function parseRfc3339(text: string): number | string {
  const m = RFC3339.exec(text);
  if (!m) return `${shown(text)} is not an RFC 3339 date-time such as 2025-03-14T18:00:00Z (a UTC offset is required)`;
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number);
  if (mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo - 1) || h > 23 || mi > 59 || s > 60) {
    return `${shown(text)} is not a valid date and time`;
  }
  let offset = 0;
  if (m[9]) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) return `${shown(text)} has an invalid UTC offset`;
    offset = (m[9] === '-' ? -1 : 1) * (oh * 3600 + om * 60);
  }
  const t = new Date(0);
  t.setUTCFullYear(y, mo - 1, d);
  t.setUTCHours(h, mi, s, 0);
  return Math.floor(t.getTime() / 1000) - offset;
}

/** An instant given as unix seconds or RFC 3339 text; throws a FieldError naming `field`. */
export function parseInstant(v: unknown, field: string): number {
  let t: number;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new FieldError(field, `${shown(v)} must be whole unix seconds or an RFC 3339 date-time`);
    t = v;
  } else if (typeof v === 'string') {
    const r = parseRfc3339(v);
    if (typeof r === 'string') throw new FieldError(field, r);
    t = r;
  } else {
    throw new FieldError(field, `${shown(v)} must be unix seconds or an RFC 3339 date-time text`);
  }
  if (t < 0 || t > MAX_UNIX_S) throw new FieldError(field, `${shown(v)} is outside 1970-01-01 … 9999-12-31`);
  return t;
}

export interface IsoDuration {
  years: number;
  months: number;
  days: number;
  /** Hours, minutes and seconds together. */
  seconds: number;
}

/** Parses an ISO 8601 duration, or returns the reason it is not one. */
export function parseIsoDuration(text: string): IsoDuration | string {
  const m = DURATION.exec(text);
  if (!m) return `${shown(text)} is not an ISO 8601 duration such as PT15M, PT1H or P1D (no sign)`;
  const n = (i: number) => (m[i] === undefined ? 0 : Number(m[i]));
  return {
    years: n(1),
    months: n(2),
    days: m[4] === 'W' ? n(3) * 7 : n(3),
    seconds: n(5) * 3600 + n(6) * 60 + n(7),
  };
}

/** Whole seconds (rounded up) that `d` lasts from `start` (unix s); calendar parts are added in UTC. */
export function durationFrom(start: number, d: IsoDuration): number {
  let end = start;
  if (d.years || d.months) {
    const t = new Date(start * 1000);
    const total = t.getUTCMonth() + d.months;
    const year = t.getUTCFullYear() + d.years + Math.floor(total / 12);
    const month = total % 12;
    const u = new Date(0);
    // Jan 31 + P1M is the last day of February, not March 3.
    u.setUTCFullYear(year, month, Math.min(t.getUTCDate(), daysIn(year, month)));
    u.setUTCHours(t.getUTCHours(), t.getUTCMinutes(), t.getUTCSeconds(), 0);
    end = u.getTime() / 1000;
  }
  return Math.ceil(end + d.days * 86_400 + d.seconds - start);
}

/** An ISO 8601 duration text as whole seconds from `start`; throws a FieldError naming `field`. */
export function durationSeconds(v: unknown, start: number, field: string): number {
  if (typeof v !== 'string') throw new FieldError(field, `${shown(v)} must be an ISO 8601 duration text such as PT1H`);
  const d = parseIsoDuration(v);
  if (typeof d === 'string') throw new FieldError(field, d);
  const s = durationFrom(start, d);
  if (!Number.isSafeInteger(s) || start + s > Number.MAX_SAFE_INTEGER) throw new FieldError(field, `${shown(v)} is too long`);
  return s;
}
