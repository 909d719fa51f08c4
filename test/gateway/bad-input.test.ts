import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request } from 'node:http';
import { createServer, type Server } from 'node:net';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { encode } from '../../firmware/core/cbor.js';
import { boxKeyPair, randomBytes } from '../../firmware/core/crypto.js';
import { Body } from '../../firmware/core/wire/bodies.js';
import { encodeHello, idFromPublicKey } from '../../firmware/core/wire/pairing.js';
import { topics } from '../../firmware/core/wire/topics.js';
import { startGateway } from '../../gateway/gateway.js';
import { eventually, pairDevice, sleep, startTestGateway, tempDir, type TestGateway } from './support.js';

// A plain broker with no rules stands in for an external one: anything can be published anywhere.
let aedes: Aedes;
let server: Server;
let brokerUrl: string;
let t: TestGateway;

test.before(async () => {
  aedes = await Aedes.createBroker();
  server = createServer(aedes.handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  brokerUrl = `mqtt://127.0.0.1:${(server.address() as { port: number }).port}`;
  t = await startTestGateway({ broker: brokerUrl, topicPrefix: 'glbad' });
});

test.after(async () => {
  await t.close();
  await new Promise<void>((r) => aedes.close(() => r()));
  server.close();
});

async function raw(publish: [string, Uint8Array | Buffer][]): Promise<void> {
  const c = mqtt.connect(brokerUrl, { clientId: 'garbage-' + Math.random().toString(36).slice(2), protocolVersion: 4 });
  await new Promise((r) => c.once('connect', r));
  for (const [topic, payload] of publish) await c.publishAsync(topic, Buffer.from(payload), { qos: 1 });
  await c.endAsync();
}

test('garbage on every topic is dropped and counted; the gateway keeps serving', async () => {
  const p = t.prefix;
  const dev = boxKeyPair();
  const id = idFromPublicKey(dev.publicKey);
  const otherId = idFromPublicKey(boxKeyPair().publicKey);
  const hello = encodeHello({ version: 1, publicKey: dev.publicKey, model: 'm', firmware: 'f', capabilities: [], bootNonce: randomBytes(16) });
  await raw([
    [topics.hello(p, id), new Uint8Array([0xff, 0x00, 0x13])], // not CBOR
    [topics.hello(p, id), hello.subarray(0, hello.length - 4)], // truncated
    [topics.hello(p, otherId), hello], // key does not hash to the topic id
    [topics.hello(p, id), encode(new Map<number, unknown>([[1, 2], [2, dev.publicKey]]) as never)], // wrong version
    [topics.hello(p, id), encode(new Map<number, unknown>([[1, 1], [2, 'key'], [3, 5]]) as never)], // wrong types
    [topics.hello(p, id), new Uint8Array([0x9b, 0, 0, 0, 1, 0, 0, 0, 0])], // a 2^32-item array in 9 bytes
    [topics.hello(p, id), new Uint8Array(5000)], // oversized
    [topics.hello(p, id), new Uint8Array(0)],
    [`${p}/v1/hello/NOT-AN-ID`, hello],
    [`${p}/v1/d/short/up`, new Uint8Array([1])],
    [`${p}/v1/d/${id}/lwt`, new Uint8Array([1, 2, 3])],
    [topics.up(p, id), new Uint8Array([0x84, 1, 1, 0x48])], // an unknown device, truncated
    [topics.up(p, id), new Uint8Array(100_000)],
  ]);
  const m = (topic: string, reason: string) => t.metric('gridlet_messages_dropped_total', { topic, reason });
  await eventually(async () => (await t.metric('gridlet_frames_dropped_total', { reason: 'unknown-device' })) === 2, 3000, 'all garbage handled');
  // The external-broker Hello rate (3 then one per 2 s) also applies: count what reached decoding.
  const helloDrops = (await m('hello', 'malformed')) + (await m('hello', 'oversized')) + (await m('hello', 'rate')) + (await m('hello', 'wrong-key'));
  assert.is(helloDrops, 8, 'every bad Hello dropped');
  assert.is(await m('hello', 'wrong-key'), 1);
  assert.is(await m('unknown', 'topic'), 2);
  assert.is(await m('lwt', 'not-empty'), 1);
  assert.is(await t.metric('gridlet_hellos_received_total'), 0);
  assert.equal((await t.api('GET', '/api/devices')).json, []);

  // Still serving: a device pairs and is acked through the same broker.
  const d = await pairDevice(t);
  await d.send({ type: Body.readings, first: 1, records: [[1_700_000_000, 1, 1]] });
  await d.waitAck(1);
});

test('malformed HTTP requests are refused with a clear JSON error and never a stack trace', async () => {
  const cases: [string, string, unknown, { [k: string]: string }, number, RegExp][] = [
    ['POST', '/api/pairings', '{"deviceId": ', {}, 400, /not valid JSON/],
    ['POST', '/api/pairings', '[1,2]', {}, 400, /must be a JSON object/],
    ['POST', '/api/pairings', 'null', {}, 400, /must be a JSON object/],
    ['POST', '/api/pairings', JSON.stringify({ deviceId: 5, code: [] }), {}, 400, /not a device id/],
    ['POST', '/api/pairings', JSON.stringify({ deviceId: 'x'.repeat(70_000) }), {}, 413, /over 65536 bytes/],
    ['POST', '/api/pairings', '{}', { 'content-type': 'text/plain' }, 415, /application\/json/],
    ['POST', '/api/pairings', 'deviceId=a', { 'content-type': 'application/x-www-form-urlencoded' }, 415, /application\/json/],
    ['DELETE', '/api/devices/abcdefghijklmnop', undefined, {}, 415, /application\/json/],
    ['PUT', '/api/devices/abcdefghijklmnop/labels', '{"labels": 5}', {}, 400, /labels must be an object/],
    ['GET', '/api/nothing', undefined, {}, 404, /no such resource/],
    ['PATCH', '/api/devices', '{}', {}, 405, /not supported/],
    ['GET', '/api/devices?label=%20bad%20key', undefined, {}, 400, /label selector/],
    ['GET', '/api/devices/%ZZ', undefined, {}, 400, /percent-encoding/],
  ];
  for (const [method, path, body, headers, status, msg] of cases) {
    const r = await t.api(method, path, body, headers);
    assert.is(r.status, status, `${method} ${path} → ${r.status} ${r.text}`);
    assert.type(r.json?.error, 'string', `${method} ${path} answers JSON {"error"}`);
    assert.match(r.json.error, msg);
    assert.not.match(r.text, /\n\s+at /, 'no stack trace');
  }
  assert.is((await t.api('GET', '/api/health')).status, 200);
});

function rawRequest(url: string, method: string, path: string, headers: { [k: string]: string }, body?: string): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, method, path, headers }, (res) => {
      let b = '';
      res.on('data', (c) => (b += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: b }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('a request naming another Host is refused with 421 (DNS rebinding); localhost names are accepted', async () => {
  const port = new URL(t.gw.httpUrl).port;
  const json = { 'content-type': 'application/json' };
  for (const host of ['evil.example', `evil.example:${port}`, '127.0.0.1:1', `127.0.0.1:${port}.evil.example`]) {
    const r = await rawRequest(t.gw.httpUrl, 'POST', '/api/pairings', { ...json, host }, '{}');
    assert.is(r.status, 421, `Host "${host}"`);
    assert.match(JSON.parse(r.body).error, /not this gateway's address/);
  }
  assert.is((await rawRequest(t.gw.httpUrl, 'GET', '/api/devices', { host: `evil.example:${port}` })).status, 421);
  // No Host at all: node's HTTP server refuses it before we see it.
  assert.is((await rawRequest(t.gw.httpUrl, 'POST', '/api/pairings', { ...json, host: '' }, '{}')).status, 400);
  for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `LOCALHOST:${port}`]) {
    assert.is((await rawRequest(t.gw.httpUrl, 'GET', '/api/devices', { host })).status, 200, host);
  }
});

test('a non-loopback HTTP bind needs --api-token; with a token every request but health needs the bearer', async () => {
  const dir = tempDir();
  const err = await startGateway({ dataDir: dir, mqttListen: '127.0.0.1:0', httpListen: '0.0.0.0:0' }).then(() => undefined, (e: Error) => e.message);
  assert.match(String(err), /not a loopback address: give --api-token-file/);
  const s = await startTestGateway({ dataDir: dir, httpListen: '127.0.0.1:0', apiToken: 's3cret' });
  try {
    assert.is((await s.api('GET', '/api/devices')).status, 401);
    assert.is((await s.api('GET', '/metrics')).status, 401);
    assert.is((await s.api('GET', '/api/devices', undefined, { authorization: 'Bearer nope' })).status, 401);
    assert.is((await s.api('GET', '/api/devices', undefined, { authorization: 'Bearer s3cret' })).status, 200);
    assert.is((await s.api('GET', '/api/health')).status, 200);
  } finally {
    await s.close();
  }
  const wide = await startGateway({ dataDir: tempDir(), mqttListen: '127.0.0.1:0', httpListen: '0.0.0.0:0', apiToken: 'tok' });
  try {
    const port = new URL(wide.httpUrl).port;
    const r = await rawRequest(`http://127.0.0.1:${port}`, 'GET', '/api/devices', { host: `127.0.0.1:${port}`, authorization: 'Bearer tok' });
    assert.is(r.status, 200);
  } finally {
    await wide.close();
  }
});

test('labels: set, validated, filtered', async () => {
  const d = await pairDevice(t);
  const r = await t.api('PUT', `/api/devices/${d.id}/labels`, { labels: { site: 'north', tier: '1' } });
  assert.is(r.status, 200, r.text);
  assert.equal(r.json.labels, { site: 'north', tier: '1' });
  assert.is((await t.api('PUT', `/api/devices/${d.id}/labels`, { labels: { 'bad key': 'x' } })).status, 400);
  assert.is((await t.api('PUT', `/api/devices/${d.id}/labels`, { labels: { k: 5 } })).status, 400);
  assert.is((await t.api('PUT', '/api/devices/abcdefghijklmnop/labels', { labels: {} })).status, 404);
  const ids = async (q: string) => ((await t.api('GET', `/api/devices${q}`)).json as { id: string }[]).map((x) => x.id);
  assert.ok((await ids('?label=site=north')).includes(d.id));
  assert.ok((await ids('?label=site')).includes(d.id));
  assert.ok((await ids('?label=site=north&label=tier=1')).includes(d.id));
  assert.not.ok((await ids('?label=site=south')).includes(d.id));
  assert.not.ok((await ids('?label=site=north,tier=2')).includes(d.id));
  await sleep(10);
});

test.run();
