// The Node GuestEngine: fuel through metering.usegas, the memory cap enforced to the byte, traps
// mapped to GuestTrap with a reason; and the checked-in guests/dist matching a fresh build.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildAll, DIST_DIR, guestNames, readToolchains, worldNames, type Language } from '../../guests/build.js';
import { toolVersion } from '../../guests/toolchains.js';
import { instrumentMetering } from '../../guests/tools/instrument.js';
import { GUEST_MAX_BYTES } from '../../firmware/core/guests/validate.js';
import { GuestTrap, TrapKind, type GuestInstance } from '../../firmware/core/ports.js';
import { NodeGuestEngine } from '../../host/guests/wasm-engine.js';
import { assemble, call, DROP, END, i32c, T, trapOf } from '../core/support/guests.js';
import { engineProbes } from '../core/support/hostile-guests.js';

const CAP = 4096;

function load(fuelStart = 1000): GuestInstance {
  return new NodeGuestEngine().instantiate(engineProbes(), {}, { memoryBytes: CAP, fuel: fuelStart });
}


test('the memory cap is exact: the last byte below memory_bytes is usable, the next is a breach', () => {
  const g = load();
  g.call('poke', [CAP - 4], 1000);
  assert.is(g.call('peek8', [CAP - 4], 1000), 7);
  assert.is(g.call('peek8', [CAP - 1], 1000), 0);
  const t = trapOf(() => g.call('poke', [CAP - 3], 1000));
  assert.is(t.kind, TrapKind.memory);
  assert.is(t.message, `poke: access at byte ${CAP - 3} is outside memory_bytes ${CAP}`);
  assert.is(trapOf(() => g.call('peek8', [CAP], 1000)).kind, TrapKind.memory);
  // The page is 64 KiB: far inside what wasm itself allows, and still refused.
  assert.is(trapOf(() => g.call('peek8', [60_000], 1000)).kind, TrapKind.memory);
});

test('memarg offsets count, and addresses do not wrap around 2^32', () => {
  const g = load();
  g.call('poke100', [CAP - 104], 1000);
  assert.match(trapOf(() => g.call('poke100', [CAP - 103], 1000)).message, /access at byte 4093 is outside/);
  assert.match(trapOf(() => g.call('poke100', [-4], 1000)).message, /access at byte 4294967392 is outside/);
});

test('memory.grow past the cap is a breach; asking the size is not', () => {
  const g = load();
  assert.is(g.call('grow', [0], 1000), 1);
  const t = trapOf(() => g.call('grow', [1], 1000));
  assert.is(t.kind, TrapKind.memory);
  assert.match(t.message, /memory\.grow past memory_bytes 4096/);
});

test('readMemory (the log import) is held to the cap too', () => {
  const g = load();
  assert.is(g.readMemory(CAP - 6, 6).length, 6);
  assert.is(trapOf(() => g.readMemory(CAP - 6, 7)).kind, TrapKind.memory);
});

for (const fuel of ['inline', 'import'] as const) {
  test(`fuel (${fuel}): each call gets its budget; spending past it traps`, () => {
    const g = new NodeGuestEngine({ fuel }).instantiate(engineProbes(), {}, { memoryBytes: CAP, fuel: 1000 });
    g.call('spin', [10], 1000);
    // spin: function region (loop, end) = 2, loop region (local.get, i32.const, sub, tee, br_if, end) = 6 per pass.
    assert.is(g.fuelUsed, 2 + 10 * 6);
    g.call('spin', [1000], 6002);
    assert.is(g.fuelUsed, 6002, 'exactly the budget is allowed');
    const t = trapOf(() => g.call('spin', [1001], 6002));
    assert.is(t.kind, TrapKind.fuel);
    assert.is(t.message, 'spin spent its fuel budget of 6002');
    assert.is(g.fuelUsed, 6008, 'the region that crossed the budget was charged, and nothing after it ran');
    // An infinite loop ends the same way, and the next call starts with a full budget.
    assert.is(trapOf(() => g.call('spin', [0], 200_000)).kind, TrapKind.fuel);
    g.call('spin', [3], 1000);
    assert.is(g.fuelUsed, 20);
  });
}

