// GUESTS.md module rules, checked by firmware/core/guests/validate.ts on hand-assembled modules.
// Runs on Node and inside XS (no WebAssembly API involved).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { admitGuest } from '../../guests/tools/admit.js';
import { guestCid } from '../../firmware/core/guests/cid.js';
import { instrumentMetering } from '../../guests/tools/instrument.js';
import { validateGuest, GUEST_MAX_BYTES } from '../../firmware/core/guests/validate.js';
import { analyzeBody, parseModule } from '../../firmware/core/guests/wasm.js';
import {
  assemble, call, DROP, END, f64c, guest, i32c, i64c, localGet, meteredGuest, section, T, vec, leb,
} from './support/guests.js';

const manifest = {
  name: 'test-guest', version: '1.0.0', period_s: 5, fuel_per_call: 10000, memory_bytes: 4096,
  capabilities: ['channel:*', 'relay:1', 'emit', 'kv:2'],
};

function reason(bytes: Uint8Array, m: unknown = manifest): string {
  const r = validateGuest(bytes, m);
  if (r.ok) throw new Error('expected a refusal, but the module was accepted');
  return r.reason;
}

function accepted(bytes: Uint8Array, m: unknown = manifest) {
  const r = validateGuest(bytes, m);
  if (!r.ok) throw new Error(`expected acceptance, got: ${r.reason}`);
  return r.info;
}

/** A metered guest whose tick is `code` (with the usegas import last, at index `imports.length`). */
function meteredByHand(imports: string[], tick: number[], init: number[] = []): Uint8Array {
  return assemble({
    imports: [
      ...imports.map((n): [string, string, number[], number[]] => ['gridlet', n, n === 'channel' ? [T.i32] : [], n === 'channel' ? [T.f64] : []]),
      ['metering', 'usegas', [T.i64], []],
    ],
    funcs: [
      { results: [T.i32], code: [...init, ...i64c(2), ...call(imports.length), ...i32c(0)] },
      { results: [T.i32], code: tick },
    ],
    exports: [['memory', 2, 0], ['init', 0, imports.length + 1], ['tick', 0, imports.length + 2]],
  });
}

test('an instrumented guest is accepted and described', () => {
  const wasm = meteredGuest({
    imports: ['channel', 'relay', 'emit'],
    tick: [...i32c(3), ...call(0), DROP, ...i32c(1), ...i32c(0), ...call(1), DROP, ...i32c(0)],
  });
  const info = accepted(wasm);
  assert.equal(info.imports, ['channel', 'relay', 'emit']);
  assert.is(info.functions, 2);
  assert.is(info.meterPoints, 2);
  assert.is(info.size, wasm.length);
  assert.equal(info.ungranted, []);
});

test('imports the manifest grants nothing for are listed (they will answer -1/NaN)', () => {
  const info = accepted(meteredGuest({ imports: ['signal', 'kv_set'] }), { ...manifest, capabilities: ['channel:3'] });
  assert.equal(info.ungranted, ['signal', 'kv_set']);
});

test('bad magic, wrong version and short files are refused', () => {
  const good = meteredGuest();
  const bad = good.slice();
  bad[0] = 0x7f; bad[1] = 0x45; bad[2] = 0x4c; bad[3] = 0x46; // ELF
  assert.match(reason(bad), /bad magic/);
  const v2 = good.slice();
  v2[4] = 2;
  assert.match(reason(v2), /version 2/);
  assert.match(reason(good.slice(0, 6)), /shorter than the 8-byte header/);
});

test('a truncated section or body is named', () => {
  const good = meteredGuest();
  assert.match(reason(good.slice(0, good.length - 3)), /truncated/);
  // A section whose size claims more than remains.
  const m = assemble({ funcs: [], memory: { min: 1, max: 1 }, rawSections: [] });
  const cut = new Uint8Array([...m, 0x0a, 0x40, 0x01]);
  assert.match(reason(cut), /truncated: code section at byte \d+ declares 64 bytes but only 1 remain/);
  // A body that claims more than its section holds.
  const body = new Uint8Array([...m.slice(0, 8), ...section(1, vec([[0x60, 0, 1, T.i32]])), ...section(3, vec([[0]])), ...section(10, [1, 20, 0, 0x41, 0, END])]);
  assert.match(reason(body), /truncated: body of function 0/);
});

