import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Body } from '../../firmware/core/wire/bodies.js';
import pino from 'pino';
import { boxKeyPair } from '../../firmware/core/crypto.js';
import { idFromPublicKey } from '../../firmware/core/wire/pairing.js';
import { DEFAULT_TUNING, type GatewayContext } from '../../gateway/context.js';
import { Pairing } from '../../gateway/pairing.js';
import { helloSeen, pairDevice, sleep, startTestGateway, type TestGateway } from './support.js';
import { WireDevice } from './wire-device.js';

let t: TestGateway;

test.before(async () => {
  t = await startTestGateway();
});

test.after(async () => {
  await t.close();
});

test('a device that Hellos is listed as seen, and pairing it answers 201 with the paired device', async () => {
  const d = t.device();
  await d.connect(t.gw.mqttUrl);
  await d.hello();
  await helloSeen(t, d);
  const seen = await t.api('GET', `/api/devices/${d.id}`);
  assert.is(seen.json.state, 'seen');
  assert.is(seen.json.model, 'wire-test');
  const paired = new Promise((r) => t.gw.events.once('paired', r));
  const r = await t.api('POST', '/api/pairings', { deviceId: d.id, code: d.code.toLowerCase().replace('-', '') });
  assert.is(r.status, 201, r.text);
  assert.is(r.json.id, d.id);
  assert.is(r.json.state, 'paired');
  assert.is(r.json.gateway, t.gw.id);
  assert.is(d.gatewayId, t.gw.id, 'the device accepted this gateway');
  await paired;
  // Pairing completes with a time body, and the device's credentials now open the broker.
  await d.until(() => d.bodies(Body.time).length > 0, 3000, 'time body');
  await d.close();
  await d.connect(t.gw.mqttUrl, { credentials: true });
  assert.is((await t.api('GET', `/api/devices/${d.id}`)).json.state, 'paired');
  assert.is(await t.metric('gridlet_pairings_total', { result: 'paired' }), 1);
  const again = await t.api('POST', '/api/pairings', { deviceId: d.id, code: d.code });
  assert.is(again.status, 409, 'a paired device must be revoked first');
  assert.match(again.json.error, /revoke it first/);
});

test('a wrong pair code is refused by the device: 403 with a reason naming the device', async () => {
  const d = t.device();
  await d.connect(t.gw.mqttUrl);
  await d.hello();
  await helloSeen(t, d);
  const wrong = d.secret === 'aaaaaaaaaa' ? 'bbbbb-bbbbb' : 'AAAAA-AAAAA';
  const r = await t.api('POST', '/api/pairings', { deviceId: d.id, code: wrong });
  assert.is(r.status, 403, r.text);
  assert.is(r.json.error, `pair code does not match device ${d.id.slice(0, 4)}…; check the label`);
  assert.ok(d.lastRejected, 'the device rejected the PairAccept');
  assert.is(d.ks, undefined);
  assert.is((await t.api('GET', `/api/devices/${d.id}`)).json.state, 'seen');
  // The right code still works afterwards.
  const ok = await t.api('POST', '/api/pairings', { deviceId: d.id, code: d.code });
  assert.is(ok.status, 201, ok.text);
});

test('pairing a device never seen answers 404; malformed ids and codes 400', async () => {
  const r = await t.api('POST', '/api/pairings', { deviceId: 'abcdefghijklmnop', code: 'AAAAA-AAAAA' });
  assert.is(r.status, 404);
  assert.match(r.json.error, /no Hello seen from device abcdefghijklmnop/);
  const badId = await t.api('POST', '/api/pairings', { deviceId: 'not-an-id', code: 'AAAAA-AAAAA' });
  assert.is(badId.status, 400);
  assert.match(badId.json.error, /is not a device id/);
  const badCode = await t.api('POST', '/api/pairings', { deviceId: 'abcdefghijklmnop', code: '12345-67890' });
  assert.is(badCode.status, 400);
  assert.match(badCode.json.error, /pair code/);
  const noCode = await t.api('POST', '/api/pairings', { deviceId: 'abcdefghijklmnop' });
  assert.is(noCode.status, 400);
});

test('a device that never answers the PairAccept gives 504 and the pending pairing is dropped', async () => {
  const d = t.device();
  d.autoPair = false;
  await d.connect(t.gw.mqttUrl);
  await d.hello();
  await helloSeen(t, d);
  const started = Date.now();
  const r = await t.api('POST', '/api/pairings', { deviceId: d.id, code: d.code });
  assert.is(r.status, 504, r.text);
  assert.ok(Date.now() - started >= 1900, 'waited for the pairing timeout');
  assert.match(r.json.error, /did not answer within/);
  assert.is(d.pairAccepts.length, 1);
  // The pending pairing is gone: answering now does not pair, and a new request may start.
  const late = d.check(d.pairAccepts[0]);
  assert.ok(late.ok);
  if (late.ok) {
    d.ks = late.ks;
    await d.send({ type: Body.paired, firmware: d.firmware, model: d.model });
  }
  await new Promise((res) => setTimeout(res, 200));
  assert.is((await t.api('GET', `/api/devices/${d.id}`)).json.state, 'seen');
  assert.ok(await t.metric('gridlet_frames_dropped_total', { reason: 'unknown-device' }) >= 1);
  assert.is(await t.metric('gridlet_pairings_total', { result: 'timeout' }), 1);
});

