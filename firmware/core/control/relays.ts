// Interlocks between guests and relays (GUESTS.md "Supervision"): the firmware, not the guest, decides
// whether a relay actually switches. A relay keeps each state at least its minimum dwell, toggles at
// most N times an hour, a circuit marked critical is never switched by a guest, a technician lock
// overrides every guest, and at most one guest holds a relay. After power returns every relay starts
// in its safe state and goes back to its last commanded state after a random 0–300 s delay.

import type { CborValue } from '../cbor.js';
import type { Clock, KeyValue, Random, Relay, Timers } from '../ports.js';

/** Return codes of the `relay` import (GUESTS.md). */
export const RelayResult = { done: 0, noCapability: -1, refused: -2 } as const;

/** Names of the interlock rules, as they appear in `interlock` events (`{"id", "rule"}`). */
export const InterlockRule = {
  dwell: 'dwell',
  toggles: 'toggles-per-hour',
  critical: 'critical',
  technician: 'technician-lock',
} as const;

export interface RelayConfig {
  id: number;
  /** A critical circuit (a fridge, medical equipment): guests never switch it. */
  critical?: boolean;
  /** State after power returns, before the restore (default off). */
  safeOn?: boolean;
  /** Minimum time in each state, s (default 60). */
  minDwellS?: number;
  /** Toggles allowed in any hour (default 6). */
  maxTogglesPerHour?: number;
}

export interface InterlocksOptions {
  relays: Relay[];
  config?: RelayConfig[];
  clock: Clock;
  timers: Timers;
  kv: KeyValue;
  random: Random;
  /** `relay` and `interlock` events (WIRE.md event kinds). */
  onEvent?: (kind: string, data: { [key: string]: CborValue }) => void;
  /** Upper bound of the random restore delay after power-up, s (default 300). */
  restoreWindowS?: number;
}

export const DEFAULT_MIN_DWELL_S = 60;
export const DEFAULT_MAX_TOGGLES_PER_HOUR = 6;
const HOUR_MS = 3_600_000;
/** The same refusal (relay, rule) is reported at most once a minute. */
const INTERLOCK_EVENT_EVERY_MS = 60_000;

const LOCK_NONE = 0;
const LOCK_OFF = 1;
const LOCK_ON = 2;
const LOCK_KEEP = 3;

class RelaySlot {
  holder: string | undefined = undefined;
  /** Monotonic ms of the last switch (power-up counts as one). */
  lastChange = 0;
  /** Ring of the monotonic times of the last toggles. */
  toggles: number[] = [];
  lock = LOCK_NONE;
  restoreTimer = -1;
  lastRule = '';
  lastRuleAt = -Infinity;
  /** The rule that refused the latest request ('' when it was granted). */
  refused = '';
  constructor(readonly relay: Relay, readonly critical: boolean, readonly safeOn: boolean, readonly dwellMs: number,
    readonly maxToggles: number) {}
}

export interface RelayStatus {
  id: number;
  on: boolean;
  critical: boolean;
  holder: string | undefined;
  locked: boolean;
  togglesLastHour: number;
  restorePending: boolean;
}

export class Interlocks {
  #o: InterlocksOptions;
  #slots = new Map<number, RelaySlot>();

  constructor(options: InterlocksOptions) {
    this.#o = options;
    for (const relay of options.relays) {
      const c = options.config?.find((x) => x.id === relay.id);
      const slot = new RelaySlot(relay, c?.critical ?? false, c?.safeOn ?? false,
        (c?.minDwellS ?? DEFAULT_MIN_DWELL_S) * 1000, c?.maxTogglesPerHour ?? DEFAULT_MAX_TOGGLES_PER_HOUR);
      const lock = options.kv.get(`relay.${relay.id}.lock`);
      if (lock && lock.length === 1) slot.lock = lock[0];
      this.#slots.set(relay.id, slot);
    }
  }

