// The GuestEngine port over wasm3, whichever way wasm3 runs: natively in the firmware image
// (engine.ts over guest-engine.c, module `gridlet/wasm3`) or compiled to WebAssembly on a host
// (host/guests/wasm3-engine.ts over host/guests/wasm3/glue.c). Both bindings wrap the same C
// (guest-core.c) and this file is their one JavaScript half, so the meter and the host run guests
// alike, and like the host's V8 engine (host/guests/wasm-engine.ts):
//  - imports come from module `gridlet` with GUESTS.md's signatures, and from the modules of `links`
//    (WASI, other world members) with the signatures the module declares; a module importing
//    anything not given fails to load ("cannot link the module"), as WebAssembly instantiation does;
//  - an import may read and write guest memory within the cap, and charge fuel to the running call;
//  - fuel is `metering.usegas(i64)`, charged per call; the start function, if any, runs at
//    instantiate on `limits.fuel` (default 1 000 000), and a trap there fails instantiate;
//  - memory is capped at `memory_bytes` exactly: wasm3's memory limit for loads and stores, and
//    memory.grow rewritten (firmware/core/guests/grow-guard.ts), which also drops custom sections;
//  - every trap is a GuestTrap with its kind, and an import's own GuestTrap passes through.
// Preloaded on the meter: nothing here runs at module level beyond definitions.

import { DEFAULT_START_FUEL, GuestTrap, TrapKind, type GuestEngine, type GuestImport, type GuestInstance, type GuestLinks } from '../../core/ports.js';
import { guardGrow } from '../../core/guests/grow-guard.js';
import { ExternKind, WasmError, type FuncType } from '../../core/guests/wasm.js';

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

/** A wasm3 signature ("i(iI)") for a function type: return type, then arguments (i32 i, i64 I, f32 f, f64 F). */
export function wasm3Signature(t: FuncType): string | undefined {
  const code = (v: number): string => (v === 0x7f ? 'i' : v === 0x7e ? 'I' : v === 0x7d ? 'f' : v === 0x7c ? 'F' : '?');
  if (t.results.length > 1 || t.params.length > IMPORT_MAX_ARGS) return undefined;
  let s = t.results.length ? code(t.results[0]) : 'v';
  s += '(';
  for (const p of t.params) s += code(p);
  s += ')';
  return s.indexOf('?') < 0 ? s : undefined;
}

/** A module importing only from gridlet and metering (most): nothing more to keep. */
const NO_OTHERS: [string, string, string | undefined][] = [];

/** Arguments an import may take (the bindings pass at most this many: WASI fd_write's four). */
export const IMPORT_MAX_ARGS = 4;

/** trapKind of a binding (guest-core.h): the core's TrapKind, and 4 when an import threw. */
export const BINDING_IMPORT_THREW = 4;


/** wasm3's value stack per guest: enough for the small guests GUESTS.md allows (4 KiB of code). */
export const STACK_BYTES = 8 * 1024;

/**
 * One loaded module in a binding (guest-core.c underneath). `start` and `call` throw on a trap:
 * what the import threw when trapKind is BINDING_IMPORT_THREW, else an Error with wasm3's reason.
 */
export interface Wasm3Binding {
  link(module: string, name: string, signature: string, fn: GuestImport): boolean;
  linkMetering(module: string, name: string): boolean;
  /** Compiles every function; throws when the module cannot run. */
  prepare(): void;
  start(fuel: number): void;
  call(name: string, args: number[], fuel: number): number | undefined;
  readonly fuelUsed: number;
  readonly trapKind: number;
  /** A copy of [ptr, ptr+len); throws when that is not within memory_bytes and the memory. */
  readMemory(ptr: number, len: number): ArrayBuffer;
  /** Writes `bytes` at ptr; throws when that is not within memory_bytes and the memory. */
  writeMemory(ptr: number, bytes: Uint8Array): void;
  /** From an import during a call: adds `fuel` to the call's use; true when that spends its budget. */
  charge(fuel: number): boolean;
  close(): void;
}

/** Opens a binding over `wasm` (throws with wasm3's reason when it cannot be parsed or loaded). */
export type Wasm3Open = (wasm: Uint8Array, memoryBytes: number, stackBytes: number) => Wasm3Binding;

