// The GuestEngine port over wasm3 (guest-engine.c): the same .wasm bytes and limits the host engine
// runs, on the meter. GUESTS.md: imports come from module `gridlet` with the ABI's signatures,
// fuel is `metering.usegas(i64)` charged per call, memory is capped by wasm3's memory limit.

import Wasm3Module from 'gridlet/wasm3';
import { GuestTrap, TrapKind, type GuestEngine, type GuestImport, type GuestInstance } from '../../core/ports.js';

/** wasm3 signatures of the `gridlet` imports (GUESTS.md "Imports"): return type, then arguments. */
export const IMPORT_SIGNATURES: { readonly [name: string]: string } = {
  time: 'F()',
  local_hour: 'i()',
  weekday: 'i()',
  channel: 'F(i)',
  signal: 'F(i)',
  relay: 'i(ii)',
  relay_state: 'i(i)',
  emit: 'i(iF)',
  log: 'v(ii)',
  kv_get: 'F(i)',
  kv_set: 'i(iF)',
};

// TrapKind and GuestTrap are the core's (ports.ts): the supervisor tells a fault from an exhausted budget.
export { GuestTrap, TrapKind };

/** wasm3's value stack per guest: enough for the small guests GUESTS.md allows (4 KiB of code). */
const STACK_BYTES = 8 * 1024;

class Wasm3Instance implements GuestInstance {
  #m: Wasm3Module | undefined;
  #fuelUsed = 0;

  constructor(m: Wasm3Module) {
    this.#m = m;
  }

  get fuelUsed(): number {
    return this.#fuelUsed;
  }

  call(name: string, args: number[], fuel: number): number | undefined {
    const m = this.#m;
    if (!m) throw new GuestTrap(TrapKind.trap, `guest is disposed; cannot call ${name}`);
    try {
      const r = m.call(name, args, fuel);
      this.#fuelUsed = m.fuelUsed;
      return r;
    } catch (e) {
      this.#fuelUsed = m.fuelUsed;
      const kind = m.trapKind || TrapKind.trap;
      throw new GuestTrap(kind, `${name}: ${(e as Error).message}`);
    }
  }

  hasExport(name: string): boolean {
    return this.#m?.hasExport(name) ?? false;
  }

  readMemory(ptr: number, len: number): Uint8Array {
    if (!this.#m) throw new GuestTrap(TrapKind.trap, 'guest is disposed');
    return new Uint8Array(this.#m.readMemory(ptr, len));
  }

  dispose(): void {
    this.#m?.close();
    this.#m = undefined;
  }
}

export class Wasm3Engine implements GuestEngine {
  instantiate(wasm: Uint8Array, imports: Record<string, GuestImport>, limits: { memoryBytes: number }): GuestInstance {
    const m = new Wasm3Module(wasm, limits.memoryBytes, STACK_BYTES);
    try {
      for (const name of Object.keys(imports)) {
        const signature = IMPORT_SIGNATURES[name];
        if (!signature) throw new RangeError(`no gridlet import named ${name} (GUESTS.md lists them)`);
        m.link('gridlet', name, signature, imports[name]);
      }
      m.linkMetering('metering', 'usegas');
    } catch (e) {
      m.close();
      throw e;
    }
    return new Wasm3Instance(m);
  }
}
