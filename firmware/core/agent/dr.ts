// Demand response on the meter: dr-event bodies (WIRE.md type 21) are kept in flash and executed by
// the meter's own clock, so an event that starts while the link is down still starts on time. What the
// meter did is recorded as `dr` events in the record log and reaches the gateway when the link returns.
// Effective signals for the guests: level = the highest level of the active events, import limit =
// the lowest limit of the active events that set one.

import { decode, encode, type CborValue } from '../cbor.js';
import type { Clock, KeyValue, Random, Timers } from '../ports.js';
import type { DrEvent } from '../wire/bodies.js';

const K_EVENTS = 'dr.events';
const CHECK_MS = 1000;
/** Ended events are kept this long (so a late resend with the same modification is recognised). */
const KEEP_ENDED_S = 24 * 3600;
/** At most this many events are kept; the oldest ended ones go first. */
const MAX_EVENTS = 32;

const PENDING = 0, ACTIVE = 1, ENDED = 2;

interface Scheduled {
  id: string;
  start: number;
  duration: number;
  level: number;
  limit: number; // -1 = none
  modification: number;
  /** The random start delay chosen once, when the event was received (kept across reboots). */
  delay: number;
  phase: number;
}

export interface DrOptions {
  kv: KeyValue;
  clock: Clock;
  timers: Timers;
  random: Random;
  /** Signals changed: level 0–3 and the import limit in W (NaN = none). */
  onSignals(level: number, limitW: number): void;
  /** `dr` events for the record log: {"event", "phase": "start" | "end"}. */
  onEvent(kind: string, data: { [key: string]: CborValue }): void;
}

export class DemandResponse {
  #events: Scheduled[] = [];
  #timer = -1;
  /** One-shot timer for the next start or end within the coming second, so transitions are not late by up to a check. */
  #edge = -1;
  #level = 0;
  #limit = NaN;
  readonly #o: DrOptions;

  constructor(o: DrOptions) {
    this.#o = o;
    this.#load();
  }

  get level(): number {
    return this.#level;
  }
  get limit(): number {
    return this.#limit;
  }

