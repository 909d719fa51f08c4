// The live event stream GET /api/events in the audit log: opening a stream is one audit entry (per
// device of its `?device=` filter, else one about every device `*`), not one per event it carries; a
// filtered stream carries only its devices' events.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Body } from '../../firmware/core/wire/bodies.js';
import { pairDevice, readSse, startTestGateway, type TestGateway } from './support.js';

let t: TestGateway;

test.before(async () => {
  t = await startTestGateway();
});

test.after(async () => {
  await t.close();
});


const streamEntries = async (device?: string) =>
  ((await t.api('GET', `/api/audit${device ? `?device=${device}` : ''}`)).json.entries as any[]).filter((e) => e.kind === 'events');

test('a stream opened is audited once, with its device filter; it carries only that device\'s events', async () => {
  const d1 = await pairDevice(t);
  const d2 = await pairDevice(t);
  assert.equal(await streamEntries(), []);

  const res = await fetch(`${t.gw.httpUrl}/api/events?device=${d1.id}`);
  assert.is(res.status, 200);
  const reader = res.body!.getReader();
  const entries = await streamEntries();
  assert.equal(entries.map((e) => [e.audience, e.deviceId, e.kind, e.level, e.via, e.purposes]),
    [['http', d1.id, 'events', 'full', 'http', ['grid-operations', 'billing']]]);

  const now = Math.floor(Date.now() / 1000);
  await d2.send({ type: Body.readings, first: 1, records: [[now, 1, 7]] });
  await d2.waitAck(1);
  for (let seq = 1; seq <= 3; seq++) {
    await d1.send({ type: Body.readings, first: seq, records: [[now + seq, 1, seq]] });
    await d1.waitAck(seq);
  }
  const events = await readSse(reader, (es) => es.filter((e) => e.event === 'records').length === 3);
  await reader.cancel();
  assert.equal(events.filter((e) => e.event === 'records').map((e) => [e.data.deviceId, e.data.lastSeq]), [[d1.id, 1], [d1.id, 2], [d1.id, 3]]);
  assert.ok(events.every((e) => e.event === 'ready' || e.data.deviceId === d1.id), 'no event of the other device');
  // Three batches of readings went out on the stream; the audit log still has the one entry of its opening.
  assert.is((await streamEntries()).length, 1);
  assert.equal(await streamEntries(d2.id), []);

  // Unfiltered: one entry about every device, which each device's audit shows.
  const all = await fetch(`${t.gw.httpUrl}/api/events`);
  assert.is(all.status, 200);
  await all.body!.cancel();
  assert.equal((await streamEntries()).map((e) => e.deviceId), ['*', d1.id]);
  assert.equal((await streamEntries(d2.id)).map((e) => e.deviceId), ['*']);
  assert.equal((await streamEntries(d1.id)).map((e) => e.deviceId), ['*', d1.id]);

  const bad = await fetch(`${t.gw.httpUrl}/api/events?device=nope`);
  assert.is(bad.status, 400);
  assert.match(((await bad.json()) as { error: string }).error, /device "nope" is not a device id/);
  assert.is((await streamEntries()).length, 2, 'a refused stream is not audited');
});

test.run();
