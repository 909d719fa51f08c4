import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Body } from '../../firmware/core/wire/bodies.js';
import { pairDevice, sleep, startTestGateway, type TestGateway } from './support.js';

let t: TestGateway;

test.before(async () => {
  t = await startTestGateway();
});

test.after(async () => {
  await t.close();
});

const T0 = 1_700_000_000;

test('readings are stored exactly once despite resends and out-of-order frames; the ack is the contiguous prefix', async () => {
  const d = await pairDevice(t);
  const records: { [k: string]: unknown }[] = [];
  t.gw.events.on('records', (e: { deviceId: string; records: unknown[] }) => {
    if (e.deviceId === d.id) records.push(...(e.records as never[]));
  });
  // seqs 4..6 arrive first: nothing is contiguous yet.
  await d.send({ type: Body.readings, first: 4, records: [[T0 + 4, 1, 400], [T0 + 5, 1, 500], [T0 + 6, 1, 600]] });
  await d.until(() => d.bodies(Body.ack).length >= 1, 3000, 'first ack');
  assert.is(d.acked, 0, 'no contiguous prefix yet');
  // then 1..3, then a resend of 1..3 and of 4..6 under new counters.
  await d.send({ type: Body.readings, first: 1, records: [[T0 + 1, 1, 100], [T0 + 2, 1, 200], [T0 + 3, 3, -5]] });
  await d.waitAck(6);
  await d.send({ type: Body.readings, first: 1, records: [[T0 + 1, 1, 100], [T0 + 2, 1, 200], [T0 + 3, 3, -5]] });
  await d.send({ type: Body.readings, first: 4, records: [[T0 + 4, 1, 400], [T0 + 5, 1, 500], [T0 + 6, 1, 600]] });
  await d.until(() => d.bodies(Body.ack).length >= 4, 3000, 'acks of the resends');
  assert.is(d.acked, 6);
  const r = await t.api('GET', `/api/devices/${d.id}/readings`);
  assert.is(r.status, 200);
  assert.equal(r.json.records, [
    [1, T0 + 1, 1, 100], [2, T0 + 2, 1, 200], [3, T0 + 3, 3, -5], [4, T0 + 4, 1, 400], [5, T0 + 5, 1, 500], [6, T0 + 6, 1, 600],
  ]);
  assert.is(records.length, 6, 'each record announced once');
  assert.is(await t.metric('gridlet_records_stored_total', { kind: 'reading' }), 6);
  assert.is((await t.api('GET', `/api/devices/${d.id}`)).json.ackedSeq, 6);
  // Paging.
  const page = await t.api('GET', `/api/devices/${d.id}/readings?from=3&limit=2`);
  assert.equal(page.json.records, [[3, T0 + 3, 3, -5], [4, T0 + 4, 1, 400]]);
});

test('events and gaps share the sequence; a gap lets the ack pass lost records and skips stored ones', async () => {
  const d = await pairDevice(t);
  await d.send({ type: Body.event, seq: 1, t: T0, kind: 'power-up' });
  await d.send({ type: Body.event, seq: 2, t: T0 + 1, kind: 'power-restored', data: { off_s: 12 } });
  await d.waitAck(2);
  // 3..9 lost on the device, but 5 already reached the gateway before the device dropped it.
  await d.send({ type: Body.readings, first: 5, records: [[T0 + 5, 1, 5]] });
  await d.send({ type: Body.readings, first: 10, records: [[T0 + 10, 1, 10]] });
  await d.until(() => d.bodies(Body.ack).length >= 4, 3000, 'acks');
  assert.is(d.acked, 2, 'a hole at 3 holds the ack');
  await d.send({ type: Body.gap, first: 3, last: 9, reason: 'full' });
  await d.waitAck(10);
  const r = await t.api('GET', `/api/devices/${d.id}/readings`);
  const recs = r.json.records as unknown[][];
  assert.equal(recs[0], [1, T0, 'event', 'power-up', {}]);
  assert.equal(recs[1], [2, T0 + 1, 'event', 'power-restored', { off_s: 12 }]);
  assert.equal(recs.slice(2).map((x) => [x[0], x[2], x[3]]), [[3, 'gap', 4], [5, 1, 5], [6, 'gap', 9], [10, 1, 10]]);
  // A read starting inside a gap begins with that gap.
  const inGap = await t.api('GET', `/api/devices/${d.id}/readings?from=7&limit=1`);
  assert.equal(inGap.json.records.map((x: unknown[]) => [x[0], x[2], x[3]]), [[6, 'gap', 9]]);
  // A repeated gap adds nothing.
  const before = await t.metric('gridlet_records_stored_total', { kind: 'gap' });
  await d.send({ type: Body.gap, first: 3, last: 9, reason: 'full' });
  await d.until(() => d.bodies(Body.ack).length >= 6, 3000, 'ack of the repeated gap');
  assert.is(await t.metric('gridlet_records_stored_total', { kind: 'gap' }), before);
  assert.is(d.acked, 10);
});