interface Prepared {
  /** The bytes wasm3 gets (grow rewritten, custom sections dropped). */
  wasm: Uint8Array;
  /** Function exports. */
  exports: string[];
  /** Function imports, as "module.name"; other imports make `unlinkable` say why. */
  imports: string[];
  /** Imports from modules other than gridlet and metering: [module, name, wasm3 signature or undefined when no binding can pass it]. */
  others: [string, string, string | undefined][];
  unlinkable: string | undefined;
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

class Wasm3Instance implements GuestInstance {
  #b: Wasm3Binding | undefined;
  #exports: string[];
  #fuelUsed = 0;
  #budget = 0;
  #calling = '';
  #running = false;
  #closeAfterCall = false;

  constructor(b: Wasm3Binding, exports: string[], readonly memoryBytes: number) {
    this.#b = b;
    this.#exports = exports;
  }

  get fuelUsed(): number {
    return this.#fuelUsed;
  }

  /** Runs `run` on the binding, turning whatever stopped it into a GuestTrap. (Prototype methods: XS installs a `#method` on every instance.) */
  private run<T>(name: string, fuel: number, run: (b: Wasm3Binding) => T): T {
    const b = this.#b;
    if (!b) throw new GuestTrap(TrapKind.trap, `guest is disposed; cannot call ${name}`);
    if (this.#running) throw new GuestTrap(TrapKind.trap, `${name}: the guest is running (an import called back into it)`);
    this.#running = true;
    this.#budget = fuel;
    this.#calling = name;
    try {
      return run(b);
    } catch (e) {
      throw this.trap(b, e, name, fuel);
    } finally {
      this.#fuelUsed = b.fuelUsed;
      this.#running = false;
      if (this.#closeAfterCall) this.dispose();
    }
  }

  private trap(b: Wasm3Binding, e: unknown, name: string, fuel: number): GuestTrap {
    switch (b.trapKind) {
      case BINDING_IMPORT_THREW:
        if (e instanceof GuestTrap) return e;
        return new GuestTrap(TrapKind.trap, `${name}: host import failed: ${messageOf(e)}`);
      case TrapKind.fuel:
        return new GuestTrap(TrapKind.fuel, `${name} spent its fuel budget of ${fuel}`);
      default:
        return new GuestTrap(b.trapKind === TrapKind.memory ? TrapKind.memory : TrapKind.trap, `${name}: ${messageOf(e)}`);
    }
  }

  start(fuel: number): void {
    this.run('start', fuel, (b) => b.start(fuel));
  }

  call(name: string, args: number[], fuel: number): number | undefined {
    if (this.#b && !this.hasExport(name)) throw new GuestTrap(TrapKind.trap, `the guest has no export "${name}"`);
    return this.run(name, fuel, (b) => b.call(name, args, fuel));
  }

  hasExport(name: string): boolean {
    return this.#b !== undefined && this.#exports.indexOf(name) >= 0;
  }

  readMemory(ptr: number, len: number): Uint8Array {
    const b = this.#b;
    if (!b) throw new GuestTrap(TrapKind.memory, 'the guest has no memory');
    try {
      return new Uint8Array(b.readMemory(ptr, len));
    } catch {
      throw new GuestTrap(TrapKind.memory, `reading bytes ${ptr}..${ptr + len} is outside memory_bytes ${this.memoryBytes}`);
    }
  }

  writeMemory(ptr: number, bytes: Uint8Array): void {
    const b = this.#b;
    if (!b) throw new GuestTrap(TrapKind.memory, 'the guest has no memory');
    try {
      b.writeMemory(ptr, bytes);
    } catch {
      throw new GuestTrap(TrapKind.memory, `writing bytes ${ptr}..${ptr + bytes.length} is outside memory_bytes ${this.memoryBytes}`);
    }
  }

  fuelLeft(): number {
    const b = this.#b;
    return b && this.#running ? this.#budget - b.fuelUsed : 0;
  }

  charge(fuel: number, what: string): void {
    const b = this.#b;
    if (b && this.#running && b.charge(fuel)) {
      throw new GuestTrap(TrapKind.fuel, `${this.#calling} spent its fuel budget of ${this.#budget} (in ${what})`);
    }
  }

  dispose(): void {
    // Disposed from inside one of its own imports: wasm3 is still running it, so close afterwards.
    if (this.#running) {
      this.#closeAfterCall = true;
      return;
    }
    this.#b?.close();
    this.#b = undefined;
    this.#exports = [];
  }
}

export class Wasm3GuestEngine implements GuestEngine {
  #open: Wasm3Open;
  /** Prepared bytes per module (the supervisor instantiates the same bytes again at each restart). */
  #cache = new WeakMap<Uint8Array, Map<number, Prepared>>();

  constructor(open: Wasm3Open) {
    this.#open = open;
  }

  #prepare(wasm: Uint8Array, memoryBytes: number): Prepared {
    let byCap = this.#cache.get(wasm);
    const hit = byCap?.get(memoryBytes);
    if (hit) return hit;
    let guarded;
    try {
      guarded = guardGrow(wasm, memoryBytes);
    } catch (e) {
      if (e instanceof WasmError) throw new GuestTrap(TrapKind.trap, `cannot load the module: ${e.message}`);
      throw e;
    }
    const m = guarded.module;
    const imports: string[] = [];
    const others: [string, string, string | undefined][] = [];
    let unlinkable: string | undefined;
    for (const imp of m.imports) {
      if (imp.kind === ExternKind.func) {
        imports.push(`${imp.module}.${imp.name}`);
        if (imp.module !== 'gridlet' && imp.module !== 'metering') others.push([imp.module, imp.name, wasm3Signature(m.types[imp.type])]);
      } else unlinkable = `import ${imp.module}.${imp.name} is not a function; only functions are provided`;
    }
    const exports = m.exports.filter((e) => e.kind === ExternKind.func).map((e) => e.name);
    const prepared = { wasm: guarded.wasm, exports, imports, others: others.length ? others : NO_OTHERS, unlinkable };
    if (!byCap) this.#cache.set(wasm, (byCap = new Map()));
    byCap.set(memoryBytes, prepared);
    return prepared;
  }

  instantiate(wasm: Uint8Array, imports: Record<string, GuestImport>, limits: { memoryBytes: number; fuel?: number }, links?: GuestLinks): GuestInstance {
    for (const name of Object.keys(imports)) {
      if (!IMPORT_SIGNATURES[name]) throw new RangeError(`no gridlet import named ${name} (GUESTS.md lists them)`);
    }
    const p = this.#prepare(wasm, limits.memoryBytes);
    let unlinkable = p.unlinkable;
    for (const imp of p.imports) {
      if (imp.startsWith('gridlet.') && !Object.prototype.hasOwnProperty.call(imports, imp.slice(8))) unlinkable = `import ${imp} is not provided`;
    }
    // Imports from other modules, with the signature the module declares: [module, name, signature, fn].
    const linked: [string, string, string, GuestImport][] = [];
    for (const [module, name, signature] of p.others) {
      const from = links && Object.prototype.hasOwnProperty.call(links, module) ? links[module] : undefined;
      const fn = from && Object.prototype.hasOwnProperty.call(from, name) ? from[name] : undefined;
      if (!fn) unlinkable = `import ${module}.${name} is not provided`;
      else if (!signature) unlinkable = `import ${module}.${name} takes more than ${IMPORT_MAX_ARGS} arguments or an unknown type`;
      else linked.push([module, name, signature, fn]);
    }
    if (unlinkable) throw new GuestTrap(TrapKind.trap, `cannot link the module: ${unlinkable}`);
    let b: Wasm3Binding;
    try {
      b = this.#open(p.wasm, limits.memoryBytes, STACK_BYTES);
    } catch (e) {
      throw new GuestTrap(TrapKind.trap, `cannot load the module: ${messageOf(e)}`);
    }
    let step = 'link';
    try {
      for (const name of Object.keys(imports)) b.link('gridlet', name, IMPORT_SIGNATURES[name], imports[name]);
      for (const [module, name, signature, fn] of linked) b.link(module, name, signature, fn);
      b.linkMetering('metering', 'usegas');
      step = 'load';
      b.prepare();
    } catch (e) {
      b.close();
      throw new GuestTrap(TrapKind.trap, `cannot ${step} the module: ${messageOf(e)}`);
    }
    const instance = new Wasm3Instance(b, p.exports, limits.memoryBytes);
    try {
      instance.start(limits.fuel ?? DEFAULT_START_FUEL);
    } catch (e) {
      instance.dispose();
      throw e;
    }
    return instance;
  }
}
