// The GuestEngine over the wasm3 binding (faked here as the real one behaves; the real one runs in
// test/firmware/wasm3-engine.test.ts on the simulator), the KeyValue over preference and the
// Random over the hardware RNG, on XS.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GuestTrap, IMPORT_SIGNATURES, TrapKind, Wasm3Engine } from '../wasm3/engine.js';
import { PreferenceStore } from '../kv.js';
import { HardwareRandom } from '../random.js';
import { defineExports, FakeMemoryFault, modules } from './fakes/wasm3.js';
import { filled } from './fakes/random.js';
import { assemble, T, trapOf } from '../../../test/core/support/guests.js';
import { GRIDLET_IMPORTS } from '../../core/guests/validate.js';

/** A module exporting functions `names` (their bodies do not matter: the fake runs the test's). */
function exporting(names: string[], options: { imports?: string[]; start?: boolean; unknownImport?: boolean } = {}): Uint8Array {
  const imports: [string, string, number[], number[]][] = (options.imports ?? []).map((n) => ['gridlet', n, GRIDLET_IMPORTS[n].params, GRIDLET_IMPORTS[n].results]);
  if (options.unknownImport) imports.push(['gridlet', 'reboot', [], []]);
  const base = imports.length;
  return assemble({
    imports,
    funcs: names.map(() => ({ code: [] })).concat(options.start ? [{ code: [] }] : []),
    exports: [['memory', 2, 0], ...names.map((n, i): [string, number, number] => [n, 0, base + i])],
    start: options.start ? base + names.length : undefined,
  });
}


test('imports are linked with the GUESTS.md signatures and usegas as metering; memory is capped; every function compiled', () => {
  defineExports({ init: () => 0 });
  new Wasm3Engine().instantiate(exporting(['init'], { imports: ['channel', 'relay'] }), { channel: () => 1, relay: () => 0 }, { memoryBytes: 8192 });
  const m = modules[modules.length - 1];
  assert.equal(m.links, [['gridlet', 'channel', 'F(i)'], ['gridlet', 'relay', 'i(ii)']]);
  assert.is(m.metering, 'metering.usegas');
  assert.is(m.memoryBytes, 8192);
  assert.ok(m.prepared);
  assert.is(IMPORT_SIGNATURES.emit, 'i(iF)');
});

test('an import GUESTS.md does not list is refused; a module importing what is not given does not load', () => {
  defineExports({});
  const before = modules.length;
  assert.throws(() => new Wasm3Engine().instantiate(exporting(['init']), { open_socket: () => 0 }, { memoryBytes: 8192 }), /no gridlet import named open_socket/);
  const t = trapOf(() => new Wasm3Engine().instantiate(exporting(['init'], { imports: ['time'] }), {}, { memoryBytes: 8192 }));
  assert.match(t.message, /cannot link the module: import gridlet\.time is not provided/);
  assert.match(trapOf(() => new Wasm3Engine().instantiate(Uint8Array.of(0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 99), {}, { memoryBytes: 8192 })).message, /cannot load the module/);
  assert.is(modules.length, before, 'nothing reached wasm3');
});

test('the start function runs at instantiate, on limits.fuel (1 000 000 by default), and may call imports', () => {
  const seen: number[] = [];
  defineExports({
    start: (_a, charge, imports) => {
      charge(40);
      seen.push(imports[0]() as number);
      return undefined;
    },
    init: () => 0,
  });
  const g = new Wasm3Engine().instantiate(exporting(['init'], { imports: ['time'], start: true }), { time: () => 1234 }, { memoryBytes: 4096, fuel: 5000 });
  assert.equal(modules[modules.length - 1].starts, [5000]);
  assert.equal(seen, [1234]);
  assert.is(g.fuelUsed, 40);
  defineExports({ init: () => 0 });
  new Wasm3Engine().instantiate(exporting(['init']), {}, { memoryBytes: 4096 });
  assert.equal(modules[modules.length - 1].starts, [1_000_000]);
});