test('a start function runs on the start budget', () => {
  const plain = assemble({
    memory: { min: 1, max: 1 },
    funcs: [
      { results: [T.i32], code: i32c(0) },
      { code: [0x03, 0x40, 0x0c, 0, END] }, // start: loops forever
    ],
    exports: [['memory', 2, 0], ['init', 0, 0], ['tick', 0, 0]],
    start: 1,
  });
  const wasm = instrumentMetering(plain).wasm;
  for (const fuel of ['inline', 'import'] as const) {
    const t = trapOf(() => new NodeGuestEngine({ fuel }).instantiate(wasm, {}, { memoryBytes: 1024, fuel: 5000 }));
    assert.is(t.kind, TrapKind.fuel, fuel);
    assert.match(t.message, /start spent its fuel budget of 5000/);
  }
});

test('traps become GuestTraps with the reason', () => {
  const g = load();
  assert.match(trapOf(() => g.call('boom', [], 1000)).message, /^boom: unreachable/);
  assert.match(trapOf(() => g.call('div0', [], 1000)).message, /^div0: divide by zero/);
  // Endless recursion: stopped by fuel or by the stack, never by crashing the host.
  const deep = trapOf(() => g.call('deep', [], 10_000_000));
  assert.ok(deep.kind === TrapKind.fuel || /call stack exhausted/.test(deep.message), deep.message);
  assert.match(trapOf(() => g.call('nope', [], 1000)).message, /no export "nope"/);
});

test('a module that does not compile or link is a load trap', () => {
  const engine = new NodeGuestEngine();
  const t = trapOf(() => engine.instantiate(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 5, 1, 0x60, 0, 1, 0x7f, 3, 2, 1, 0, 10, 4, 1, 2, 0, END]), {}, { memoryBytes: 1024 }));
  assert.match(t.message, /cannot load the module/);
  const needsImport = assemble({ imports: [['gridlet', 'time', [], [T.f64]]], funcs: [{ code: [...call(0), DROP] }] });
  assert.match(trapOf(() => engine.instantiate(needsImport, {}, { memoryBytes: 1024 })).message, /cannot link the module/);
});

test('guests/dist holds exactly what the sources build to, each within 4 KiB', async () => {
  // C and Rust guests are compared only under the compilers that built guests/dist (toolchains.json):
  // another clang or rustc makes other, equally valid bytes.
  const recorded = readToolchains();
  const languages: Language[] = ['assemblyscript'];
  const pending: string[] = [];
  for (const [language, tool] of [['c', 'clang'], ['rust', 'rustc']] as const) {
    const here = toolVersion(tool);
    if (here && here === recorded[tool]) languages.push(language);
    else pending.push(`${language} guests (${tool} here: ${here ?? 'none'}; guests/dist built with ${recorded[tool]})`);
  }
  if (pending.length) console.log(`PENDING the staleness of ${pending.join(', ')}`);
  const { guests, worlds } = await buildAll({ write: false, languages });
  const shipped = readdirSync(DIST_DIR).filter((f) => f.endsWith('.wasm') || f.endsWith('.world')).sort();
  assert.equal(shipped, [...guestNames().map((n) => `${n}.wasm`), ...worldNames().map((n) => `${n}.world`)].sort(), 'one file in guests/dist per source');
  assert.ok(guests.some((g) => g.language === 'assemblyscript'));
  for (const b of guests) {
    const bytes = new Uint8Array(readFileSync(join(DIST_DIR, `${b.name}.wasm`)));
    assert.ok(Buffer.from(bytes).equals(Buffer.from(b.metered)), `${b.name}.wasm is stale: run npm run build:guests`);
    assert.ok(bytes.length <= GUEST_MAX_BYTES, `${b.name} is ${bytes.length} bytes`);
    assert.ok(b.meterPoints > 0);
  }
  for (const w of worlds) {
    const bytes = new Uint8Array(readFileSync(join(DIST_DIR, `${w.name}.world`)));
    assert.ok(Buffer.from(bytes).equals(Buffer.from(w.bundle)), `${w.name}.world is stale: run npm run build:guests`);
    for (const m of w.members) assert.ok(m.metered.length <= GUEST_MAX_BYTES, `${w.name}.${m.name} is ${m.metered.length} bytes`);
  }
});

test.run();
