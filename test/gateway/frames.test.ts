import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encode } from '../../firmware/core/cbor.js';
import { randomBytes } from '../../firmware/core/crypto.js';
import { Body } from '../../firmware/core/wire/bodies.js';
import { Direction, sealFrame } from '../../firmware/core/wire/frame.js';
import { pairDevice, sleep, startTestGateway, type TestGateway } from './support.js';

let t: TestGateway;

test.before(async () => {
  t = await startTestGateway();
});

test.after(async () => {
  await t.close();
});

const T0 = 1_700_000_000;

async function dropped(reason: string): Promise<number> {
  return t.metric('gridlet_frames_dropped_total', { reason });
}

/** Waits until the gateway has handled everything the device sent so far (a probe frame is acked). */
async function settle(d: Awaited<ReturnType<typeof pairDevice>>, seq: number): Promise<void> {
  await d.send({ type: Body.readings, first: seq, records: [[T0, 1, seq]] });
  await d.waitAck(seq);
}

test('replayed, stale-counter, forged and wrong-direction frames are dropped, counted and never acted on', async () => {
  const d = await pairDevice(t);
  const first = await d.send({ type: Body.readings, first: 1, records: [[T0, 1, 1]] });
  await d.waitAck(1);

  // The same frame again: replay.
  await d.sendRaw(first);
  // A fresh frame under an old counter (1 was used): replay, and not stored even though seq 2 is new.
  await d.send({ type: Body.readings, first: 2, records: [[T0, 1, 999]] }, { counter: 1 });
  // A counter far below the window: move the window up, then go 100 back.
  await d.send({ type: Body.readings, first: 2, records: [[T0, 1, 2]] }, { counter: 200 });
  await d.waitAck(2);
  await d.send({ type: Body.readings, first: 3, records: [[T0, 1, 999]] }, { counter: 100 });
  // Sealed with another key: forged.
  await d.send({ type: Body.readings, first: 3, records: [[T0, 1, 999]] }, { key: randomBytes(32) });
  // A tampered box: forged.
  const f = d.frame({ type: Body.readings, first: 3, records: [[T0, 1, 999]] }).bytes;
  f[f.length - 1] ^= 0x40;
  await d.sendRaw(f);
  // Sealed as a downlink (wrong direction in the nonce): forged.
  await d.send({ type: Body.readings, first: 3, records: [[T0, 1, 999]] }, { direction: Direction.down });

  await settle(d, 3);
  assert.is(await dropped('replay'), 3);
  assert.is(await dropped('forged'), 3);
  const r = await t.api('GET', `/api/devices/${d.id}/readings`);
  assert.equal(r.json.records, [[1, T0, 1, 1], [2, T0, 1, 2], [3, T0, 1, 3]], 'nothing from a dropped frame was stored');
});

test('out-of-order counters inside the window are accepted once each', async () => {
  const d = await pairDevice(t);
  const a = d.frame({ type: Body.readings, first: 1, records: [[T0, 1, 1]] }, { counter: 5 });
  const b = d.frame({ type: Body.readings, first: 2, records: [[T0, 1, 2]] }, { counter: 3 });
  const c = d.frame({ type: Body.readings, first: 3, records: [[T0, 1, 3]] }, { counter: 4 });
  for (const x of [a, c, b, b]) await d.sendRaw(x.bytes);
  await d.waitAck(3);
  await sleep(50);
  assert.equal((await t.api('GET', `/api/devices/${d.id}/readings`)).json.records, [[1, T0, 1, 1], [2, T0, 1, 2], [3, T0, 1, 3]]);
});

test('malformed frames, oversized frames and valid frames with bad bodies are dropped and counted', async () => {
  const d = await pairDevice(t);
  const before = { malformed: await dropped('malformed'), oversized: await dropped('oversized'), body: await dropped('body') };
  const seal = (body: unknown, counter: number) => sealFrame(encode(body as never), counter, randomBytes(8), d.ks!, Direction.up);
  d.upCounter = 10;
  // Truncated CBOR, not an array, wrong version, bad salt length, counter 0, trailing bytes.
  const good = d.frame({ type: Body.readings, first: 1, records: [[T0, 1, 1]] }).bytes;
  await d.sendRaw(good.subarray(0, good.length - 5));
  await d.sendRaw(encode({ a: 1 }));
  await d.sendRaw(encode([2, 20, randomBytes(8), randomBytes(32)]));
  await d.sendRaw(encode([1, 21, randomBytes(7), randomBytes(32)]));
  await d.sendRaw(encode([1, 0, randomBytes(8), randomBytes(32)]));
  await d.sendRaw(new Uint8Array([...good, 0]));
  await d.sendRaw(new Uint8Array(0));
  // A declared array of 2^32 items in 9 bytes.
  await d.sendRaw(new Uint8Array([0x9b, 0, 0, 0, 1, 0, 0, 0, 0]));
  // Over 2048 bytes.
  await d.sendRaw(encode([1, 22, randomBytes(8), randomBytes(2100)]));
  // Valid frames whose bodies are wrong: a downlink type, a missing field, a wrong type, a float-free
  // but negative seq, no map at all, an unknown type, a gap backwards, readings from seq 0.
  await d.sendRaw(seal(new Map([[0, Body.ack], [1, 5]]), 30));
  await d.sendRaw(seal(new Map([[0, Body.readings], [1, 1]]), 31));
  await d.sendRaw(seal(new Map<number, unknown>([[0, Body.readings], [1, 'one'], [2, []]]), 32));
  await d.sendRaw(seal(new Map<number, unknown>([[0, Body.readings], [1, -1], [2, []]]), 33));
  await d.sendRaw(seal([1, 2, 3], 34));
  await d.sendRaw(seal(new Map([[0, 99]]), 35));
  await d.sendRaw(seal(new Map<number, unknown>([[0, Body.gap], [1, 9], [2, 3], [3, 'full']]), 36));
  await d.sendRaw(seal(new Map<number, unknown>([[0, Body.readings], [1, 0], [2, [[T0, 1, 1]]]]), 37));
  await d.sendRaw(seal(new Map<number, unknown>([[0, Body.readings], [1, 1], [2, [[T0, 1]]]]), 38));
  d.upCounter = 40;
  await settle(d, 1);
  assert.is(await dropped('malformed') - before.malformed, 8);
  assert.is(await dropped('oversized') - before.oversized, 1);
  assert.is(await dropped('body') - before.body, 9);
  assert.equal((await t.api('GET', `/api/devices/${d.id}/readings`)).json.records, [[1, T0, 1, 1]]);
  // A body-refused frame does not use up its counter: the device may send a good body under it.
  await d.send({ type: Body.readings, first: 2, records: [[T0, 1, 2]] }, { counter: 37 });
  await d.waitAck(2);
});

test('frames from a device nobody paired are dropped as unknown-device', async () => {
  const d = t.device();
  await d.connect(t.gw.mqttUrl);
  d.ks = randomBytes(32);
  const before = await dropped('unknown-device');
  await d.send({ type: Body.readings, first: 1, records: [[T0, 1, 1]] });
  const probe = await pairDevice(t);
  await settle(probe, 1);
  assert.is(await dropped('unknown-device') - before, 1);
  assert.is(d.downlinks.length, 0);
});

test.run();