test('a start function that traps or spends its budget fails instantiate with its kind; the module is freed', () => {
  defineExports({ start: (_a, charge) => { for (;;) charge(1000); }, init: () => 0 });
  const t = trapOf(() => new Wasm3Engine().instantiate(exporting(['init'], { start: true }), {}, { memoryBytes: 4096, fuel: 5000 }));
  assert.is(t.kind, TrapKind.fuel);
  assert.is(t.message, 'start spent its fuel budget of 5000');
  assert.ok(modules[modules.length - 1].closed);
  defineExports({ start: () => { throw new FakeMemoryFault(); }, init: () => 0 });
  const m = trapOf(() => new Wasm3Engine().instantiate(exporting(['init'], { start: true }), {}, { memoryBytes: 4096 }));
  assert.is(m.kind, TrapKind.memory);
  assert.match(m.message, /^start: \[trap\] out of bounds memory access \(memory_bytes 4096\)/);
});

test('calls return results and fuel used; traps and exhausted fuel become GuestTraps of their kind', () => {
  defineExports({
    tick: (_a, charge, imports) => {
      charge(10);
      return (imports[0](3) as number) + 1;
    },
    spin: (_a, charge) => {
      for (;;) charge(1000);
    },
    crash: () => {
      throw new Error('[trap] unreachable executed');
    },
  });
  const g = new Wasm3Engine().instantiate(exporting(['tick', 'spin', 'crash'], { imports: ['channel'] }), { channel: (ch) => ch * 100 }, { memoryBytes: 8192 });
  assert.is(g.call('tick', [], 1000), 301);
  assert.is(g.fuelUsed, 10);
  const t = trapOf(() => g.call('spin', [], 5000));
  assert.is(t.kind, TrapKind.fuel);
  assert.is(t.message, 'spin spent its fuel budget of 5000');
  assert.is(g.fuelUsed, 6000, 'the region that crossed the budget is charged');
  assert.is(trapOf(() => g.call('crash', [], 5000)).kind, TrapKind.trap);
  // A name it does not export never reaches wasm3, and leaves fuelUsed as it was.
  assert.match(trapOf(() => g.call('nope', [], 5000)).message, /the guest has no export "nope"/);
  assert.ok(g.hasExport('tick'));
  assert.not.ok(g.hasExport('memory'), 'only functions are exports to call');
  g.dispose();
  assert.match(trapOf(() => g.call('tick', [], 10)).message, /disposed/);
  assert.not.ok(g.hasExport('tick'));
});

test('an import that throws traps the call; a GuestTrap it throws (readMemory outside the cap) keeps its kind', () => {
  let instance: ReturnType<Wasm3Engine['instantiate']> | undefined;
  defineExports({
    tick: (_a, _c, imports) => imports[0]() as number,
    logFar: (_a, _c, imports) => {
      imports[1](4090, 10);
      return 0;
    },
  });
  const g = (instance = new Wasm3Engine().instantiate(exporting(['tick', 'logFar'], { imports: ['time', 'log'] }), {
    time: () => { throw new Error('clock unplugged'); },
    log: (ptr, len) => { instance!.readMemory(ptr, len); },
  }, { memoryBytes: 4096 }));
  const t = trapOf(() => g.call('tick', [], 100));
  assert.is(t.kind, TrapKind.trap);
  assert.is(t.message, 'tick: host import failed: clock unplugged');
  const m = trapOf(() => g.call('logFar', [], 100));
  assert.is(m.kind, TrapKind.memory);
  assert.is(m.message, 'reading bytes 4090..4100 is outside memory_bytes 4096');
});

