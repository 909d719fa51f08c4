// grow-guard.ts: memory.grow rewritten into the helper every engine shares, custom sections dropped,
// nothing else touched (runs on Node and inside XS).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BREACH_EXPORT, breachGlobal, capPages, growHelper, GROW_TYPE, guardGrow } from '../../firmware/core/guests/grow-guard.js';
import { decodeInstr, ExternKind, Instr, parseModule, WasmReader } from '../../firmware/core/guests/wasm.js';
import { copyInstr, rewriteModule, writeLocals } from '../../guests/tools/wasm-writer.js';
import { engineProbes } from './support/hostile-guests.js';
import { assemble, i32c, localGet, meteredGuest } from './support/guests.js';

function opcodes(bytes: Uint8Array, body: number): number[] {
  const m = parseModule(bytes);
  const b = m.bodies[body];
  const r = new WasmReader(m.bytes, b.codeStart, b.end);
  const ins = new Instr();
  const out: number[] = [];
  while (r.pos < r.end) {
    decodeInstr(r, ins);
    out.push(ins.op);
  }
  return out;
}

test('a module without memory.grow or custom sections is passed through as it is', () => {
  const wasm = meteredGuest();
  const g = guardGrow(wasm, 4096);
  assert.is(g.wasm, wasm);
  assert.is(g.grows, 0);
});

test('custom sections are dropped (a "name" section could give any function an export\'s name)', () => {
  const wasm = meteredGuest({ fake: 'named' });
  const g = guardGrow(wasm, 4096);
  assert.is(parseModule(wasm).customs.length, 1);
  assert.is(parseModule(g.wasm).customs.length, 0);
  assert.is(g.wasm.length < wasm.length, true);
});

test('every memory.grow becomes a call to one added helper, exported breach global beside it; indices stay', () => {
  const wasm = engineProbes();
  const before = parseModule(wasm);
  const g = guardGrow(wasm, 4096);
  const after = parseModule(g.wasm);
  assert.is(g.grows, 1);
  assert.is(after.funcs.length, before.funcs.length + 1);
  const helper = after.funcImportCount + after.funcs.length - 1;
  const grow = before.exports.find((e) => e.name === 'grow')!.index - before.funcImportCount;
  assert.not.ok(opcodes(g.wasm, grow).includes(0x40), 'no memory.grow left in the guest\'s function');
  assert.ok(opcodes(g.wasm, helper - after.funcImportCount).includes(0x40), 'the helper grows');
  assert.equal(after.exports.filter((e) => e.name !== BREACH_EXPORT), before.exports);
  assert.equal(after.exports.find((e) => e.name === BREACH_EXPORT)?.kind, ExternKind.global);
});

/** The same guard written with the tools' module rewriter, which re-encodes every instruction. */
function rewritten(bytes: Uint8Array, memoryBytes: number): Uint8Array {
  const m = parseModule(bytes);
  const breach = m.imports.filter((i) => i.kind === ExternKind.global).length + m.globals.length;
  const helper = m.funcImportCount + m.funcs.length;
  const ins = new Instr();
  return rewriteModule(m, {
    addTypes: [GROW_TYPE],
    addFuncs: [{ type: m.types.length, body: growHelper(capPages(memoryBytes), m.memories[0]?.max, breach) }],
    addGlobals: [breachGlobal()],
    addExports: [{ name: BREACH_EXPORT, kind: ExternKind.global, index: breach }],
    dropCustom: true,
    rewriteBody: (_i, b, out) => {
      writeLocals(b, out);
      const r = new WasmReader(m.bytes, b.codeStart, b.end);
      while (r.pos < r.end) {
        decodeInstr(r, ins);
        if (ins.op === 0x40) out.u8(0x10).u32(helper);
        else copyInstr(m, ins, out, (f) => f);
      }
    },
  });
}

test('the meter\'s splice gives the bytes the module rewriter gives, with and without global and export sections', () => {
  const grow = [...localGet(0), 0x40, 0x00];
  const bare = assemble({ funcs: [{ params: [0x7f], results: [0x7f], locals: [0x7f, 0x7e], code: grow }], memory: { min: 1, max: 2 } });
  const busy = assemble({
    funcs: [
      { params: [0x7f], results: [0x7f], code: [...grow, ...localGet(0), 0x40, 0x00, 0x6a] },
      { results: [0x7f], code: [...i32c(1), 0x10, 0x00] },
    ],
    memory: { min: 1 },
    globals: [[0x7f, true, i32c(7)]],
    exports: [['g', ExternKind.func, 1], ['memory', ExternKind.memory, 0]],
    customs: [['name', [0, 1, 2]]],
  });
  for (const [name, wasm, memoryBytes] of [['engine probes', engineProbes(), 4096], ['bare', bare, 65536], ['busy', busy, 70000]] as const) {
    const g = guardGrow(wasm, memoryBytes);
    assert.ok(g.grows > 0, name);
    assert.equal([...g.wasm], [...rewritten(wasm, memoryBytes)], name);
    assert.is(parseModule(g.wasm).funcs.length, parseModule(wasm).funcs.length + 1, `${name}: the guarded module parses`);
  }
});

test.run();