test('while a pairing is pending, a Hello resends the same PairAccept; after a reboot a fresh one', async () => {
  const d = t.device();
  d.autoPair = false;
  await d.connect(t.gw.mqttUrl);
  await d.hello();
  await helloSeen(t, d);
  const pending = t.api('POST', '/api/pairings', { deviceId: d.id, code: d.code });
  await d.until(() => d.pairAccepts.length >= 1, 3000, 'first PairAccept');
  await d.hello();
  await d.until(() => d.pairAccepts.length >= 2, 3000, 'resent PairAccept');
  assert.equal(d.pairAccepts[1], d.pairAccepts[0], 'the same PairAccept, byte for byte');
  d.reboot();
  await d.hello();
  await d.until(() => d.pairAccepts.length >= 3, 3000, 'fresh PairAccept');
  assert.not.equal(d.pairAccepts[2], d.pairAccepts[0]);
  assert.not.ok(d.check(d.pairAccepts[0]).ok, 'the old PairAccept is for a Hello of the last boot');
  const fresh = d.check(d.pairAccepts[2]);
  assert.ok(fresh.ok, 'the fresh PairAccept matches this boot');
  if (fresh.ok) {
    d.ks = fresh.ks;
    await d.send({ type: Body.paired, firmware: d.firmware, model: d.model });
  }
  assert.is((await pending).status, 201);
});

test('two pairing requests for one device at once: one pairs it, the other is told at once, none hangs', async () => {
  const d = t.device();
  d.autoPair = false;
  await d.connect(t.gw.mqttUrl);
  await d.hello();
  await helloSeen(t, d);
  const answered = (p: Promise<{ status: number; text: string }>) =>
    Promise.race([p, new Promise<{ status: number; text: string }>((r) => setTimeout(() => r({ status: 0, text: 'no answer within 6 s' }), 6000))]);
  const requests = [1, 2].map(() => answered(t.api('POST', '/api/pairings', { deviceId: d.id, code: d.code })));
  await d.until(() => d.pairAccepts.length >= 1, 3000, 'a PairAccept');
  const accept = d.check(d.pairAccepts[0]);
  assert.ok(accept.ok);
  if (accept.ok) {
    d.ks = accept.ks;
    await d.send({ type: Body.paired, firmware: d.firmware, model: d.model });
  }
  const outcomes = await Promise.all(requests);
  assert.equal(outcomes.map((o) => o.status).sort(), [201, 409], outcomes.map((o) => `${o.status} ${o.text}`).join('; '));
  assert.match(outcomes.find((o) => o.status === 409)!.text, /already in progress/);
  assert.is(d.pairAccepts.length, 1, 'one PairAccept: the device pairs under the session of the request that paired it');
  // Its session key is the gateway's: its credentials open the broker and its frames are taken.
  await d.close();
  await d.connect(t.gw.mqttUrl, { credentials: true });
  await d.send({ type: Body.readings, first: 1, records: [[1_700_000_000, 1, 1]] });
  await d.waitAck(1);
});

test('on a store that answers later than at once, two requests for one device still never both start', async () => {
  // A store whose reads answer later (PostgreSQL: two answers in one read from its socket): both
  // requests' reads complete in the same turn, so both are inside pair() at once. The second is
  // refused at once; the first gets its answer (here a timeout).
  const box = boxKeyPair();
  const answers = sleep(5);
  const published: string[] = [];
  const ctx = {
    identity: { id: idFromPublicKey(box.publicKey), box }, prefix: 'gl', log: pino({ level: 'silent' }), now: Date.now,
    tuning: { ...DEFAULT_TUNING, pairTimeoutMs: 300 },
    metrics: { pairing() {} },
    store: { getDevice: async () => { await answers; return undefined; } },
    publish: (topic: string) => void published.push(topic),
  } as unknown as GatewayContext;
  const pairing = new Pairing(ctx);
  try {
    const d = new WireDevice('gl');
    assert.is(await pairing.onHello(d.id, d.helloBytes()), 'accepted');
    const settled = (p: Promise<{ status: number }>) => Promise.race([p.then((o) => o.status), sleep(3000).then(() => 'hangs')]);
    const outcomes = await Promise.all([settled(pairing.pair(d.id, d.code)), settled(pairing.pair(d.id, d.code))]);
    assert.equal(outcomes, [504, 409]);
    assert.is(published.length, 1, 'one PairAccept');
  } finally {
    pairing.close();
  }
});

test('pairDevice helper: paired devices reconnect with credentials', async () => {
  const d = await pairDevice(t);
  assert.ok(d.client?.connected);
});

test('the Hello table is bounded (oldest forgotten first) and forgets a Hello after its lifetime', async () => {
  let offset = 0;
  const s = await startTestGateway({ tuning: { helloTableSize: 2, helloTtlMs: 60_000 }, clock: () => Date.now() + offset });
  try {
    const [a, b, c] = [s.device(), s.device(), s.device()];
    for (const d of [a, b, c]) {
      await d.connect(s.gw.mqttUrl);
      await d.hello();
      await helloSeen(s, d);
    }
    assert.is((await s.api('GET', `/api/devices/${a.id}`)).status, 404, 'the oldest Hello was forgotten');
    assert.is((await s.api('POST', '/api/pairings', { deviceId: a.id, code: a.code })).status, 404);
    assert.is((await s.api('GET', `/api/devices/${b.id}`)).status, 200);
    offset = 61_000;
    assert.is((await s.api('GET', `/api/devices/${c.id}`)).status, 404, 'forgotten after its lifetime');
    assert.equal((await s.api('GET', '/api/devices')).json, []);
    // A new Hello brings it back.
    await c.hello();
    await helloSeen(s, c);
  } finally {
    await s.close();
  }
});

test.run();
