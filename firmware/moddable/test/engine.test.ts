// The GuestEngine over the wasm3 binding (faked here; the C is syntax-checked by build:firmware),
// the KeyValue over preference and the Random over the hardware RNG, on XS.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GuestTrap, IMPORT_SIGNATURES, TrapKind, Wasm3Engine } from '../wasm3/engine.js';
import { PreferenceStore } from '../kv.js';
import { HardwareRandom } from '../random.js';
import { defineExports, modules } from './fakes/wasm3.js';
import { filled } from './fakes/random.js';

const wasm = new Uint8Array(16);

test('imports are linked with the GUESTS.md signatures and usegas as metering; memory is capped', () => {
  defineExports({ init: () => 0 });
  new Wasm3Engine().instantiate(wasm, { channel: () => 1, relay: () => 0 }, { memoryBytes: 8192 });
  const m = modules[modules.length - 1];
  assert.equal(m.links, [['gridlet', 'channel', 'F(i)'], ['gridlet', 'relay', 'i(ii)']]);
  assert.is(m.metering, 'metering.usegas');
  assert.is(m.memoryBytes, 8192);
  assert.is(IMPORT_SIGNATURES.emit, 'i(iF)');
});

test('an import GUESTS.md does not list is refused and the module freed', () => {
  defineExports({});
  assert.throws(() => new Wasm3Engine().instantiate(wasm, { open_socket: () => 0 }, { memoryBytes: 8192 }), /no gridlet import named open_socket/);
  assert.ok(modules[modules.length - 1].closed);
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
  const g = new Wasm3Engine().instantiate(wasm, { channel: (ch) => ch * 100 }, { memoryBytes: 8192 });
  assert.is(g.call('tick', [], 1000), 301);
  assert.is(g.fuelUsed, 10);
  try {
    g.call('spin', [], 5000);
    assert.unreachable();
  } catch (e) {
    assert.instance(e, GuestTrap);
    assert.is((e as GuestTrap).kind, TrapKind.fuel);
    assert.match((e as Error).message, /spin: \[trap\] out of fuel/);
  }
  try {
    g.call('crash', [], 5000);
    assert.unreachable();
  } catch (e) {
    assert.is((e as GuestTrap).kind, TrapKind.trap);
  }
  g.dispose();
  assert.throws(() => g.call('tick', [], 10), /disposed/);
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
