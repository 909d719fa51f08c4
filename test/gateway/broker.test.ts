import { test } from 'uvu';
import * as assert from 'uvu/assert';
import mqtt from 'mqtt';
import { connect as tcpConnect } from 'node:net';
import { Body } from '../../firmware/core/wire/bodies.js';
import { mqttPassword } from '../../firmware/core/wire/pairing.js';
import { topics } from '../../firmware/core/wire/topics.js';
import { eventually, helloSeen, pairDevice, sleep, startTestGateway, type TestGateway } from './support.js';
import type { WireDevice } from './wire-device.js';
import { parseFrame } from '../../firmware/core/wire/frame.js';
import { connectPacket, DISCONNECT, PacketReader, pubackPacket, subscribePacket, type RawPacket } from './mqtt-raw.js';

let t: TestGateway;

test.before(async () => {
  t = await startTestGateway({ tuning: { helloBurst: 2, helloIntervalMs: 60_000 } });
});

test.after(async () => {
  await t.close();
});

/** A meter paired through the gateway whose MQTT client has gone again (the tests connect it their own way). */
async function pairedAway(): Promise<WireDevice> {
  const d = await pairDevice(t);
  await d.close();
  return d;
}

function refused(p: Promise<unknown>): Promise<string | undefined> {
  return p.then(() => undefined, (e: Error) => e.message);
}

test('a paired device id is refused without its password, and with a wrong one', async () => {
  const d = await pairDevice(t);
  const other = t.device();
  const as = { clientId: d.id, will: topics.lwt(t.prefix, d.id) };
  // Same client id, no credentials.
  const none = await refused(other.connect(t.gw.mqttUrl, as));
  assert.ok(none, 'no credentials: refused');
  const wrong = await refused(other.connect(t.gw.mqttUrl, { ...as, credentials: { username: d.id, password: 'x'.repeat(52) } }));
  assert.ok(wrong, 'wrong password: refused');
  const otherUser = await refused(other.connect(t.gw.mqttUrl, { ...as, credentials: { username: 'someone', password: mqttPassword(d.ks!) } }));
  assert.ok(otherUser, 'user name must be the id');
  assert.ok(d.client!.connected, 'the real device was not kicked off');
  assert.ok(await t.metric('gridlet_broker_refusals_total', { action: 'connect', reason: 'credentials' }) >= 3);
});

test('while a pairing is pending, the device id needs the pending session\'s credentials', async () => {
  const d = t.device();
  d.autoPair = false;
  await d.connect(t.gw.mqttUrl);
  await d.hello();
  await helloSeen(t, d);
  const pending = t.api('POST', '/api/pairings', { deviceId: d.id, code: d.code });
  await d.until(() => d.pairAccepts.length >= 1, 3000, 'PairAccept');
  const r = d.check(d.pairAccepts[0]);
  assert.ok(r.ok);
  if (!r.ok) return;
  const second = t.device();
  const as = { clientId: d.id, will: topics.lwt(t.prefix, d.id) };
  assert.ok(await refused(second.connect(t.gw.mqttUrl, as)), 'no credentials while pending: refused');
  // The device itself, having accepted, reconnects with its new credentials and completes the pairing.
  await d.close();
  d.ks = r.ks;
  await d.connect(t.gw.mqttUrl, { credentials: true });
  await d.send({ type: Body.paired, firmware: d.firmware, model: d.model });
  assert.is((await pending).status, 201);
});

test('client ids that are not device ids are refused; a will must be the device\'s own lwt', async () => {
  const url = t.gw.mqttUrl;
  for (const clientId of ['hello', 'ABCDEFGHIJKLMNOP', 'gridlet-gateway-00000000', '']) {
    const c = mqtt.connect(url, { clientId, reconnectPeriod: 0, protocolVersion: 4, clean: true });
    const e = await new Promise<string>((resolve) => {
      c.once('connect', () => resolve('connected'));
      c.once('error', (err) => resolve(err.message));
      c.once('close', () => resolve('closed'));
    });
    c.end(true);
    assert.is.not(e, 'connected', `client id "${clientId}" refused`);
  }
  const d = t.device();
  const e = await refused(d.connect(url, { will: topics.lwt(t.prefix, 'abcdefghijklmnop') }));
  assert.ok(e, 'a will on another device\'s lwt is refused');
});

