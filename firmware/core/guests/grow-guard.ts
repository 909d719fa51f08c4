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
  copyInstr, decodeInstr, ExternKind, Instr, parseModule, PAGE_BYTES, rewriteModule, WasmReader, WasmWriter, writeLocals,
  type FuncType, type WasmModule,
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
 * Writes the helper that replaces memory.grow (locals and code, no size): past `capPages` it records
 * BREACH_GROW and traps; past the memory's declared maximum it answers -1 as memory.grow would (wasm3
 * reads a declared maximum of 0 as "none"); otherwise it grows. Page counts add in 64 bits.
 */
export function writeGrowHelper(w: WasmWriter, capPages: number, maxPages: number | undefined, breachGlobal: number): void {
  // memory.size + delta, unsigned, in 64 bits: memory.size i64.extend_i32_u local.get 0 i64.extend_i32_u i64.add
  const newPages = (): void => { w.u8(0x3f).u8(0).u8(0xad).u8(0x20).u8(0).u8(0xad).u8(0x7c); };
  w.u8(0); // no locals
  newPages();
  w.u8(0x42).sleb(capPages).u8(0x56); // i64.const cap  i64.gt_u
  w.u8(0x04).u8(0x40).u8(0x42).sleb(BREACH_GROW).u8(0x24).u32(breachGlobal).u8(0x00).u8(0x0b); // if: breach = -2; unreachable
  if (maxPages !== undefined && maxPages < capPages) {
    newPages();
    w.u8(0x42).sleb(maxPages).u8(0x56);
    w.u8(0x04).u8(0x40).u8(0x41).sleb(-1).u8(0x0f).u8(0x0b); // if: return -1
  }
  w.u8(0x20).u8(0).u8(0x40).u8(0); // local.get 0  memory.grow 0
  w.u8(0x0b);
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
  if (grows === 0) {
    return { wasm: m.customs.length ? rewriteModule(m, { dropCustom: true }) : bytes, module: m, grows };
  }
  const breach = m.imports.filter((i) => i.kind === ExternKind.global).length + m.globals.length;
  const helper = m.funcImportCount + m.funcs.length;
  const body = new WasmWriter(64);
  writeGrowHelper(body, capPages(memoryBytes), m.memories[0]?.max, breach);
  const wasm = rewriteModule(m, {
    addTypes: [GROW_TYPE],
    addFuncs: [{ type: m.types.length, body: body.result() }],
    addGlobals: [breachGlobal()],
    addExports: [{ name: BREACH_EXPORT, kind: ExternKind.global, index: breach }],
    dropCustom: true,
    rewriteBody: (i, b, out) => {
      writeLocals(b, out);
      const r = new WasmReader(m.bytes, b.codeStart, b.end);
      while (r.pos < r.end) {
        decodeInstr(r, ins);
        if (ins.op === 0x40) out.u8(0x10).u32(helper);
        else copyInstr(m, ins, out, (f) => f);
      }
    },
  });
  return { wasm, module: m, grows };
}
