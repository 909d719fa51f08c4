// Metering instrumentation (GUESTS.md "Metering"): puts `i64.const N; call $metering.usegas` at the start
// of every function body and every loop body, N being the static cost of that region as wasm.ts
// defines it, so the result passes validate.ts's coverage check by construction. Used by
// `gridlet guest build` and by the gateway for modules added without full coverage. Existing usegas
// pairs are removed first, so instrumenting twice gives the same bytes.

import {
  analyzeBody, decodeInstr, ExternKind, Instr, parseModule, WasmReader, type WasmModule,
} from '../../firmware/core/guests/wasm.js';
import { copyInstr, WasmWriter, writeLocals, rewriteModule } from './wasm-writer.js';
import { usegasIndex } from '../../firmware/core/guests/validate.js';

export interface Instrumented {
  wasm: Uint8Array;
  /** usegas pairs inserted (functions + loops). */
  points: number;
}

const I64 = 0x7e;

/** Instruments a module (throws WasmError when it is malformed or uses features wasm3 does not run). */
export function instrumentMetering(bytes: Uint8Array): Instrumented {
  const m = parseModule(bytes);
  const old = usegasIndex(m);
  let usegas = old;
  let typeIndex = -1;
  const addTypes: { params: number[]; results: number[] }[] = [];
  const addFuncImports: { module: string; name: string; type: number }[] = [];
  if (old < 0) {
    typeIndex = m.types.findIndex((t) => t.params.length === 1 && t.params[0] === I64 && t.results.length === 0);
    if (typeIndex < 0) {
      typeIndex = m.types.length;
      addTypes.push({ params: [I64], results: [] });
    }
    addFuncImports.push({ module: 'metering', name: 'usegas', type: typeIndex });
    usegas = m.funcImportCount; // appended after the existing function imports
  }
  let points = 0;
  const regionsOf = m.bodies.map((_, i) => analyzeBody(m, i, old, true));
  const wasm = rewriteModule(m, {
    addTypes,
    addFuncImports,
    dropCustom: true,
    rewriteBody(i, body, out, remap) {
      const regions = regionsOf[i];
      writeLocals(body, out);
      const r = new WasmReader(m.bytes, body.codeStart, body.end);
      const ins = new Instr();
      let k = 0;
      const meter = (): void => {
        skipPairs(m, r, old);
        out.u8(0x42).sleb(regions[k++].cost).u8(0x10).u32(usegas);
        points++;
      };
      meter();
      while (r.pos < r.end) {
        if (skipPairs(m, r, old)) continue;
        decodeInstr(r, ins);
        copyInstr(m, ins, out, remap);
        if (ins.op === 0x03) meter();
      }
      if (k !== regions.length) throw new Error(`instrumenter: ${k} regions written, ${regions.length} analysed`);
    },
  });
  return { wasm, points };
}

const scratch = new Instr();

/** Skips every `i64.const N; call $usegas` pair at r.pos; true when it skipped any. */
function skipPairs(m: WasmModule, r: WasmReader, usegas: number): boolean {
  if (usegas < 0) return false;
  let skipped = false;
  for (;;) {
    if (r.pos >= r.end || m.bytes[r.pos] !== 0x42) return skipped;
    const save = r.pos;
    decodeInstr(r, scratch);
    if (r.pos < r.end && m.bytes[r.pos] === 0x10) {
      decodeInstr(r, scratch);
      if (scratch.a === usegas) {
        skipped = true;
        continue;
      }
    }
    r.pos = save;
    return skipped;
  }
}

/** Does the module import metering.usegas? (Whether it covers everything is validate.ts's question.) */
export function importsUsegas(bytes: Uint8Array): boolean {
  const m = parseModule(bytes);
  return m.imports.some((i) => i.kind === ExternKind.func && i.module === 'metering' && i.name === 'usegas');
}
