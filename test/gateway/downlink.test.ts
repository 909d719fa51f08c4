import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Body } from '../../firmware/core/wire/bodies.js';
import { pairDevice, sleep, startTestGateway, type TestGateway } from './support.js';

let t: TestGateway;

test.before(async () => {
  t = await startTestGateway({ tuning: { resendIntervalMs: 400 } });
});

test.after(async () => {
  await t.close();
});

const T0 = 1_700_000_000;

/** Makes the gateway hear the device: one more reading, acked. */
function hearing(d: Awaited<ReturnType<typeof pairDevice>>): () => Promise<void> {
  let seq = 0;
  return async () => {
    seq++;
    await d.send({ type: Body.readings, first: seq, records: [[T0, 1, seq]] });
    await d.waitAck(seq);
  };
}

test('a state-changing downlink is kept until a down-ack covers it and resent, re-sealed, when the device is heard', async () => {
  const d = await pairDevice(t);
  const heard = hearing(d);
  await t.gw.sendDownlink(d.id, { type: Body.config, values: { interval_s: 10 } });
  await d.until(() => d.bodies(Body.config).length === 1, 3000, 'config');
  assert.is(await t.metric('gridlet_downlinks_pending'), 1);
  const first = d.downlinks.find((x) => x.body.type === Body.config)!.counter;

  await heard(); // within the resend interval: not resent
  await sleep(50);
  assert.is(d.bodies(Body.config).length, 1);

  await sleep(450);
  await heard();
  await d.until(() => d.bodies(Body.config).length === 2, 3000, 'config resent');
  const again = d.downlinks.filter((x) => x.body.type === Body.config)[1];
  assert.ok(again.counter > first, 'resent under a new counter');
  assert.equal(again.body, { type: Body.config, values: { interval_s: 10 } });
  assert.is(d.refusedDownlinks, 0, 'every downlink opened and was fresh for the device');

  // A down-ack for the first counter does not cover the resend.
  await d.send({ type: Body.downAck, counter: first });
  await sleep(450);
  await heard();
  await d.until(() => d.bodies(Body.config).length === 3, 3000, 'still resent');
  const last = d.downlinks.filter((x) => x.body.type === Body.config)[2].counter;
  await d.send({ type: Body.downAck, counter: last });
  await sleep(450);
  await heard();
  await sleep(100);
  assert.is(d.bodies(Body.config).length, 3, 'acknowledged: no more resends');
  assert.is(await t.metric('gridlet_downlinks_pending'), 0);
});

test('acks and time bodies are not kept; only paired devices get downlinks', async () => {
  const d = await pairDevice(t);
  await d.send({ type: Body.readings, first: 1, records: [[0, 1, 1]] });
  await d.waitAck(1);
  assert.is(await t.metric('gridlet_downlinks_pending'), 0);
  const e = await t.gw.sendDownlink('abcdefghijklmnop', { type: Body.config, values: {} }).then(() => undefined, (x: Error) => x.message);
  assert.match(String(e), /not paired/);
});

test('fw-offer and fw-cancel are kept and resent until down-acked; every `paired` is answered with the time', async () => {
  const d = await pairDevice(t);
  const heard = hearing(d);
  const cid = new Uint8Array(36).fill(7);
  await t.gw.sendDownlink(d.id, { type: Body.fwOffer, manifest: new Uint8Array([0xa0]), signature: new Uint8Array(64) });
  await t.gw.sendDownlink(d.id, { type: Body.fwCancel, cid });
  await d.until(() => d.bodies(Body.fwCancel).length === 1, 3000, 'fw-cancel');
  assert.is(await t.metric('gridlet_downlinks_pending'), 2);
  await sleep(450);
  await heard();
  await d.until(() => d.bodies(Body.fwOffer).length === 2 && d.bodies(Body.fwCancel).length === 2, 3000, 'both resent');
  // The cancel's ack does not cover the offer (sent under a lower counter): the offer may have been lost.
  const lastOf = (type: number) => Math.max(...d.downlinks.filter((x) => x.body.type === type).map((x) => x.counter));
  assert.ok(lastOf(Body.fwCancel) > lastOf(Body.fwOffer));
  await d.send({ type: Body.downAck, counter: lastOf(Body.fwCancel) });
  await sleep(450);
  await heard();
  await d.until(() => d.bodies(Body.fwOffer).length === 3, 3000, 'the offer resent');
  assert.is(d.bodies(Body.fwCancel).length, 2, 'the cancel, acknowledged, is not');
  await d.send({ type: Body.downAck, counter: lastOf(Body.fwOffer) });
  await sleep(450);
  await heard();
  await sleep(100);
  assert.is(d.bodies(Body.fwOffer).length, 3, 'acknowledged: no more resends');
  assert.is(await t.metric('gridlet_downlinks_pending'), 0);

  // A meter restarted into a new image says `paired` again: the gateway learns its version and answers each time.
  const times = d.bodies(Body.time).length;
  await d.send({ type: Body.paired, firmware: '0.2.0', model: 'test' });
  await d.until(() => d.bodies(Body.time).length === times + 1, 3000, 'time after paired');
  await d.send({ type: Body.paired, firmware: '0.2.0', model: 'test' });
  await d.until(() => d.bodies(Body.time).length === times + 2, 3000, 'time after the second paired');
  const row = await t.api('GET', `/api/devices/${d.id}`);
  assert.is(row.json.firmware, '0.2.0');
});

test.run();
