import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Server } from 'node:net';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import pino from 'pino';
import { Ingress } from '../../gateway/ingress.js';
import { eventually, sleep } from './support.js';

let aedes: Aedes;
let server: Server;
let url: string;
const acked: string[] = [];

test.before(async () => {
  aedes = await Aedes.createBroker();
  aedes.on('ack', (packet) => {
    if ('topic' in packet) acked.push(packet.topic);
  });
  server = createServer(aedes.handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  url = `mqtt://127.0.0.1:${(server.address() as { port: number }).port}`;
});

test.after(async () => {
  await new Promise<void>((r) => aedes.close(() => r()));
  server.close();
});

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

async function publish(topic: string): Promise<void> {
  const c = mqtt.connect(url, { clientId: 'pub-' + Math.random().toString(36).slice(2), protocolVersion: 4 });
  await new Promise((r) => c.once('connect', r));
  await c.publishAsync(topic, Buffer.from('x'), { qos: 1 });
  await c.endAsync();
}

const log = pino({ level: 'silent' });

test('a message is acknowledged (PUBACK) only once its handling has finished', async () => {
  const gate = deferred();
  const handled: string[] = [];
  const ingress = new Ingress({
    url, clientId: 'ingress-a', protocolVersion: 4, subscriptions: ['t1/+'], log, now: Date.now,
    async onMessage(topic) {
      await gate.promise;
      handled.push(topic);
    },
  });
  await ingress.start();
  await publish('t1/a');
  await sleep(200);
  assert.equal(handled, []);
  assert.not.ok(acked.includes('t1/a'), 'no PUBACK while the handler runs');
  gate.resolve();
  await eventually(() => acked.includes('t1/a'), 2000, 'PUBACK after handling');
  assert.equal(handled, ['t1/a']);
  await ingress.close();
});

test('a gateway that dies mid-message leaves it unacknowledged: its session gets it again', async () => {
  const stuck = deferred();
  const a = new Ingress({
    url, clientId: 'ingress-shared', protocolVersion: 4, subscriptions: ['t2/+'], log, now: Date.now,
    onMessage: () => stuck.promise, // the "commit" never finishes: the process is about to die
  });
  await a.start();
  await publish('t2/x');
  await sleep(200);
  assert.not.ok(acked.includes('t2/x'));
  // A new process with the same identity takes the session over.
  const got: string[] = [];
  const b = new Ingress({
    url, clientId: 'ingress-shared', protocolVersion: 4, subscriptions: ['t2/+'], log, now: Date.now,
    async onMessage(topic) {
      got.push(topic);
    },
  });
  await b.start();
  await eventually(() => got.includes('t2/x'), 3000, 'redelivery to the new session');
  await eventually(() => acked.includes('t2/x'), 2000, 'acknowledged by the new process');
  stuck.resolve();
  await b.close();
  await a.close();
});

test('a handler that throws does not wedge the queue', async () => {
  const seen: string[] = [];
  const ingress = new Ingress({
    url, clientId: 'ingress-c', protocolVersion: 4, subscriptions: ['t3/+'], log, now: Date.now,
    async onMessage(topic) {
      seen.push(topic);
      if (topic === 't3/bad') throw new Error('boom');
    },
  });
  await ingress.start();
  await publish('t3/bad');
  await publish('t3/good');
  await eventually(() => seen.includes('t3/good'), 2000, 'the next message');
  await ingress.close();
});

test('devices are handled concurrently, each device in order, and each PUBACK waits for its own handling', async () => {
  const gates = new Map<string, ReturnType<typeof deferred>>();
  const started: string[] = [];
  const finished: string[] = [];
  const ingress = new Ingress({
    url, clientId: 'ingress-d', protocolVersion: 4, subscriptions: ['gl/v1/d/+/up'], log, now: Date.now,
    async onMessage(topic, payload) {
      const key = `${topic}#${Buffer.from(payload).toString()}`;
      started.push(key);
      const g = deferred();
      gates.set(key, g);
      await g.promise;
      finished.push(key);
    },
  });
  await ingress.start();
  const c = mqtt.connect(url, { clientId: 'pub-d', protocolVersion: 4 });
  await new Promise((r) => c.once('connect', r));
  const a = 'gl/v1/d/aaaaaaaaaaaaaaaa/up';
  const b = 'gl/v1/d/bbbbbbbbbbbbbbbb/up';
  await c.publishAsync(a, Buffer.from('1'), { qos: 1 });
  await c.publishAsync(a, Buffer.from('2'), { qos: 1 });
  await c.publishAsync(b, Buffer.from('1'), { qos: 1 });
  // Device b's message is handled while device a's first one is still running; a's second waits for its first.
  await eventually(() => started.includes(`${b}#1`), 2000, 'the other device handled concurrently');
  assert.equal(started, [`${a}#1`, `${b}#1`]);
  assert.is(ingress.inFlight, 3);
  gates.get(`${b}#1`)!.resolve();
  await eventually(() => finished.includes(`${b}#1`), 2000, 'b done');
  await sleep(100);
  // MQTT orders PUBACKs as their PUBLISHes arrived: b's waits behind a's unfinished ones.
  assert.not.ok(acked.includes(b), 'no PUBACK ahead of earlier messages still being handled');
  gates.get(`${a}#1`)!.resolve();
  await eventually(() => started.includes(`${a}#2`), 2000, 'a#2 after a#1');
  await sleep(100);
  assert.not.ok(acked.filter((x) => x === a).length >= 2, 'a#2 not acknowledged while it runs');
  gates.get(`${a}#2`)!.resolve();
  await eventually(() => acked.filter((x) => x === a).length === 2 && acked.includes(b), 2000, 'all acknowledged');
  assert.equal(finished, [`${b}#1`, `${a}#1`, `${a}#2`]);
  await c.endAsync();
  await ingress.close();
});

test('at maxInFlight the ingress stops taking messages until one finishes (backpressure)', async () => {
  const gates: (() => void)[] = [];
  let handled = 0;
  const ingress = new Ingress({
    url, clientId: 'ingress-e', protocolVersion: 4, subscriptions: ['gl/v1/hello/+'], log, now: Date.now, maxInFlight: 2,
    async onMessage() {
      await new Promise<void>((r) => gates.push(r));
      handled++;
    },
  });
  await ingress.start();
  const c = mqtt.connect(url, { clientId: 'pub-e', protocolVersion: 4 });
  await new Promise((r) => c.once('connect', r));
  for (let i = 0; i < 6; i++) await c.publishAsync(`gl/v1/hello/dev${i}aaaaaaaaaaaa`, Buffer.from('x'), { qos: 1 });
  await eventually(() => ingress.inFlight >= 2, 5000, 'two messages admitted');
  await sleep(300); // time for more to be taken, were the ingress not holding back
  // Two admitted, plus the one mqtt.js read before the ingress held its callback back.
  assert.ok(ingress.inFlight <= 3, `in flight ${ingress.inFlight}`);
  assert.ok(ingress.inFlight >= 2);
  await eventually(() => {
    for (const g of gates.splice(0)) g();
    return handled === 6;
  }, 10_000, 'every message handled once capacity freed');
  await c.endAsync();
  await ingress.close();
});

test.run();
