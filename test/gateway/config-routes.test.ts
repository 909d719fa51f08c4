// Configuration and the technician PIN through the gateway (WIRE.md body 17 config, CONSOLE.md
// `console.pin_hash`): values reach a test-double device as sent; the PIN travels only as its PBKDF2
// hash, and the clear PIN is neither logged nor stored.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkPin, makePinHash, parsePinHash, PIN_CONFIG_KEY } from '../../firmware/core/console/pin.js';
import { Body, type Config } from '../../firmware/core/wire/bodies.js';
import { helloSeen, pairDevice, sleep, startTestGateway, type TestGateway } from './support.js';
import type { WireDevice } from './wire-device.js';

let t: TestGateway;
const logLines: string[] = [];

test.before(async () => {
  t = await startTestGateway({ logger: { log: (level: string, message: string) => void logLines.push(`${level} ${message}`) } });
});

test.after(async () => {
  await t.close();
});

async function configs(d: WireDevice, n: number): Promise<Config[]> {
  await d.until(() => d.bodies(Body.config).length >= n, 3000, `${n} config body(ies)`);
  return d.bodies(Body.config) as Config[];
}

test('PUT config: text, integer and boolean values reach the device as one config body', async () => {
  const d = await pairDevice(t);
  const values = { tz: 'CET-1CEST,M3.5.0,M10.5.0/3', interval_s: 10, 'relay.1.critical': true, 'dr.max_level': 0 };
  const r = await t.api('PUT', `/api/devices/${d.id}/config`, values);
  assert.is(r.status, 202, r.text);
  assert.equal(r.json, { deviceId: d.id, values });
  assert.equal(await configs(d, 1), [{ type: Body.config, values }]);
});

test('PUT config: values and keys outside WIRE.md v1 are refused with a 400 naming the key', async () => {
  const d = await pairDevice(t);
  const many = Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 1]));
  const big = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`key${i}`, 'x'.repeat(200)]));
  const cases: [unknown, number, RegExp][] = [
    [{ price: 1.5 }, 400, /^price: 1\.5 is not an integer; WIRE\.md v1 carries no floats/],
    [{ tz: null }, 400, /^tz: a value is text, an integer or a boolean, not null/],
    [{ limits: { a: 1 } }, 400, /^limits: a value is text, an integer or a boolean, not object/],
    [{ list: [1] }, 400, /^list: .*not a list/],
    [{ 'Bad Key': 1 }, 400, /^Bad Key: a config key is 1-64 of a-z 0-9 _ \. -/],
    [{ tz: '' }, 400, /^tz: a text value is 1 to 200 characters/],
    [{ tz: 'x'.repeat(201) }, 400, /^tz: a text value is 1 to 200 characters/],
    [{ tz: 'a\u0007b' }, 400, /^tz: a text value must not contain control characters/],
    [{}, 400, /^give at least one "key": value/],
    [many, 400, /^at most 32 keys at once/],
    [big, 400, /^the config body does not fit one 2048-byte frame/],
    [{ [PIN_CONFIG_KEY]: '1234' }, 400, /^console\.pin_hash: must be a PIN hash .*POST \/api\/devices\/:id\/console-pin/],
    [[1], 400, /the body must be a JSON object/],
  ];
  for (const [body, status, re] of cases) {
    const r = await t.api('PUT', `/api/devices/${d.id}/config`, body);
    assert.is(r.status, status, JSON.stringify(body).slice(0, 80));
    assert.match(r.json.error, re);
  }
  await sleep(100);
  assert.is(d.bodies(Body.config).length, 0, 'nothing was sent');

  // A hash computed elsewhere (the PIN never reaches the gateway) is accepted as is, and not echoed.
  const hash = makePinHash('9876');
  const ok = await t.api('PUT', `/api/devices/${d.id}/config`, { [PIN_CONFIG_KEY]: hash });
  assert.is(ok.status, 202, ok.text);
  assert.equal(ok.json.values, { [PIN_CONFIG_KEY]: '(hidden)' });
  assert.equal((await configs(d, 1))[0].values, { [PIN_CONFIG_KEY]: hash });
});

