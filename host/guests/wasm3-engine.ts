// wasm3 as a host GuestEngine: the meter's engine on Node. host/guests/wasm3/wasm3.wasm is wasm3 v0.5
// and firmware/moddable/wasm3/guest-core.c (the C the firmware image runs) compiled to WebAssembly
// by `npm run build:wasm3` (scripts/build-wasm3.js, with host/guests/wasm3/glue.c); this file is its
// binding, and firmware/moddable/wasm3/wasm3-guests.ts the JavaScript half shared with the meter.
// Selected with `--guest-engine wasm3` (the default is v8: host/guests/wasm-engine.ts).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GuestImport } from '../../firmware/core/ports.js';
import { Wasm3GuestEngine, type Wasm3Binding } from '../../firmware/moddable/wasm3/wasm3-guests.js';
import { WA, type WasmMemory } from './webassembly.js';

/** The checked-in build (see host/guests/wasm3/README.md). */
export const WASM3_ARTIFACT = join(fileURLToPath(import.meta.url), '..', 'wasm3', 'wasm3.wasm');

interface Exports {
  memory: WasmMemory;
  _initialize(): void;
  gw_name(i: number): number;
  gw_values(): number;
  gw_result(): number;
  gw_has_result(): number;
  gw_error(): number;
  gw_alloc(n: number): number;
  gw_release(p: number): void;
  gw_new(wasm: number, length: number, memoryBytes: number, stackBytes: number, handle: number): number;
  gw_link(core: number, index: number): number;
  gw_link_metering(core: number): number;
  gw_prepare(core: number): number;
  gw_start(core: number, fuel: number): number;
  gw_call(core: number, argc: number, fuel: number): number;
  gw_message(core: number): number;
  gw_fuel_used(core: number): number;
  gw_read(core: number, ptr: number, len: number): number;
  gw_charge(core: number, fuel: number): number;
  gw_free(core: number): void;
}

const NAME_BYTES = 63;
const MAX_ARGS = 8;

/** One instance of wasm3.wasm: the guests of a process share it, each under its own handle. */
class Wasm3Runtime {
  readonly x: Exports;
  readonly guests = new Map<number, EmBinding>();
  #next = 1;

  constructor(bytes: Uint8Array) {
    const instance = new WA.Instance(new WA.Module(bytes), {
      gridlet: { host_import: (h: number, i: number, args: number, argc: number, result: number) => this.#hostImport(h, i, args, argc, result) },
      env: { emscripten_notify_memory_growth: () => {} },
    });
    this.x = instance.exports as unknown as Exports;
    this.x._initialize();
  }

  handle(b: EmBinding): number {
    const h = this.#next++;
    this.guests.set(h, b);
    return h;
  }

  /** An import of guest `h`: the JavaScript function's result as a double, or 1 when it threw. */
  #hostImport(h: number, index: number, args: number, argc: number, result: number): number {
    const b = this.guests.get(h);
    if (!b) return 1;
    try {
      const f = b.imports[index];
      const a = new Float64Array(this.x.memory.buffer, args, argc);
      let r: unknown;
      switch (argc) {
        case 0: r = f(); break;
        case 1: r = f(a[0]); break;
        case 2: r = f(a[0], a[1]); break;
        case 3: r = f(a[0], a[1], a[2]); break;
        default: r = f(a[0], a[1], a[2], a[3]); break;
      }
      // As WebAssembly converts a JavaScript import's result: ToNumber (a void import ignores it).
      if (result) new Float64Array(this.x.memory.buffer, result, 1)[0] = +(r as number);
      return 0;
    } catch (e) {
      b.thrown = e;
      return 1;
    }
  }

  text(ptr: number): string {
    const u8 = new Uint8Array(this.x.memory.buffer);
    let end = ptr;
    while (u8[end]) end++;
    return Buffer.from(u8.subarray(ptr, end)).toString('utf8');
  }

  setName(i: number, s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    if (bytes.length > NAME_BYTES) throw new RangeError(`name ${JSON.stringify(s)} is longer than ${NAME_BYTES} bytes`);
    const at = this.x.gw_name(i);
    const u8 = new Uint8Array(this.x.memory.buffer);
    u8.set(bytes, at);
    u8[at + bytes.length] = 0;
  }
}

let shared: Wasm3Runtime | undefined;
function runtime(): Wasm3Runtime {
  if (!shared) {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(WASM3_ARTIFACT);
    } catch (e) {
      throw new Error(`the wasm3 engine is not built (${(e as Error).message}): run npm run build:wasm3 (host/guests/wasm3/README.md)`);
    }
    shared = new Wasm3Runtime(bytes);
  }
  return shared;
}

/** Frees a guest's C memory when its instance is collected without dispose(). */
const leaked = new FinalizationRegistry<{ rt: Wasm3Runtime; core: number; handle: number }>(({ rt, core, handle }) => {
  if (rt.guests.has(handle)) {
    rt.guests.delete(handle);
    rt.x.gw_free(core);
  }
});

