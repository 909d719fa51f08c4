// Node implementations of the small ports: Random, Clock, Timers, Logger.

import { randomFillSync } from 'node:crypto';
import type { Clock, Logger, Random, Timers } from '../../firmware/core/ports.js';

export const nodeRandom: Random = {
  fill(bytes: Uint8Array) {
    randomFillSync(bytes);
  },
};

/** The host's clock. Without a valid clock (`valid` false) it reads NaN until `set` is called. */
export class NodeClock implements Clock {
  #offset = 0;
  #valid: boolean;
  constructor(valid = true) {
    this.#valid = valid;
  }
  now(): number {
    return this.#valid ? Date.now() + this.#offset : NaN;
  }
  monotonic(): number {
    return performance.now();
  }
  set(unixMs: number): void {
    this.#offset = unixMs - Date.now();
    this.#valid = true;
  }
}

export class NodeTimers implements Timers {
  #next = 1;
  #live = new Map<number, NodeJS.Timeout>();
  readonly #unref: boolean;
  readonly #minRepeatMs: number;
  /**
   * `unref` (default true): the timers do not keep the process alive. `minRepeatMs`: repeats faster than
   * this are slowed to it (a fleet of thousands of agents in one process sets it).
   */
  constructor(opts: { unref?: boolean; minRepeatMs?: number } = {}) {
    this.#unref = opts.unref ?? true;
    this.#minRepeatMs = opts.minRepeatMs ?? 0;
  }
  set(callback: () => void, ms: number): number {
    const id = this.#next++;
    const h = setTimeout(() => {
      this.#live.delete(id);
      callback();
    }, ms);
    if (this.#unref) h.unref?.();
    this.#live.set(id, h);
    return id;
  }
  repeat(callback: () => void, ms: number): number {
    const id = this.#next++;
    const h = setInterval(callback, Math.max(ms, this.#minRepeatMs));
    if (this.#unref) h.unref?.();
    this.#live.set(id, h);
    return id;
  }
  clear(id: number): void {
    const h = this.#live.get(id);
    if (h) {
      clearTimeout(h);
      clearInterval(h);
      this.#live.delete(id);
    }
  }
  clearAll(): void {
    for (const id of [...this.#live.keys()]) this.clear(id);
  }
}

/** Writes core log lines to a stream with a prefix (stderr by default, so stdout stays machine-readable). */
export function streamLogger(prefix: string, minLevel: 'debug' | 'info' | 'warn' | 'error' = 'info', out: NodeJS.WritableStream = process.stderr): Logger {
  const order = { debug: 0, info: 1, warn: 2, error: 3 };
  return {
    log(level, message) {
      if (order[level] < order[minLevel]) return;
      out.write(`${new Date().toISOString()} ${level.padEnd(5)} ${prefix} ${message}\n`);
    },
  };
}
