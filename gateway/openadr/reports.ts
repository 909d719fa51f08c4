// Reports a VTN asks for in an event's reportDescriptors, from the readings meters stored:
//   USAGE  energy imported in each interval (Wh; KWH or MWH when the descriptor's units say so): the
//          energy register (WIRE.md channel 1) at the interval's end minus at its start, where the
//          register "at" a time is the first reading taken at or after it. Consecutive intervals
//          therefore add up exactly to the register's advance over the event.
//   DEMAND mean power in each interval (W; KW, MW): USAGE × 3600 / the interval's seconds; with
//          readingType PEAK, the highest power reading (channel 3) taken in the interval.
// Readings are taken in the order the meter numbered them, from the acknowledged prefix only, so a value
// once known is final. A meter that has not yet delivered its readings past an interval's end (it is
// offline) shows DATA_QUALITY MISSING for it; its readings, when they arrive, go into the next version of
// the report, which replaces the earlier one (PUT /reports/{id}).

import type { StoredRecord } from '../store/store.js';
import type { IntervalTime } from '../dr/openadr.js';
import type { OpenAdrSpecVersion } from './schema.js';
import type { Level } from '../privacy/policy.js';
import { RecordKind } from '../../firmware/core/wire/constants.js';

export const ENERGY_CHANNEL = 1;
export const POWER_CHANNEL = 3;

export type ReportKind = 'USAGE' | 'DEMAND';

export interface ReportRequest {
  payloadType: ReportKind;
  /** Divisor from Wh or W to the unit reported. */
  scale: number;
  units: string;
  readingType: string;
  peak: boolean;
  aggregate: boolean;
}

const UNITS: { [k in ReportKind]: { [u: string]: number } } = {
  USAGE: { WH: 1, KWH: 1000, MWH: 1_000_000 },
  DEMAND: { W: 1, KW: 1000, MW: 1_000_000 },
};

/** The report requests gridlet can answer among an event's reportDescriptors, and notes on the others. */
export function reportRequests(descriptors: unknown): { requests: ReportRequest[]; notes: string[] } {
  const requests: ReportRequest[] = [];
  const notes: string[] = [];
  if (!Array.isArray(descriptors)) return { requests, notes };
  for (const d of descriptors as { [k: string]: unknown }[]) {
    const type = d?.payloadType;
    if (type !== 'USAGE' && type !== 'DEMAND') {
      notes.push(`reportDescriptor ${String(type).slice(0, 40)} is not reported (gridlet reports USAGE and DEMAND)`);
      continue;
    }
    if (d.historical === false) {
      notes.push(`reportDescriptor ${type} asks for a forecast (historical false); gridlet reports measured values only`);
      continue;
    }
    if (requests.some((r) => r.payloadType === type)) continue;
    const wanted = typeof d.units === 'string' ? d.units.toUpperCase() : undefined;
    const table = UNITS[type];
    let units = type === 'USAGE' ? 'WH' : 'W';
    if (wanted !== undefined && table[wanted] !== undefined) units = wanted;
    else if (wanted !== undefined) notes.push(`reportDescriptor ${type} units ${String(d.units).slice(0, 20)} not known: reported in ${units}`);
    const readingType = typeof d.readingType === 'string' ? d.readingType : type === 'USAGE' ? 'DIRECT_READ' : 'MEAN';
    requests.push({ payloadType: type, scale: table[units], units, readingType, peak: type === 'DEMAND' && readingType === 'PEAK', aggregate: d.aggregate === true });
  }
  return { requests, notes };
}

/** One meter's part of a report: what its readings say at each interval boundary so far. */
export interface Track {
  /** The next seq to read. */
  next: number;
  /** The energy register at each boundary: [t, Wh] of the first reading at or after it, or null. */
  energy: ([number, number] | null)[];
  /** The highest power reading in each interval, W, or null. */
  peak: (number | null)[];
}

/** The sorted, distinct boundaries (interval starts and ends) of a list of intervals. */
export function boundaries(intervals: IntervalTime[]): number[] {
  const set = new Set<number>();
  for (const i of intervals) set.add(i.start), set.add(i.start + i.duration);
  return [...set].sort((a, b) => a - b);
}

export function newTrack(next: number, bounds: number[], intervals: number): Track {
  return { next, energy: bounds.map(() => null), peak: new Array(intervals).fill(null) };
}

/** Takes readings (in seq order) into a track. */
export function feed(track: Track, bounds: number[], intervals: IntervalTime[], records: StoredRecord[]): void {
  for (const r of records) {
    track.next = Math.max(track.next, (r.kind === RecordKind.gap ? r.last : r.seq) + 1);
    if (r.kind !== RecordKind.reading) continue;
    if (r.channel === ENERGY_CHANNEL) {
      for (let b = 0; b < bounds.length && bounds[b] <= r.t; b++) if (track.energy[b] === null) track.energy[b] = [r.t, r.value];
    } else if (r.channel === POWER_CHANNEL) {
      intervals.forEach((iv, i) => {
        if (r.t >= iv.start && r.t < iv.start + iv.duration && (track.peak[i] === null || r.value > track.peak[i]!)) track.peak[i] = r.value;
      });
    }
  }
}

