// The guest supervisor's logic over a GuestEngine double (portable to XS): capability checks, fuel,
// fault isolation with backoff and quarantine, emit/log/kv rules, and deployment by CID.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Interlocks } from '../../firmware/core/control/relays.js';
import { cidToText, guestCid } from '../../firmware/core/guests/cid.js';
import { cleanLogLine, GuestSupervisor, toMilli } from '../../firmware/core/guests/supervisor.js';
import type { Relay } from '../../firmware/core/ports.js';
import { GuestTrap, TrapKind } from '../../firmware/core/ports.js';
import type { GuestAck } from '../../firmware/core/wire/bodies.js';
import { FakeEngine, meteredGuest, type FakeBehaviour } from './support/guests.js';
import { MemoryKV, SeededRandom, SimTime, simTimers } from './support/sim-world.js';

class FakeRelay implements Relay {
  on = false;
  sets = 0;
  constructor(readonly id: number) {}
  get(): boolean { return this.on; }
  set(on: boolean): void { this.on = on; this.sets++; }
}

function world(kv = new MemoryKV(), kvFlushMs = 0) {
  const time = new SimTime();
  const timers = simTimers(time);
  const relays = [1, 2, 3].map((id) => new FakeRelay(id));
  const events: { kind: string; data: Record<string, unknown> }[] = [];
  const interlocks = new Interlocks({
    relays, clock: time, timers, kv, random: new SeededRandom(1), onEvent: (kind, data) => events.push({ kind, data }),
  });
  interlocks.powerUp();
  const engine = new FakeEngine();
  const acks: GuestAck[] = [];
  const logs: string[] = [];
  const sup = new GuestSupervisor({
    engine, clock: time, timers, kv, interlocks, kvFlushMs,
    onEvent: (kind, data) => events.push({ kind, data }),
    onAck: (a) => acks.push(a),
    onLog: (name, text) => logs.push(`${name}: ${text}`),
  });
  return { time, kv, relays, events, interlocks, engine, acks, logs, sup };
}

const imports = ['time', 'channel', 'signal', 'relay', 'relay_state', 'emit', 'log', 'kv_get', 'kv_set'];

function manifest(name: string, capabilities: string[], extra: Record<string, unknown> = {}) {
  return { name, version: '1.0.0', period_s: 5, fuel_per_call: 10_000, memory_bytes: 1024, capabilities, ...extra };
}

/** Defines a behaviour and returns a valid module that selects it. */
function module(w: ReturnType<typeof world>, tag: string, b: FakeBehaviour): Uint8Array {
  w.engine.define(tag, b);
  return meteredGuest({ imports, fake: tag, onSignal: b.on_signal ? [] : undefined });
}

function install(w: ReturnType<typeof world>, tag: string, caps: string[], b: FakeBehaviour, extra = {}): GuestAck {
  return w.sup.install(module(w, tag, b), manifest(tag, caps, extra));
}

function state(w: ReturnType<typeof world>, name: string) {
  return w.sup.status().find((s) => s.name === name);
}

test('a guest ticks every period_s and its fuel per call is reported', () => {
  const w = world();
  let ticks = 0;
  const ack = install(w, 'ticker', [], { tick: (c) => { ticks++; c.use(90); return 0; } });
  assert.is(ack.state, 'running');
  assert.equal(ack.cid, guestCid(module(w, 'ticker', {})));
  w.time.advance(25_000);
  assert.is(ticks, 5);
  const s = state(w, 'ticker')!;
  assert.is(s.state, 'running');
  assert.is(s.ticks, 5);
  assert.is(s.fuelLast, 100);
  assert.is(s.fuelPerCall, 10_000);
  assert.is(s.cidText, cidToText(ack.cid));
  assert.equal(w.sup.statusEntries(), [['ticker', ack.cid, 'running']]);
});