test('a device may not publish to or subscribe to another device\'s topics', async () => {
  const victim = await pairDevice(t);
  const mallory = t.device();
  await mallory.connect(t.gw.mqttUrl);
  // Subscribing to the victim's downlinks or pairing: refused (SUBACK failure).
  for (const topic of [topics.down(t.prefix, victim.id), topics.pair(t.prefix, victim.id), `${t.prefix}/#`]) {
    const e = await refused(mallory.client!.subscribeAsync({ [topic]: { qos: 1 } }));
    assert.ok(e, `subscribing to ${topic} is refused`);
  }
  // Publishing on the victim's up topic: the broker drops the connection, the gateway never sees it.
  const before = await t.metric('gridlet_frames_received_total');
  const closed = new Promise<void>((r) => mallory.client!.once('close', () => r()));
  mallory.client!.publish(topics.up(t.prefix, victim.id), Buffer.from([1, 2, 3]), { qos: 1 });
  await closed;
  await sleep(100);
  assert.is(await t.metric('gridlet_frames_received_total'), before);
  assert.ok(await t.metric('gridlet_broker_refusals_total', { action: 'publish' }) >= 1);
  assert.ok(await t.metric('gridlet_broker_refusals_total', { action: 'subscribe' }) >= 3);
  // The victim still works.
  await victim.send({ type: Body.readings, first: 1, records: [[1_700_000_000, 1, 1]] });
  await victim.waitAck(1);
});

test('Hellos over the per-client rate are dropped and counted', async () => {
  const d = t.device();
  await d.connect(t.gw.mqttUrl);
  const received = await t.metric('gridlet_hellos_received_total');
  for (let i = 0; i < 5; i++) await d.hello();
  await helloSeen(t, d);
  await sleep(100);
  assert.is(await t.metric('gridlet_messages_dropped_total', { topic: 'hello', reason: 'rate' }), 3);
  assert.is(await t.metric('gridlet_hellos_received_total') - received, 2, 'the gateway never saw the excess');
  // Reconnecting does not refill the bucket.
  await d.close();
  await d.connect(t.gw.mqttUrl);
  await d.hello();
  await sleep(100);
  assert.is(await t.metric('gridlet_messages_dropped_total', { topic: 'hello', reason: 'rate' }), 4);
});

test('an MQTT packet declaring more than the bound is cut off at its header', async () => {
  const port = Number(new URL(t.gw.mqttUrl).port);
  const sock = tcpConnect(port, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  // CONNECT fixed header declaring 200 MB of remaining length.
  sock.write(Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f]));
  await new Promise((r) => sock.once('close', r));
  assert.is(await t.metric('gridlet_messages_dropped_total', { topic: 'broker', reason: 'oversized-packet' }), 1);
  assert.is((await t.api('GET', '/api/health')).status, 200);
});

test('a paired meter whose packets arrive a byte at a time is served; a header over the bound split across chunks is still cut off', async () => {
  const d = await pairedAway();
  const m = rawMeter(t.gw.mqttUrl);
  m.socket.setNoDelay(true);
  const closed = new Promise<void>((resolve) => m.socket.once('close', () => resolve()));
  try {
    await new Promise<void>((resolve) => m.socket.once('connect', () => resolve()));
    const pieces = async (bytes: Uint8Array) => {
      for (const b of bytes) {
        m.socket.write(Uint8Array.of(b));
        await sleep(2);
      }
    };
    await pieces(connectPacket({ id: d.id, password: mqttPassword(d.ks!), will: topics.lwt(t.prefix, d.id) }));
    await m.until(() => m.got.some((p) => p.type === 2), 'CONNACK');
    // Two PINGREQs, the first split from the second in the middle: two PINGRESPs.
    await pieces(Uint8Array.of(0xc0));
    await pieces(Uint8Array.of(0x00, 0xc0, 0x00));
    await m.until(() => m.got.filter((p) => p.type === 13).length === 2, 'two PINGRESPs');
    await pieces(subscribePacket(1, topics.down(t.prefix, d.id)));
    await m.until(() => m.got.some((p) => p.type === 9), 'SUBACK');
    const before = await t.metric('gridlet_messages_dropped_total', { topic: 'broker', reason: 'oversized-packet' });
    // A PUBLISH declaring 65,535 bytes, its header in three chunks.
    await pieces(Uint8Array.of(0x30, 0xff, 0xff, 0x03));
    await Promise.race([closed, sleep(5000).then(() => assert.unreachable('the socket was not cut off at the header'))]);
    assert.is(await t.metric('gridlet_messages_dropped_total', { topic: 'broker', reason: 'oversized-packet' }), before + 1);
  } finally {
    m.socket.destroy();
  }
});

