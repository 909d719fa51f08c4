// A simulated meter for guests on the host: virtual time, in-memory flash (KeyValue), relays behind the
// real interlocks, and the real GuestSupervisor over the Node WebAssembly engine. `gridlet guest run`,
// the guest scenario tests and the guest benchmark drive guests through it; time only moves when the
// caller advances it, so a run is exact and repeatable.

import type { CborValue } from '../../firmware/core/cbor.js';
import { Interlocks, type RelayConfig } from '../../firmware/core/control/relays.js';
import { GuestSupervisor } from '../../firmware/core/guests/supervisor.js';
import type { Clock, GuestEngine, KeyValue, Random, Relay, Timers } from '../../firmware/core/ports.js';
import type { GuestAck } from '../../firmware/core/wire/bodies.js';
import { SeededRandom } from '../../firmware/core/prng.js';
import { NodeGuestEngine } from './wasm-engine.js';

/** 2007-02-01T00:00:00Z: the start of the household day shipped with the project. */
export const HOUSEHOLD_START_S = 1_170_288_000;

/** Virtual time: a Clock and Timers whose timers fire only inside `advance`. */
export class VirtualTime {
  #mono = 0;
  #next = 1;
  #timers = new Map<number, { at: number; every: number; fn: () => void }>();
  constructor(readonly startUnixMs: number) {}
  readonly clock: Clock = {
    now: () => this.startUnixMs + this.#mono,
    monotonic: () => this.#mono,
  };
  readonly timers: Timers = {
    set: (fn, ms) => this.#add(fn, ms, 0),
    repeat: (fn, ms) => this.#add(fn, ms, ms),
    clear: (id) => { this.#timers.delete(id); },
  };
  #add(fn: () => void, ms: number, every: number): number {
    const id = this.#next++;
    this.#timers.set(id, { at: this.#mono + Math.max(0, ms), every, fn });
    return id;
  }
  get ms(): number {
    return this.#mono;
  }
  /** Runs every timer due within `ms`, in time order (ties in creation order). */
  advance(ms: number): void {
    const end = this.#mono + ms;
    for (;;) {
      let id = -1;
      let at = Infinity;
      for (const [k, t] of this.#timers) if (t.at < at) { at = t.at; id = k; }
      if (id < 0 || at > end) break;
      this.#mono = at;
      const t = this.#timers.get(id)!;
      if (t.every) t.at += t.every; else this.#timers.delete(id);
      t.fn();
    }
    this.#mono = end;
  }
}

export class MemoryKeyValue implements KeyValue {
  map = new Map<string, Uint8Array>();
  writes = 0;
  get(k: string) { const v = this.map.get(k); return v ? v.slice() : undefined; }
  set(k: string, v: Uint8Array) { this.writes++; this.map.set(k, v.slice()); }
  delete(k: string) { this.map.delete(k); }
}

export class SimRelay implements Relay {
  on = false;
  /** Every switch, as [ms since start, on]. */
  switches: [number, boolean][] = [];
  constructor(readonly id: number, readonly time: VirtualTime) {}
  get(): boolean { return this.on; }
  set(on: boolean): void {
    this.on = on;
    this.switches.push([this.time.ms, on]);
  }
}

export interface SimEvent { t: number; kind: string; data: { [key: string]: CborValue } }
export interface SimRelayRequest { t: number; guest: string; id: number; on: boolean; result: number }

export interface GuestSimOptions {
  /** Unix seconds at t = 0 (default: the household day, 2007-02-01 00:00 UTC). */
  startUnixS?: number;
  /** Relays (default 1–4, none critical, off when power returns). */
  relays?: RelayConfig[];
  /** Restore window after power-up, s (default 300). */
  restoreWindowS?: number;
  seed?: number;
  engine?: GuestEngine;
  /** kv flush interval, ms (default 0: every kv_set reaches the store, so tests can read it). */
  kvFlushMs?: number;
  /** The flash of a meter that ran before (a reboot): guests, worlds and slots restored from it. */
  kv?: MemoryKeyValue;
}

export class GuestSim {
  readonly time: VirtualTime;
  readonly kv: MemoryKeyValue;
  readonly relays: SimRelay[];
  readonly interlocks: Interlocks;
  readonly supervisor: GuestSupervisor;
  readonly engine: GuestEngine;
  events: SimEvent[] = [];
  relayRequests: SimRelayRequest[] = [];
  logs: { t: number; guest: string; text: string }[] = [];
  acks: GuestAck[] = [];

  constructor(options: GuestSimOptions = {}) {
    this.kv = options.kv ?? new MemoryKeyValue();
    this.time = new VirtualTime((options.startUnixS ?? HOUSEHOLD_START_S) * 1000);
    const config = options.relays ?? [1, 2, 3, 4].map((id) => ({ id }));
    this.relays = config.map((c) => new SimRelay(c.id, this.time));
    const onEvent = (kind: string, data: { [key: string]: CborValue }) => this.events.push({ t: this.time.ms / 1000, kind, data });
    this.interlocks = new Interlocks({
      relays: this.relays, config, clock: this.time.clock, timers: this.time.timers, kv: this.kv,
      random: new SeededRandom(options.seed ?? 1), onEvent, restoreWindowS: options.restoreWindowS,
    });
    this.interlocks.powerUp();
    this.engine = options.engine ?? new NodeGuestEngine();
    this.supervisor = new GuestSupervisor({
      engine: this.engine, clock: this.time.clock, timers: this.time.timers, kv: this.kv, interlocks: this.interlocks,
      random: new SeededRandom((options.seed ?? 1) + 1),
      kvFlushMs: options.kvFlushMs ?? 0,
      onEvent,
      onAck: (a) => this.acks.push(a),
      onRelayRequest: (guest, id, on, result) => this.relayRequests.push({ t: this.time.ms / 1000, guest, id, on, result }),
      onLog: (guest, text) => this.logs.push({ t: this.time.ms / 1000, guest, text }),
    });
  }

  install(wasm: Uint8Array, manifest: unknown): GuestAck {
    return this.supervisor.install(wasm, manifest);
  }

  /** Installs a world from its bundle (guests/dist/<world>.world). */
  installWorld(bundle: Uint8Array): GuestAck {
    return this.supervisor.installWorld(bundle);
  }

  /** Seconds since the start. */
  get t(): number {
    return this.time.ms / 1000;
  }

  advance(seconds: number): void {
    this.time.advance(seconds * 1000);
  }

  relay(id: number): SimRelay {
    const r = this.relays.find((x) => x.id === id);
    if (!r) throw new Error(`no relay ${id} in this simulation`);
    return r;
  }

  /** A guest's kv slots as stored (NaN for unset). */
  slots(name: string): number[] {
    const b = this.kv.get(`guest.${name}.kv`);
    if (!b) return [];
    const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const out: number[] = [];
    for (let i = 0; i < b.byteLength / 8; i++) out.push(view.getFloat64(i * 8, true));
    return out;
  }

  /** Presets a guest's kv slots before it is installed (an installer's configuration). */
  setSlots(name: string, values: number[]): void {
    const b = new Uint8Array(values.length * 8);
    const view = new DataView(b.buffer);
    values.forEach((v, i) => view.setFloat64(i * 8, v, true));
    this.kv.set(`guest.${name}.kv`, b);
  }

  /** Events whose kind starts with `prefix`. */
  eventsOf(prefix: string): SimEvent[] {
    return this.events.filter((e) => e.kind.startsWith(prefix));
  }

  dispose(): void {
    this.supervisor.dispose();
    this.interlocks.dispose();
  }
}