test('ungranted imports answer -1/NaN, are counted, and never reach the hardware', () => {
  const w = world();
  w.sup.setChannel(3, 1500);
  w.sup.setChannel(4, 20);
  const seen: number[] = [];
  install(w, 'nosy', ['channel:3', 'relay:1', 'kv:2'], {
    tick: (c) => {
      const i = c.imports;
      seen.push(i.channel(3) as number, i.channel(4) as number, i.signal(1) as number,
        i.relay(2, 1) as number, i.emit(1, 5) as number, i.kv_get(2) as number, i.kv_set(7, 1) as number);
      return 0;
    },
  });
  w.time.advance(5_000);
  assert.is(seen[0], 1500);
  assert.ok(Number.isNaN(seen[1]) && Number.isNaN(seen[2]) && Number.isNaN(seen[5]));
  assert.equal([seen[3], seen[4], seen[6]], [-1, -1, -1]);
  assert.is(w.relays[1].sets, 0, 'relay 2 was never touched');
  const s = state(w, 'nosy')!;
  assert.is(s.denied, 6);
  assert.is(s.lastDenied, 'kv_set(7)');
  assert.is(s.state, 'running', 'a denied import is not a fault');
});

test('relay requests go through the interlocks', () => {
  const w = world();
  const results: number[] = [];
  install(w, 'switcher', ['relay:1'], { tick: (c) => { results.push(c.imports.relay(1, c.calls % 2) as number); return 0; } });
  w.time.advance(70_000);
  // Dwell from power-up (t=0): refused until 60 s, then done once, then refused again by dwell.
  assert.ok(results.slice(0, 11).every((r) => r === -2 || r === 0));
  assert.ok(results.includes(0));
  assert.ok(w.events.some((e) => e.kind === 'relay' && e.data.by === 'switcher'));
  assert.ok(w.events.some((e) => e.kind === 'interlock' && e.data.rule === 'dwell'));
});

test('emit: guest.<name>.<kind> in milli-units, at most one a minute per kind', () => {
  const w = world();
  const results: number[] = [];
  install(w, 'talker', ['emit'], {
    tick: (c) => {
      const i = c.imports;
      results.push(i.emit(1, 0.0125) as number, i.emit(2, -2.5) as number, i.emit(1, 7) as number,
        i.emit(100, 1) as number, i.emit(3, NaN) as number);
      return 0;
    },
  });
  w.time.advance(5_000);
  assert.equal(results, [0, 0, -3, -1, -1]);
  const mine = w.events.filter((e) => e.kind.startsWith('guest.'));
  assert.equal(mine, [
    { kind: 'guest.talker.1', data: { value: 12 } }, // 12.5 rounds half to even
    { kind: 'guest.talker.2', data: { value: -2500 } },
  ]);
  w.time.advance(55_000);
  assert.is(w.events.filter((e) => e.kind === 'guest.talker.1').length, 1, 'still within the minute');
  w.time.advance(5_000);
  assert.is(w.events.filter((e) => e.kind === 'guest.talker.1').length, 2);
  assert.is(toMilli(0.0135), 14);
  assert.is(toMilli(1.0005), 1000);
  assert.is(toMilli(-0), 0);
});

test('log: cut at 120 bytes, control characters removed, a few lines per call', () => {
  const w = world();
  install(w, 'chatty', [], {
    tick: (c) => {
      const text = 'hello\u0007\tworld\r\n' + 'x'.repeat(200);
      for (let i = 0; i < text.length; i++) c.memory[i] = text.charCodeAt(i);
      for (let i = 0; i < 10; i++) (c.imports.log as (p: number, l: number) => void)(0, text.length);
      return 0;
    },
  });
  w.time.advance(5_000);
  assert.is(w.logs.length, 4, 'at most 4 lines per call');
  assert.is(w.logs[0], 'chatty: helloworld' + 'x'.repeat(120 - 14));
  // A multi-byte character cut at byte 120 is dropped, not mangled.
  const b = new Uint8Array(122).fill(0x61);
  b[119] = 0xc3; b[120] = 0xa9;
  assert.is(cleanLogLine(b), 'a'.repeat(119));
  assert.is(cleanLogLine(new Uint8Array([0x41, 0xc2, 0x85, 0x42])), 'AB', 'C1 controls go too');
});

test('a log read outside the memory cap is a memory fault', () => {
  const w = world();
  install(w, 'reacher', [], { tick: (c) => { (c.imports.log as (p: number, l: number) => void)(1020, 50); return 0; } });
  w.time.advance(5_000);
  const s = state(w, 'reacher')!;
  assert.is(s.state, 'backoff');
  assert.match(s.lastFault!, /^tick: memory: reading 1020\.\.1070 outside memory_bytes 1024/);
});