test('the connected-devices gauge follows the broker', async () => {
  const n = await t.metric('gridlet_devices_connected');
  const d = t.device();
  await d.connect(t.gw.mqttUrl);
  assert.is(await t.metric('gridlet_devices_connected'), n + 1);
  await d.close();
  await sleep(100);
  assert.is(await t.metric('gridlet_devices_connected'), n);
});


/** The device ids of the lwt events the gateway hears from now on, until `stop`. */
function hearLwts(): { heard: string[]; stop(): void } {
  const heard: string[] = [];
  const onLwt = ({ deviceId }: { deviceId: string }) => heard.push(deviceId);
  t.gw.events.on('lwt', onLwt);
  return { heard, stop: () => t.gw.events.off('lwt', onLwt) };
}

test('a device that drops off without DISCONNECT has its will published: the gateway hears its lwt', async () => {
  const d = await pairDevice(t);
  const { heard, stop } = hearLwts();
  try {
    const dropped = await t.metric('gridlet_messages_dropped_total', { topic: 'lwt', reason: 'not-empty' });
    // The socket goes away as when a meter loses power: no DISCONNECT, so the broker publishes the will.
    (d.client as unknown as { stream: { destroy(): void } }).stream.destroy();
    for (const end = Date.now() + 5000; !heard.includes(d.id) && Date.now() < end;) await sleep(20);
    assert.equal(heard, [d.id], 'one lwt, for that device');
    assert.is(await t.metric('gridlet_messages_dropped_total', { topic: 'lwt', reason: 'not-empty' }), dropped, 'its empty payload arrived as sent');
  } finally {
    stop();
    await d.close();
  }
});

test('a meter that connects again before its old connection has gone gets its downlinks on the new one', async () => {
  const d = await pairDevice(t);
  const old = d.client!;
  // The same id with the same credentials: the broker takes the session over and drops the old client
  // and its subscriptions; the new one subscribes to the same topics.
  await d.connect(t.gw.mqttUrl, { credentials: true });
  await eventually(() => !old.connected, 3000, 'the old connection dropped');
  await sleep(50);
  await t.gw.sendDownlink(d.id, { type: Body.config, values: { interval_s: 10 } });
  await d.until(() => d.bodies(Body.config).length === 1, 3000, 'the config downlink on the new connection');
  await old.endAsync(true).catch(() => {});
  await d.close();
});

test('a connected meter the broker cuts off (an oversized packet) is closed: its will is published', async () => {
  const d = await pairDevice(t);
  const { heard, stop } = hearLwts();
  try {
    const connected = await t.metric('gridlet_devices_connected');
    // A PUBLISH header declaring 65,535 bytes: the broker destroys the socket from its side.
    (d.client as unknown as { stream: { write(b: Buffer): void } }).stream.write(Buffer.from([0x30, 0xff, 0xff, 0x03]));
    await eventually(() => heard.includes(d.id), 5000, 'the lwt of the meter cut off');
    assert.equal(heard, [d.id]);
    await eventually(async () => (await t.metric('gridlet_devices_connected')) === connected - 1, 3000, 'one meter fewer connected');
  } finally {
    stop();
    await d.close();
  }
});

test('keepalive: a meter that goes silent is closed after 1.5 keepalives and its will published; one that pings stays', async () => {
  const silent = await pairedAway();
  const chatty = await pairedAway();
  const { heard, stop } = hearLwts();
  const socket = tcpConnect(Number(new URL(t.gw.mqttUrl).port), '127.0.0.1');
  try {
    // The silent meter: a CONNECT with a keepalive of 1 s, then nothing (as when its link goes dead).
    const connack = new Promise<Buffer>((resolve) => socket.once('data', resolve));
    socket.write(connectPacket({ id: silent.id, password: mqttPassword(silent.ks!), will: topics.lwt(t.prefix, silent.id), keepaliveS: 1 }));
    assert.equal([...(await connack)], [0x20, 2, 0, 0], 'connected');
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const since = Date.now();
    // The chatty meter: mqtt.js pings every second.
    const c = mqtt.connect(t.gw.mqttUrl, {
      clientId: chatty.id, username: chatty.id, password: mqttPassword(chatty.ks!), keepalive: 1, reconnectPeriod: 0, protocolVersion: 4,
      will: { topic: topics.lwt(t.prefix, chatty.id), payload: Buffer.alloc(0), qos: 1, retain: false },
    });
    await new Promise<void>((resolve, reject) => { c.once('connect', () => resolve()); c.once('error', reject); });
    await eventually(() => heard.includes(silent.id), 6000, 'the silent meter\'s lwt');
    await closed;
    const after = Date.now() - since;
    assert.ok(after >= 1400, `not before 1.5 keepalives (${after} ms)`);
    await sleep(2500);
    assert.equal(heard, [silent.id], 'the meter that pings is still connected');
    assert.ok(c.connected);
    await c.endAsync(true);
  } finally {
    stop();
    socket.destroy();
  }
});

