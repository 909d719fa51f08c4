// Interlocks between guests and relays (GUESTS.md "Supervision"), on simulated time.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { InterlockRule, Interlocks, RelayResult, type RelayConfig } from '../../firmware/core/control/relays.js';
import type { Relay } from '../../firmware/core/ports.js';
import { MemoryKV, SeededRandom, SimTime, simTimers } from './support/sim-world.js';

class FakeRelay implements Relay {
  on = false;
  switches: { at: number; on: boolean }[] = [];
  constructor(readonly id: number, readonly time: SimTime) {}
  get(): boolean { return this.on; }
  set(on: boolean): void {
    this.on = on;
    this.switches.push({ at: this.time.monotonic(), on });
  }
}

function world(config: RelayConfig[] = [], kv = new MemoryKV(), seed = 7) {
  const time = new SimTime();
  const relays = [1, 2, 3].map((id) => new FakeRelay(id, time));
  const events: { kind: string; data: Record<string, unknown> }[] = [];
  const lock = new Interlocks({
    relays, config, clock: time, timers: simTimers(time), kv, random: new SeededRandom(seed),
    onEvent: (kind, data) => events.push({ kind, data }),
  });
  lock.powerUp();
  return { time, relays, events, lock, kv };
}

test('a relay keeps each state for its minimum dwell (default 60 s)', () => {
  const { time, lock, relays, events } = world();
  assert.ok(lock.claim(1, 'peak-guard'));
  time.advance(61_000);
  assert.is(lock.request(1, true, 'peak-guard'), RelayResult.done);
  assert.ok(relays[0].on);
  time.advance(30_000);
  assert.is(lock.request(1, false, 'peak-guard'), RelayResult.refused);
  assert.ok(relays[0].on, 'refused requests never reach the hardware');
  assert.equal(events.at(-1), { kind: 'interlock', data: { id: 1, rule: InterlockRule.dwell } });
  assert.is(lock.lastRefusal(1), InterlockRule.dwell);
  time.advance(30_000);
  assert.is(lock.request(1, false, 'peak-guard'), RelayResult.done);
  assert.not.ok(relays[0].on);
  assert.equal(events.at(-1), { kind: 'relay', data: { id: 1, on: false, by: 'peak-guard' } });
  assert.is(lock.lastRefusal(1), undefined);
});

test('asking for the state a relay is already in is done without a toggle', () => {
  const { lock, relays } = world();
  lock.claim(1, 'g');
  assert.is(lock.request(1, false, 'g'), RelayResult.done);
  assert.is(relays[0].switches.length, 0);
});

test('at most 6 toggles in any hour', () => {
  const { time, lock, relays, events } = world();
  lock.claim(2, 'g');
  let on = true;
  const results: number[] = [];
  for (let i = 0; i < 8; i++) {
    time.advance(61_000);
    results.push(lock.request(2, on, 'g'));
    if (results.at(-1) === 0) on = !on;
  }
  assert.equal(results, [0, 0, 0, 0, 0, 0, -2, -2]);
  assert.is(relays[1].switches.length, 6);
  assert.ok(events.some((e) => e.kind === 'interlock' && e.data.rule === InterlockRule.toggles));
  time.advance(3_600_000);
  assert.is(lock.request(2, on, 'g'), RelayResult.done, 'an hour later the window has room again');
});

test('a critical circuit is never switched by a guest', () => {
  const { time, lock, relays, events } = world([{ id: 3, critical: true, safeOn: true }]);
  assert.ok(relays[2].on, 'a critical circuit starts in its safe state (on)');
  lock.claim(3, 'g');
  time.advance(120_000);
  assert.is(lock.request(3, false, 'g'), RelayResult.refused);
  assert.ok(relays[2].on);
  assert.equal(events.at(-1), { kind: 'interlock', data: { id: 3, rule: InterlockRule.critical } });
});

