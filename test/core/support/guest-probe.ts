// Runs guests through a GuestEngine step by step and reports what a user of the engine can observe:
// each call's result, fuel used and trap kind, and every import the guest made (count and a hash of
// the transcript). The same code runs on Node (the differential test, v8 against wasm3) and inside
// the firmware image on the lin simulator (test/firmware/apps/wasm3-probe), so equal outcomes mean
// equal behaviour. XS-safe: no Node APIs; nothing runs at module level (the probe image preloads it).

import type { GuestEngine, GuestImport, GuestInstance } from '../../../firmware/core/ports.js';
import { GuestLog, wasiImports, WASI_MODULE } from '../../../firmware/core/guests/wasi.js';
import { decodeWorld, peerCall, validateWorld } from '../../../firmware/core/guests/world.js';

export interface ProbeCall {
  /** Export to call. */
  fn: string;
  args?: number[];
  fuel: number;
}

export interface ProbeCase {
  name: string;
  /** The .wasm file (beside the probe script); for a world, its bundle (.world). */
  file: string;
  /** The file is a world's bundle: calls name `member.export`, and each member loads at its budget. */
  world?: boolean;
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
  #seed = 0x2545f491;
  instance: GuestInstance | undefined;
  readonly relays = [0, 0, 0, 0];
  readonly kv: number[] = [NaN, NaN, NaN, NaN, NaN, NaN, NaN, NaN];
  /** The logs of the guests loaded (WASI stdout/stderr), to start and end with each call. */
  readonly logs: GuestLog[] = [];

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

  /** The WASI subset over this world (the agent's own functions, wasi.ts), its calls in the transcript. */
  links(instance: () => GuestInstance | undefined = () => this.instance): { [module: string]: Record<string, GuestImport> } {
    const log = new GuestLog((bytes, fd) => {
      let text = '';
      for (let i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
      this.#note(`out${fd}:${text};`);
    });
    this.logs.push(log);
    const wasi = wasiImports({
      instance,
      clock: { now: () => 1_700_000_000_000 + this.t * 300_000, monotonic: () => this.t * 300_000 },
      random: {
        fill: (b: Uint8Array) => {
          for (let i = 0; i < b.length; i++) {
            let x = this.#seed;
            x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
            this.#seed = x >>> 0;
            b[i] = this.#seed & 0xff;
          }
        },
      },
      out: log,
      exit: (code) => this.#note(`exit(${code});`),
    });
    const noted: Record<string, GuestImport> = {};
    for (const name of Object.keys(wasi)) noted[name] = this.#io(name, wasi[name]);
    return { [WASI_MODULE]: noted };
  }

  #io<A extends number[]>(name: string, f: (...a: A) => number | void): (...a: A) => number | void {
    return (...a: A): number | void => {
      const r = f(...a);
      this.#note(`${name}(${a.join(',')})=${String(r)};`);
      return r;
    };
  }