test('t = 0 is stamped with the receipt time and answered with a time body, at most once an hour', async () => {
  const d = await pairDevice(t);
  const atPairing = d.bodies(Body.time).length; // sent while the device reconnected: may be lost
  const before = Math.floor(Date.now() / 1000);
  await d.send({ type: Body.readings, first: 1, records: [[0, 1, 42]] });
  await d.waitAck(1);
  await d.send({ type: Body.readings, first: 2, records: [[0, 1, 43]] });
  await d.waitAck(2);
  const r = await t.api('GET', `/api/devices/${d.id}/readings`);
  const [rec] = r.json.records;
  assert.ok(rec[1] >= before && rec[1] <= before + 5, `stamped with receipt time, got ${rec[1]}`);
  await sleep(100);
  assert.is(d.bodies(Body.time).length - atPairing, 1, 'one time body for two t = 0 frames');
  const time = d.bodies(Body.time).at(-1) as { time: number };
  assert.ok(Math.abs(time.time - before) <= 5);
});

test('readings of an unknown device: 404; bad paging parameters: 400', async () => {
  assert.is((await t.api('GET', '/api/devices/abcdefghijklmnop/readings')).status, 404);
  const d = await pairDevice(t);
  for (const q of ['from=0', 'from=-1', 'from=x', 'limit=0', 'limit=10001', 'limit=1.5']) {
    const r = await t.api('GET', `/api/devices/${d.id}/readings?${q}`);
    assert.is(r.status, 400, q);
    assert.type(r.json.error, 'string');
  }
  assert.is((await t.api('GET', `/api/devices/${d.id}/readings?limit=10000`)).status, 200);
});

test('status, job, guest-ack and down-ack bodies are accepted; a job on a gateway without an LLM backend is answered with an error', async () => {
  const d = await pairDevice(t);
  await d.send({ type: Body.status, t: T0, uptime: 5, buffered: 0, dropped: 0, heap: 1000, guests: [], link: 'primary' });
  await d.send({ type: Body.job, job: 7, kind: 'llm.generate', input: { prompt: 'hi' } });
  await d.until(() => d.bodies(Body.jobResult).length === 1, 3000, 'job-result');
  const jr = d.bodies(Body.jobResult)[0];
  assert.equal({ ...jr, error: undefined }, { type: Body.jobResult, job: 7, index: 0, text: '', final: true, error: undefined });
  assert.match((jr as { error: string }).error, /has no LLM backend: start it with --llm-url URL or --llm-gguf PATH/);
  await d.send({ type: Body.guestAck, cid: new Uint8Array([1, 85, 18, 32, 1, 2]), state: 'running' });
  await d.send({ type: Body.downAck, counter: 1 });
  await sleep(100);
  const dev = (await t.api('GET', `/api/devices/${d.id}`)).json;
  assert.is(dev.status.link, 'primary');
  assert.is(Object.keys(dev.guests).length, 1);
  assert.is(await t.metric('gridlet_frames_accepted_total', { body: 'job' }), 1);
});

test.run();