test('PUT config: a meter\'s type and keys are checked, sent as given, never answered back or logged', async () => {
  const d = await pairDevice(t);
  const key = 'A1B2C3D4E5F60718293A4B5C6D7E8F90';
  const bad: [unknown, RegExp][] = [
    [{ 'meter.key': 'A1B2C3' }, /^meter\.key: meter\.key is 32 hex digits \(16 bytes\), as the network operator gives it; this has 6$/],
    [{ 'meter.auth_key': 12 }, /^meter\.auth_key: meter\.auth_key is 32 hex digits/],
    [{ 'meter.type': 'zigbee' }, /^meter\.type: meter\.type is one of dsmr, smarty, dlms, mbus$/],
  ];
  for (const [body, re] of bad) {
    const r = await t.api('PUT', `/api/devices/${d.id}/config`, body);
    assert.is(r.status, 400, JSON.stringify(body));
    assert.match(r.json.error, re);
    assert.not.ok(r.text.includes('A1B2C3D4'));
  }
  const r = await t.api('PUT', `/api/devices/${d.id}/config`, { 'meter.type': 'dlms', 'meter.key': key });
  assert.is(r.status, 202, r.text);
  assert.equal(r.json.values, { 'meter.type': 'dlms', 'meter.key': '(hidden)' });
  assert.equal((await configs(d, 1))[0].values, { 'meter.type': 'dlms', 'meter.key': key });
  assert.ok(logLines.some((l) => l.includes('config sent')), 'the send is logged');
  assert.ok(!logLines.some((l) => l.toUpperCase().includes(key)), 'the key is not logged');
});

test('PUT config: unknown device 404, a device only seen 409', async () => {
  assert.is((await t.api('PUT', '/api/devices/aaaaaaaaaaaaaaaa/config', { tz: 'UTC0' })).status, 404);
  assert.is((await t.api('PUT', '/api/devices/NOT-AN-ID/config', { tz: 'UTC0' })).status, 404);
  const seen = t.device();
  await seen.connect(t.gw.mqttUrl);
  await seen.hello();
  await helloSeen(t, seen);
  const r = await t.api('PUT', `/api/devices/${seen.id}/config`, { tz: 'UTC0' });
  assert.is(r.status, 409);
  assert.match(r.json.error, /not paired/);
  assert.is((await t.api('POST', `/api/devices/${seen.id}/console-pin`, { pin: '1234' })).status, 409);
});

test('console PIN: the device gets console.pin_hash (PBKDF2-SHA256, 16-byte salt, 1000 iterations) that checks the PIN', async () => {
  const d = await pairDevice(t);
  const pin = 'Kx7-2468-q';
  const r = await t.api('POST', `/api/devices/${d.id}/console-pin`, { pin });
  assert.is(r.status, 202, r.text);
  assert.equal(r.json, { deviceId: d.id, key: PIN_CONFIG_KEY, scheme: 'pbkdf2-sha256', iterations: 1000, saltBytes: 16 });
  assert.not.match(r.text, pin);
  const [c] = await configs(d, 1);
  assert.equal(Object.keys(c.values), [PIN_CONFIG_KEY]);
  const hash = c.values[PIN_CONFIG_KEY] as string;
  const parsed = parsePinHash(hash)!;
  assert.ok(parsed, `a well-formed PIN hash: ${hash}`);
  assert.is(parsed.iterations, 1000);
  assert.is(parsed.salt.length, 16);
  assert.is(checkPin(pin, hash), true);
  assert.is(checkPin('Kx7-2468-r', hash), false);

  // The same PIN again gets a fresh salt.
  await t.api('POST', `/api/devices/${d.id}/console-pin`, { pin });
  const second = (await configs(d, 2))[1].values[PIN_CONFIG_KEY] as string;
  assert.is.not(second, hash);
  assert.is(checkPin(pin, second), true);

  // The clear PIN is in no log line and nowhere in the gateway's data directory (only its hash is kept).
  assert.ok(logLines.some((l) => l.includes('console PIN hash sent')), 'the send is logged');
  assert.ok(!logLines.some((l) => l.includes(pin)), 'the PIN is not logged');
  for (const f of readdirSync(t.dir)) {
    if (f.startsWith('gridlet.sqlite')) assert.ok(!readFileSync(join(t.dir, f)).includes(pin), `${f} does not hold the PIN`);
  }
});

test('console PIN: malformed PINs are refused', async () => {
  const d = await pairDevice(t);
  for (const [body, re] of [
    [{ pin: '12' }, /^pin: a PIN is 4 to 32 printable ASCII characters without spaces/],
    [{ pin: 'with space' }, /^pin: a PIN is 4 to 32/],
    [{ pin: 1234 }, /^pin: a PIN is 4 to 32/],
    [{ pin: 'x'.repeat(33) }, /^pin: a PIN is 4 to 32/],
    [{}, /^pin: /],
    [{ pin: '1234', iterations: 5 }, /^iterations: unknown field/],
  ] as [unknown, RegExp][]) {
    const r = await t.api('POST', `/api/devices/${d.id}/console-pin`, body);
    assert.is(r.status, 400, JSON.stringify(body));
    assert.match(r.json.error, re);
  }
  await sleep(100);
  assert.is(d.bodies(Body.config).length, 0);
});

test.run();
