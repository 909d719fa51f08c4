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

test.run();
