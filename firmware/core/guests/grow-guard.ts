// memory.grow held to the manifest's `memory_bytes` the same way on every engine (GUESTS.md "Module
// rules"): each `memory.grow` becomes a call to a helper that refuses growth past the cap by recording
// BREACH_GROW in an added, exported i64 global and trapping (`unreachable`); the engine reports that
// as a memory trap. The host engine's memory guard (host/guests/memory-guard.ts) writes the same
// helper among its load/store checks; the wasm3 engines (meter and host) rewrite only memory.grow,
// because wasm3's own memory limit already makes every load and store exact, but its memory.grow
// would answer past the cap (and wraps `pages + delta` around 2^32, shrinking the memory).
//
// The wasm3 rewrite also drops custom sections: wasm3 finds exports by name among all the names it
// knows, and a "name" section could give any function an export's name.

import {
  decodeInstr, ExternKind, Instr, parseModule, PAGE_BYTES, putSleb, putUleb, Section, SECTION_RANK, WasmReader, type FuncType, type WasmModule,
} from './wasm.js';
/** Export name of the breach global: -1 none, -2 a refused memory.grow (the host engine adds more). */
export const BREACH_EXPORT = '__gridlet_breach';
export const BREACH_GROW = -2;

const I32 = 0x7f;
const I64 = 0x7e;

/** The encoded breach global: (mut i64) (i64.const -1). */
export function breachGlobal(): Uint8Array {
  return Uint8Array.of(I64, 0x01, 0x42, 0x7f, 0x0b);
}

/** The helper's type: memory.grow's (delta i32) -> (old pages i32). */
export const GROW_TYPE: FuncType = { params: [I32], results: [I32] };

/**
 * The helper that replaces memory.grow (locals and code, no size): past `capPages` it records
 * BREACH_GROW and traps; past the memory's declared maximum it answers -1 as memory.grow would (wasm3
 * reads a declared maximum of 0 as "none"); otherwise it grows. Page counts add in 64 bits.
 */
export function growHelper(capPages: number, maxPages: number | undefined, breachGlobal: number): Uint8Array {
  const w = new Bytes();
  // memory.size + delta, unsigned, in 64 bits: memory.size i64.extend_i32_u local.get 0 i64.extend_i32_u i64.add
  const newPages = (): void => { w.raw(0x3f, 0, 0xad, 0x20, 0, 0xad, 0x7c); };
  w.raw(0); // no locals
  newPages();
  w.raw(0x42).sleb(capPages).raw(0x56); // i64.const cap  i64.gt_u
  w.raw(0x04, 0x40, 0x42).sleb(BREACH_GROW).raw(0x24).uleb(breachGlobal).raw(0x00, 0x0b); // if: breach = -2; unreachable
  if (maxPages !== undefined && maxPages < capPages) {
    newPages();
    w.raw(0x42).sleb(maxPages).raw(0x56);
    w.raw(0x04, 0x40, 0x41).sleb(-1).raw(0x0f, 0x0b); // if: return -1
  }
  w.raw(0x20, 0, 0x40, 0); // local.get 0  memory.grow 0
  w.raw(0x0b);
  return w.result();
}

/** Pages `memoryBytes` allows (manifests allow at most one). */
export function capPages(memoryBytes: number): number {
  return Math.ceil(memoryBytes / PAGE_BYTES);
}

export interface GrowGuarded {
  /** The bytes to load: the original ones when there was nothing to change. */
  wasm: Uint8Array;
  /** The parsed original module. */
  module: WasmModule;
  /** memory.grow instructions rewritten. */
  grows: number;
}

/** Rewrites every memory.grow of `bytes` into the helper, and drops custom sections (see above). */
export function guardGrow(bytes: Uint8Array, memoryBytes: number): GrowGuarded {
  const m = parseModule(bytes);
  const ins = new Instr();
  let grows = 0;
  for (const b of m.bodies) {
    const r = new WasmReader(m.bytes, b.codeStart, b.end);
    while (r.pos < r.end) {
      decodeInstr(r, ins);
      if (ins.op === 0x40) grows++;
    }
  }
  if (grows === 0 && !m.customs.length) return { wasm: bytes, module: m, grows };
  return { wasm: spliceGrowGuard(m, grows ? memoryBytes : -1), module: m, grows };
}

