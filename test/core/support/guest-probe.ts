// Runs guests through a GuestEngine step by step and reports what a user of the engine can observe:
// each call's result, fuel used and trap kind, and every import the guest made (count and a hash of
// the transcript). The same code runs on Node (the differential test, v8 against wasm3) and inside
// the firmware image on the lin simulator (test/firmware/apps/wasm3-probe), so equal outcomes mean
// equal behaviour. XS-safe: no Node APIs; nothing runs at module level (the probe image preloads it).

import type { GuestEngine, GuestImport, GuestInstance } from '../../../firmware/core/ports.js';

export interface ProbeCall {
  /** Export to call. */
  fn: string;
  args?: number[];
  fuel: number;
}

export interface ProbeCase {
  name: string;
  /** The .wasm file (beside the probe script). */
  file: string;
  memoryBytes: number;
  /** The start function's budget (limits.fuel); the engine's default when absent. */
  startFuel?: number;
  calls: ProbeCall[];
}

/** What one step did: `load` (instantiate) or a call. */
export interface ProbeOutcome {
  case: string;
  step: string;
  /** The call's result (null for none); absent when it trapped. */
  r?: number | null;
  /** Fuel used by the call (by the start function for `load`; -1 when instantiate failed). */
  fuel: number;
  /** 0, or the TrapKind that stopped it. */
  kind: number;
  /** Imports called during the step, and a hash of what was asked and answered. */
  io: number;
  hash: string;
  msg?: string;
}

/** A small meter for guests to live in: readings, signals and relays that change from step to step. */
export class ProbeWorld {
  t = 0;
  io = 0;
  #hash = 0x811c9dc5;
  instance: GuestInstance | undefined;
  readonly relays = [0, 0, 0, 0];
  readonly kv: number[] = [NaN, NaN, NaN, NaN, NaN, NaN, NaN, NaN];

  #note(text: string): void {
    this.io++;
    let h = this.#hash;
    for (let i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    this.#hash = h;
  }

  /** Starts a new step: the clock moves on and the transcript starts afresh. */
  step(): void {
    this.t++;
    this.io = 0;
    this.#hash = 0x811c9dc5;
  }

  get hash(): string {
    return (this.#hash >>> 0).toString(16);
  }

  hour(): number {
    return Math.floor(this.t / 12) % 24;
  }

  imports(): Record<string, GuestImport> {
    const io = <A extends number[]>(name: string, f: (...a: A) => number | void) => (...a: A): number | void => {
      const r = f(...a);
      this.#note(`${name}(${a.join(',')})=${String(r)};`);
      return r;
    };
    return {
      time: io('time', () => 1_700_000_000 + this.t * 300),
      local_hour: io('local_hour', () => this.hour()),
      weekday: io('weekday', () => Math.floor(this.t / 288) % 7),
      channel: io('channel', (ch: number) => {
        switch (ch) {
          case 1: return this.t * 400;
          case 3: return (this.t * 733) % 9000;
          case 4: return this.t % 17 === 0 ? 250 : 0;
          case 5: return this.t % 13 === 0 ? 200_000 : 230_000;
          case 8: return ((this.t * 733) % 9000) * 4;
          default: return NaN;
        }
      }),
      signal: io('signal', (id: number) => {
        switch (id) {
          case 1: return this.hour() >= 17 && this.hour() < 21 ? 0.4 : 0.25;
          case 2: return Math.floor(this.t / 10) % 4;
          case 3: return 5000;
          default: return NaN;
        }
      }),
      relay: io('relay', (id: number, on: number) => {
        if (id < 1 || id > 3) return -1;
        if (this.t % 29 === 0) return -2;
        this.relays[id] = on ? 1 : 0;
        return 0;
      }),
      relay_state: io('relay_state', (id: number) => {
        // Answers an i32 import should convert as WebAssembly does (ToInt32), for the conversion probe.
        if (id === 97) return -2.5;
        if (id === 98) return NaN;
        if (id === 99) return 2 ** 32 + 5.75;
        return id >= 1 && id <= 3 ? this.relays[id] : -1;
      }),
      emit: io('emit', (kind: number, value: number) => (this.t % 7 === 0 || kind < 0 || value !== value ? -3 : 0)),
      log: io('log', (ptr: number, len: number) => {
        // As the supervisor does: the bytes come through readMemory, which holds them to the cap.
        const bytes = this.instance?.readMemory(ptr >>> 0, Math.min(len >>> 0, 120));
        return bytes ? bytes.length : 0;
      }),
      kv_get: io('kv_get', (slot: number) => (slot >= 0 && slot < this.kv.length ? this.kv[slot] : NaN)),
      kv_set: io('kv_set', (slot: number, value: number) => {
        if (slot < 0 || slot >= this.kv.length) return -1;
        this.kv[slot] = value;
        return 0;
      }),
    };
  }
}

function trapFields(e: unknown): { kind: number; msg: string } {
  const kind = (e as { kind?: unknown }).kind;
  return { kind: typeof kind === 'number' ? kind : -1, msg: e instanceof Error ? e.message : String(e) };
}

/** Loads `wasm` on `engine` and runs the case's calls, reporting each step to `report`. */
export function runProbe(engine: GuestEngine, c: ProbeCase, wasm: Uint8Array, report: (o: ProbeOutcome) => void): void {
  const world = new ProbeWorld();
  const limits = c.startFuel === undefined ? { memoryBytes: c.memoryBytes } : { memoryBytes: c.memoryBytes, fuel: c.startFuel };
  let instance: GuestInstance;
  world.step();
  try {
    instance = engine.instantiate(wasm, world.imports(), limits);
  } catch (e) {
    report({ case: c.name, step: 'load', fuel: -1, io: world.io, hash: world.hash, ...trapFields(e) });
    return;
  }
  world.instance = instance;
  report({ case: c.name, step: 'load', fuel: instance.fuelUsed, kind: 0, io: world.io, hash: world.hash });
  for (let i = 0; i < c.calls.length; i++) {
    const call = c.calls[i];
    const step = `${i + 1}:${call.fn}`;
    world.step();
    try {
      const r = instance.call(call.fn, call.args ?? [], call.fuel);
      report({ case: c.name, step, r: r === undefined ? null : r, fuel: instance.fuelUsed, kind: 0, io: world.io, hash: world.hash });
    } catch (e) {
      report({ case: c.name, step, fuel: instance.fuelUsed, io: world.io, hash: world.hash, ...trapFields(e) });
    }
  }
  instance.dispose();
}
