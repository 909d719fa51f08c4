// Test doubles for guest tests, portable to XS (no Node imports, no WebAssembly API):
//  - a tiny WebAssembly assembler, so tests carry readable hand-made modules instead of opaque files;
//  - FakeEngine, a GuestEngine double whose guests are JS behaviours picked by a custom section.

import { instrumentMetering } from '../../../guests/tools/instrument.js';
import { GRIDLET_IMPORTS } from '../../../firmware/core/guests/validate.js';
import type { GuestEngine, GuestImport, GuestInstance, GuestLinks } from '../../../firmware/core/ports.js';
import { GuestTrap, TrapKind } from '../../../firmware/core/ports.js';

export const T = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c } as const;

export function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = ((n % 128) + 128) % 128;
    n = Math.floor(n / 128);
    const done = (n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0);
    out.push(done ? b : b | 0x80);
    if (done) return out;
  }
}

export function str(s: string): number[] {
  const out = leb(s.length);
  for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i));
  return out;
}

/** Appends without spreading (XS's stack is small: no `push(...bigArray)`). */
export function append(out: number[], items: ArrayLike<number>): number[] {
  for (let i = 0; i < items.length; i++) out.push(items[i]);
  return out;
}

export function vec(items: number[][]): number[] {
  const out = leb(items.length);
  for (const i of items) append(out, i);
  return out;
}

export function section(id: number, content: number[]): number[] {
  return append(append([id], leb(content.length)), content);
}

// Instructions as byte arrays.
export const i32c = (n: number): number[] => [0x41, ...sleb(n)];
export const i64c = (n: number): number[] => [0x42, ...sleb(n)];
export const f64c = (x: number): number[] => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setFloat64(0, x, true);
  return [0x44, ...b];
};
export const call = (f: number): number[] => [0x10, ...leb(f)];
export const localGet = (i: number): number[] => [0x20, ...leb(i)];
export const globalGet = (i: number): number[] => [0x23, ...leb(i)];
export const globalSet = (i: number): number[] => [0x24, ...leb(i)];
export const END = 0x0b;
export const DROP = 0x1a;
export const UNREACHABLE = 0x00;

export interface FuncSpec {
  params?: number[];
  results?: number[];
  locals?: number[];
  /** Instructions; the final `end` is added. */
  code: number[];
}

export interface ModuleSpec {
  /** Function imports: [module, name, params, results]. */
  imports?: [string, string, number[], number[]][];
  funcs?: FuncSpec[];
  /** Memory limits (flags 0/1 chosen from max); null for none. Default 1 page, max 1. */
  memory?: { min: number; max?: number; flags?: number } | null;
  /** [name, kind, index]. */
  exports?: [string, number, number][];
  globals?: [type: number, mutable: boolean, init: number[]][];
  table?: { min: number };
  elements?: [offset: number, funcs: number[]][];
  data?: [offset: number, bytes: number[]][];
  start?: number;
  customs?: [string, number[]][];
  /** Extra raw sections appended after the standard ones (id, content). */
  rawSections?: [number, number[]][];
}

/** Assembles a module; function types are deduplicated automatically. */
export function assemble(spec: ModuleSpec): Uint8Array {
  const types: string[] = [];
  const typeBytes: number[][] = [];
  const typeOf = (params: number[], results: number[]): number => {
    const key = params.join(',') + '>' + results.join(',');
    let i = types.indexOf(key);
    if (i < 0) {
      i = types.length;
      types.push(key);
      typeBytes.push([0x60, ...vec(params.map((p) => [p])), ...vec(results.map((r) => [r]))]);
    }
    return i;
  };
  const imports = (spec.imports ?? []).map(([m, n, p, r]) => [...str(m), ...str(n), 0x00, ...leb(typeOf(p, r))]);
  const funcs = spec.funcs ?? [];
  const funcTypes = funcs.map((f) => leb(typeOf(f.params ?? [], f.results ?? [])));
  const bytes: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  append(bytes, section(1, vec(typeBytes)));
  if (imports.length) append(bytes, section(2, vec(imports)));
  if (funcs.length) append(bytes, section(3, vec(funcTypes)));
  if (spec.table) append(bytes, section(4, vec([[0x70, 0x00, ...leb(spec.table.min)]])));
  const mem = spec.memory === undefined ? { min: 1, max: 1 } : spec.memory;
  if (mem) {
    const flags = mem.flags ?? (mem.max === undefined ? 0 : 1);
    append(bytes, section(5, vec([[flags, ...leb(mem.min), ...(mem.max === undefined ? [] : leb(mem.max))]])));
  }
  if (spec.globals?.length) {
    append(bytes, section(6, vec(spec.globals.map(([t, m, init]) => [t, m ? 1 : 0, ...init, END]))));
  }
  if (spec.exports?.length) append(bytes, section(7, vec(spec.exports.map(([n, k, i]) => [...str(n), k, ...leb(i)]))));
  if (spec.start !== undefined) append(bytes, section(8, leb(spec.start)));
  if (spec.elements?.length) {
    append(bytes, section(9, vec(spec.elements.map(([off, fs]) => [0x00, ...i32c(off), END, ...vec(fs.map(leb))]))));
  }
  if (funcs.length) {
    append(bytes, section(10, vec(funcs.map((f) => {
      const locals = vec((f.locals ?? []).map((t) => [1, t]));
      const body = append(append(locals, f.code), [END]);
      return append(leb(body.length), body);
    }))));
  }
  if (spec.data?.length) append(bytes, section(11, vec(spec.data.map(([off, b]) => append([0x00, ...i32c(off), END, ...leb(b.length)], b)))));
  for (const [id, content] of spec.rawSections ?? []) append(bytes, section(id, content));
  for (const [name, content] of spec.customs ?? []) append(bytes, section(0, [...str(name), ...content]));
  return new Uint8Array(bytes);
}

