// Demand response and tariffs through the gateway: gridlet's own JSON and OpenADR 3 events (3.0.1 and
// 3.1.0 examples from test/fixtures/openadr/) become WIRE.md dr-event and tariff bodies at a test-double
// device; malformed input is refused with a 400 that names the field; label groups; `gridlet dr send`.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Body, type DownBody } from '../../firmware/core/wire/bodies.js';
import { drMain } from '../../host/cli/ops.js';
import type { Io } from '../../host/cli/args.js';
import { pairDevice, sleep, startTestGateway, tempDir, type TestGateway } from './support.js';
import type { WireDevice } from './wire-device.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/openadr/', import.meta.url));
const fixture = (path: string): any => JSON.parse(readFileSync(join(FIXTURES, path), 'utf8'));
const UG07 = 'spec-3.1.0/ug-07__7-4-variable-duration-intervals__event.json';
const UG13 = 'spec-3.1.0/ug-13__8-2-load-shed__event.json';
const UG15 = 'spec-3.1.0/ug-15__8-3-day-ahead-prices-with-usage-report__event.json';
const UG24 = 'spec-3.1.0/ug-24__8-7-capability-forecast-reporting__event.json';
const UG32 = 'spec-3.1.0/ug-32__8-10-capacity-management__event.json';
const UG36 = 'spec-3.1.0/ug-36__8-10-capacity-management__event.json';
const TOADR3 = 'toadr3-3.0/toadr3__create_event__event.json';
const OPENLEADR = 'openleadr-rs/openleadr-rs__event.json';

const unix = (iso: string) => Date.parse(iso) / 1000;
const nowS = () => Math.floor(Date.now() / 1000);

let t: TestGateway;

test.before(async () => {
  t = await startTestGateway();
});

test.after(async () => {
  await t.close();
});

function capture(): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (l) => stdout.push(l), err: (l) => stderr.push(l) };
}

async function received(d: WireDevice, type: number, n: number): Promise<DownBody[]> {
  await d.until(() => d.bodies(type).length >= n, 3000, `${n} body(ies) of type ${type}`);
  await sleep(50);
  return d.bodies(type);
}

/** Posts a dr-event body to a fresh paired device; returns the answer and the device. */
async function post(body: unknown, query = ''): Promise<{ r: Awaited<ReturnType<TestGateway['api']>>; d: WireDevice; before: number; after: number }> {
  const d = await pairDevice(t);
  const before = nowS();
  const r = await t.api('POST', `/api/devices/${d.id}/dr-events${query}`, body);
  return { r, d, before, after: nowS() };
}

test('gridlet JSON: the dr-event reaches the device as sent, RFC 3339 or unix start', async () => {
  const ev = { id: 'peak-1', start: '2030-01-01T17:00:00+01:00', duration: 3600, level: 2, limitW: 4000, modification: 3, randomizeS: 300 };
  const { r, d } = await post(ev);
  assert.is(r.status, 202, r.text);
  const expected = { type: Body.drEvent, id: 'peak-1', start: unix('2030-01-01T16:00:00Z'), duration: 3600, level: 2, limit: 4000, modification: 3, window: 300 };
  assert.equal(r.json, { deviceId: d.id, format: 'gridlet', bodies: [{ body: 'dr-event', ...expected }], notes: [] });
  assert.equal(await received(d, Body.drEvent, 1), [expected]);

  // Without a modification number the gateway's clock is used, so a resend replaces; duration 0 cancels.
  const before = nowS();
  const cancel = await t.api('POST', `/api/devices/${d.id}/dr-events`, { id: 'peak-1', start: 1_893_513_600, duration: 0, level: 0 });
  assert.is(cancel.status, 202, cancel.text);
  const [, c] = await received(d, Body.drEvent, 2);
  assert.is((c as { duration: number }).duration, 0);
  const m = (c as { modification: number }).modification;
  assert.ok(m >= before && m <= nowS(), `modification ${m} is the gateway's clock`);
  assert.is((c as { limit?: number }).limit, undefined);
});

