// The embedded broker's router under a backlog: aedes queues messages while `concurrency` deliveries are
// held (the ingress holds them while the gateway commits), and releasing them must deliver the whole
// backlog, in order, without overflowing the stack (gateway/broker.ts flattenRouter). And its matcher with
// filters without wildcards kept apart from the trie (exactTopics): every subscriber, and only those, hears.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Aedes } from 'aedes';
import { exactTopics, flattenRouter } from '../../gateway/broker.js';

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

test('filters without wildcards and with them: each message reaches exactly the listeners whose filter matches, as they come and go', async () => {
  const broker = await Aedes.createBroker();
  exactTopics(broker);
  try {
    const heard: string[] = [];
    const listener = (name: string) => (p: { topic: string }, done: () => void) => { heard.push(`${name}:${p.topic}`); done(); };
    const sub = (f: string, l: ReturnType<typeof listener>) => new Promise<void>((resolve) => broker.subscribe(f, l as never, resolve));
    const unsub = (f: string, l: ReturnType<typeof listener>) => new Promise<void>((resolve) => broker.unsubscribe(f, l as never, resolve));
    const hear = async (topic: string): Promise<string[]> => {
      heard.length = 0;
      await new Promise<void>((resolve) => broker.publish(packet(topic, 0), () => resolve()));
      return heard.slice().sort();
    };
    const a = listener('a'), b = listener('b'), c = listener('c'), w = listener('w'), h = listener('h');
    await sub('g/v1/d/m1/down', a);
    await sub('g/v1/d/m1/down', b); // a second connection of the same meter, before the first has gone
    await sub('g/v1/d/m2/down', c);
    await sub('g/v1/d/+/down', w);
    await sub('g/#', h);
    assert.equal(await hear('g/v1/d/m1/down'), ['a:g/v1/d/m1/down', 'b:g/v1/d/m1/down', 'h:g/v1/d/m1/down', 'w:g/v1/d/m1/down']);
    assert.equal(await hear('g/v1/d/m2/down'), ['c:g/v1/d/m2/down', 'h:g/v1/d/m2/down', 'w:g/v1/d/m2/down']);
    assert.equal(await hear('g/v1/d/m3/down'), ['h:g/v1/d/m3/down', 'w:g/v1/d/m3/down']);
    assert.equal(await hear('g/v1/d/m1/down/x'), ['h:g/v1/d/m1/down/x'], 'an exact filter matches its topic only');
    assert.equal(await hear('g/v1/d/m1'), ['h:g/v1/d/m1']);
    await unsub('g/v1/d/m1/down', a);
    assert.equal(await hear('g/v1/d/m1/down'), ['b:g/v1/d/m1/down', 'h:g/v1/d/m1/down', 'w:g/v1/d/m1/down'], 'the other listener of the topic stays');
    await unsub('g/v1/d/m1/down', a); // gone already: changes nothing
    assert.equal(await hear('g/v1/d/m1/down'), ['b:g/v1/d/m1/down', 'h:g/v1/d/m1/down', 'w:g/v1/d/m1/down']);
    await unsub('g/v1/d/m1/down', b);
    await unsub('g/v1/d/+/down', w);
    assert.equal(await hear('g/v1/d/m1/down'), ['h:g/v1/d/m1/down']);
    assert.equal(await hear('g/v1/d/m2/down'), ['c:g/v1/d/m2/down', 'h:g/v1/d/m2/down']);
  } finally {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
  }
});

test.run();