export interface GuestSpec {
  /** gridlet imports, in order: function index i is imports[i]. */
  imports?: string[];
  /** Other imports after the gridlet ones: [module, name, params, results]. */
  otherImports?: [string, string, number[], number[]][];
  init?: number[];
  tick?: number[];
  onSignal?: number[];
  /** Extra functions after init, tick (and on_signal). */
  helpers?: FuncSpec[];
  tickLocals?: number[];
  memory?: ModuleSpec['memory'];
  data?: ModuleSpec['data'];
  globals?: ModuleSpec['globals'];
  start?: boolean;
  /** A custom section that names the FakeEngine behaviour. */
  fake?: string;
}

/** Function index of the first defined function (init) for a spec. */
export function firstFunc(spec: GuestSpec): number {
  return (spec.imports?.length ?? 0) + (spec.otherImports?.length ?? 0);
}

/** A plain (unmetered) guest module: exports memory, init, tick and optionally on_signal. */
export function guest(spec: GuestSpec = {}): Uint8Array {
  const imports: [string, string, number[], number[]][] = (spec.imports ?? []).map((n) => {
    const t = GRIDLET_IMPORTS[n];
    if (!t) throw new Error(`test support: no gridlet import ${n}`);
    return ['gridlet', n, t.params, t.results];
  });
  imports.push(...(spec.otherImports ?? []));
  const base = imports.length;
  const funcs: FuncSpec[] = [
    { results: [T.i32], code: spec.init ?? i32c(0) },
    { results: [T.i32], locals: spec.tickLocals, code: spec.tick ?? i32c(0) },
  ];
  const exports: [string, number, number][] = [['memory', 2, 0], ['init', 0, base], ['tick', 0, base + 1]];
  if (spec.onSignal) {
    funcs.push({ params: [T.i32, T.f64], code: spec.onSignal });
    exports.push(['on_signal', 0, base + 2]);
  }
  funcs.push(...(spec.helpers ?? []));
  let start: number | undefined;
  if (spec.start) {
    funcs.push({ code: [] });
    start = base + funcs.length - 1;
  }
  return assemble({
    imports, funcs, exports, memory: spec.memory, data: spec.data, globals: spec.globals, start,
    customs: spec.fake ? [['fake', str(spec.fake).slice(1)]] : undefined,
  });
}

/** The GuestTrap `fn` throws (anything else it throws is rethrown; not throwing fails). */
export function trapOf(fn: () => unknown): GuestTrap {
  try {
    fn();
  } catch (e) {
    if (e instanceof GuestTrap) return e;
    throw e;
  }
  throw new Error('expected a GuestTrap');
}

/** The same guest, instrumented for metering (as `gridlet guest build` would ship it). */
export function meteredGuest(spec: GuestSpec = {}): Uint8Array {
  return keepFake(instrumentMetering(guest(spec)).wasm, spec.fake);
}

/** The instrumenter drops custom sections; put the FakeEngine tag back. */
function keepFake(wasm: Uint8Array, tag: string | undefined): Uint8Array {
  if (!tag) return wasm;
  const extra = section(0, [...str('fake'), ...str(tag).slice(1)]);
  const out = new Uint8Array(wasm.length + extra.length);
  out.set(wasm);
  out.set(extra, wasm.length);
  return out;
}