test('gridlet JSON: malformed events are refused with a 400 that names the field', async () => {
  const d = await pairDevice(t);
  const ok = { id: 'e', start: 1_900_000_000, duration: 60, level: 1 };
  const cases: [unknown, RegExp][] = [
    [{ id: 'e', start: 1_900_000_000, duration: 60 }, /^dr-event: level: is required/],
    [{ ...ok, level: 4 }, /^dr-event: level: must be a level 0, 1, 2 or 3/],
    [{ ...ok, level: '2' }, /^dr-event: level: /],
    [{ ...ok, start: 'tomorrow' }, /^dr-event: start: "tomorrow" is not an RFC 3339 date-time/],
    [{ ...ok, start: '2030-01-01T17:00:00' }, /^dr-event: start: .*a UTC offset is required/],
    [{ ...ok, start: '2030-02-30T17:00:00Z' }, /^dr-event: start: .*not a valid date/],
    [{ ...ok, start: -5 }, /^dr-event: start: /],
    [{ ...ok, duration: -1 }, /^dr-event: duration: must be an integer/],
    [{ ...ok, duration: 1.5 }, /^dr-event: duration: /],
    [{ ...ok, limitW: 1.5 }, /^dr-event: limitW: must be an integer/],
    [{ ...ok, randomizeS: 90_000 }, /^dr-event: randomizeS: must be an integer from 0 to 86400/],
    [{ ...ok, modification: -1 }, /^dr-event: modification: /],
    [{ ...ok, id: '' }, /^dr-event: id: must be a non-empty text/],
    [{ ...ok, id: 'x'.repeat(201) }, /^dr-event: id: must be at most 200 bytes/],
    [{ ...ok, levle: 1 }, /^dr-event: levle: unknown field/],
    ['"level 2"', /^dr-event: body: must be a JSON object/],
  ];
  for (const [body, re] of cases) {
    const r = await t.api('POST', `/api/devices/${d.id}/dr-events`, body);
    assert.is(r.status, 400, JSON.stringify(body));
    assert.match(r.json.error, re);
  }
  assert.is((await t.api('POST', `/api/devices/${d.id}/dr-events`, ok, { 'content-type': 'text/plain' })).status, 415);
  assert.is((await t.api('POST', '/api/devices/aaaaaaaaaaaaaaaa/dr-events', ok)).status, 404);
  await sleep(100);
  assert.is(d.bodies(Body.drEvent).length, 0, 'nothing was sent');
});

test('OpenADR 3.0.1 (ug-13): a SIMPLE interval → one dr-event named programID/eventName#interval', async () => {
  const { r, d, before, after } = await post(fixture(UG13));
  assert.is(r.status, 202, r.text);
  assert.is(r.json.format, 'openadr');
  assert.equal(r.json.openadr, [{ event: '44/simpleEvent', version: '3.0.1 or 3.1.0' }]);
  const [b] = await received(d, Body.drEvent, 1);
  const m = (b as { modification: number }).modification;
  assert.ok(m >= before && m <= after, 'no modificationNumber or modificationDateTime: the gateway clock');
  assert.equal(b, { type: Body.drEvent, id: '44/simpleEvent#0', start: unix('2025-03-14T00:00:00Z'), duration: 4 * 3600, level: 1, modification: m });
  assert.equal(r.json.bodies, [{ body: 'dr-event', ...b }]);
});

test('OpenADR 3.0.1 (ug-32): IMPORT_CAPACITY_LIMIT in KW → limits in W, intervals one after another; EXPORT limits noted', async () => {
  const { r, d } = await post(fixture(UG32));
  assert.is(r.status, 202, r.text);
  const got = await received(d, Body.drEvent, 2);
  const m = (got[0] as { modification: number }).modification;
  const t0 = unix('2023-02-10T00:00:00Z');
  assert.equal(got, [
    { type: Body.drEvent, id: '44/capacity_limit_Event#0', start: t0, duration: 1800, level: 0, limit: 10_000, modification: m },
    { type: Body.drEvent, id: '44/capacity_limit_Event#1', start: t0 + 1800, duration: 1800, level: 0, limit: 8000, modification: m },
  ]);
  assert.ok(r.json.notes.some((n: string) => /intervals\[0\]\.payloads\[1\]: payload type EXPORT_CAPACITY_LIMIT is not mapped/.test(n)), r.json.notes.join('\n'));
  assert.ok(r.json.notes.some((n: string) => /ended before now/.test(n)));
});

