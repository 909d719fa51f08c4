// The gateway against a real external broker: Mosquitto on 127.0.0.1:1883 (started if needed with
// `mosquitto -d -c /etc/mosquitto/mosquitto.conf`). Each run uses its own topic prefix, so parallel
// runs and leftovers never collide.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from 'node:net';
import { randomBytes as nodeRandom } from 'node:crypto';
import mqtt from 'mqtt';
import { Body } from '../../firmware/core/wire/bodies.js';
import { topics } from '../../firmware/core/wire/topics.js';
import { eventually, helloSeen, pairDevice, sleep, startTestGateway, tempDir, type TestGateway } from '../gateway/support.js';

const BROKER = 'mqtt://127.0.0.1:1883';
const prefix = 'gltest' + nodeRandom(4).toString('hex');
const T0 = 1_700_000_000;
let dir: string;
let t: TestGateway;

async function brokerUp(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(1883, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

test.before(async () => {
  if (!(await brokerUp())) throw new Error('Mosquitto is not listening on 127.0.0.1:1883: start it with `mosquitto -d -c /etc/mosquitto/mosquitto.conf`');
  dir = tempDir();
  t = await startTestGateway({ dataDir: dir, broker: BROKER, topicPrefix: prefix });
});

test.after(async () => {
  await t?.close();
});

test('pairing through Mosquitto: 201, then readings stored once and acked', async () => {
  assert.is(t.gw.mqttUrl, BROKER);
  const d = await pairDevice(t);
  await d.send({ type: Body.readings, first: 1, records: [[T0, 1, 1], [T0 + 1, 1, 2]] });
  await d.send({ type: Body.readings, first: 1, records: [[T0, 1, 1], [T0 + 1, 1, 2]] });
  await d.send({ type: Body.event, seq: 3, t: T0 + 2, kind: 'power-up' });
  await d.waitAck(3);
  assert.equal((await t.api('GET', `/api/devices/${d.id}/readings`)).json.records,
    [[1, T0, 1, 1], [2, T0 + 1, 1, 2], [3, T0 + 2, 'event', 'power-up', {}]]);
  assert.is(await t.metric('gridlet_records_stored_total', { kind: 'reading' }), 2);
});

test('a wrong code answers 403 through Mosquitto', async () => {
  const d = t.device();
  await d.connect(t.gw.mqttUrl);
  await d.hello();
  await helloSeen(t, d);
  const r = await t.api('POST', '/api/pairings', { deviceId: d.id, code: d.secret.startsWith('a') ? 'BBBBB-BBBBB' : 'AAAAA-AAAAA' });
  assert.is(r.status, 403, r.text);
});

test('replays and forgeries through Mosquitto are dropped; garbage on WIRE topics is counted', async () => {
  const d = await pairDevice(t);
  const f = await d.send({ type: Body.readings, first: 1, records: [[T0, 1, 1]] });
  await d.waitAck(1);
  await d.sendRaw(f);
  const g = d.frame({ type: Body.readings, first: 2, records: [[T0, 1, 2]] }).bytes;
  g[g.length - 1] ^= 1;
  await d.sendRaw(g);
  const c = mqtt.connect(BROKER, { clientId: 'gl-garbage-' + nodeRandom(4).toString('hex'), protocolVersion: 4 });
  await new Promise((r) => c.once('connect', r));
  await c.publishAsync(`${prefix}/v1/hello/NOT-AN-ID`, Buffer.from([1, 2]), { qos: 1 });
  await c.publishAsync(topics.hello(prefix, 'abcdefghijklmnop'), Buffer.from([0xff]), { qos: 1 });
  await c.endAsync();
  await d.send({ type: Body.readings, first: 2, records: [[T0, 1, 2]] });
  await d.waitAck(2);
  await eventually(async () => (await t.metric('gridlet_messages_dropped_total', { topic: 'hello', reason: 'malformed' })) === 1, 3000, 'garbage Hello counted');
  assert.is(await t.metric('gridlet_frames_dropped_total', { reason: 'replay' }), 1);
  assert.is(await t.metric('gridlet_frames_dropped_total', { reason: 'forged' }), 1);
  assert.is(await t.metric('gridlet_messages_dropped_total', { topic: 'unknown', reason: 'topic' }), 1);
});

test('revocation through Mosquitto: unpair delivered, frames refused afterwards', async () => {
  const d = await pairDevice(t);
  const r = await t.api('DELETE', `/api/devices/${d.id}`, undefined, { 'content-type': 'application/json' });
  assert.is(r.status, 200);
  await d.until(() => d.bodies(Body.unpair).length >= 1, 3000, 'unpair');
  const before = await t.metric('gridlet_frames_dropped_total', { reason: 'revoked' });
  await d.send({ type: Body.readings, first: 1, records: [[T0, 1, 1]] });
  await eventually(async () => (await t.metric('gridlet_frames_dropped_total', { reason: 'revoked' })) === before + 1, 3000, 'refused');
  assert.equal((await t.api('GET', `/api/devices/${d.id}/readings`)).json.records, []);
});

test('messages published while the gateway is down wait in its session and are handled after a restart', async () => {
  const d = await pairDevice(t);
  await d.send({ type: Body.readings, first: 1, records: [[T0, 1, 1]] });
  await d.waitAck(1);
  await t.gw.close();
  // The gateway is away: the device keeps publishing (QoS 1) into the broker.
  await d.send({ type: Body.readings, first: 2, records: [[T0, 1, 2]] });
  await d.send({ type: Body.readings, first: 3, records: [[T0, 1, 3]] });
  await sleep(200);
  const devices = t.devices.splice(0);
  t = await startTestGateway({ dataDir: dir, broker: BROKER, topicPrefix: prefix });
  t.devices.push(...devices);
  await d.waitAck(3, 5000);
  assert.equal((await t.api('GET', `/api/devices/${d.id}/readings`)).json.records, [[1, T0, 1, 1], [2, T0, 1, 2], [3, T0, 1, 3]]);
});

test.run();
