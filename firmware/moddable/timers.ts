// The Timers and Clock ports over Moddable's `timer` and `time` modules.

import Timer from 'timer';
import Time from 'time';
import type { Clock, Timers } from '../core/ports.js';

/** Numbered timers: the core keeps ids, Moddable hands out Timer objects. */
export class ModdableTimers implements Timers {
  #live = new Map<number, Timer>();
  #next = 1;

  set(callback: () => void, ms: number): number {
    const id = this.#next++;
    this.#live.set(id, Timer.set(() => {
      this.#live.delete(id);
      callback();
    }, ms));
    return id;
  }

  repeat(callback: () => void, ms: number): number {
    const id = this.#next++;
    this.#live.set(id, Timer.repeat(() => callback(), ms));
    return id;
  }

  clear(id: number): void {
    const t = this.#live.get(id);
    if (t === undefined) return;
    Timer.clear(t);
    this.#live.delete(id);
  }
}

/** Before SNTP, a telegram clock or a `time` body, the ESP32's clock counts from 1970. */
const VALID_AFTER_MS = Date.UTC(2024, 0, 1);

export class ModdableClock implements Clock {
  #lastTicks = Time.ticks;
  #wraps = 0;

  now(): number {
    const ms = Date.now();
    return ms >= VALID_AFTER_MS ? ms : NaN;
  }

  /** Time.ticks is a 32-bit millisecond counter on the ESP32 (it wraps after 49.7 days). */
  monotonic(): number {
    const t = Time.ticks >>> 0;
    if (t < this.#lastTicks) this.#wraps++;
    this.#lastTicks = t;
    return this.#wraps * 4294967296 + t;
  }

  set(unixMs: number): void {
    Time.set(Math.floor(unixMs / 1000));
  }
}