test('sections out of order, repeated or unknown are refused', () => {
  const t = section(1, vec([]));
  const mem = section(5, vec([[1, 1, 1]]));
  const hdr = [0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0];
  assert.match(reason(new Uint8Array([...hdr, ...mem, ...t])), /out of order/);
  assert.match(reason(new Uint8Array([...hdr, ...t, ...t])), /out of order or repeated/);
  assert.match(reason(new Uint8Array([...hdr, 0x0d, 0x00])), /unknown section id 13/);
});

test('size: over 4 KiB is refused for a guest; 1 MiB is refused before parsing', () => {
  const big = meteredGuest({ data: [[0, new Array(4000).fill(7)]] });
  assert.ok(big.length > GUEST_MAX_BYTES);
  assert.match(reason(big), /at most 4096 bytes/);
  const mib = new Uint8Array(1 << 20);
  mib.set(meteredGuest());
  assert.match(reason(mib), /module is 1048576 bytes; a guest is at most 4096/);
  assert.throws(() => parseModule(mib), /limit is 65536/);
});

test('SIMD, threads, bulk memory, reference types and exceptions are refused; what wasm3 runs is accepted', () => {
  const withTick = (code: number[]) =>
    meteredByHand([], [...i64c(50), ...call(0), ...code, ...i32c(0)]);
  // v128.const (0xfd 12)
  assert.match(reason(withTick([0xfd, 12, ...new Array(16).fill(0), DROP])), /SIMD \(0xfd prefix\)/);
  // i32.atomic.load (0xfe 0x10)
  assert.match(reason(withTick([...i32c(0), 0xfe, 0x10, 2, 0, DROP])), /threads\/atomics \(0xfe prefix\)/);
  // memory.fill (0xfc 11) and memory.copy (0xfc 10)
  assert.match(reason(withTick([...i32c(0), ...i32c(0), ...i32c(0), 0xfc, 11, 0])), /bulk memory \(0xfc 11\)/);
  assert.match(reason(withTick([...i32c(0), ...i32c(0), ...i32c(0), 0xfc, 10, 0, 0])), /bulk memory \(0xfc 10\)/);
  // ref.null func (0xd0 0x70)
  assert.match(reason(withTick([0xd0, 0x70, DROP])), /reference types/);
  // try (0x06)
  assert.match(reason(withTick([0x06, 0x40, END])), /exceptions/);
  // return_call (0x12)
  assert.match(reason(withTick([0x12, 0])), /tail calls/);
  // Shared memory (threads).
  const shared = assemble({
    imports: [['metering', 'usegas', [T.i64], []]], memory: { min: 1, max: 1, flags: 3 },
    funcs: [{ results: [T.i32], code: [...i64c(2), ...call(0), ...i32c(0)] }],
    exports: [['memory', 2, 0], ['init', 0, 1], ['tick', 0, 1]],
  });
  assert.match(reason(shared), /shared \(threads\)/);
  // Accepted: sign extension (0xc0), non-trapping float-to-int (0xfc 2), multi-value block type.
  const ok = withTick([...i32c(200), 0xc0, DROP, ...f64c(1.5), 0xfc, 2, DROP]);
  accepted(ok);
});

