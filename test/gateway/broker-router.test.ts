// The embedded broker's router under a backlog: aedes queues messages while `concurrency` deliveries are
// held (the ingress holds them while the gateway commits), and releasing them must deliver the whole
// backlog, in order, without overflowing the stack (gateway/broker.ts flattenRouter).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Aedes } from 'aedes';
import { flattenRouter } from '../../gateway/broker.js';

type Packet = { cmd: 'publish'; topic: string; payload: Buffer; qos: 0; retain: false; dup: false; brokerId?: string };
const packet = (topic: string, n: number): Packet => ({ cmd: 'publish', topic, payload: Buffer.from(String(n)), qos: 0, retain: false, dup: false });

test('a backlog of 30,000 messages behind held deliveries drains in order once they are released', async () => {
  const broker = await Aedes.createBroker({ concurrency: 100 });
  flattenRouter(broker);
  try {
    const held: (() => void)[] = [];
    const seen: number[] = [];
    await new Promise<void>((resolve) => broker.subscribe('slow', (_p, done) => { held.push(done); }, resolve));
    await new Promise<void>((resolve) => broker.subscribe('meter/+', (p, done) => { seen.push(Number(String(p.payload))); done(); }, resolve));
    // 100 deliveries held: every router slot is taken, and everything after waits in its queue.
    for (let i = 0; i < 100; i++) broker.publish(packet('slow', i), () => {});
    assert.is(held.length, 100);
    let published = 0;
    const errors: unknown[] = [];
    // Mostly messages nobody subscribes to (each releases at once), with a watched one every 1,000.
    for (let i = 0; i < 30_000; i++) {
      broker.publish(packet(i % 1000 === 0 ? 'meter/a' : `away/${i}`, i), (e) => { if (e) errors.push(e); published++; });
    }
    assert.is(published, 0, 'queued behind the held deliveries');
    for (const done of held.splice(0)) done();
    assert.is(published, 30_000, 'every queued message was delivered');
    assert.equal(errors, []);
    assert.equal(seen, Array.from({ length: 30 }, (_, i) => i * 1000), 'watched messages in publishing order');
  } finally {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
  }
});

test.run();