test('a technician lock overrides every guest, and persists', () => {
  const kv = new MemoryKV();
  const { time, lock, relays } = world([], kv);
  lock.claim(1, 'g');
  time.advance(61_000);
  assert.ok(lock.lock(1, true));
  assert.ok(relays[0].on, 'the lock forces the state at once, without dwell');
  time.advance(120_000);
  assert.is(lock.request(1, false, 'g'), RelayResult.refused);
  assert.ok(relays[0].on);
  // After a reboot the lock is still there and holds its state.
  const again = world([], kv);
  assert.ok(again.lock.isLocked(1));
  assert.ok(again.relays[0].on);
  again.lock.claim(1, 'g');
  again.time.advance(120_000);
  assert.is(again.lock.request(1, false, 'g'), RelayResult.refused);
  again.lock.unlock(1);
  assert.is(again.lock.request(1, false, 'g'), RelayResult.done);
});

test('one guest per relay: others get -1 and never reach the hardware', () => {
  const { time, lock, relays } = world();
  assert.ok(lock.claim(1, 'a'));
  assert.not.ok(lock.claim(1, 'b'));
  assert.is(lock.holder(1), 'a');
  time.advance(61_000);
  assert.is(lock.request(1, true, 'b'), RelayResult.noCapability);
  assert.is(lock.request(9, true, 'a'), RelayResult.noCapability, 'no such relay');
  assert.is(relays[0].switches.length, 0);
  lock.release('a');
  assert.ok(lock.claim(1, 'b'));
});

test('after power returns: safe state first, then the last command after a random 0–300 s delay', () => {
  const kv = new MemoryKV();
  const first = world([], kv);
  first.lock.claim(1, 'g');
  first.lock.claim(2, 'g');
  first.time.advance(61_000);
  first.lock.request(1, true, 'g');
  first.lock.request(2, true, 'g');
  // Power returns on many meters: each one picks its own delay.
  const delays: number[] = [];
  for (let seed = 1; seed <= 20; seed++) {
    const w = world([], kv, seed);
    assert.not.ok(w.relays[0].on, 'every relay starts in its safe state (off)');
    w.time.advance(300_000);
    assert.ok(w.relays[0].on, 'back to the last commanded state within 300 s');
    const restored = w.relays[0].switches.find((s) => s.on)!;
    assert.ok(restored.at >= 0 && restored.at <= 300_000);
    assert.equal(w.events.find((e) => e.data.by === 'restore' && e.data.id === 1)?.data, { id: 1, on: true, by: 'restore' });
    delays.push(restored.at);
  }
  assert.ok(new Set(delays).size > 15, 'meters do not all switch back at once');
  assert.ok(Math.max(...delays) - Math.min(...delays) > 150_000, 'delays spread over the window');
});

test('a newer command during the restore delay wins over the restore', () => {
  const kv = new MemoryKV();
  const first = world([], kv);
  first.lock.claim(1, 'g');
  first.time.advance(61_000);
  first.lock.request(1, true, 'g');
  // Find a seed whose delay is longer than the dwell, so the guest can act before the restore.
  for (let seed = 1; seed < 50; seed++) {
    const w = world([], kv, seed);
    w.lock.claim(1, 'g');
    w.time.advance(61_000);
    if (!w.lock.status()[0].restorePending) continue;
    assert.is(w.lock.request(1, false, 'g'), RelayResult.done, 'already off: done, and the restore is cancelled');
    assert.not.ok(w.lock.status()[0].restorePending);
    w.time.advance(300_000);
    assert.not.ok(w.relays[0].on, 'the guest said off after power-up: the old command is not restored');
    return;
  }
  assert.unreachable('no seed gave a restore delay over 61 s');
});

test('refusals are reported at most once a minute per rule', () => {
  const { time, lock, events } = world();
  lock.claim(1, 'g');
  time.advance(61_000);
  lock.request(1, true, 'g');
  for (let i = 0; i < 10; i++) {
    time.advance(5_000);
    lock.request(1, false, 'g');
  }
  assert.is(events.filter((e) => e.kind === 'interlock').length, 1);
});

test.run();