test('kv slots persist, within the quota, and reach flash at most once a minute', () => {
  const kv = new MemoryKV();
  const w = world(kv, 60_000);
  install(w, 'counter', ['kv:2'], {
    tick: (c) => {
      const n = c.imports.kv_get(0) as number;
      c.imports.kv_set(0, Number.isNaN(n) ? 1 : n + 1);
      return 0;
    },
  });
  let writes = 0;
  const set = kv.set.bind(kv);
  kv.set = (k, v) => { if (k === 'guest.counter.kv') writes++; set(k, v); };
  w.time.advance(120_000);
  assert.ok(writes >= 2 && writes <= 3, `${writes} flash writes for 24 kv_set calls`);
  w.sup.dispose(); // flushes
  // A reboot: the tally is still there.
  const w2 = world(kv);
  w2.engine.define('counter', { tick: (c) => { c.imports.kv_set(1, c.imports.kv_get(0) as number); return 0; } });
  assert.equal(w2.sup.restore(), ['counter']);
  w2.time.advance(5_000);
  const stored = kv.get('guest.counter.kv')!;
  const view = new DataView(stored.buffer, stored.byteOffset);
  assert.is(view.getFloat64(0, true), 24);
  assert.is(view.getFloat64(8, true), 24);
});

test('on_signal is called on a change of a granted signal only', () => {
  const w = world();
  const calls: [number, number][] = [];
  install(w, 'listener', ['signal:2'], { on_signal: (_c, id, v) => { calls.push([id, v]); } });
  w.sup.setSignal(2, 1);
  w.sup.setSignal(2, 1);
  w.sup.setSignal(3, 4000);
  w.sup.setSignal(2, NaN);
  w.sup.setSignal(2, NaN);
  assert.is(calls.length, 2);
  assert.equal(calls[0], [2, 1]);
  assert.ok(Number.isNaN(calls[1][1]));
});

test('a trap stops that guest only; restarts back off 5, 10, 20, 40 s; 5 faults in an hour quarantine it', () => {
  const w = world();
  let good = 0;
  install(w, 'steady', [], { tick: () => { good++; return 0; } });
  const loads: number[] = [];
  install(w, 'crasher', ['relay:2'], {
    init: () => { loads.push(w.time.monotonic()); return 0; },
    tick: () => { throw new GuestTrap(TrapKind.trap, 'unreachable'); },
  });
  assert.is(w.interlocks.holder(2), 'crasher');
  w.time.advance(600_000);
  // Loaded at 0; faults at 5 s; restarts 5 s later (10), faults at 15; +10 → 25, fault 30; +20 → 50, 55; +40 → 95, 100.
  assert.equal(loads, [0, 10_000, 25_000, 50_000, 95_000]);
  const s = state(w, 'crasher')!;
  assert.is(s.state, 'quarantined');
  assert.is(s.faults, 5);
  assert.match(s.lastFault!, /tick: trap: unreachable/);
  assert.is(w.events.filter((e) => e.kind === 'guest-fault').length, 5);
  assert.equal(w.events.find((e) => e.kind === 'guest-fault')!.data, { name: 'crasher', why: 'tick: trap: unreachable' });
  assert.ok(w.events.some((e) => e.kind === 'guest-quarantine'));
  assert.is(w.acks.length, 1);
  assert.is(w.acks[0].state, 'rejected');
  assert.match(w.acks[0].reason!, /quarantined after 5 faults in an hour/);
  assert.is(w.interlocks.holder(2), undefined, 'a quarantined guest holds no relay');
  assert.is(good, 120, 'the other guest never missed a tick');
  // A technician starts it again.
  w.engine.define('crasher', { tick: () => 0 });
  assert.equal(w.sup.start('crasher'), { ok: true });
  assert.is(state(w, 'crasher')!.state, 'running');
});

test('the backoff doubles up to 10 minutes for a guest that keeps failing less than 5 times an hour', () => {
  const w = world();
  const loads: number[] = [];
  const faults: number[] = [];
  install(w, 'flaky', [], {
    init: () => { loads.push(w.time.monotonic()); return 0; },
    // Runs 20 minutes, then traps: never 5 faults in an hour, never an hour without one.
    tick: (c) => {
      if (c.calls <= 240) return 0;
      faults.push(w.time.monotonic());
      throw new GuestTrap(TrapKind.trap, 'boom');
    },
  });
  w.time.advance(5 * 3_600_000);
  const delays = faults.map((t, i) => (loads[i + 1] - t) / 1000).filter((d) => !Number.isNaN(d));
  assert.equal(delays.slice(0, 10), [5, 10, 20, 40, 80, 160, 320, 600, 600, 600].slice(0, delays.length));
  assert.ok(delays.length >= 9);
  assert.is(state(w, 'flaky')!.state === 'quarantined', false);
});

