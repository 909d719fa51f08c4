// A simulated world for core tests (TigerBeetle style): virtual time, in-memory storage and a
// message bus, all deterministic. Test doubles, named as such; they run on Node and inside XS.

import type { Clock, KeyValue, LinkStateValue, Random, Timers, Transport, TransportHandlers, TransportOptions } from '../../../firmware/core/ports.js';
import { LinkState } from '../../../firmware/core/ports.js';
import { SeededRandom } from '../../../firmware/core/prng.js';

export { SeededRandom };

/** Virtual time: timers fire only when the test advances the clock. */
export class SimTime implements Clock {
  #mono = 0;
  #wallOffset: number;
  #valid: boolean;
  #next = 1;
  #timers = new Map<number, { at: number; every: number; fn: () => void }>();
  constructor(wallStartMs = 1_700_000_000_000, valid = true) {
    this.#wallOffset = wallStartMs;
    this.#valid = valid;
  }
  now(): number {
    return this.#valid ? this.#wallOffset + this.#mono : NaN;
  }
  monotonic(): number {
    return this.#mono;
  }
  set(unixMs: number): void {
    this.#wallOffset = unixMs - this.#mono;
    this.#valid = true;
  }
  set_(fn: () => void, ms: number, every: number): number {
    const id = this.#next++;
    this.#timers.set(id, { at: this.#mono + ms, every, fn });
    return id;
  }
  // Timers port
  setTimer(fn: () => void, ms: number): number {
    return this.set_(fn, ms, 0);
  }
  repeat(fn: () => void, ms: number): number {
    return this.set_(fn, ms, ms);
  }
  clear(id: number): void {
    this.#timers.delete(id);
  }
  /** Runs every timer due within `ms`, in time order, with `pump` (message delivery) between them. */
  advance(ms: number, pump: () => void = () => {}): void {
    const end = this.#mono + ms;
    pump();
    for (;;) {
      let nextId = -1;
      let nextAt = Infinity;
      for (const [id, t] of this.#timers) if (t.at < nextAt) { nextAt = t.at; nextId = id; }
      if (nextId < 0 || nextAt > end) break;
      this.#mono = nextAt;
      const t = this.#timers.get(nextId)!;
      if (t.every) t.at += t.every; else this.#timers.delete(nextId);
      t.fn();
      pump();
    }
    this.#mono = end;
    pump();
  }
}

/** Adapts SimTime to the Timers port shape (whose `set` clashes with Clock.set). */
export function simTimers(time: SimTime): Timers {
  return { set: (fn, ms) => time.setTimer(fn, ms), repeat: (fn, ms) => time.repeat(fn, ms), clear: (id) => time.clear(id) };
}

export class MemoryKV implements KeyValue {
  map = new Map<string, Uint8Array>();
  get(k: string) { const v = this.map.get(k); return v ? v.slice() : undefined; }
  set(k: string, v: Uint8Array) { this.map.set(k, v.slice()); }
  delete(k: string) { this.map.delete(k); }
}

export interface BusMessage { topic: string; payload: Uint8Array; from: string }

/**
 * An in-memory message bus with MQTT-like topics (exact match and `+`) that queues messages until
 * `deliver()` is called, so a test controls interleavings. Each BusTransport is one client on it.
 */
export class MemoryBus {
  queue: BusMessage[] = [];
  clients = new Set<BusTransport>();
  /** Every message ever published, for assertions. */
  log: BusMessage[] = [];
  up = true;
  /** Messages for which this says true are lost on the way (a link that loses what it carried). */
  drop: ((topic: string) => boolean) | undefined;
  publish(m: BusMessage): void {
    if (this.drop?.(m.topic)) return;
    this.queue.push(m);
    this.log.push(m);
  }
  deliver(): number {
    let n = 0;
    while (this.queue.length) {
      const m = this.queue.shift()!;
      for (const c of this.clients) if (c.matches(m.topic)) { c.receive(m.topic, m.payload); n++; }
    }
    return n;
  }
  setUp(up: boolean): void {
    this.up = up;
    for (const c of this.clients) c.linkChanged();
  }
}

export class BusTransport implements Transport {
  state: LinkStateValue = LinkState.down;
  lastError = '';
  options: TransportOptions | undefined;
  #handlers: TransportHandlers | undefined;
  constructor(readonly bus: MemoryBus, readonly name = 'bus') {}
  start(options: TransportOptions, handlers: TransportHandlers): void {
    this.options = options;
    this.#handlers = handlers;
    this.bus.clients.add(this);
    this.linkChanged();
  }
  restart(options: TransportOptions): void {
    this.options = options;
    if (this.state === LinkState.up) this.#handlers?.onDisconnect('restart');
    this.state = LinkState.down;
    this.linkChanged();
  }
  linkChanged(): void {
    if (this.bus.up && this.state !== LinkState.up && this.#handlers) {
      this.state = LinkState.up;
      this.#handlers.onConnect();
    } else if (!this.bus.up && this.state === LinkState.up) {
      this.state = LinkState.down;
      this.lastError = 'link down';
      this.#handlers?.onDisconnect('link down');
    }
  }
  matches(topic: string): boolean {
    if (this.state !== LinkState.up || !this.options) return false;
    return this.options.subscriptions.some((s) => {
      const a = s.split('/'), b = topic.split('/');
      return a.length === b.length && a.every((p, i) => p === '+' || p === b[i]);
    });
  }
  receive(topic: string, payload: Uint8Array): void {
    this.#handlers?.onMessage(topic, payload);
  }
  publish(topic: string, payload: Uint8Array): boolean {
    if (this.state !== LinkState.up) return false;
    this.bus.publish({ topic, payload: payload.slice(), from: this.options?.clientId ?? '' });
    return true;
  }
  stop(): void {
    this.bus.clients.delete(this);
    this.state = LinkState.down;
  }
}