/**
 * The module's bytes with custom sections dropped and, unless `memoryBytes` is -1, the helper, its type,
 * the breach global and its export appended, and every `memory.grow 0` replaced by `call helper`.
 * Everything else is copied byte for byte: appending keeps every existing index, so no instruction is
 * re-encoded (the meter carries no module writer).
 */
function spliceGrowGuard(m: WasmModule, memoryBytes: number): Uint8Array {
  const out = new Bytes();
  out.raw(...m.bytes.subarray(0, 8));
  const guard = memoryBytes >= 0;
  const importedGlobals = m.imports.filter((i) => i.kind === ExternKind.global).length;
  const breach = importedGlobals + m.globals.length;
  const helper = m.funcImportCount + m.funcs.length;
  const present = new Set(m.sections.map((s) => s.id));
  const section = (id: number, count: number, from: number, to: number, add: Uint8Array): void => {
    const c = new Bytes().uleb(count + 1).copy(m.bytes, from, to).copy(add);
    out.raw(id).uleb(c.length).copy(c.result());
  };
  // Entries of a vector section: [first entry byte, end).
  const entries = (id: number): [number, number] => {
    const span = m.sections.find((s) => s.id === id);
    if (!span) return [0, 0];
    const r = new WasmReader(m.bytes, span.content, span.end);
    r.u32();
    return [r.pos, span.end];
  };
  const added = new Map<number, () => void>([
    [Section.type, () => section(Section.type, m.types.length, ...entries(Section.type), Uint8Array.of(0x60, 1, 0x7f, 1, 0x7f))],
    [Section.function, () => section(Section.function, m.funcs.length, ...entries(Section.function), new Bytes().uleb(m.types.length).result())],
    [Section.global, () => section(Section.global, m.globals.length, ...entries(Section.global), breachGlobal())],
    [Section.export, () => section(Section.export, m.exports.length, ...entries(Section.export),
      new Bytes().uleb(BREACH_EXPORT.length).copy(Uint8Array.from(BREACH_EXPORT, (c) => c.charCodeAt(0))).raw(ExternKind.global).uleb(breach).result())],
    [Section.code, () => {
      const code = new Bytes().uleb(m.bodies.length + 1);
      const ins = new Instr();
      for (const b of m.bodies) {
        const body = new Bytes();
        const r = new WasmReader(m.bytes, b.entryStart, b.end);
        r.u32();
        body.copy(m.bytes, r.pos, b.codeStart); // locals
        r.pos = b.codeStart;
        let copied = b.codeStart;
        while (r.pos < r.end) {
          const at = r.pos;
          decodeInstr(r, ins);
          if (ins.op !== 0x40) continue;
          body.copy(m.bytes, copied, at).raw(0x10).uleb(helper);
          copied = r.pos;
        }
        body.copy(m.bytes, copied, b.end);
        code.uleb(body.length).copy(body.result());
      }
      const h = growHelper(capPages(memoryBytes), m.memories[0]?.max, breach);
      code.uleb(h.length).copy(h);
      out.raw(Section.code).uleb(code.length).copy(code.result());
    }],
  ]);
  const rank = (id: number): number => SECTION_RANK[id];
  const emitMissingBefore = (limit: number): void => {
    if (!guard) return;
    for (const id of [Section.global, Section.export]) {
      if (!present.has(id) && rank(id) < limit) {
        present.add(id);
        added.get(id)!();
      }
    }
  };
  for (const s of m.sections) {
    if (s.id === Section.custom) continue;
    emitMissingBefore(rank(s.id));
    const add = guard ? added.get(s.id) : undefined;
    if (add) add();
    else out.copy(m.bytes, s.start, s.end);
  }
  emitMissingBefore(Infinity);
  return out.result();
}

/** Bytes with the LEB128 encoders a splice needs. */
class Bytes {
  #b: number[] = [];
  get length(): number { return this.#b.length; }
  raw(...bytes: number[]): this {
    for (const x of bytes) this.#b.push(x);
    return this;
  }
  copy(src: Uint8Array, from = 0, to = src.length): this {
    for (let i = from; i < to; i++) this.#b.push(src[i]);
    return this;
  }
  uleb(n: number): this {
    putUleb(n, (b) => this.#b.push(b));
    return this;
  }
  sleb(n: number): this {
    putSleb(n, (b) => this.#b.push(b));
    return this;
  }
  result(): Uint8Array {
    return Uint8Array.from(this.#b);
  }
}
