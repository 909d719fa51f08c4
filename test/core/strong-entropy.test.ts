// A meter's long-lived secrets and its boot nonce are drawn inside the Random port's strong() (an
// ESP32's RNG is only pseudo-random before Wi-Fi starts: its port switches the bootloader's entropy
// source on there), and nothing else is; a port without strong() works as before.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Agent } from '../../firmware/core/agent/agent.js';
import { loadIdentity } from '../../firmware/core/agent/identity.js';
import { provisionFactoryPin } from '../../firmware/core/console/pin.js';
import { randomBytes, useRandom, withStrongEntropy } from '../../firmware/core/crypto.js';
import { RamLog } from '../../firmware/core/log/ram-log.js';
import type { Random } from '../../firmware/core/ports.js';
import { BusTransport, MemoryBus, MemoryKV, SeededRandom, SimTime, simTimers } from './support/sim-world.js';

/** A Random port that notes every draw, and whether it came while strong() was running. */
class RecordingRandom implements Random {
  readonly draws: string[] = [];
  #inner = new SeededRandom(7);
  #strong = 0;
  fill(b: Uint8Array): void {
    this.#inner.fill(b);
    this.draws.push(`${this.#strong > 0 ? 'strong' : 'plain'} ${b.length}`);
  }
  strong(f: () => void): void {
    this.#strong++;
    try {
      f();
    } finally {
      this.#strong--;
    }
  }
}

test('first boot: the identity key, the pair secret and the factory PIN come from strong entropy; a later boot draws none', () => {
  const random = new RecordingRandom();
  useRandom(random);
  const kv = new MemoryKV();
  const id = loadIdentity(kv);
  const pin = provisionFactoryPin(kv);
  assert.match(pin!, /^[0-9]{8}$/);
  assert.ok(random.draws.length >= 4, random.draws.join(', '));
  assert.equal(random.draws.filter((d) => !d.startsWith('strong')), [], 'every draw of first boot is strong');
  assert.equal(random.draws.slice(0, 2), ['strong 32', 'strong 7'], 'the X25519 secret, then the pair secret');
  random.draws.length = 0;
  assert.equal(loadIdentity(kv).deviceId, id.deviceId);
  assert.is(provisionFactoryPin(kv), undefined);
  assert.equal(random.draws, [], 'nothing is drawn when the secrets exist');
});

test('the boot nonce is strong; frames and other draws later are not asked to be', () => {
  const random = new RecordingRandom();
  const time = new SimTime();
  const kv = new MemoryKV();
  useRandom(random);
  loadIdentity(kv);
  random.draws.length = 0;
  const agent = new Agent({
    kv, random, clock: time, timers: simTimers(time), log: new RamLog(), uplinks: [new BusTransport(new MemoryBus(), 'primary')],
    model: 'test-meter', firmware: '0.1.0',
  });
  assert.is(agent.bootNonce.length, 16);
  assert.is(random.draws[0], 'strong 16', 'the boot nonce');
  assert.ok(random.draws.slice(1).every((d) => d.startsWith('plain')), random.draws.join(', '));
  assert.is(randomBytes(3).length, 3);
  assert.is(random.draws[random.draws.length - 1], 'plain 3');
});

test('withStrongEntropy returns what its function returns, with or without strong() on the port', () => {
  useRandom(new RecordingRandom());
  assert.is(withStrongEntropy(() => 42), 42);
  useRandom(new SeededRandom(1));
  assert.is(withStrongEntropy(() => randomBytes(5).length), 5);
  const kv = new MemoryKV();
  assert.match(provisionFactoryPin(kv)!, /^[0-9]{8}$/);
  assert.is(provisionFactoryPin(kv, '12345678'), undefined);
  assert.is(provisionFactoryPin(new MemoryKV(), '12345678'), '12345678', 'a given PIN is stored as it is');
});

test.run();
