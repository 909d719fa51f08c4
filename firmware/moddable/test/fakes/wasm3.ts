// Fake `gridlet/wasm3` (the native binding, guest-engine.c over guest-core.c): records links, and runs
// "exports" the test defines, charging fuel through the linked usegas like an instrumented guest.
// It behaves as the real binding does (checked on the lin simulator by test/firmware/wasm3-engine.test.ts):
//  - a start function (the test's `start` export) runs only when start(fuel) is called, on that budget;
//  - a trap throws with trapKind 1 (trap), 2 (fuel) or 3 (memory); when an import threw, trapKind is 4
//    and what the import threw is rethrown as is;
//  - readMemory and writeMemory are bounded by memoryBytes (a RangeError outside them); charge adds
//    to the running call's fuel and says whether that spent the budget; close() during a run throws.

import type { Wasm3Binding } from '../../wasm3/wasm3-guests.js';

type Imports = ((...a: number[]) => number | void)[];
type FakeExport = (args: number[], charge: (gas: number) => void, imports: Imports, memory: Uint8Array) => number | undefined;

export interface FakeModule {
  links: [string, string, string][];
  metering: string | undefined;
  prepared: boolean;
  closed: boolean;
  memoryBytes: number;
  /** Budgets start() was given. */
  starts: number[];
}
export const modules: FakeModule[] = [];
/** What the next module's exports do: receive (args, charge, imports, memory) and return a result; `start` is the start function. */
export let exportsForNext: { [name: string]: FakeExport } = {};
export function defineExports(e: typeof exportsForNext): void {
  exportsForNext = e;
}

/** Thrown by a fake export to say it touched memory outside memoryBytes (wasm3's out-of-bounds trap). */
export class FakeMemoryFault extends Error {}

export default class Wasm3Module implements FakeModule, Wasm3Binding {
  links: [string, string, string][] = [];
  metering: string | undefined;
  prepared = false;
  closed = false;
  memoryBytes: number;
  starts: number[] = [];
  fuelUsed = 0;
  trapKind = 0;
  #imports: Imports = [];
  #exports = exportsForNext;
  #memory: Uint8Array;
  #running = false;
  #budget = 0;

  constructor(wasm: Uint8Array, memoryBytes: number, stackBytes: number) {
    if (wasm.length < 8) throw new Error('wasm3: underrun while parsing Wasm binary');
    void stackBytes;
    this.memoryBytes = memoryBytes;
    this.#memory = new Uint8Array(memoryBytes);
    modules.push(this);
  }
  link(module: string, name: string, signature: string, fn: (...a: number[]) => number | void): boolean {
    this.links.push([module, name, signature]);
    this.#imports.push(fn);
    return true;
  }
  linkMetering(module: string, name: string): boolean {
    this.metering = `${module}.${name}`;
    return true;
  }
  prepare(): void {
    this.prepared = true;
  }
  #run(f: FakeExport, args: number[], fuel: number): number | undefined {
    this.fuelUsed = 0;
    this.trapKind = 0;
    this.#budget = fuel;
    const charge = (gas: number) => {
      this.fuelUsed += gas;
      if (this.fuelUsed > fuel) {
        this.trapKind = 2;
        throw new Error('[trap] out of fuel');
      }
    };
    const imports = this.#imports.map((fn) => (...a: number[]) => {
      try {
        return fn(...a);
      } catch (e) {
        this.trapKind = 4;
        throw e;
      }
    });
    this.#running = true;
    try {
      return f(args, charge, imports, this.#memory);
    } catch (e) {
      if (e instanceof FakeMemoryFault) {
        // guest-core.c names the cap in the message.
        this.trapKind = 3;
        throw new Error(`[trap] out of bounds memory access (memory_bytes ${this.memoryBytes})`);
      }
      if (!this.trapKind) this.trapKind = 1;
      throw e;
    } finally {
      this.#running = false;
    }
  }
  start(fuel: number): void {
    this.starts.push(fuel);
    const f = this.#exports.start;
    if (f) this.#run(f, [], fuel);
    else this.fuelUsed = 0;
  }
  call(name: string, args: number[], fuel: number): number | undefined {
    const f = this.#exports[name];
    if (!f) throw new Error(`wasm3: export ${name}: function lookup failed`);
    return this.#run(f, args, fuel);
  }
  readMemory(ptr: number, len: number): ArrayBuffer {
    if (ptr < 0 || len < 0 || ptr + len > this.memoryBytes) throw new RangeError('guest memory read outside memory_bytes');
    return this.#memory.slice(ptr, ptr + len).buffer;
  }
  writeMemory(ptr: number, bytes: Uint8Array): void {
    if (ptr < 0 || ptr + bytes.length > this.memoryBytes) throw new RangeError('guest memory write outside memory_bytes');
    this.#memory.set(bytes, ptr);
  }
  charge(fuel: number): boolean {
    if (!this.#running) return false;
    this.fuelUsed += fuel;
    return this.fuelUsed > this.#budget;
  }
  close(): void {
    if (this.#running) throw new Error('guest is running; close it after the call');
    this.closed = true;
  }
}