// ---------------------------------------------------------------- FakeEngine

export interface FakeContext {
  imports: Record<string, GuestImport>;
  /** Imports from other modules (WASI, world members). */
  links: GuestLinks;
  /** Spends fuel; throws the fuel trap past the budget. */
  use(n: number): void;
  /** Calls since load of this export. */
  calls: number;
  memory: Uint8Array;
}

export interface FakeBehaviour {
  init?(c: FakeContext): number;
  tick?(c: FakeContext): number;
  on_signal?(c: FakeContext, id: number, value: number): void;
  /** Any other export (a world member's, a job's `_start`). */
  [name: string]: ((c: FakeContext, ...args: number[]) => number | void) | undefined;
}

/** Reads the "fake" custom section's tag (the module's last bytes, as keepFake/guest put it). */
function fakeTag(wasm: Uint8Array): string | undefined {
  // Find "\x04fake" followed by the tag to the end of the module.
  for (let i = wasm.length - 5; i >= 8; i--) {
    if (wasm[i] === 4 && wasm[i + 1] === 0x66 && wasm[i + 2] === 0x61 && wasm[i + 3] === 0x6b && wasm[i + 4] === 0x65) {
      let s = '';
      for (let k = i + 5; k < wasm.length; k++) s += String.fromCharCode(wasm[k]);
      return s;
    }
  }
  return undefined;
}

export class FakeEngine implements GuestEngine {
  behaviours = new Map<string, FakeBehaviour>();
  instantiated = 0;
  disposed = 0;
  /** Throw this (as a load failure) on the next instantiate. */
  failNextLoad: string | undefined;

  define(tag: string, b: FakeBehaviour): void {
    this.behaviours.set(tag, b);
  }

  instantiate(wasm: Uint8Array, imports: Record<string, GuestImport>, limits: { memoryBytes: number }, links: GuestLinks = {}): GuestInstance {
    if (this.failNextLoad) {
      const why = this.failNextLoad;
      this.failNextLoad = undefined;
      throw new GuestTrap(TrapKind.trap, why);
    }
    const tag = fakeTag(wasm);
    const b = tag === undefined ? undefined : this.behaviours.get(tag);
    if (!b) throw new GuestTrap(TrapKind.trap, `fake engine: no behaviour for ${tag}`);
    this.instantiated++;
    const engine = this;
    let used = 0;
    let budget = 0;
    let disposed = false;
    const memory = new Uint8Array(limits.memoryBytes);
    const ctx: FakeContext = {
      imports, links, calls: 0, memory,
      use(n: number) {
        used += n;
        if (used > budget) throw new GuestTrap(TrapKind.fuel, `spent its fuel budget of ${budget}`);
      },
    };
    return {
      get fuelUsed() { return used; },
      call(name: string, args: number[], fuel: number): number | undefined {
        if (disposed) throw new GuestTrap(TrapKind.trap, 'disposed');
        used = 0;
        budget = fuel;
        ctx.calls++;
        ctx.use(10);
        if (name === 'init') return b.init ? b.init(ctx) : 0;
        if (name === 'tick') return b.tick ? b.tick(ctx) : 0;
        if (name === 'on_signal') { b.on_signal?.(ctx, args[0], args[1]); return undefined; }
        const other = b[name];
        if (other) {
          const r = other(ctx, ...args);
          return typeof r === 'number' ? r : undefined;
        }
        throw new GuestTrap(TrapKind.trap, `no export ${name}`);
      },
      hasExport: (name: string) => name === 'init' || name === 'tick' || (name === 'on_signal' && !!b.on_signal) || !!b[name],
      readMemory(ptr: number, len: number): Uint8Array {
        if (ptr + len > memory.length) throw new GuestTrap(TrapKind.memory, `reading ${ptr}..${ptr + len} outside memory_bytes ${memory.length}`);
        return memory.slice(ptr, ptr + len);
      },
      writeMemory(ptr: number, bytes: Uint8Array): void {
        if (ptr + bytes.length > memory.length) throw new GuestTrap(TrapKind.memory, `writing ${ptr}..${ptr + bytes.length} outside memory_bytes ${memory.length}`);
        memory.set(bytes, ptr);
      },
      fuelLeft: () => budget - used,
      charge(n: number, what: string): void {
        used += n;
        if (used > budget) throw new GuestTrap(TrapKind.fuel, `spent its fuel budget of ${budget} (in ${what})`);
      },
      dispose() {
        disposed = true;
        engine.disposed++;
      },
    };
  }
}
