// The GuestEngine port on Node's WebAssembly: the same .wasm bytes and limits as wasm3 on the meter.
//  - Fuel: the amounts of the module's `metering.usegas(i64)` calls, charged against the call's budget;
//    when it is spent the call stops with a fuel GuestTrap. By default each usegas pair is turned into
//    an inline check on a wasm global at load time (memory-guard.ts), so metering costs no call into
//    JS per region; `fuel: 'import'` links usegas to a JS counter instead (the benchmark compares).
//  - Memory: the cap is exact: memory-guard.ts rewrites every load/store/grow to check `memory_bytes`
//    before Node compiles the module; `readMemory` (the `log` import) checks it too.
//  - Traps: anything that stops a call becomes a GuestTrap with its kind (trap, fuel, memory) and reason.

import type { GuestEngine, GuestImport, GuestInstance, GuestLinks } from '../../firmware/core/ports.js';
import { DEFAULT_START_FUEL, GuestTrap, TrapKind } from '../../firmware/core/ports.js';
import { BREACH_EXPORT, BREACH_FUEL, BREACH_GROW, FUEL_EXPORT, guardMemory, START_EXPORT } from './memory-guard.js';
import { WA, type WasmGlobal, type WasmImports, type WasmInstance, type WasmMemory, type WasmModule } from './webassembly.js';


type Export = (...args: number[]) => number | undefined;

class NodeGuestInstance implements GuestInstance {
  #instance: WasmInstance | undefined;
  #exports = new Map<string, Export>();
  #memory: WasmMemory | undefined;
  #breach: WasmGlobal | undefined;
  #fuel: WasmGlobal | undefined;
  #budget = 0;
  #used = 0;
  #calling = '';

  constructor(readonly memoryBytes: number, readonly inlineFuel: boolean) {}

  /** The `metering.usegas` import (when fuel is not charged inline). */
  readonly usegas = (n: bigint): void => {
    this.#used += Number(n);
    if (this.#used > this.#budget) {
      throw new GuestTrap(TrapKind.fuel, `${this.#calling} spent its fuel budget of ${this.#budget}`);
    }
  };

  attach(instance: WasmInstance): void {
    this.#instance = instance;
    for (const [name, value] of Object.entries(instance.exports)) {
      if (typeof value === 'function') this.#exports.set(name, value as Export);
      else if (value instanceof WA.Memory && name === 'memory') this.#memory = value;
      else if (value instanceof WA.Global && name === BREACH_EXPORT) this.#breach = value;
      else if (value instanceof WA.Global && name === FUEL_EXPORT) this.#fuel = value;
    }
  }

  get fuelUsed(): number {
    return this.#used;
  }

  call(name: string, args: number[], fuel: number): number | undefined {
    const fn = this.#exports.get(name);
    if (!this.#instance) throw new GuestTrap(TrapKind.trap, `guest is disposed; cannot call ${name}`);
    if (!fn) throw new GuestTrap(TrapKind.trap, `the guest has no export "${name}"`);
    this.#budget = fuel;
    this.#used = 0;
    this.#calling = name;
    const counter = this.inlineFuel ? this.#fuel : undefined;
    if (counter) counter.value = fuel;
    try {
      switch (args.length) {
        case 0: return fn();
        case 1: return fn(args[0]);
        case 2: return fn(args[0], args[1]);
        default: return fn(...args);
      }
    } catch (e) {
      throw this.mapError(e, name);
    } finally {
      if (counter) this.#used = fuel - (counter.value as number);
    }
  }

  /** Turns whatever stopped a call into a GuestTrap with a reason. */
  mapError(e: unknown, name: string): GuestTrap {
    if (e instanceof GuestTrap) return e;
    const breach = this.#breach ? Number(this.#breach.value as bigint) : -1;
    if (breach !== -1 && this.#breach) {
      this.#breach.value = -1n;
      if (breach === BREACH_FUEL) return new GuestTrap(TrapKind.fuel, `${name} spent its fuel budget of ${this.#budget}`);
      if (breach === BREACH_GROW) {
        return new GuestTrap(TrapKind.memory, `${name}: memory.grow past memory_bytes ${this.memoryBytes}`);
      }
      return new GuestTrap(TrapKind.memory, `${name}: access at byte ${breach} is outside memory_bytes ${this.memoryBytes}`);
    }
    if (e instanceof WA.RuntimeError) {
      const message = (e as Error).message;
      if (/out of bounds memory|memory access out of bounds/i.test(message)) {
        return new GuestTrap(TrapKind.memory, `${name}: ${message}`);
      }
      return new GuestTrap(TrapKind.trap, `${name}: ${message}`);
    }
    if (e instanceof RangeError) return new GuestTrap(TrapKind.trap, `${name}: call stack exhausted (${e.message})`);
    return new GuestTrap(TrapKind.trap, `${name}: host import failed: ${(e as Error)?.message ?? String(e)}`);
  }

  hasExport(name: string): boolean {
    return this.#exports.has(name);
  }

  #span(ptr: number, len: number, what: string): WasmMemory {
    const mem = this.#memory;
    if (!mem) throw new GuestTrap(TrapKind.memory, 'the guest has no memory');
    if (!(ptr >= 0) || !(len >= 0) || ptr + len > this.memoryBytes || ptr + len > mem.buffer.byteLength) {
      throw new GuestTrap(TrapKind.memory, `${what} bytes ${ptr}..${ptr + len} is outside memory_bytes ${this.memoryBytes}`);
    }
    return mem;
  }