test('memory: one, at most a page, defined and exported; data within memory_bytes', () => {
  assert.match(reason(meteredGuest({ memory: { min: 2, max: 2 } })), /2 pages initially/);
  assert.match(reason(meteredGuest({ memory: { min: 1 } , data: [[8000, [1, 2, 3]]] })), /data segment 0 ends at byte 8003, past the manifest's memory_bytes 4096/);
  assert.match(reason(meteredGuest({ memory: { min: 0, max: 4 } })), /maximum of 4 pages/);
  const none = assemble({
    imports: [['metering', 'usegas', [T.i64], []]], memory: null,
    funcs: [{ results: [T.i32], code: [...i64c(2), ...call(0), ...i32c(0)] }],
    exports: [['init', 0, 1], ['tick', 0, 1]],
  });
  assert.match(reason(none), /defines no memory/);
  const imported = assemble({
    imports: [['metering', 'usegas', [T.i64], []]],
    funcs: [{ results: [T.i32], code: [...i64c(2), ...call(0), ...i32c(0)] }],
    exports: [['memory', 2, 0], ['init', 0, 1], ['tick', 0, 1]],
  });
  accepted(imported);
  // Not exported.
  const hidden = assemble({
    imports: [['metering', 'usegas', [T.i64], []]],
    funcs: [{ results: [T.i32], code: [...i64c(2), ...call(0), ...i32c(0)] }],
    exports: [['init', 0, 1], ['tick', 0, 1]],
  });
  assert.match(reason(hidden), /does not export its memory/);
});

test('imports: only the gridlet table with its signatures, and metering.usegas (i64) -> ()', () => {
  assert.match(reason(meteredGuest({ otherImports: [['gridlet', 'reboot', [], []]] })), /gridlet\.reboot is not in the gridlet import table/);
  assert.match(reason(meteredGuest({ otherImports: [['env', 'abort', [T.i32, T.i32, T.i32, T.i32], []]] })), /from module "env"/);
  assert.match(reason(meteredGuest({ otherImports: [['gridlet', 'relay', [T.i32], [T.i32]]] })), /gridlet\.relay has signature \(i32\) -> \(i32\); GUESTS\.md gives \(i32, i32\) -> \(i32\)/);
  const badGas = assemble({
    imports: [['metering', 'usegas', [T.i32], []]],
    funcs: [{ results: [T.i32], code: [...i32c(2), ...call(0), ...i32c(0)] }],
    exports: [['memory', 2, 0], ['init', 0, 1], ['tick', 0, 1]],
  });
  assert.match(reason(badGas), /metering\.usegas has signature \(i32\) -> \(\); it must be \(i64\) -> \(\)/);
});

test('exports: init and tick () -> i32, on_signal (i32, f64) -> () when present', () => {
  const noTick = assemble({
    imports: [['metering', 'usegas', [T.i64], []]],
    funcs: [{ results: [T.i32], code: [...i64c(2), ...call(0), ...i32c(0)] }],
    exports: [['memory', 2, 0], ['init', 0, 1]],
  });
  assert.match(reason(noTick), /does not export "tick"/);
  const badSig = assemble({
    imports: [['metering', 'usegas', [T.i64], []]],
    funcs: [{ results: [T.i32], code: [...i64c(2), ...call(0), ...i32c(0)] }, { code: [...i64c(1), ...call(0)] }],
    exports: [['memory', 2, 0], ['init', 0, 1], ['tick', 0, 2]],
  });
  assert.match(reason(badSig), /export "tick" has signature \(\) -> \(\)/);
  accepted(meteredGuest({ onSignal: [] }));
});

test('metering: a module without usegas, or that merely imports it, is refused', () => {
  assert.match(reason(guest()), /not metered: it does not import metering\.usegas/);
  const importsOnly = meteredByHand([], [...i32c(0)]);
  assert.match(reason(importsOnly), /metering does not cover function 2 \(export "tick"\)/);
});

test('metering: every loop body must start with usegas, charging at least its cost', () => {
  // tick: usegas(N); loop { usegas(M); br 0 }; i32.const 0
  const loop = (n: number, m: number | undefined) => meteredByHand([], [
    ...i64c(n), ...call(0),
    0x03, 0x40, ...(m === undefined ? [] : [...i64c(m), ...call(0)]), 0x0c, 0, END,
    ...i32c(0),
  ]);
  assert.match(reason(loop(10, undefined)), /does not cover function 2 \(export "tick"\): the loop at byte \d+/);
  // The loop's region: br, end = 2. The function region: loop, i32.const, end = 3.
  assert.match(reason(loop(10, 1)), /undercharges function 2 \(export "tick"\): the loop at byte \d+: usegas\(1\) but its code costs 2/);
  assert.match(reason(loop(2, 2)), /undercharges function 2 \(export "tick"\): usegas\(2\) but its code costs 3/);
  accepted(loop(3, 2));
});

test('metering: no refunds, no computed amounts, usegas never in a table or exported', () => {
  const refund = meteredByHand([], [...i64c(5), ...call(0), ...i64c(-1000), ...call(0), ...i32c(0)]);
  assert.match(reason(refund), /not a non-negative `i64\.const`/);
  const computed = assemble({
    imports: [['metering', 'usegas', [T.i64], []]],
    funcs: [
      { results: [T.i32], code: [...i64c(2), ...call(0), ...i32c(0)] },
      { results: [T.i32], params: [], locals: [T.i64], code: [...i64c(9), ...call(0), ...localGet(0), ...call(0), ...i32c(0)] },
    ],
    exports: [['memory', 2, 0], ['init', 0, 1], ['tick', 0, 2]],
  });
  assert.match(reason(computed), /not a non-negative `i64\.const`/);
  const tabled = assemble({
    imports: [['metering', 'usegas', [T.i64], []]], table: { min: 1 }, elements: [[0, [0]]],
    funcs: [{ results: [T.i32], code: [...i64c(2), ...call(0), ...i32c(0)] }],
    exports: [['memory', 2, 0], ['init', 0, 1], ['tick', 0, 1]],
  });
  assert.match(reason(tabled), /puts metering\.usegas in a table/);
  const exported = assemble({
    imports: [['metering', 'usegas', [T.i64], []]],
    funcs: [{ results: [T.i32], code: [...i64c(2), ...call(0), ...i32c(0)] }],
    exports: [['memory', 2, 0], ['init', 0, 1], ['tick', 0, 1], ['gas', 0, 0]],
  });
  assert.match(reason(exported), /re-exports metering\.usegas/);
});

test('the instrumenter meters exactly what the validator checks, and is idempotent', () => {
  const plain = guest({
    imports: ['channel'],
    tickLocals: [T.i32],
    tick: [
      0x03, 0x40, // loop
      ...localGet(0), ...i32c(1), 0x6a, 0x22, 0, // local.tee 0
      ...i32c(10), 0x48, 0x0d, 0, // br_if 0
      END,
      0x03, 0x40, 0x03, 0x40, END, END, // nested loops
      ...i32c(0),
    ],
  });
  const { wasm, points } = instrumentMetering(plain);
  assert.is(points, 5); // init, tick, three loops
  const info = accepted(wasm);
  assert.is(info.meterPoints, 5);
  const m = parseModule(wasm);
  const regions = analyzeBody(m, 1, 1, false);
  for (const r of regions) assert.is(r.charged, r.cost, 'charged exactly the static cost');
  assert.equal(instrumentMetering(wasm).wasm, wasm);
});

test('a gateway admits a metered module as is and instruments one without metering', () => {
  const plain = guest({ imports: ['channel'], tick: [...i32c(3), ...call(0), DROP, ...i32c(0)] });
  const a = admitGuest(plain, manifest);
  assert.ok(a.ok);
  if (!a.ok) return;
  assert.ok(a.instrumented);
  assert.equal(a.cid, guestCid(a.wasm), 'the CID names the instrumented bytes');
  const b = admitGuest(a.wasm, manifest);
  assert.ok(b.ok && !b.instrumented && b.cidText === a.cidText, 'already metered: accepted as is');
  const bad = admitGuest(guest({ otherImports: [['env', 'abort', [], []]] }), manifest);
  assert.ok(!bad.ok && /from module "env"/.test(bad.reason));
  const simd = admitGuest(meteredByHand([], [...i64c(20), ...call(0), 0xfd, 12, ...new Array(16).fill(0), DROP, ...i32c(0)]), manifest);
  assert.ok(!simd.ok && /SIMD/.test(simd.reason));
  const big = admitGuest(guest({ data: [[0, new Array(4000).fill(1)]] }), manifest);
  assert.ok(!big.ok && /at most 4096 bytes/.test(big.reason), 'the budget applies to the instrumented bytes');
});

test('a broken manifest is refused with its reason', () => {
  assert.match(reason(meteredGuest(), { ...manifest, memory_bytes: 100000 }), /manifest: "memory_bytes" is 100000/);
});

test('function indices, locals and branch depths are checked', () => {
  const badLocal = meteredByHand([], [...i64c(5), ...call(0), ...localGet(3), DROP, ...i32c(0)]);
  assert.match(reason(badLocal), /local 3 does not exist/);
  const badCall = meteredByHand([], [...i64c(5), ...call(0), ...call(40), ...i32c(0)]);
  assert.match(reason(badCall), /call to function 40/);
  const badBr = meteredByHand([], [...i64c(5), ...call(0), 0x0c, 3, ...i32c(0)]);
  assert.match(reason(badBr), /branch to label 3/);
  const noEnd = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0, ...section(1, vec([[0x60, 0, 1, T.i32]])),
    ...section(3, vec([[0]])), ...section(10, vec([[...leb(3), 0, ...i32c(0)]]))]);
  assert.throws(() => analyzeBody(parseModule(noEnd), 0, -1, false), /missing `end`/);
});

test.run();