  /**
   * Power returned (boot): every relay goes to its safe state now (a technician lock's forced state
   * wins) and to its last commanded state after a random delay within the restore window.
   */
  powerUp(): void {
    const now = this.#o.clock.monotonic();
    const window = (this.#o.restoreWindowS ?? 300) * 1000;
    for (const [id, s] of this.#slots) {
      const locked = s.lock === LOCK_ON || s.lock === LOCK_OFF;
      const start = locked ? s.lock === LOCK_ON : s.safeOn;
      this.#switch(s, start, locked ? 'technician' : 'power-up', now, false);
      s.lastChange = now;
      const saved = this.#o.kv.get(`relay.${id}.cmd`);
      if (!saved || saved.length !== 1 || s.critical || s.lock !== LOCK_NONE) continue;
      const want = saved[0] === 1;
      if (want === start) continue;
      const delay = Math.floor(this.#uniform() * window);
      s.restoreTimer = this.#o.timers.set(() => {
        s.restoreTimer = -1;
        if (s.lock !== LOCK_NONE) return;
        this.#switch(s, want, 'restore', this.#o.clock.monotonic(), true);
      }, delay);
    }
  }

  /** Gives `holder` (a guest name) the relay. False when it does not exist or another guest holds it. */
  claim(id: number, holder: string): boolean {
    const s = this.#slots.get(id);
    if (!s || (s.holder !== undefined && s.holder !== holder)) return false;
    s.holder = holder;
    return true;
  }