  readMemory(ptr: number, len: number): Uint8Array {
    return new Uint8Array(this.#span(ptr, len, 'reading').buffer, ptr, len).slice();
  }

  writeMemory(ptr: number, bytes: Uint8Array): void {
    new Uint8Array(this.#span(ptr, bytes.length, 'writing').buffer, ptr, bytes.length).set(bytes);
  }

  fuelLeft(): number {
    const counter = this.inlineFuel ? this.#fuel : undefined;
    return counter ? (counter.value as number) : this.#budget - this.#used;
  }

  charge(fuel: number, what: string): void {
    const counter = this.inlineFuel ? this.#fuel : undefined;
    let left: number;
    if (counter) {
      left = (counter.value as number) - fuel;
      counter.value = left;
    } else {
      this.#used += fuel;
      left = this.#budget - this.#used;
    }
    if (left < 0) throw new GuestTrap(TrapKind.fuel, `${this.#calling} spent its fuel budget of ${this.#budget} (in ${what})`);
  }

  dispose(): void {
    this.#instance = undefined;
    this.#exports.clear();
    this.#memory = undefined;
    this.#breach = undefined;
  }
}

export interface NodeGuestEngineOptions {
  /** Skip the memory-cap rewrite (the benchmark measures its cost; never for real guests). */
  unguarded?: boolean;
  /**
   * How fuel is charged: 'inline' (default) turns each usegas pair into a check on a wasm global;
   * 'import' calls the metering.usegas import from every region. Same amounts, same traps.
   */
  fuel?: 'inline' | 'import';
}

export class NodeGuestEngine implements GuestEngine {
  #cache = new WeakMap<Uint8Array, Map<number, WasmModule>>();
  #unguarded: boolean;
  #inline: boolean;

  constructor(options: NodeGuestEngineOptions = {}) {
    this.#unguarded = options.unguarded ?? false;
    this.#inline = !this.#unguarded && (options.fuel ?? 'inline') === 'inline';
  }

  /** Compiles (once per bytes and cap) the rewritten module. */
  compile(wasm: Uint8Array, memoryBytes: number): WasmModule {
    let byKey = this.#cache.get(wasm);
    const key = memoryBytes;
    const hit = byKey?.get(key);
    if (hit) return hit;
    let module: WasmModule;
    try {
      const bytes = this.#unguarded ? wasm : guardMemory(wasm, memoryBytes, { inlineFuel: this.#inline }).wasm;
      module = new WA.Module(bytes);
    } catch (e) {
      throw new GuestTrap(TrapKind.trap, `cannot load the module: ${(e as Error).message}`);
    }
    if (!byKey) this.#cache.set(wasm, (byKey = new Map()));
    byKey.set(key, module);
    return module;
  }

  instantiate(wasm: Uint8Array, imports: Record<string, GuestImport>, limits: { memoryBytes: number; fuel?: number }, links?: GuestLinks): GuestInstance {
    const startFuel = limits.fuel ?? DEFAULT_START_FUEL;
    const module = this.compile(wasm, limits.memoryBytes);
    const guest = new NodeGuestInstance(limits.memoryBytes, this.#inline);
    let instance: WasmInstance;
    try {
      instance = new WA.Instance(module, {
        ...(links as WasmImports | undefined),
        gridlet: imports as WasmImports[string],
        metering: { usegas: guest.usegas },
      });
    } catch (e) {
      if (e instanceof WA.LinkError) throw new GuestTrap(TrapKind.trap, `cannot link the module: ${(e as Error).message}`);
      throw guest.mapError(e, 'start');
    }
    guest.attach(instance);
    if (guest.hasExport(START_EXPORT)) {
      try {
        guest.call(START_EXPORT, [], startFuel);
      } catch (e) {
        const t = e as GuestTrap;
        throw new GuestTrap(t.kind, t.message.split(START_EXPORT).join('start'));
      }
    }
    return guest;
  }
}
