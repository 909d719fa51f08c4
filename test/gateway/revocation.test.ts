import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Body } from '../../firmware/core/wire/bodies.js';
import { helloSeen, pairDevice, sleep, startTestGateway, type TestGateway } from './support.js';

let t: TestGateway;

test.before(async () => {
  t = await startTestGateway();
});

test.after(async () => {
  await t.close();
});

const T0 = 1_700_000_000;

test('revocation sends unpair, stops acceptance, voids the credentials; the device can be paired again', async () => {
  const d = await pairDevice(t);
  await d.send({ type: Body.readings, first: 1, records: [[T0, 1, 1]] });
  await d.waitAck(1);
  const oldKs = d.ks!;

  const r = await t.api('DELETE', `/api/devices/${d.id}`, undefined, { 'content-type': 'application/json' });
  assert.is(r.status, 200, r.text);
  assert.equal(r.json, { id: d.id, state: 'revoked' });
  await d.until(() => d.bodies(Body.unpair).length === 1, 3000, 'unpair');
  assert.is((await t.api('GET', `/api/devices/${d.id}`)).json.state, 'revoked');
  assert.is(await t.metric('gridlet_devices', { state: 'revoked' }), 1);
  assert.is(await t.metric('gridlet_downlinks_pending'), 1, 'the unpair is kept until the device leaves the session');

  // A device that missed the unpair keeps sending: refused, and reminded (at most once per interval).
  await sleep(350);
  await d.send({ type: Body.readings, first: 2, records: [[T0, 1, 2]] });
  await d.until(() => d.bodies(Body.unpair).length === 2, 3000, 'unpair resent');
  assert.is(await t.metric('gridlet_frames_dropped_total', { reason: 'revoked' }), 1);
  assert.equal((await t.api('GET', `/api/devices/${d.id}/readings`)).json.records, [[1, T0, 1, 1]]);
  assert.is(d.acked, 1, 'no ack for a revoked device');

  // Its old credentials are refused by the broker; without credentials it may Hello.
  await d.close();
  const err = await d.connect(t.gw.mqttUrl, { credentials: true }).then(() => undefined, (e: Error) => e);
  assert.ok(err, 'old credentials refused');
  assert.match(String(err), /Bad username or password|bad user name/i);
  d.ks = undefined;
  d.reboot();
  await d.connect(t.gw.mqttUrl);
  await d.hello();
  await helloSeen(t, d);
  await sleep(100);
  assert.is(await t.metric('gridlet_downlinks_pending'), 0, 'a Hello shows the device left the session');

  const again = await t.api('POST', '/api/pairings', { deviceId: d.id, code: d.code });
  assert.is(again.status, 201, again.text);
  assert.is(again.json.state, 'paired');
  assert.not.equal(d.ks, oldKs);
  await d.send({ type: Body.readings, first: 2, records: [[T0, 1, 2]] });
  await d.waitAck(2);
  // A frame under the revoked session's key is refused.
  await d.send({ type: Body.readings, first: 3, records: [[T0, 1, 3]] }, { key: oldKs, counter: 500 });
  await d.send({ type: Body.readings, first: 3, records: [[T0, 1, 3]] });
  await d.waitAck(3);
  assert.is(await t.metric('gridlet_frames_dropped_total', { reason: 'forged' }), 1);
  assert.equal((await t.api('GET', `/api/devices/${d.id}/readings`)).json.records, [[1, T0, 1, 1], [2, T0, 1, 2], [3, T0, 1, 3]],
    'records and the sequence survive re-pairing');
});

test('revoking an unknown device answers 404; revoking twice is harmless', async () => {
  const json = { 'content-type': 'application/json' };
  assert.is((await t.api('DELETE', '/api/devices/abcdefghijklmnop', undefined, json)).status, 404);
  assert.is((await t.api('DELETE', '/api/devices/nonsense', undefined, json)).status, 404);
  const d = await pairDevice(t);
  assert.is((await t.api('DELETE', `/api/devices/${d.id}`, undefined, json)).status, 200);
  const twice = await t.api('DELETE', `/api/devices/${d.id}`, undefined, json);
  assert.is(twice.status, 200);
  assert.is(twice.json.state, 'revoked');
  await d.until(() => d.bodies(Body.unpair).length >= 1, 3000, 'unpair');
  await sleep(100);
  assert.is(d.bodies(Body.unpair).length, 1, 'one unpair per revocation');
});

test.run();