/** A meter on a raw socket: every packet the broker sends, in order; QoS 1 PUBLISHes acknowledged. */
function rawMeter(url: string) {
  const socket = tcpConnect(Number(new URL(url).port), '127.0.0.1');
  const reader = new PacketReader();
  const got: RawPacket[] = [];
  const errors: string[] = [];
  socket.on('error', (e) => errors.push(e.message));
  socket.on('data', (chunk: Buffer) => {
    for (const p of reader.push(chunk)) {
      got.push(p);
      if (p.type === 3 && p.messageId !== undefined) socket.write(pubackPacket(p.messageId));
    }
  });
  const types = () => got.map((p) => p.type).join(',');
  return {
    socket, got, types,
    until: (f: () => boolean, what: string) => eventually(f, 5000, what).catch((e: Error) => {
      throw new Error(`${e.message}; the broker sent packet types ${types()}${errors.length ? `; socket: ${errors.join(', ')}` : ''}`);
    }),
  };
}

test('a connected meter that sends a malformed packet, or closes its side without DISCONNECT, is closed by the broker and its will published', async () => {
  const bad = await pairedAway();
  const gone = await pairedAway();
  const { heard, stop } = hearLwts();
  const meters = [rawMeter(t.gw.mqttUrl), rawMeter(t.gw.mqttUrl)];
  try {
    const closed = meters.map((m) => new Promise<void>((resolve) => m.socket.once('close', () => resolve())));
    await Promise.all(meters.map((m) => new Promise<void>((resolve) => m.socket.once('connect', () => resolve()))));
    for (const [i, d] of [bad, gone].entries()) {
      const m = meters[i]!;
      m.socket.write(connectPacket({ id: d.id, password: mqttPassword(d.ks!), will: topics.lwt(t.prefix, d.id) }));
      await m.until(() => m.got.some((p) => p.type === 2), 'CONNACK');
    }
    await sleep(50);
    // A PUBLISH with both QoS bits set: the parser's error closes the client.
    meters[0]!.socket.write(Uint8Array.of(0x36, 0x00));
    await Promise.race([closed[0], sleep(5000).then(() => assert.unreachable('the broker kept the meter that sent a malformed packet'))]);
    await eventually(() => heard.includes(bad.id), 5000, 'the lwt of the meter that sent a malformed packet');
    // A FIN and nothing else: the broker ends the client too.
    meters[1]!.socket.end();
    await eventually(() => heard.includes(gone.id), 5000, 'the lwt of the meter that closed its side');
    await Promise.race([closed[1], sleep(5000).then(() => assert.unreachable('the broker kept the half-closed socket'))]);
    assert.equal(heard.sort(), [bad.id, gone.id].sort(), 'one lwt each');
  } finally {
    stop();
    for (const m of meters) m.socket.destroy();
  }
});

/** A PUBLISH at QoS 2 (DUP set when `dup`). */
function qos2Packet(topic: string, messageId: number, dup = false): Uint8Array {
  const t8 = new TextEncoder().encode(topic);
  const body = [t8.length >> 8, t8.length & 0xff, ...t8, messageId >> 8, messageId & 0xff];
  return Uint8Array.from([0x34 | (dup ? 0x08 : 0), body.length, ...body]);
}