test('fuel exhaustion and memory breaches are faults with their reason', () => {
  const w = world();
  install(w, 'spender', [], { tick: (c) => { c.use(1e9); return 0; } });
  install(w, 'breacher', [], { tick: () => { throw new GuestTrap(TrapKind.memory, 'access at byte 70000 is outside memory_bytes 1024'); } });
  w.time.advance(5_000);
  assert.match(state(w, 'spender')!.lastFault!, /^tick: fuel: spent its fuel budget of 10000/);
  assert.match(state(w, 'breacher')!.lastFault!, /^tick: memory: access at byte 70000/);
});

test('a non-zero tick is a soft fault; a non-zero init refuses the guest', () => {
  const w = world();
  install(w, 'grumpy', [], { tick: () => 7 });
  w.time.advance(10_000);
  assert.is(state(w, 'grumpy')!.softFaults, 2);
  assert.is(state(w, 'grumpy')!.state, 'running');
  const ack = install(w, 'refuser', ['relay:1'], { init: () => 3 });
  assert.is(ack.state, 'rejected');
  assert.match(ack.reason!, /init returned 3/);
  assert.is(state(w, 'refuser'), undefined);
  assert.is(w.interlocks.holder(1), undefined);
});

// ---------------------------------------------------------------- deployment

function deploy(w: ReturnType<typeof world>, wasm: Uint8Array, man: ReturnType<typeof manifest>, cid = guestCid(wasm)) {
  const first = w.sup.offer({ type: 18, name: man.name, cid, manifest: man, size: wasm.length });
  if (first) return [first];
  const acks: GuestAck[] = [];
  for (let off = 0; off < wasm.length; off += 100) {
    const a = w.sup.chunk({ type: 19, cid, offset: off, bytes: wasm.slice(off, off + 100) });
    if (a) acks.push(a);
  }
  return acks;
}

test('deployment by CID: offer, chunks, hash check, swap; the old version stops only after the new one runs', () => {
  const w = world();
  const v1: number[] = [];
  const v2: number[] = [];
  const m1 = module(w, 'pg-v1', { tick: () => { v1.push(w.time.monotonic()); return 0; } });
  const m2 = module(w, 'pg-v2', { tick: () => { v2.push(w.time.monotonic()); return 0; } });
  const man = manifest('pg', ['relay:1']);
  assert.equal(deploy(w, m1, man), [{ type: 6, cid: guestCid(m1), state: 'running' }]);
  w.time.advance(12_000);
  assert.equal(deploy(w, m2, { ...man, version: '1.1.0' }), [{ type: 6, cid: guestCid(m2), state: 'running' }]);
  w.time.advance(12_000);
  assert.is(v1.length, 2);
  assert.is(v2.length, 2);
  assert.is(state(w, 'pg')!.version, '1.1.0');
  assert.is(w.interlocks.holder(1), 'pg');
  assert.is(w.engine.disposed, 1);
  // Resending the same offer is answered at once: it already runs.
  assert.equal(w.sup.offer({ type: 18, name: 'pg', cid: guestCid(m2), manifest: man, size: m2.length }), { type: 6, cid: guestCid(m2), state: 'running' });
});

test('a wrong hash, a failing init or an invalid module leaves the old guest running', () => {
  const w = world();
  let ticks = 0;
  const good = module(w, 'g-ok', { tick: () => { ticks++; return 0; } });
  const man = manifest('g', []);
  deploy(w, good, man);
  // Wrong hash: the offer names one module's CID, the chunks carry another module's bytes.
  const claimed = guestCid(module(w, 'g-claimed', {}));
  const [bad] = deploy(w, module(w, 'g-other', {}), man, claimed);
  assert.is(bad.state, 'rejected');
  assert.match(bad.reason!, /hash mismatch: the received \d+ bytes hash to b[a-z2-7]+, not the offered b[a-z2-7]+; the running guest is unchanged/);
  // Init fails.
  const [noInit] = deploy(w, module(w, 'g-noinit', { init: () => 1 }), man);
  assert.match(noInit.reason!, /init returned 1/);
  // Engine cannot load it.
  const loadFail = module(w, 'g-loadfail', {});
  w.engine.failNextLoad = 'cannot link the module: bad import';
  const [load] = deploy(w, loadFail, man);
  assert.match(load.reason!, /load: trap: cannot link the module/);
  // Not metered.
  const plain = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]);
  const [inval] = deploy(w, plain, man);
  assert.match(inval.reason!, /defines no memory/);
  w.time.advance(10_000);
  assert.is(ticks, 2, 'the first version ticked on through every failed deployment');
  assert.equal(state(w, 'g')!.cid, guestCid(good));
});

