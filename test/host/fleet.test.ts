// The fleet simulator (`gridlet sim`) against a real gateway with its embedded broker: every meter is
// paired through the HTTP API, reports, has its links dropped, and the report counts loss and
// duplication from what the gateway stored.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Fleet, reportLine } from '../../host/sim/fleet.js';
import { startTestGateway, type TestGateway } from '../gateway/support.js';

let t: TestGateway;

test.before(async () => {
  t = await startTestGateway({ tuning: { pairTimeoutMs: 15_000 } });
});

test.after(async () => {
  await t.close();
});

test('20 meters pair through the API, report through link flaps, and the gateway has every record exactly once', async () => {
  const fleet = new Fleet({
    meters: 20, broker: t.gw.mqttUrl, gateway: t.gw.httpUrl, durationS: 6, intervalMs: 500, flapEveryS: 3, graceS: 30,
    seed: 7, topicPrefix: t.prefix,
  });
  try {
    const r = await fleet.run();
    assert.is(r.paired, 20);
    assert.is(r.unpaired, 0);
    assert.ok(r.flaps > 0, 'links were dropped during the run');
    // 20 meters × ~12 readings of 4 channels each, plus their power-up events.
    assert.ok(r.sent > 20 * 4 * 8, `sent ${r.sent}`);
    assert.is(r.acked, r.sent, 'every record acknowledged after the grace period');
    assert.is(r.lost, 0);
    assert.is(r.dup, 0);
    assert.ok(r.p99_ms >= r.p50_ms);
    assert.match(reportLine(r), new RegExp(`^sim report meters=20 sent=${r.sent} acked=${r.sent} lost=0 dup=0 p50_ms=\\d+ p99_ms=\\d+$`));
    // The gateway's own view agrees: every meter is paired.
    const devices = await t.api('GET', '/api/devices');
    const list = Array.isArray(devices.json) ? devices.json : devices.json.devices;
    assert.is(list.filter((d: { state: string }) => d.state === 'paired').length, 20);
  } finally {
    fleet.stop();
  }
});

test('records the gateway does not have are counted as lost', async () => {
  // A second gateway that never saw these meters' frames: reading back from it finds nothing stored.
  const other = await startTestGateway();
  const fleet = new Fleet({
    meters: 2, broker: t.gw.mqttUrl, gateway: t.gw.httpUrl, durationS: 2, intervalMs: 500, graceS: 10, seed: 8, topicPrefix: t.prefix,
  });
  try {
    const r = await fleet.run();
    assert.is(r.lost, 0);
    const missing = await fleet.recount(other.gw.httpUrl);
    assert.is(missing.lost, r.sent, 'nothing of what the meters sent is on the other gateway');
  } finally {
    fleet.stop();
    await other.close();
  }
});

test.run();
