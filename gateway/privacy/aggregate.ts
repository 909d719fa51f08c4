// 15-minute and daily aggregates of a meter's readings (docs/protocols/meter-aggregates-v1.md): what
// a gateway shares with an audience whose policy does not allow every record. The device's own gateway
// notes which windows each of its readings messages touches; once a window has ended (plus a grace, and
// a short quiet), it reads the readings back from those messages, summarises the channels each needed
// selection allows, and signs one message per selection, chained per (device, resolution, channels).
// Readings of a window that arrive after its message was signed make a later message of the same
// window that supersedes it.

import { toHex } from '../../firmware/core/bytes.js';
import { cidOf } from '../mesh/cid.js';
import { decodeMessage, type GridMessage } from '../mesh/message.js';
import { methodOf, parseAggregate, parseReadings, type Aggregate, type AggregateValue, type MeshRecord } from '../mesh/protocols.js';
import { selectionKey, type Selection } from './consent.js';

/** After a window ends, how long late readings are waited for before it is signed (seconds). */
export const GRACE_S = { 900: 60, 86400: 900 } as const;
/** Windows that ended longer ago than this are not signed again (their late readings stay raw). */
export const RESIGN_HORIZON_S = 2 * 86400;

export const windowStart = (t: number, resolution: number) => t - (t % resolution);

/** Round half to even of sum / count (count ≥ 1), exact for safe integers. */
export function meanHalfEven(sum: number, count: number): number {
  const q = Math.floor(sum / count);
  const r = sum - q * count;
  if (2 * r > count) return q + 1;
  if (2 * r < count) return q;
  return q % 2 === 0 ? q : q + 1;
}

export interface Reading {
  seq: number;
  t: number;
  channel: number;
  value: number;
}

/** The values of a window's readings (already filtered to the window and the selection's channels). */
export function summarise(readings: Reading[]): AggregateValue[] {
  const by = new Map<number, Reading[]>();
  for (const r of readings) {
    const l = by.get(r.channel) ?? [];
    l.push(r);
    by.set(r.channel, l);
  }
  const out: AggregateValue[] = [];
  for (const ch of [...by.keys()].sort((a, b) => a - b)) {
    const l = by.get(ch)!;
    const method = methodOf(ch);
    if (method === 'mean') {
      out.push([ch, 'mean', meanHalfEven(l.reduce((s, r) => s + r.value, 0), l.length), l.length]);
    } else {
      const last = l.reduce((a, b) => (b.t > a.t || (b.t === a.t && b.seq > a.seq) ? b : a));
      out.push([ch, 'last', last.value, l.length]);
    }
  }
  return out;
}

/** The readings of a readings message's records (events and gaps are never aggregated). */
export function readingsOf(records: MeshRecord[]): Reading[] {
  const out: Reading[] = [];
  for (const r of records) if (typeof r[2] === 'number') out.push({ seq: r[0], t: r[1], channel: r[2], value: r[3] as number });
  return out;
}

/**
 * Recomputes an aggregate from its sources' bytes (a verifier holding the readings). Returns the
 * problems found: a source that is missing or not a readings message of the device, values that differ.
 */
export function checkSources(a: Aggregate, sources: (Uint8Array | undefined)[]): string[] {
  const problems: string[] = [];
  const readings: Reading[] = [];
  sources.forEach((bytes, i) => {
    if (!bytes) return void problems.push(`source ${i} is not held`);
    if (toHex(cidOf(bytes)) !== toHex(a.sources[i])) return void problems.push(`source ${i} does not hash to its CID`);
    const r = parseReadings(decodeMessage(bytes).payload);
    if (typeof r === 'string' || r.device !== a.device) return void problems.push(`source ${i} is not a readings message of ${a.device}`);
    readings.push(...inWindow(readingsOf(r.records), a.start, a.resolution, a.channels));
  });
  if (problems.length) return problems;
  const want = JSON.stringify(summarise(dedupe(readings)));
  if (want !== JSON.stringify(a.values)) problems.push(`values ${JSON.stringify(a.values)} are not those of the sources (${want})`);
  return problems;
}