test('offers are checked before any byte arrives', () => {
  const w = world();
  install(w, 'holder', ['relay:1'], {});
  const wasm = module(w, 'grabber', {});
  const offer = (o: Partial<Parameters<typeof w.sup.offer>[0]>) =>
    w.sup.offer({ type: 18, name: 'grabber', cid: guestCid(wasm), manifest: manifest('grabber', ['relay:1']), size: wasm.length, ...o });
  assert.match(offer({})!.reason!, /relay 1 is held by running guest holder/);
  assert.match(offer({ manifest: manifest('grabber', ['relay:9']) })!.reason!, /relay 9 does not exist/);
  assert.match(offer({ size: 1 << 20, manifest: manifest('grabber', []) })!.reason!, /module size 1048576 bytes is outside 8–4096/);
  assert.match(offer({ cid: new Uint8Array(36) })!.reason!, /not a CIDv1 raw sha2-256/);
  assert.match(offer({ name: 'other', manifest: manifest('grabber', []) })!.reason!, /offer names guest "other" but its manifest names "grabber"/);
  assert.match(offer({ manifest: { name: 'grabber' } })!.reason!, /^manifest: /);
  // A chunk that overruns the offered size ends the transfer.
  assert.is(offer({ manifest: manifest('grabber', []) }), undefined);
  const a = w.sup.chunk({ type: 19, cid: guestCid(wasm), offset: wasm.length - 10, bytes: new Uint8Array(20) });
  assert.match(a!.reason!, /does not fit the offered size/);
  assert.is(w.sup.chunk({ type: 19, cid: guestCid(wasm), offset: 0, bytes: wasm.slice(0, 10) }), undefined);
  assert.is(w.sup.strayChunks, 1);
});

test('remove stops the guest, frees its relays and forgets it across reboots', () => {
  const kv = new MemoryKV();
  const w = world(kv);
  const wasm = module(w, 'tmp', {});
  deploy(w, wasm, manifest('tmp', ['relay:3', 'kv:1']));
  assert.is(w.interlocks.holder(3), 'tmp');
  assert.equal(w.sup.remove({ type: 20, name: 'tmp' }), { type: 6, cid: guestCid(wasm), state: 'removed' });
  assert.is(w.interlocks.holder(3), undefined);
  assert.is(w.sup.status().length, 0);
  assert.is(w.sup.remove({ type: 20, name: 'tmp' }).reason, 'no guest named tmp');
  const w2 = world(kv);
  assert.equal(w2.sup.restore(), []);
});

test('after a reboot deployed guests come back; stopped and quarantined ones stay so', () => {
  const kv = new MemoryKV();
  const w = world(kv);
  install(w, 'keeper', ['relay:1'], {});
  install(w, 'sleeper', [], {});
  install(w, 'broken', [], { tick: () => { throw new GuestTrap(TrapKind.trap, 'unreachable'); } });
  assert.ok(w.sup.stop('sleeper'));
  w.time.advance(600_000);
  assert.is(state(w, 'broken')!.state, 'quarantined');
  const w2 = world(kv);
  let ticks = 0;
  w2.engine.define('keeper', { tick: () => { ticks++; return 0; } });
  w2.engine.define('sleeper', {});
  w2.engine.define('broken', {});
  assert.equal(w2.sup.restore().sort(), ['broken', 'keeper', 'sleeper']);
  w2.time.advance(5_000);
  assert.is(ticks, 1);
  assert.is(state(w2, 'sleeper')!.state, 'stopped');
  assert.is(state(w2, 'broken')!.state, 'quarantined');
  assert.is(w2.engine.instantiated, 1, 'only keeper was loaded');
  assert.is(w2.interlocks.holder(1), 'keeper');
  assert.equal(w2.sup.start('sleeper'), { ok: true });
});

test.run();