test('a meter publishing at QoS 2 gets each message through once: a resend before PUBREL is not delivered again; the id is free after PUBCOMP', async () => {
  const d = await pairedAway();
  const { heard, stop } = hearLwts();
  const m = rawMeter(t.gw.mqttUrl);
  const idOf = (type: number) => m.got.filter((p) => p.type === type).map((p) => (p.body[0]! << 8) | p.body[1]!);
  try {
    await new Promise<void>((resolve) => m.socket.once('connect', () => resolve()));
    m.socket.write(connectPacket({ id: d.id, password: mqttPassword(d.ks!) }));
    await m.until(() => m.got.some((p) => p.type === 2), 'CONNACK');
    await sleep(50);
    const lwt = topics.lwt(t.prefix, d.id);
    m.socket.write(qos2Packet(lwt, 7));
    await m.until(() => idOf(5).length === 1, 'PUBREC');
    m.socket.write(qos2Packet(lwt, 7, true));
    await m.until(() => idOf(5).length === 2, 'PUBREC of the resend');
    await eventually(() => heard.length === 1, 5000, 'the message delivered');
    m.socket.write(Uint8Array.of(0x62, 2, 0, 7));
    await m.until(() => idOf(7).length === 1, 'PUBCOMP');
    assert.equal(idOf(5), [7, 7]);
    assert.equal(idOf(7), [7]);
    assert.equal(heard, [d.id], 'the resend before PUBREL was not delivered again');
    m.socket.write(qos2Packet(lwt, 7));
    await m.until(() => idOf(5).length === 3, 'PUBREC of the next message with the same id');
    await eventually(() => heard.length === 2, 5000, 'the next message delivered');
  } finally {
    stop();
    m.socket.destroy();
  }
});

test('a gateway stopping with meters connected closes their connections', async () => {
  const t2 = await startTestGateway();
  let stopped = false;
  try {
    const d = await pairDevice(t2);
    await d.close();
    const m = rawMeter(t2.gw.mqttUrl);
    const closed = new Promise<void>((resolve) => m.socket.once('close', () => resolve()));
    await new Promise<void>((resolve) => m.socket.once('connect', () => resolve()));
    m.socket.write(connectPacket({ id: d.id, password: mqttPassword(d.ks!) }));
    await m.until(() => m.got.some((p) => p.type === 2), 'CONNACK');
    await eventually(async () => (await t2.metric('gridlet_devices_connected')) === 1, 3000, 'the meter connected');
    await Promise.race([t2.close(), sleep(10_000).then(() => assert.unreachable('the gateway did not stop'))]);
    stopped = true;
    await Promise.race([closed, sleep(5000).then(() => assert.unreachable('the meter\'s connection stayed open'))]);
  } finally {
    if (!stopped) await t2.close();
  }
});

test('a meter resuming its MQTT session gets CONNACK first, then what waited for it, then the rest, in order and once', async () => {
  // MQTT 3.1.1 4.6: a session's messages go out in the order they were published, stored ones first;
  // [MQTT-3.2.0-1]: CONNACK is the first packet. The gateway's counters say the order it published in.
  const d = await pairedAway();
  const connect = connectPacket({ id: d.id, password: mqttPassword(d.ks!), clean: false });
  const down = topics.down(t.prefix, d.id);
  const first = rawMeter(t.gw.mqttUrl);
  first.socket.write(connect);
  first.socket.write(subscribePacket(1, down));
  await first.until(() => first.got.some((p) => p.type === 9), 'SUBACK');
  first.socket.end(DISCONNECT);
  await new Promise((resolve) => first.socket.once('close', resolve));
  const time = () => t.gw.sendDownlink(d.id, { type: Body.time, time: Math.floor(Date.now() / 1000) });
  // Two bodies for the session while the meter is away, stored by the broker.
  await time();
  await time();
  const again = rawMeter(t.gw.mqttUrl);
  const sends: Promise<void>[] = [];
  again.socket.write(connect);
  // And a body on every turn of the event loop while the meter connects and gets what was stored.
  for (let i = 0; i < 40; i++) {
    sends.push(time());
    await new Promise((resolve) => setImmediate(resolve));
  }
  await Promise.all(sends);
  await again.until(() => again.got.filter((p) => p.type === 3).length >= 42, 'all 42 bodies');
  await sleep(200);
  again.socket.end(DISCONNECT);
  assert.is(again.got[0]!.type, 2, `CONNACK first; the broker sent packet types ${again.types()}`);
  assert.is(again.got[0]!.body[0], 1, 'the session was present');
  const counters = again.got.filter((p) => p.type === 3).map((p) => {
    const f = parseFrame(p.payload!);
    return typeof f === 'object' ? f.counter : -1;
  });
  assert.equal(counters, [...counters].sort((a, b) => a - b), `in the order published: ${counters.join(',')}`);
  assert.is(new Set(counters).size, counters.length, `each once: ${counters.join(',')}`);
  assert.is(counters.length, 42);
});

test.run();