  /** Releases every relay `holder` holds. */
  release(holder: string): void {
    for (const s of this.#slots.values()) if (s.holder === holder) s.holder = undefined;
  }

  /**
   * Puts every relay `holder` holds in its safe state now (a world that faulted, GUESTS.md
   * "Microworlds"): no dwell or toggle limit holds it back, a technician lock and a critical circuit
   * keep theirs, and the safe state becomes the commanded one (what returns after a power cut).
   * Returns the relays it switched.
   */
  toSafe(holder: string): number[] {
    const switched: number[] = [];
    const now = this.#o.clock.monotonic();
    for (const [id, s] of this.#slots) {
      if (s.holder !== holder || s.lock !== LOCK_NONE || s.critical) continue;
      this.#cancelRestore(s);
      if (s.relay.get() !== s.safeOn) {
        this.#switch(s, s.safeOn, 'safe', now, true);
        switched.push(id);
      }
      this.#remember(id, s.safeOn);
    }
    return switched;
  }

  holder(id: number): string | undefined {
    return this.#slots.get(id)?.holder;
  }

  has(id: number): boolean {
    return this.#slots.has(id);
  }

  /**
   * A guest asks for a relay state (the `relay` import after its capability check). Returns 0 when the
   * relay is in that state (switched now or already), -1 when `by` does not hold it or it does not
   * exist, -2 when an interlock refuses (and reports an `interlock` event, at most once a minute per rule).
   */
  request(id: number, on: boolean, by: string): number {
    const s = this.#slots.get(id);
    if (!s || s.holder !== by) return RelayResult.noCapability;
    s.refused = '';
    if (s.lock !== LOCK_NONE) return this.#refuse(s, InterlockRule.technician);
    if (s.critical) return this.#refuse(s, InterlockRule.critical);
    if (s.relay.get() === on) {
      // Already there; a pending restore to the other state is superseded by this newer command.
      this.#cancelRestore(s);
      this.#remember(id, on);
      return RelayResult.done;
    }
    const now = this.#o.clock.monotonic();
    if (now - s.lastChange < s.dwellMs) return this.#refuse(s, InterlockRule.dwell);
    if (this.#togglesWithin(s, now) >= s.maxToggles) return this.#refuse(s, InterlockRule.toggles);
    this.#cancelRestore(s);
    this.#switch(s, on, by, now, true);
    this.#remember(id, on);
    return RelayResult.done;
  }

  /** 1 on, 0 off, -1 no such relay (the `relay_state` import). */
  state(id: number): number {
    const s = this.#slots.get(id);
    if (!s) return -1;
    return s.relay.get() ? 1 : 0;
  }

  /**
   * Technician lock from the console: overrides every guest until unlocked. With `on` given the relay
   * is forced to that state (no dwell: a person is at the meter); without, it stays where it is.
   */
  lock(id: number, on?: boolean): boolean {
    const s = this.#slots.get(id);
    if (!s) return false;
    this.#cancelRestore(s);
    s.lock = on === undefined ? LOCK_KEEP : on ? LOCK_ON : LOCK_OFF;
    this.#o.kv.set(`relay.${id}.lock`, new Uint8Array([s.lock]));
    if (on !== undefined && s.relay.get() !== on) {
      this.#switch(s, on, 'technician', this.#o.clock.monotonic(), false);
      this.#remember(id, on);
    }
    return true;
  }

  unlock(id: number): boolean {
    const s = this.#slots.get(id);
    if (!s) return false;
    s.lock = LOCK_NONE;
    this.#o.kv.delete(`relay.${id}.lock`);
    return true;
  }

  /** The rule that refused the last request for this relay (for the console), or undefined. */
  lastRefusal(id: number): string | undefined {
    const s = this.#slots.get(id);
    return s && s.refused ? s.refused : undefined;
  }

  isLocked(id: number): boolean {
    return (this.#slots.get(id)?.lock ?? LOCK_NONE) !== LOCK_NONE;
  }

  status(): RelayStatus[] {
    const now = this.#o.clock.monotonic();
    const out: RelayStatus[] = [];
    for (const [id, s] of this.#slots) {
      out.push({
        id, on: s.relay.get(), critical: s.critical, holder: s.holder, locked: s.lock !== LOCK_NONE,
        togglesLastHour: this.#togglesWithin(s, now), restorePending: s.restoreTimer >= 0,
      });
    }
    return out;
  }

  /** Stops pending restores (shutdown, tests). */
  dispose(): void {
    for (const s of this.#slots.values()) this.#cancelRestore(s);
  }

  #switch(s: RelaySlot, on: boolean, by: string, now: number, countToggle: boolean): void {
    if (s.relay.get() === on) return;
    s.relay.set(on);
    s.lastChange = now;
    if (countToggle) {
      if (s.toggles.length >= s.maxToggles) s.toggles.shift();
      s.toggles.push(now);
    }
    this.#o.onEvent?.('relay', { id: s.relay.id, on, by });
  }

  #togglesWithin(s: RelaySlot, now: number): number {
    let n = 0;
    for (const t of s.toggles) if (now - t < HOUR_MS) n++;
    return n;
  }

  #refuse(s: RelaySlot, rule: string): number {
    s.refused = rule;
    const now = this.#o.clock.monotonic();
    if (rule !== s.lastRule || now - s.lastRuleAt >= INTERLOCK_EVENT_EVERY_MS) {
      s.lastRule = rule;
      s.lastRuleAt = now;
      this.#o.onEvent?.('interlock', { id: s.relay.id, rule });
    }
    return RelayResult.refused;
  }

  #remember(id: number, on: boolean): void {
    const key = `relay.${id}.cmd`;
    const saved = this.#o.kv.get(key);
    if (saved && saved.length === 1 && saved[0] === (on ? 1 : 0)) return; // spare the flash
    this.#o.kv.set(key, new Uint8Array([on ? 1 : 0]));
  }

  #cancelRestore(s: RelaySlot): void {
    if (s.restoreTimer >= 0) {
      this.#o.timers.clear(s.restoreTimer);
      s.restoreTimer = -1;
    }
  }

  #uniform(): number {
    const b = new Uint8Array(4);
    this.#o.random.fill(b);
    return (((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0) / 0x100000000;
  }
}