function inWindow(rs: Reading[], start: number, resolution: number, channels: number[] | null): Reading[] {
  return rs.filter((r) => r.t >= start && r.t < start + resolution && (!channels || channels.includes(r.channel)));
}

/** Readings by seq once (a seq a branch carried twice counts once). */
function dedupe(rs: Reading[]): Reading[] {
  const m = new Map<number, Reading>();
  for (const r of rs) m.set(r.seq, r);
  return [...m.values()];
}

interface Chain {
  heads: Set<string>;
  /** Parents named before they were added (ancestors fetched after their children). */
  pending: Set<string>;
  /** This gateway's own chain: its latest message (binary CID) and, per recent window start, the latest message's sources (hex). */
  own?: { latest: Uint8Array; byStart: Map<number, string[]>; horizon: number };
}

/** The aggregate chains a gateway holds (its own and its peers'), by (device, resolution, channels). */
export class AggregateChains {
  readonly #chains = new Map<string, Chain>();

  static key(device: string, s: Selection): string {
    return `${device}|${selectionKey(s)}`;
  }

  add(cid: Uint8Array, a: Aggregate, own: boolean): void {
    const key = AggregateChains.key(a.device, a);
    let c = this.#chains.get(key);
    if (!c) this.#chains.set(key, (c = { heads: new Set(), pending: new Set() }));
    const hex = toHex(cid);
    if (c.heads.has(hex)) return;
    if (a.prev) {
      const p = toHex(a.prev);
      // A chain is a list: a parent not among the heads is not held yet (or, on a branch, held and named already).
      if (!c.heads.delete(p) && c.pending.size < 10_000) c.pending.add(p);
    }
    if (!c.pending.delete(hex)) c.heads.add(hex);
    if (own) {
      c.own ??= { latest: cid, byStart: new Map(), horizon: 0 };
      c.own.latest = cid;
      c.own.byStart.set(a.start, a.sources.map(toHex));
      // Only recent windows are remembered for superseding (RESIGN_HORIZON_S).
      const newest = Math.max(...c.own.byStart.keys());
      for (const s of c.own.byStart.keys()) {
        if (s < newest - RESIGN_HORIZON_S) {
          c.own.byStart.delete(s);
          c.own.horizon = Math.max(c.own.horizon, s + 1);
        }
      }
    }
  }

  newestOwn(device: string): number | undefined {
    let newest: number | undefined;
    for (const [key, c] of this.#chains) {
      if (!key.startsWith(`${device}|`) || !c.own) continue;
      for (const s of c.own.byStart.keys()) if (newest === undefined || s > newest) newest = s;
    }
    return newest;
  }

  own(device: string, s: Selection): Chain['own'] {
    return this.#chains.get(AggregateChains.key(device, s))?.own;
  }

  /** Every chain's heads (hex CIDs), with its device and selection. */
  heads(): { device: string; selection: Selection; cid: string }[] {
    const out: { device: string; selection: Selection; cid: string }[] = [];
    for (const [key, c] of this.#chains) {
      const [device, sel] = key.split('|');
      const [res, ch] = sel.split(':');
      const selection: Selection = { resolution: Number(res) as 900 | 86400, channels: ch === '*' ? null : ch.split(',').map(Number) };
      for (const h of c.heads) out.push({ device, selection, cid: h });
    }
    return out;
  }

  /** A device's chains are forgotten (its blocks were deleted here). */
  forget(device: string, s: Selection): void {
    this.#chains.delete(AggregateChains.key(device, s));
  }
}

export interface AggregatorHost {
  /** Unix ms. */
  now(): number;
  /** The selections the device's audiences need now (none: nothing is signed). */
  selections(device: string): Promise<Selection[]>;
  block(cid: Uint8Array): Promise<Uint8Array | undefined>;
  /** Signs, keeps and announces an aggregate (its `gateway` set to the signer's id); returns the message. */
  publish(a: Aggregate): Promise<GridMessage>;
}

interface Dirty {
  device: string;
  resolution: 900 | 86400;
  start: number;
  sources: Map<string, Uint8Array>;
  /** Unix ms of the last readings message that touched the window. */
  at: number;
}

