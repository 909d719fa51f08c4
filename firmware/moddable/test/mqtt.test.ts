// The Moddable MQTT adapter over a fake client with the SDK client's contract, on XS
// (npm run test:xs bundles firmware/moddable/test with the fakes in fakes.json).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ModdableMqttTransport } from '../mqtt.js';
import { LinkState, type TransportOptions } from '../../core/ports.js';
import { clients } from './fakes/mqtt-client.js';
import { advance } from './fakes/timer.js';

const options: TransportOptions = {
  clientId: 'abcdefghijklmnop',
  will: { topic: 'gl/v1/d/abcdefghijklmnop/lwt', payload: new Uint8Array(0), qos: 1 },
  subscriptions: ['gl/v1/pair/abcdefghijklmnop', 'gl/v1/d/abcdefghijklmnop/down'],
};

let previous: ModdableMqttTransport | undefined;

function setup(extra: { queueFrames?: number; queueBytes?: number } = {}) {
  previous?.stop(); // its retry and CONNACK timers must not fire into the next test
  clients.length = 0;
  const events: string[] = [];
  const messages: [string, number[]][] = [];
  const t = new ModdableMqttTransport({ host: '192.168.1.10', port: 1883, random01: () => 0.5, ...extra });
  t.start(options, {
    onConnect: () => events.push('connect'),
    onDisconnect: (why) => events.push('disconnect ' + why),
    onMessage: (topic, payload) => messages.push([topic, Array.from(payload)]),
  });
  previous = t;
  return { t, events, messages };
}

test('connects with the device id, will and credentials, subscribes on CONNACK, then reports up', () => {
  const { t, events } = setup();
  assert.is(clients.length, 1);
  const c = clients[0];
  assert.is(c.options.id, 'abcdefghijklmnop');
  assert.is(c.options.host, '192.168.1.10');
  assert.is(c.options.will!.topic, 'gl/v1/d/abcdefghijklmnop/lwt');
  assert.is(t.state, LinkState.connecting);
  assert.equal(events, []);
  c.connack();
  assert.equal(events, [], 'nothing from inside the client\'s callback');
  advance(0);
  assert.equal(c.subscribed, [options.subscriptions]);
  assert.is(t.state, LinkState.up);
  assert.equal(events, ['connect']);
});

test('publishes QoS 1, queues while the socket is full, and drains in order when it has room', () => {
  const { t } = setup();
  const c = clients[0];
  c.connack(64);
  advance(0);
  assert.ok(t.publish('gl/v1/d/x/up', new Uint8Array(20).fill(1)));
  assert.ok(t.publish('gl/v1/d/x/up', new Uint8Array(20).fill(2)));
  assert.is(c.published.length, 1, 'the second does not fit yet');
  c.offerWritable(4096);
  assert.equal(c.published.map((p) => [p.payload[0], p.QoS]), [[1, 1], [2, 1]]);
});

test('the outbound queue is bounded: publish says false instead of growing', () => {
  const { t } = setup({ queueFrames: 2 });
  const c = clients[0];
  c.connack(0);
  advance(0);
  assert.ok(t.publish('a', new Uint8Array(10)));
  assert.ok(t.publish('a', new Uint8Array(10)));
  assert.not.ok(t.publish('a', new Uint8Array(10)));
  assert.is(t.refused, 1);
});

test('publish is refused while the link is down', () => {
  const { t } = setup();
  assert.not.ok(t.publish('a', new Uint8Array(1)));
});

test('a lost connection is reported once, then retried with backoff, resubscribing on the new CONNACK', () => {
  const { t, events } = setup();
  clients[0].connack();
  advance(0);
  clients[0].fail(); // throws if the adapter closes the client inside onError
  assert.equal(events, ['connect'], 'reported after the client returned');
  advance(0);
  assert.equal(events, ['connect', 'disconnect connection lost']);
  assert.is(t.state, LinkState.connecting);
  assert.is(clients.length, 1, 'not at once');
  advance(1000); // attempt 0: [500, 1000) ms
  assert.is(clients.length, 2);
  clients[1].connack();
  advance(0);
  assert.equal(clients[1].subscribed, [options.subscriptions]);
  assert.equal(events, ['connect', 'disconnect connection lost', 'connect']);
});

test('a broker that never answers CONNACK is dropped and retried', () => {
  const { t } = setup();
  advance(15_000);
  assert.ok(clients[0].closed);
  assert.is(t.lastError, 'no CONNACK from the broker');
  advance(1000);
  assert.is(clients.length, 2);
});

test('messages arriving in fragments are delivered whole; oversized ones are dropped', () => {
  const { messages } = setup();
  const c = clients[0];
  c.connack();
  advance(0);
  c.deliver('gl/v1/d/abcdefghijklmnop/down', Uint8Array.of(1, 2, 3, 4, 5, 6, 7), 3);
  c.deliver('gl/v1/d/abcdefghijklmnop/down', new Uint8Array(5000), 1000);
  c.deliver('gl/v1/pair/abcdefghijklmnop', Uint8Array.of(9));
  assert.equal(messages, [], 'delivered after the client returns, not from inside its parser');
  advance(0);
  assert.equal(messages, [['gl/v1/d/abcdefghijklmnop/down', [1, 2, 3, 4, 5, 6, 7]], ['gl/v1/pair/abcdefghijklmnop', [9]]]);
});

test('restart says goodbye, forgets the queue, and connects again with the new credentials', () => {
  const { t, events } = setup();
  const c = clients[0];
  c.connack(0);
  advance(0);
  t.publish('a', new Uint8Array(4));
  t.restart({ ...options, username: 'abcdefghijklmnop', password: 'secret' });
  assert.is(c.disconnects, 1);
  assert.ok(c.closed);
  assert.equal(events, ['connect', 'disconnect restarting with new credentials']);
  assert.is(clients.length, 2);
  assert.is(clients[1].options.user, 'abcdefghijklmnop');
  assert.is(clients[1].options.password, 'secret');
  clients[1].connack();
  advance(0);
  assert.is(clients[1].published.length, 0, 'nothing from before the restart');
});

test('a message that makes the agent reconnect (pairing) does not close the client inside its parser', () => {
  clients.length = 0;
  const events: string[] = [];
  const t: ModdableMqttTransport = new ModdableMqttTransport({ host: '192.168.1.10', port: 1883, random01: () => 0.5 });
  t.start(options, {
    onConnect: () => events.push('connect'),
    onDisconnect: (why) => events.push('disconnect ' + why),
    // What the agent does with a PairAccept: save the pairing and reconnect with the new credentials.
    onMessage: () => t.restart({ ...options, username: 'abcdefghijklmnop', password: 'secret' }),
  });
  previous = t;
  clients[0].connack();
  advance(0);
  clients[0].deliver('gl/v1/pair/abcdefghijklmnop', Uint8Array.of(1, 2, 3)); // throws if closed inside onReadable
  clients[0].deliver('gl/v1/pair/abcdefghijklmnop', Uint8Array.of(4));
  advance(0);
  assert.ok(clients[0].closed);
  assert.is(clients.length, 2, 'one reconnect: the second message belonged to the old connection');
  clients[1].connack();
  advance(0);
  assert.equal(events, ['connect', 'disconnect restarting with new credentials', 'connect']);
  assert.is(clients[1].options.password, 'secret');
});

test.run();
