// grow-guard.ts: memory.grow rewritten into the helper every engine shares, custom sections dropped,
// nothing else touched (runs on Node and inside XS).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BREACH_EXPORT, guardGrow } from '../../firmware/core/guests/grow-guard.js';
import { decodeInstr, ExternKind, Instr, parseModule, WasmReader } from '../../firmware/core/guests/wasm.js';
import { engineProbes } from './support/hostile-guests.js';
import { meteredGuest } from './support/guests.js';

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

test.run();