/** Signs the aggregates of this gateway's own devices as their windows close. */
export class Aggregator {
  readonly chains = new AggregateChains();
  readonly #dirty = new Map<string, Dirty>();
  #busy = false;

  constructor(readonly host: AggregatorHost, readonly quietMs: number) {}

  /**
   * A readings message this gateway signed (or holds from before a restart) touches these windows (of the
   * resolutions the device's audiences need: a device nobody gets aggregates of costs nothing here).
   */
  noteReadings(device: string, cid: Uint8Array, records: MeshRecord[], resolutions: readonly (900 | 86400)[] = [900, 86400]): void {
    const now = this.host.now();
    for (const r of readingsOf(records)) {
      for (const resolution of resolutions) {
        const start = windowStart(r.t, resolution);
        const key = `${device}|${resolution}|${start}`;
        let d = this.#dirty.get(key);
        if (!d) this.#dirty.set(key, (d = { device, resolution, start, sources: new Map(), at: now }));
        d.sources.set(toHex(cid), cid);
        d.at = now;
      }
    }
  }

  /** The start of the newest window signed for the device (any chain of its own), or undefined. */
  newestSigned(device: string): number | undefined {
    return this.chains.newestOwn(device);
  }

  /** Windows waiting to be signed (tests, metrics). */
  get pending(): number {
    return this.#dirty.size;
  }

  /** Signs every window that has closed; returns how many messages were signed. */
  async tick(): Promise<number> {
    if (this.#busy) return 0;
    this.#busy = true;
    let n = 0;
    try {
      const now = this.host.now();
      for (const [key, d] of [...this.#dirty]) {
        if (now < (d.start + d.resolution + GRACE_S[d.resolution]) * 1000 || now - d.at < this.quietMs) continue;
        this.#dirty.delete(key);
        try {
          for (const s of await this.host.selections(d.device)) {
            if (s.resolution === d.resolution) n += await this.#sign(d, s);
          }
        } catch (e) {
          // Tried again at the next tick (with whatever arrived meanwhile).
          const later = this.#dirty.get(key);
          if (later) for (const [k, v] of d.sources) later.sources.set(k, v);
          else this.#dirty.set(key, d);
          throw e;
        }
      }
    } finally {
      this.#busy = false;
    }
    return n;
  }

  async #sign(d: Dirty, s: Selection): Promise<number> {
    const own = this.chains.own(d.device, s);
    if (own && d.start < own.horizon) return 0;
    const before = own?.byStart.get(d.start) ?? [];
    // The window's earlier readings must all still be here (retention may have removed them): else its late readings stay raw.
    for (const hex of before) if (!(await this.host.block(Uint8Array.from(Buffer.from(hex, 'hex'))))) return 0;
    const candidates = new Map(d.sources);
    for (const hex of before) if (!candidates.has(hex)) candidates.set(hex, Uint8Array.from(Buffer.from(hex, 'hex')));
    const used: Uint8Array[] = [];
    const readings: Reading[] = [];
    for (const cid of candidates.values()) {
      const bytes = await this.host.block(cid);
      if (!bytes) continue;
      const r = parseReadings(decodeMessage(bytes).payload);
      if (typeof r === 'string' || r.device !== d.device) continue;
      const rs = inWindow(readingsOf(r.records), d.start, d.resolution, s.channels);
      if (rs.length === 0) continue;
      used.push(cid);
      readings.push(...rs);
    }
    if (readings.length === 0) return 0;
    if (before.length && used.length === before.length && used.every((c) => before.includes(toHex(c)))) return 0;
    const a: Aggregate = {
      device: d.device, gateway: '' /* the host's */, resolution: d.resolution, start: d.start, channels: s.channels,
      values: summarise(dedupe(readings)), sources: used, prev: own?.latest ?? null,
    };
    const m = await this.host.publish(a);
    const parsed = parseAggregate(m.payload);
    if (typeof parsed !== 'string') this.chains.add(m.cid, parsed, true);
    return 1;
  }
}