test('OpenADR 3.0.1 (ug-15): PRICE per KWH in USD → one tariff body per interval, exact 1/100000 units', async () => {
  const { r, d } = await post(fixture(UG15));
  assert.is(r.status, 202, r.text);
  const t0 = unix('2023-02-10T00:00:00Z');
  assert.equal(await received(d, Body.tariff, 2), [
    { type: Body.tariff, price: 17_000, currency: 'USD', from: t0, until: t0 + 3600 },
    { type: Body.tariff, price: 3000, currency: 'USD', from: t0 + 3600, until: t0 + 7200 },
  ]);
});

test('OpenADR 3.0.1 (toadr3): valuesMap targets are read; a payload type gridlet does not map → 422, nothing sent', async () => {
  const { r, d } = await post(fixture(TOADR3));
  assert.is(r.status, 422, r.text);
  assert.match(r.json.error, /nothing in this OpenADR event maps/);
  assert.match(r.json.error, /CONSUMPTION_POWER_LIMIT is not mapped/);
  assert.match(r.json.error, /targets are not used for routing/);
  await sleep(100);
  assert.is(d.downlinks.filter((x) => x.body.type === Body.drEvent || x.body.type === Body.tariff).length, 0);
});

test('OpenADR 3.1.0 (ug-07): an interval without a start follows the previous one; ?currency supplies the currency', async () => {
  const none = await post(fixture(UG07));
  assert.is(none.r.status, 422);
  assert.match(none.r.json.error, /no payloadDescriptor gives its currency \(add \?currency=EUR/);
  const { r, d } = await post(fixture(UG07), '?currency=EUR');
  assert.is(r.status, 202, r.text);
  const t0 = unix('2023-02-10T00:00:00Z');
  assert.equal(await received(d, Body.tariff, 2), [
    { type: Body.tariff, price: 17_000, currency: 'EUR', from: t0, until: t0 + 3600 },
    { type: Body.tariff, price: 22_000, currency: 'EUR', from: t0 + 3600, until: t0 + 3 * 3600 },
  ]);
  assert.ok(r.json.notes.includes('PRICE has no units in payloadDescriptors: per KWH assumed'));
  const euro = (await post(fixture(UG07), '?currency=euro')).r;
  assert.is(euro.status, 400);
  assert.match(euro.json.error, /^\?currency: must be an ISO 4217 currency code such as "EUR", not "euro"/);
});

test('OpenADR 3.0.1/3.1.0 (openleadr-rs): a list of response objects with id, event duration and randomizeStart', async () => {
  const { r, d } = await post(fixture(OPENLEADR), '?currency=EUR');
  assert.is(r.status, 202, r.text);
  assert.equal(r.json.openadr, [{ event: 'object-999-foo', version: '3.1.0' }]);
  const t0 = unix('2023-06-15T09:30:00Z');
  assert.equal(await received(d, Body.tariff, 1), [{ type: Body.tariff, price: 17_000, currency: 'EUR', from: t0, until: t0 + 3600 }]);
  assert.ok(r.json.notes.includes('event [0]: PRICE has no units in payloadDescriptors: per KWH assumed'), r.json.notes.join('\n'));
  assert.ok(r.json.notes.includes('[0].intervals[0]: randomizeStart does not apply to a tariff'));
});

test('OpenADR 3.1.0 shape: string targets, id and modificationDateTime name and version the dr-event', async () => {
  const ug13 = fixture(UG13);
  const v310 = {
    ...ug13, id: 'evt-7', objectType: 'EVENT', createdDateTime: '2025-03-13T11:00:00Z', modificationDateTime: '2025-03-13T12:00:00Z',
    targets: ['ven-1', 'group-1'], intervalPeriod: { ...ug13.intervalPeriod, randomizeStart: 'PT5M' },
    payloadDescriptors: [{ objectType: 'EVENT_PAYLOAD_DESCRIPTOR', payloadType: 'SIMPLE' }],
  };
  const { r, d } = await post(v310);
  assert.is(r.status, 202, r.text);
  assert.equal(r.json.openadr, [{ event: 'evt-7', version: '3.1.0' }]);
  assert.equal(await received(d, Body.drEvent, 1), [{
    type: Body.drEvent, id: 'evt-7#0', start: unix('2025-03-14T00:00:00Z'), duration: 4 * 3600, level: 1,
    modification: unix('2025-03-13T12:00:00Z'), window: 300,
  }]);
  // The same event in the 3.0.1 shape (valuesMap targets), with an explicit modificationNumber.
  const v301 = { ...v310, targets: [{ type: 'VEN_NAME', values: ['ven-1'] }], modificationNumber: 9 };
  const x = await post(v301);
  assert.is(x.r.status, 202, x.r.text);
  assert.equal(x.r.json.openadr, [{ event: 'evt-7', version: '3.0.1' }]);
  const [y] = await received(x.d, Body.drEvent, 1);
  assert.is((y as { modification: number }).modification, 9);
});

test('OpenADR 3.1.0 (ug-36, ug-24): nothing mappable, or no intervals at all → 422 with the notes', async () => {
  const cap = await post(fixture(UG36));
  assert.is(cap.r.status, 422, cap.r.text);
  assert.match(cap.r.json.error, /CAPACITY_RESERVATION is not mapped/);
  const report = await post(fixture(UG24));
  assert.is(report.r.status, 422);
  assert.match(report.r.json.error, /the event has no intervals/);
});

test('OpenADR: malformed events are refused with a 400 that names the field', async () => {
  const d = await pairDevice(t);
  const ug13 = fixture(UG13);
  const ug32 = fixture(UG32);
  const iv = (payloads: unknown, extra: object = {}) => ({ ...ug13, intervals: [{ id: 0, payloads, ...extra }] });
  const cases: [unknown, RegExp][] = [
    [iv([{ type: 'SIMPLE', values: [5] }]), /^OpenADR event: intervals\[0\]\.payloads\[0\]\.values\[0\]: must be a level 0, 1, 2 or 3/],
    [iv([{ type: 'SIMPLE', values: [1, 2] }]), /^OpenADR event: intervals\[0\]\.payloads\[0\]\.values: SIMPLE carries exactly one value/],
    [iv([{ type: 'SIMPLE', values: [1] }, { type: 'SIMPLE', values: [2] }]), /intervals\[0\]\.payloads\[1\]: is a second SIMPLE payload/],
    [iv([{ type: 'SIMPLE' }]), /^OpenADR event: intervals\[0\]\.payloads\[0\]: must be a valuesMap/],
    [{ ...ug13, intervalPeriod: { ...ug13.intervalPeriod, duration: 'PT-1H' } }, /^OpenADR event: intervalPeriod\.duration: "PT-1H" is not an ISO 8601 duration/],
    [{ ...ug13, intervalPeriod: { ...ug13.intervalPeriod, duration: 'PT0S' } }, /^OpenADR event: intervalPeriod\.duration: is PT0S .*duration 0 would cancel it/],
    [{ ...ug13, intervalPeriod: { duration: 'PT1H' } }, /^OpenADR event: intervalPeriod\.start: \(or intervals\[0\]\.intervalPeriod\.start\) is required/],
    [{ ...ug13, intervalPeriod: { start: '2025-03-14', duration: 'PT1H' } }, /^OpenADR event: intervalPeriod\.start: "2025-03-14" is not an RFC 3339 date-time/],
    [{ ...ug13, intervalPeriod: { ...ug13.intervalPeriod, randomizeStart: 'P2D' } }, /^OpenADR event: intervalPeriod\.randomizeStart: is 172800 s; at most 86400/],
    [{ ...ug13, programID: undefined }, /^OpenADR event: programID: is required/],
    [{ ...ug13, programID: 'has space' }, /^OpenADR event: programID: must be an OpenADR objectID/],
    [{ ...ug13, eventName: undefined }, /^OpenADR event: eventName: is needed when the event has no id/],
    [{ ...ug13, objectType: 'PROGRAM' }, /^OpenADR event: objectType: is "PROGRAM"; only an EVENT/],
    [{ ...ug13, targets: ['ven-1', { type: 'VEN_NAME', values: ['x'] }] }, /^OpenADR event: targets\[1\]: mixes 3\.1\.0 target strings with 3\.0\.1 valuesMap objects/],
    [{ ...ug13, targets: [7] }, /^OpenADR event: targets\[0\]: must be a target string/],
    [{ ...ug13, modificationDateTime: '12:22:12' }, /^OpenADR event: modificationDateTime: "12:22:12" is not an RFC 3339/],
    [{ ...ug13, modificationNumber: -2 }, /^OpenADR event: modificationNumber: must be an unsigned integer/],
    [iv([{ type: 'SIMPLE', values: [1] }], { id: 'zero' }), /^OpenADR event: intervals\[0\]\.id: must be an integer \(int32\)/],
    [{ ...ug13, intervals: [{ id: 0, payloads: [{ type: 'SIMPLE', values: [1] }] }, { id: 0, payloads: [] }] }, /intervals\[1\]\.id: repeats interval id 0/],
    [{ ...ug32, payloadDescriptors: [{ payloadType: 'IMPORT_CAPACITY_LIMIT', units: 'KVAR' }] }, /^OpenADR event: payloadDescriptors\[0\]\.units: IMPORT_CAPACITY_LIMIT units must be W, KW or MW/],
    [{ ...ug32, payloadDescriptors: [{ payloadType: 'IMPORT_CAPACITY_LIMIT', units: 'W' }], intervals: [{ id: 0, payloads: [{ type: 'IMPORT_CAPACITY_LIMIT', values: [2.5] }] }] },
      /^OpenADR event: intervals\[0\]\.payloads\[0\]\.values\[0\]: 2\.5 W is not a whole number of watts/],
    [{ ...fixture(UG15), intervals: [{ id: 0, payloads: [{ type: 'PRICE', values: [0.123456] }] }] }, /^OpenADR event: intervals\[0\]\.payloads\[0\]\.values\[0\]: 0\.123456 has more than 5 decimal places/],
    [{ ...ug13, intervals: { id: 0 } }, /^OpenADR event: intervals: must be a list/],
    [[], /^OpenADR event: body: is an empty list/],
    [[ug13, 'x'], /^OpenADR event: \[1\]: must be an OpenADR 3 event object/],
  ];
  for (const [body, re] of cases) {
    const r = await t.api('POST', `/api/devices/${d.id}/dr-events`, body);
    assert.is(r.status, 400, `${JSON.stringify(body).slice(0, 200)} → ${r.status} ${r.text}`);
    assert.match(r.json.error, re);
  }
  await sleep(100);
  assert.is(d.bodies(Body.drEvent).length + d.bodies(Body.tariff).length, 0, 'nothing was sent');
});

test('label groups: POST /api/dr-events?label= reaches every paired device that matches, and only those', async () => {
  const [a, b, c] = [await pairDevice(t), await pairDevice(t), await pairDevice(t)];
  await t.api('PUT', `/api/devices/${a.id}/labels`, { labels: { site: 'north', feeder: 'f1' } });
  await t.api('PUT', `/api/devices/${b.id}/labels`, { labels: { site: 'north', feeder: 'f2' } });
  await t.api('PUT', `/api/devices/${c.id}/labels`, { labels: { site: 'south' } });
  const ev = { id: 'grp-1', start: 1_900_000_000, duration: 900, level: 3, modification: 1 };
  const r = await t.api('POST', '/api/dr-events?label=site=north', ev);
  assert.is(r.status, 202, r.text);
  assert.equal(r.json.devices, [a.id, b.id].sort());
  assert.is(r.json.selector, 'site=north');
  const expected = { type: Body.drEvent, id: 'grp-1', start: 1_900_000_000, duration: 900, level: 3, modification: 1 };
  assert.equal(await received(a, Body.drEvent, 1), [expected]);
  assert.equal(await received(b, Body.drEvent, 1), [expected]);
  await sleep(100);
  assert.is(c.bodies(Body.drEvent).length, 0);

  const both = await t.api('POST', '/api/dr-events?label=site=north&label=feeder=f2', fixture(UG13));
  assert.is(both.status, 202, both.text);
  assert.equal(both.json.devices, [b.id]);
  await received(b, Body.drEvent, 2);

  assert.is((await t.api('POST', '/api/dr-events?label=site=west', ev)).status, 404);
  assert.match((await t.api('POST', '/api/dr-events', ev)).json.error, /give a label selector/);
  assert.is((await t.api('POST', '/api/dr-events?label=bad key', ev)).status, 400);
  assert.is((await t.api('POST', '/api/dr-events?label=site=north', { ...ev, level: 9 })).status, 400);
});

test('tariff: price per kWh as decimal text or number → 1/100000 units exactly; refusals name the field', async () => {
  const d = await pairDevice(t);
  const send = (body: unknown) => t.api('POST', `/api/devices/${d.id}/tariff`, body);
  const r = await send({ price: '0.23456', currency: 'EUR', from: '2030-01-01T00:00:00Z', until: 1_893_542_400 });
  assert.is(r.status, 202, r.text);
  const want = { type: Body.tariff, price: 23_456, currency: 'EUR', from: 1_893_456_000, until: 1_893_542_400 };
  assert.equal(r.json.bodies, [{ body: 'tariff', ...want }]);
  assert.equal(await received(d, Body.tariff, 1), [want]);
  // 0.1 and 0.29 are not exact binary fractions; 1.1e-3 has an exponent; prices can be negative.
  for (const [price, units] of [[0.1, 10_000], [0.29, 29_000], ['1.1e-3', 110], ['-0.05', -5000], [12, 1_200_000]] as const) {
    const x = await send({ price, currency: 'SEK', from: 1_900_000_000, until: 1_900_003_600 });
    assert.is(x.status, 202, x.text);
    assert.is(x.json.bodies[0].price, units, String(price));
  }
  const cases: [unknown, RegExp][] = [
    [{ price: '0.123456', currency: 'EUR', from: 1, until: 2 }, /^tariff: price: "0.123456" has more than 5 decimal places/],
    [{ price: 'cheap', currency: 'EUR', from: 1, until: 2 }, /^tariff: price: "cheap" is not a decimal number/],
    [{ price: '0.2', currency: 'eur', from: 1, until: 2 }, /^tariff: currency: must be an ISO 4217 currency code/],
    [{ price: '0.2', currency: 'EUR', from: 2, until: 1 }, /^tariff: until: must be later than from/],
    [{ price: '0.2', currency: 'EUR', from: 1 }, /^tariff: until: is required/],
    [{ price: '0.2', currency: 'EUR', from: 1, until: 2, vat: 1 }, /^tariff: vat: unknown field/],
  ];
  for (const [body, re] of cases) {
    const x = await send(body);
    assert.is(x.status, 400, JSON.stringify(body));
    assert.match(x.json.error, re);
  }
});

test('gridlet dr send: a native event to a device, an OpenADR file to a label group', async () => {
  const d = await pairDevice(t);
  const io = capture();
  const code = await drMain(['send', '--device', d.id, '--level', '2', '--start', '2030-01-01T17:00:00Z', '--duration', '600',
    '--limit', '3000', '--randomize', '60', '--gateway', t.gw.httpUrl], io);
  assert.is(code, 0, io.stderr.join('\n'));
  assert.equal(io.stdout, [`sent to ${d.id}: dr-event cli-2030-01-01T17:00:00Z: level 2 from 2030-01-01T17:00:00Z for 600 s, limit 3000 W, start randomised over 60 s`]);
  const [b] = await received(d, Body.drEvent, 1);
  assert.equal({ ...b, modification: 0 }, {
    type: Body.drEvent, id: 'cli-2030-01-01T17:00:00Z', start: unix('2030-01-01T17:00:00Z'), duration: 600, level: 2, limit: 3000, window: 60, modification: 0,
  });

  await t.api('PUT', `/api/devices/${d.id}/labels`, { labels: { cli: 'yes' } });
  const dir = tempDir();
  try {
    const file = join(dir, 'event.json');
    writeFileSync(file, JSON.stringify(fixture(UG32)));
    const g = capture();
    assert.is(await drMain(['send', '--label', 'cli=yes', '--openadr', file, '--gateway', t.gw.httpUrl], g), 0, g.stderr.join('\n'));
    assert.ok(g.stdout[0].startsWith(`sent to 1 device(s) (${d.id}): dr-event 44/capacity_limit_Event#0: level 0 from 2023-02-10T00:00:00Z for 1800 s, limit 10000 W`), g.stdout[0]);
    assert.ok(g.stdout.some((l) => l.startsWith('note: intervals[0].payloads[1]: payload type EXPORT_CAPACITY_LIMIT')));
    await received(d, Body.drEvent, 3);

    const j = capture();
    assert.is(await drMain(['send', '--device', d.id, '--openadr', file, '--gateway', t.gw.httpUrl, '--json'], j), 0);
    assert.is(JSON.parse(j.stdout.join('\n')).bodies.length, 2);

    const bad = capture();
    assert.is(await drMain(['send', '--device', d.id, '--level', '7', '--start', 'now', '--duration', '60', '--gateway', t.gw.httpUrl], bad), 1);
    assert.match(bad.stderr[0], /level: must be a level 0, 1, 2 or 3/);
    const usage = capture();
    assert.is(await drMain(['send', '--device', d.id, '--openadr', file, '--level', '1', '--gateway', t.gw.httpUrl], usage), 2);
    assert.match(usage.stderr[0], /--openadr sends the event as it is; --level does not apply/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