test('disposed from inside its own import, a guest is closed once the call returns; it cannot be re-entered', () => {
  let g: ReturnType<Wasm3Engine['instantiate']>;
  defineExports({
    tick: (_a, _c, imports) => imports[0]() as number,
    again: (_a, _c, imports) => imports[1]() as number,
  });
  g = new Wasm3Engine().instantiate(exporting(['tick', 'again'], { imports: ['local_hour', 'weekday'] }), {
    local_hour: () => { g.dispose(); return 7; },
    weekday: () => g.call('tick', [], 10) as number,
  }, { memoryBytes: 4096 });
  const m = modules[modules.length - 1];
  const t = trapOf(() => g.call('again', [], 100));
  assert.match(t.message, /the guest is running \(an import called back into it\)/);
  assert.is(g.call('tick', [], 100), 7);
  assert.ok(m.closed, 'closed after the call');
  assert.match(trapOf(() => g.call('tick', [], 100)).message, /disposed/);
});

test('imports from other modules (WASI, world members) link with the signatures the module declares; an import writes memory and charges fuel', () => {
  let g: ReturnType<Wasm3Engine['instantiate']>;
  const left: number[] = [];
  defineExports({
    tick: (_a, charge, imports) => {
      charge(30);
      return imports[1](5) as number;
    },
  });
  const wasm = assemble({
    imports: [['wasi_snapshot_preview1', 'fd_write', [T.i32, T.i32, T.i32, T.i32], [T.i32]], ['lib', 'spin', [T.i32], [T.i32]]],
    funcs: [{ code: [] }],
    exports: [['memory', 2, 0], ['tick', 0, 2]],
  });
  const links = {
    wasi_snapshot_preview1: { fd_write: () => 0, proc_exit: () => 0 },
    lib: {
      spin: (n: number) => {
        left.push(g.fuelLeft());
        g.writeMemory(8, Uint8Array.of(1, 2));
        g.charge(n * 100, 'lib.spin');
        return 7;
      },
    },
  };
  g = new Wasm3Engine().instantiate(wasm, {}, { memoryBytes: 4096 }, links);
  assert.equal(modules[modules.length - 1].links, [['wasi_snapshot_preview1', 'fd_write', 'i(iiii)'], ['lib', 'spin', 'i(i)']], 'only what the module imports');
  assert.is(g.call('tick', [], 1000), 7);
  assert.equal(left, [970]);
  assert.is(g.fuelUsed, 530, 'the import\'s charge is the call\'s');
  assert.equal(g.readMemory(8, 2), Uint8Array.of(1, 2));
  const t = trapOf(() => g.call('tick', [], 300));
  assert.equal([t.kind, t.message], [TrapKind.fuel, 'tick spent its fuel budget of 300 (in lib.spin)']);
  assert.is(trapOf(() => g.writeMemory(4095, Uint8Array.of(1, 2))).kind, TrapKind.memory);
  const missing = trapOf(() => new Wasm3Engine().instantiate(wasm, {}, { memoryBytes: 4096 }, { wasi_snapshot_preview1: links.wasi_snapshot_preview1 }));
  assert.match(missing.message, /cannot link the module: import lib\.spin is not provided/);
});

test('KeyValue: long keys fit NVS (hashed), values round-trip, delete forgets', () => {
  const kv = new PreferenceStore();
  kv.set('id.sk', Uint8Array.of(1, 2, 3));
  kv.set('cfg.a-rather-long-configuration-key', Uint8Array.of(4));
  kv.set('cfg.a-rather-long-configuration-kez', Uint8Array.of(5));
  assert.equal(kv.get('id.sk'), Uint8Array.of(1, 2, 3));
  assert.equal(kv.get('cfg.a-rather-long-configuration-key'), Uint8Array.of(4));
  assert.equal(kv.get('cfg.a-rather-long-configuration-kez'), Uint8Array.of(5));
  kv.delete('id.sk');
  assert.is(kv.get('id.sk'), undefined);
});

test('Random fills from the hardware RNG', () => {
  const b = new Uint8Array(8);
  new HardwareRandom().fill(b);
  assert.is(filled >= 8, true);
});

test.run();