/** Has the meter delivered a reading at or after every boundary? Then nothing can change any more. */
export function complete(track: Track): boolean {
  return track.energy.every((e) => e !== null);
}

/** A meter's value for one interval in Wh or W (before scaling), or why there is none. */
export function intervalValue(track: Track, bounds: number[], iv: IntervalTime, i: number, r: ReportRequest): number | 'MISSING' | 'BAD' {
  const s = track.energy[bounds.indexOf(iv.start)];
  const e = track.energy[bounds.indexOf(iv.start + iv.duration)];
  if (r.peak) {
    if (e === null) return 'MISSING';
    return track.peak[i] ?? 'MISSING';
  }
  if (s === null || e === null) return 'MISSING';
  const wh = e[1] - s[1];
  if (wh < 0) return 'BAD'; // the register went back: a replaced or reset meter
  if (r.payloadType === 'USAGE') return wh;
  return iv.duration > 0 ? (wh * 3600) / iv.duration : 'BAD';
}

/** The privacy level reporting intervals of this length discloses (privacy/policy.ts levels). */
export function levelFor(intervals: IntervalTime[]): Exclude<Level, 'none'> {
  const shortest = Math.min(...intervals.map((i) => i.duration));
  return shortest >= 86_400 ? 'daily' : shortest >= 900 ? '15min' : 'full';
}

const round = (x: number) => Math.round(x * 1000) / 1000;

export interface ReportInput {
  version: OpenAdrSpecVersion;
  eventId: string;
  programId: string;
  clientName: string;
  reportName: string;
  requests: ReportRequest[];
  intervals: IntervalTime[];
  /** Only intervals that have ended are reported. */
  nowS: number;
  /** Resource name → its track (meters the sharing policy withholds are left out by the caller). */
  tracks: Map<string, Track>;
}

/** The report body (3.1.0 reportRequest or 3.0.1 report) for what is known now, and how many values are missing. */
export function buildReport(o: ReportInput): { body: { [k: string]: unknown }; missing: number; intervals: number } {
  const bounds = boundaries(o.intervals);
  const ended = o.intervals.map((iv, i) => ({ iv, i })).filter(({ iv }) => iv.start + iv.duration <= o.nowS);
  let missing = 0;
  const period = (iv: IntervalTime) => ({ start: new Date(iv.start * 1000).toISOString().replace('.000Z', 'Z'), duration: `PT${iv.duration}S` });
  const payloadsOf = (reqs: ReportRequest[], value: (r: ReportRequest) => number | 'MISSING' | 'BAD') => {
    const payloads: { type: string; values: (number | string)[] }[] = [];
    let quality: string | undefined;
    for (const r of reqs) {
      const v = value(r);
      if (typeof v === 'number') payloads.push({ type: r.payloadType, values: [round(v / r.scale)] });
      else quality = quality === 'BAD' ? 'BAD' : v;
    }
    if (quality) {
      missing++;
      payloads.push({ type: 'DATA_QUALITY', values: [quality] });
    }
    return payloads;
  };
  const resources: { [k: string]: unknown }[] = [];
  const perResource = [...o.tracks].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const separate = o.requests.filter((r) => !r.aggregate);
  const together = o.requests.filter((r) => r.aggregate);
  if (separate.length) {
    for (const [name, track] of perResource) {
      resources.push({
        resourceName: name,
        intervals: ended.map(({ iv, i }) => ({ id: iv.id, intervalPeriod: period(iv), payloads: payloadsOf(separate, (r) => intervalValue(track, bounds, iv, i, r)) })),
      });
    }
  }
  if (together.length) {
    resources.push({
      resourceName: 'AGGREGATED_REPORT',
      intervals: ended.map(({ iv, i }) => ({
        id: iv.id, intervalPeriod: period(iv),
        payloads: payloadsOf(together, (r) => {
          let sum = 0;
          for (const [, track] of perResource) {
            const v = intervalValue(track, bounds, iv, i, r);
            if (typeof v !== 'number') return v;
            sum += v;
          }
          return sum;
        }),
      })),
    });
  }
  const body: { [k: string]: unknown } = {
    ...(o.version === '3.0.1' ? { programID: o.programId } : {}),
    eventID: o.eventId,
    clientName: o.clientName,
    reportName: o.reportName,
    payloadDescriptors: o.requests.map((r) => ({ objectType: 'REPORT_PAYLOAD_DESCRIPTOR', payloadType: r.payloadType, readingType: r.readingType, units: r.units })),
    resources,
  };
  return { body, missing, intervals: ended.length };
}