  imports(instance: () => GuestInstance | undefined = () => this.instance): Record<string, GuestImport> {
    const io = <A extends number[]>(name: string, f: (...a: A) => number | void) => this.#io(name, f);
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
        const bytes = instance()?.readMemory(ptr >>> 0, Math.min(len >>> 0, 120));
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

/** Runs one call of `instance` with its log's per-call limits, as the supervisor does. */
function callWithLog(instance: GuestInstance, log: GuestLog | undefined, call: ProbeCall, fn: string): number | undefined {
  log?.begin(fn === '_start');
  try {
    return instance.call(fn, call.args ?? [], call.fuel);
  } finally {
    log?.end();
  }
}

/** Loads `wasm` on `engine` and runs the case's calls, reporting each step to `report`. */
export function runProbe(engine: GuestEngine, c: ProbeCase, wasm: Uint8Array, report: (o: ProbeOutcome) => void): void {
  if (c.world) {
    runWorldProbe(engine, c, wasm, report);
    return;
  }
  const world = new ProbeWorld();
  const limits = c.startFuel === undefined ? { memoryBytes: c.memoryBytes } : { memoryBytes: c.memoryBytes, fuel: c.startFuel };
  let instance: GuestInstance;
  world.step();
  try {
    instance = engine.instantiate(wasm, world.imports(), limits, world.links());
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
      const r = callWithLog(instance, world.logs[0], call, call.fn);
      report({ case: c.name, step, r: r === undefined ? null : r, fuel: instance.fuelUsed, kind: 0, io: world.io, hash: world.hash });
    } catch (e) {
      report({ case: c.name, step, fuel: instance.fuelUsed, io: world.io, hash: world.hash, ...trapFields(e) });
    }
  }
  instance.dispose();
}

/**
 * A world's members loaded in the order the supervisor loads them (each after those it calls), each
 * with its own imports, WASI and the functions of the members it calls (world.ts peerCall, as the
 * supervisor links them); calls name `member.export`, and report the fuel of the member called (a
 * call into another member is charged to the caller).
 */
function runWorldProbe(engine: GuestEngine, c: ProbeCase, bundle: Uint8Array, report: (o: ProbeOutcome) => void): void {
  const world = new ProbeWorld();
  world.step();
  const d = decodeWorld(bundle);
  const v = d.ok ? validateWorld(d) : d;
  if (!v.ok) {
    report({ case: c.name, step: 'load', fuel: -1, kind: 1, io: 0, hash: world.hash, msg: v.reason });
    return;
  }
  const instances: { [member: string]: GuestInstance | undefined } = {};
  const logs: { [member: string]: GuestLog } = {};
  const all: GuestInstance[] = [];
  for (const i of v.order) {
    const m = v.world.members[i];
    const mine = () => instances[m.name];
    const links = world.links(mine);
    logs[m.name] = world.logs[world.logs.length - 1];
    for (const peer of v.infos[i].peers) {
      const dot = peer.indexOf('.');
      const callee = peer.slice(0, dot);
      const fn = peer.slice(dot + 1);
      const into = links[callee] ?? (links[callee] = {});
      into[fn] = peerCall(mine, () => instances[callee], fn, peer, {
        begin: () => { logs[callee].begin(); return true; },
        end: () => logs[callee].end(),
      });
    }
    world.step();
    try {
      const instance = engine.instantiate(v.modules[i], world.imports(mine), { memoryBytes: m.manifest.memory_bytes, fuel: m.manifest.fuel_per_call }, links);
      instances[m.name] = instance;
      all.push(instance);
      report({ case: c.name, step: `load:${m.name}`, fuel: instance.fuelUsed, kind: 0, io: world.io, hash: world.hash });
    } catch (e) {
      report({ case: c.name, step: `load:${m.name}`, fuel: -1, io: world.io, hash: world.hash, ...trapFields(e) });
      for (const x of all) x.dispose();
      return;
    }
  }
  for (let i = 0; i < c.calls.length; i++) {
    const call = c.calls[i];
    const dot = call.fn.indexOf('.');
    const member = call.fn.slice(0, dot);
    const fn = call.fn.slice(dot + 1);
    const step = `${i + 1}:${call.fn}`;
    const instance = instances[member];
    world.step();
    if (!instance) {
      report({ case: c.name, step, fuel: -1, kind: 1, io: 0, hash: world.hash, msg: `no member ${member}` });
      continue;
    }
    try {
      const r = callWithLog(instance, logs[member], call, fn);
      report({ case: c.name, step, r: r === undefined ? null : r, fuel: instance.fuelUsed, kind: 0, io: world.io, hash: world.hash });
    } catch (e) {
      report({ case: c.name, step, fuel: instance.fuelUsed, io: world.io, hash: world.hash, ...trapFields(e) });
    }
  }
  for (const x of all) x.dispose();
}