/** guest-core.c through wasm3.wasm: the Wasm3Binding the shared JavaScript half drives. */
class EmBinding implements Wasm3Binding {
  readonly imports: GuestImport[] = [];
  thrown: unknown;
  #rt: Wasm3Runtime;
  #core = 0;
  #handle: number;
  #fuelUsed = 0;
  #trapKind = 0;

  constructor(wasm: Uint8Array, memoryBytes: number, stackBytes: number) {
    const rt = (this.#rt = runtime());
    const x = rt.x;
    this.#handle = rt.handle(this);
    const at = x.gw_alloc(wasm.length);
    if (!at) throw new Error('no memory for the module');
    new Uint8Array(x.memory.buffer).set(wasm, at);
    this.#core = x.gw_new(at, wasm.length, memoryBytes, stackBytes, this.#handle);
    x.gw_release(at);
    if (!this.#core) {
      rt.guests.delete(this.#handle);
      throw new Error(rt.text(x.gw_error()));
    }
    leaked.register(this, { rt, core: this.#core, handle: this.#handle }, this);
  }

  #live(): number {
    if (!this.#core) throw new Error('guest closed');
    return this.#core;
  }

  link(module: string, name: string, signature: string, fn: GuestImport): boolean {
    const core = this.#live();
    this.#rt.setName(0, module);
    this.#rt.setName(1, name);
    this.#rt.setName(2, signature);
    const r = this.#rt.x.gw_link(core, this.imports.length);
    if (r < 0) throw new Error(`wasm3: linking ${module}.${name}: ${this.#rt.text(this.#rt.x.gw_error())}`);
    if (r > 0) this.imports.push(fn);
    return r > 0;
  }

  linkMetering(module: string, name: string): boolean {
    const core = this.#live();
    this.#rt.setName(0, module);
    this.#rt.setName(1, name);
    const r = this.#rt.x.gw_link_metering(core);
    if (r < 0) throw new Error(`wasm3: linking ${module}.${name}: ${this.#rt.text(this.#rt.x.gw_error())}`);
    return r > 0;
  }

  prepare(): void {
    const why = this.#rt.x.gw_prepare(this.#live());
    if (why) throw new Error(`wasm3: ${this.#rt.text(why)}`);
  }

  /** After a start or a call: its fuel and trap kind; throws what stopped it. */
  #settle(core: number, kind: number): void {
    const x = this.#rt.x;
    this.#fuelUsed = x.gw_fuel_used(core);
    this.#trapKind = kind;
    if (!kind) return;
    const thrown = this.thrown;
    this.thrown = undefined;
    if (kind === 4) throw thrown;
    throw new Error(this.#rt.text(x.gw_message(core)));
  }

  start(fuel: number): void {
    const core = this.#live();
    this.#settle(core, this.#rt.x.gw_start(core, fuel));
  }

  call(name: string, args: number[], fuel: number): number | undefined {
    const core = this.#live();
    const x = this.#rt.x;
    this.#rt.setName(0, name);
    const n = Math.min(args.length, MAX_ARGS);
    if (n) {
      const values = new Float64Array(x.memory.buffer, x.gw_values(), MAX_ARGS);
      for (let i = 0; i < n; i++) values[i] = +args[i];
    }
    this.#settle(core, x.gw_call(core, n, fuel));
    return x.gw_has_result() ? x.gw_result() : undefined;
  }

  /** Live while a call runs (an import may ask what is left of its budget), as the XS binding's. */
  get fuelUsed(): number {
    return this.#core ? this.#rt.x.gw_fuel_used(this.#core) : this.#fuelUsed;
  }

  get trapKind(): number {
    return this.#trapKind;
  }

  readMemory(ptr: number, len: number): ArrayBuffer {
    const x = this.#rt.x;
    const at = x.gw_read(this.#live(), ptr, len);
    if (!at) throw new RangeError(`guest memory read ${ptr}+${len} is outside it`);
    return new Uint8Array(x.memory.buffer).slice(at, at + len).buffer;
  }

  writeMemory(ptr: number, bytes: Uint8Array): void {
    const x = this.#rt.x;
    // guestCoreRead checks the span as for a read and gives the guest's own (writable) bytes.
    const at = x.gw_read(this.#live(), ptr, bytes.length);
    if (!at) throw new RangeError(`guest memory write ${ptr}+${bytes.length} is outside it`);
    new Uint8Array(x.memory.buffer).set(bytes, at);
  }

  charge(fuel: number): boolean {
    return this.#rt.x.gw_charge(this.#live(), fuel) !== 0;
  }

  close(): void {
    if (!this.#core) return;
    leaked.unregister(this);
    this.#rt.x.gw_free(this.#core);
    this.#rt.guests.delete(this.#handle);
    this.#core = 0;
  }
}

/** The GuestEngine port on wasm3 compiled to WebAssembly. */
export class Wasm3HostEngine extends Wasm3GuestEngine {
  constructor() {
    super((wasm, memoryBytes, stackBytes) => new EmBinding(wasm, memoryBytes, stackBytes));
  }
}
