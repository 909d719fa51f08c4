// The live event stream GET /api/events in the audit log: opening a stream is one audit entry (per
// device of its `?device=` filter, else one about every device `*`), not one per event it carries; a
// filtered stream carries only its devices' events.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Body } from '../../firmware/core/wire/bodies.js';
import { pairDevice, startTestGateway, type TestGateway } from './support.js';

let t: TestGateway;

test.before(async () => {
  t = await startTestGateway();
});

test.after(async () => {
  await t.close();
});

type Sse = { event: string; data: any };

/** Reads Server-Sent Events until `until` holds for what was read. */
async function readUntil(reader: ReadableStreamDefaultReader<Uint8Array>, until: (events: Sse[]) => boolean): Promise<Sse[]> {
  const text = new TextDecoder();
  const events: Sse[] = [];
  let buf = '';
  while (!until(events)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the stream ended after ${events.map((e) => e.event).join(', ')}`);
    buf += text.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const ev = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (ev && data) events.push({ event: ev, data: JSON.parse(data) });
    }
  }
  return events;
}

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
  const events = await readUntil(reader, (es) => es.filter((e) => e.event === 'records').length === 3);
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
