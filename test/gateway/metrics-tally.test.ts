// Hot counters kept as plain numbers and handed to prom-client when read (gateway/metrics.ts Tally):
// what a scrape shows is every increment so far, once, whenever and however often it is read.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GatewayMetrics } from '../../gateway/metrics.js';

async function values(m: GatewayMetrics, name: string): Promise<{ [label: string]: number }> {
  const got = await m.registry.getSingleMetric(name)!.get();
  return Object.fromEntries(got.values.map((v) => [Object.values(v.labels).join(','), v.value]));
}

test('accepted frames, stored records and sent downlinks add up across reads, by label', async () => {
  const m = new GatewayMetrics({ devicesByState: async () => ({}), connectedDevices: () => 0, pendingDownlinks: async () => 0, processMetrics: false });
  assert.equal(await values(m, 'gridlet_frames_accepted_total'), {});
  for (let i = 0; i < 5; i++) m.frameAccepted(1);
  m.frameAccepted(3);
  m.recordsAdded(1, 4);
  m.recordsAdded(7);
  m.downlinkSent(16);
  assert.equal(await values(m, 'gridlet_frames_accepted_total'), { readings: 5, status: 1 });
  assert.equal(await values(m, 'gridlet_frames_accepted_total'), { readings: 5, status: 1 }, 'a second read counts nothing twice');
  m.frameAccepted(1);
  m.frameAccepted(99);
  m.recordsAdded(1, 4);
  m.downlinkSent(16);
  m.downlinkSent(17);
  assert.equal(await values(m, 'gridlet_frames_accepted_total'), { readings: 6, status: 1, 99: 1 });
  assert.equal(await values(m, 'gridlet_records_stored_total'), { reading: 8, gap: 1 });
  assert.equal(await values(m, 'gridlet_downlinks_sent_total'), { ack: 2, config: 1 });
  const text = await m.registry.metrics();
  assert.match(text, /^gridlet_frames_accepted_total\{body="readings"\} 6$/m);
  assert.match(text, /^gridlet_downlinks_sent_total\{body="ack"\} 2$/m);
  assert.equal(m.counts.records, { reading: 8, gap: 1 });
});

test.run();