  /** The scheduled events, for status and the console. */
  list(): { id: string; start: number; duration: number; level: number; limit?: number; state: string }[] {
    return this.#events.map((e) => ({
      id: e.id, start: e.start + e.delay, duration: e.duration, level: e.level,
      ...(e.limit >= 0 ? { limit: e.limit } : {}), state: e.phase === PENDING ? 'pending' : e.phase === ACTIVE ? 'active' : 'ended',
    }));
  }

  start(): void {
    if (this.#timer < 0) this.#timer = this.#o.timers.repeat(() => this.check(), CHECK_MS);
    this.check();
  }

  stop(): void {
    if (this.#timer >= 0) this.#o.timers.clear(this.#timer);
    if (this.#edge >= 0) this.#o.timers.clear(this.#edge);
    this.#timer = -1;
    this.#edge = -1;
  }

  /** Applies a dr-event body; returns false when it was ignored (an older modification). */
  apply(b: DrEvent): boolean {
    const i = this.#events.findIndex((e) => e.id === b.id);
    const old = i >= 0 ? this.#events[i] : undefined;
    if (old && b.modification < old.modification) return false;
    if (old && b.modification === old.modification && b.duration !== 0) return false; // a resend
    if (b.duration === 0) {
      // Cancels the event: an active one ends now.
      if (old) {
        if (old.phase === ACTIVE) this.#o.onEvent('dr', { event: old.id, phase: 'end' });
        old.phase = ENDED;
        old.modification = b.modification;
      }
      this.#save();
      this.check();
      return true;
    }
    let delay = 0;
    if (b.window && b.window > 0) {
      const r = new Uint8Array(4);
      this.#o.random.fill(r);
      delay = (((r[0] << 24) | (r[1] << 16) | (r[2] << 8) | r[3]) >>> 0) % b.window;
    }
    const next: Scheduled = {
      id: b.id, start: b.start, duration: b.duration, level: b.level, limit: b.limit ?? -1,
      modification: b.modification, delay, phase: old?.phase === ACTIVE ? ACTIVE : PENDING,
    };
    if (i >= 0) this.#events[i] = next;
    else this.#events.push(next);
    this.#trim();
    this.#save();
    this.check();
    return true;
  }

  /** Moves events through their phases by the wall clock; called every second and after changes. */
  check(): void {
    const ms = this.#o.clock.now();
    if (Number.isNaN(ms)) return; // no valid clock yet: nothing can be scheduled
    const now = Math.floor(ms / 1000);
    let changed = false;
    for (const e of this.#events) {
      const begin = e.start + e.delay;
      const end = begin + e.duration;
      if (e.phase === PENDING && now >= begin) {
        if (now < end) {
          e.phase = ACTIVE;
          this.#o.onEvent('dr', { event: e.id, phase: 'start' });
        } else {
          // The whole event passed while the meter was without power or clock: record that it was missed.
          e.phase = ENDED;
          this.#o.onEvent('dr', { event: e.id, phase: 'missed' });
        }
        changed = true;
      }
      if (e.phase === ACTIVE && now >= end) {
        e.phase = ENDED;
        this.#o.onEvent('dr', { event: e.id, phase: 'end' });
        changed = true;
      }
    }
    const before = this.#events.length;
    this.#events = this.#events.filter((e) => !(e.phase === ENDED && now > e.start + e.delay + e.duration + KEEP_ENDED_S));
    if (changed || before !== this.#events.length) this.#save();
    this.#signals();
    this.#armEdge(ms, now);
  }

  /** Sets a one-shot check at the next start or end if it falls before the next regular check. */
  #armEdge(ms: number, now: number): void {
    if (this.#timer < 0) return; // not started: only explicit checks
    let next = Infinity;
    for (const e of this.#events) {
      const begin = e.start + e.delay;
      if (e.phase === PENDING && begin > now && begin < next) next = begin;
      if (e.phase !== ENDED && begin + e.duration > now && begin + e.duration < next) next = begin + e.duration;
    }
    const wait = next * 1000 - ms;
    if (this.#edge >= 0) this.#o.timers.clear(this.#edge);
    this.#edge = -1;
    if (wait > 0 && wait <= CHECK_MS) {
      this.#edge = this.#o.timers.set(() => {
        this.#edge = -1;
        this.check();
      }, wait + 2);
    }
  }

  #signals(): void {
    let level = 0;
    let limit = NaN;
    for (const e of this.#events) {
      if (e.phase !== ACTIVE) continue;
      if (e.level > level) level = e.level;
      if (e.limit >= 0 && !(e.limit >= limit)) limit = e.limit;
    }
    if (level !== this.#level || !(limit === this.#limit || (Number.isNaN(limit) && Number.isNaN(this.#limit)))) {
      this.#level = level;
      this.#limit = limit;
      this.#o.onSignals(level, limit);
    }
  }

  #trim(): void {
    while (this.#events.length > MAX_EVENTS) {
      const i = this.#events.findIndex((e) => e.phase === ENDED);
      this.#events.splice(i >= 0 ? i : 0, 1);
    }
  }

  #save(): void {
    this.#o.kv.set(K_EVENTS, encode(this.#events.map((e) => [e.id, e.start, e.duration, e.level, e.limit, e.modification, e.delay, e.phase])));
  }

  #load(): void {
    const b = this.#o.kv.get(K_EVENTS);
    if (!b) return;
    try {
      const v = decode(b);
      if (!Array.isArray(v)) return;
      for (const r of v) {
        if (!Array.isArray(r) || r.length !== 8 || typeof r[0] !== 'string') continue;
        const [id, start, duration, level, limit, modification, delay, phase] = r as [string, number, number, number, number, number, number, number];
        this.#events.push({ id, start, duration, level, limit, modification, delay, phase });
      }
    } catch {
      // A damaged schedule is dropped rather than trusted; the gateway resends kept dr-events.
      this.#events = [];
    }
  }
}
