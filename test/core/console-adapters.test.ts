// The console over the real relay interlocks (control/relays.ts) and the guest supervisor's shape.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Interlocks } from '../../firmware/core/control/relays.js';
import { consoleGuests, consoleRelays } from '../../firmware/core/console/adapters.js';
import { GuestOutcome, RelayLockMode, RelayOutcome } from '../../firmware/core/console/console-host.js';
import type { GuestSupervisor } from '../../firmware/core/guests/supervisor.js';
import type { Relay } from '../../firmware/core/ports.js';
import { MemoryKV, SeededRandom, SimTime, simTimers } from './support/sim-world.js';

class TestRelay implements Relay {
  on = false;
  constructor(readonly id: number) {}
  get() { return this.on; }
  set(on: boolean) { this.on = on; }
}

function relays() {
  const time = new SimTime();
  const r1 = new TestRelay(1), r2 = new TestRelay(2);
  const events: unknown[] = [];
  const il = new Interlocks({
    relays: [r1, r2], config: [{ id: 2, critical: true }], clock: time, timers: simTimers(time), kv: new MemoryKV(),
    random: new SeededRandom(1), onEvent: (kind, data) => events.push([kind, data]),
  });
  il.powerUp();
  return { time, r1, r2, il, c: consoleRelays(il), events };
}

test('relay on|off goes through the dwell and toggle interlocks', () => {
  const { time, r1, c } = relays();
  assert.equal(c.set(1, true), { outcome: RelayOutcome.dwell }, 'power-up counts as a switch: 60 s dwell first');
  time.advance(60_000);
  assert.equal(c.set(1, true), { outcome: RelayOutcome.done });
  assert.ok(r1.on);
  assert.equal(c.set(1, false), { outcome: RelayOutcome.dwell });
  for (let i = 0; i < 5; i++) {
    time.advance(60_000);
    assert.equal(c.set(1, i % 2 === 0 ? false : true).outcome, RelayOutcome.done);
  }
  time.advance(60_000);
  assert.equal(c.set(1, !r1.on), { outcome: RelayOutcome.toggles });
  assert.equal(c.set(9, true), { outcome: RelayOutcome.noRelay });
});

test('a critical circuit is never switched; a guest-held relay is left to the technician lock', () => {
  const { time, il, c } = relays();
  time.advance(60_000);
  assert.equal(c.set(2, true), { outcome: RelayOutcome.critical });
  il.claim(1, 'peak-guard');
  assert.equal(c.set(1, true), { outcome: RelayOutcome.heldByGuest, holder: 'peak-guard' });
  assert.is(il.holder(1), 'peak-guard', 'the guest keeps its relay');
});

test('relay lock forces a state over every guest until released', () => {
  const { il, r1, c } = relays();
  il.claim(1, 'peak-guard');
  assert.equal(c.lock(1, RelayLockMode.on), { outcome: RelayOutcome.done });
  assert.ok(r1.on, 'no dwell for the technician lock');
  assert.is(il.request(1, false, 'peak-guard'), -2);
  assert.equal(c.list(), [{ id: 1, on: true, lock: 'on' }, { id: 2, on: false, lock: '' }]);
  assert.equal(c.set(1, false), { outcome: RelayOutcome.techLock });
  assert.equal(c.lock(1, RelayLockMode.release), { outcome: RelayOutcome.done });
  assert.equal(c.list()[0], { id: 1, on: true, lock: '' });
  assert.equal(c.lock(7, RelayLockMode.off), { outcome: RelayOutcome.noRelay });
});

test('guests: list, stop, start with the supervisor\'s reasons', () => {
  const state = new Map([['peak-guard', 'running']]);
  const fake = {
    status: () => [...state].map(([name, st]) => ({ name, cidText: 'bafkreiabc', state: st, faults: 2, fuelLast: 10, fuelPerCall: 500 })),
    stop: (name: string) => state.has(name) && (state.set(name, 'stopped'), true),
    has: (name: string) => state.has(name),
    start: (name: string) => (name === 'peak-guard' ? { ok: false, reason: 'relay 1 is held by guest other' } : { ok: false, reason: `no guest named ${name}` }),
  } as unknown as GuestSupervisor;
  const g = consoleGuests(fake);
  assert.equal(g.list(), [{ name: 'peak-guard', cid: 'bafkreiabc', state: 'running', faults: 2, fuelUsed: 10, fuelPerCall: 500 }]);
  assert.equal(g.stop('peak-guard'), { outcome: GuestOutcome.done });
  assert.equal(g.stop('nobody'), { outcome: GuestOutcome.notFound });
  assert.equal(g.start('nobody'), { outcome: GuestOutcome.notFound });
  assert.equal(g.start('peak-guard'), { outcome: GuestOutcome.refused, reason: 'relay 1 is held by guest other' });
});

test.run();
