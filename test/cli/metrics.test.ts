// GET /metrics as an operator's Prometheus scrapes it, after real traffic from wire devices: the
// figures one alerts on move as they should. And the gateway's logs: JSON lines, a human format,
// and dropped frames logged without a flood flooding the log.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { Body } from '../../firmware/core/wire/bodies.js';
import { gatewayLogger, prettyLine } from '../../host/cli/gateway.js';
import { dropLogger } from '../../gateway/metrics.js';
import { eventually, helloSeen, metricValue, pairDevice, startTestGateway, type TestGateway } from '../gateway/support.js';

let t: TestGateway;
const T0 = 1_700_000_000;

test.before(async () => {
  t = await startTestGateway();
});

test.after(async () => {
  await t.close();
});

const scrape = async () => (await t.api('GET', '/metrics')).text;

test('every documented metric is there with HELP text, process metrics included', async () => {
  const text = await scrape();
  for (const name of [
    'gridlet_devices', 'gridlet_devices_connected', 'gridlet_device_backlog_records', 'gridlet_device_backlog_records_max',
    'gridlet_devices_backlogged', 'gridlet_frames_received_total', 'gridlet_frames_accepted_total', 'gridlet_frames_dropped_total',
    'gridlet_messages_dropped_total', 'gridlet_records_stored_total', 'gridlet_ack_latency_seconds', 'gridlet_pairings_total',
    'gridlet_downlinks_pending', 'gridlet_downlinks_sent_total', 'gridlet_offload_jobs_queued', 'gridlet_offload_jobs_running',
    'gridlet_broker_refusals_total', 'process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds',
    'gridlet_store_group_commits_total', 'gridlet_store_group_commit_jobs_total', 'gridlet_mesh_signatures_total', 'gridlet_mesh_sign_threads',
  ]) {
    assert.match(text, new RegExp(`^# HELP ${name} \\S`, 'm'), name);
  }
  assert.match(text, /^# TYPE gridlet_ack_latency_seconds histogram$/m);
});

test('pairing, readings, a forged frame, a backlog and a disconnect move the metrics an operator alerts on', async () => {
  // A refused pairing, then a good one.
  const d = t.device();
  await d.connect(t.gw.mqttUrl);
  await d.hello();
  await helloSeen(t, d);
  const wrong = d.code.startsWith('A') ? 'BBBBB-BBBBB' : 'AAAAA-AAAAA';
  assert.is((await t.api('POST', '/api/pairings', { deviceId: d.id, code: wrong })).status, 403);
  assert.is(metricValue(await scrape(), 'gridlet_pairings_total', { result: 'refused' }), 1);
  assert.is(metricValue(await scrape(), 'gridlet_devices', { state: 'seen' }), 1);
  await d.close();
  t.devices.splice(t.devices.indexOf(d), 1);
  const a = await pairDevice(t, d);
  t.devices.push(a);
  let text = await scrape();
  assert.is(metricValue(text, 'gridlet_pairings_total', { result: 'paired' }), 1);
  assert.is(metricValue(text, 'gridlet_devices', { state: 'paired' }), 1);
  assert.is(metricValue(text, 'gridlet_devices', { state: 'seen' }), 0);
  await eventually(async () => metricValue(await scrape(), 'gridlet_devices_connected') === 1, 3000, 'connected 1');

  // Five frames of readings, each acknowledged: the ack latency histogram counts five.
  const before = await scrape();
  const acksBefore = metricValue(before, 'gridlet_ack_latency_seconds_count');
  const commitsBefore = metricValue(before, 'gridlet_store_group_commits_total');
  const jobsBefore = metricValue(before, 'gridlet_store_group_commit_jobs_total');
  for (let i = 0; i < 5; i++) {
    await a.send({ type: Body.readings, first: 2 * i + 1, records: [[T0 + 2 * i, 1, 100 + i], [T0 + 2 * i + 1, 3, 500]] });
    await a.waitAck(2 * i + 2);
  }
  text = await scrape();
  assert.is(metricValue(text, 'gridlet_ack_latency_seconds_count') - acksBefore, 5);
  assert.is(metricValue(text, 'gridlet_ack_latency_seconds_bucket', { le: '+Inf' }) - acksBefore, 5);
  assert.is(metricValue(text, 'gridlet_records_stored_total', { kind: 'reading' }), 10);
  assert.is(metricValue(text, 'gridlet_frames_accepted_total', { body: 'readings' }), 5);
  // One signature per frame's readings message, made on the event loop: one at a time is too few for a thread.
  await eventually(async () => metricValue(await scrape(), 'gridlet_mesh_signatures_total', { where: 'loop' }) === 5, 3000, 'five signatures');
  // Each frame's commit and its readings message's chain append are jobs of group commits (an append may
  // share the next frame's).
  const after = await scrape();
  assert.ok(metricValue(after, 'gridlet_store_group_commits_total') - commitsBefore >= 5);
  assert.ok(metricValue(after, 'gridlet_store_group_commit_jobs_total') - jobsBefore >= 10);
  assert.is(metricValue(await scrape(), 'gridlet_mesh_sign_threads'), 0);
  const received = metricValue(text, 'gridlet_frames_received_total');

  // A frame sealed with a key that is not the session's: dropped as forged, nothing stored.
  assert.is(metricValue(text, 'gridlet_frames_dropped_total', { reason: 'forged' }), 0);
  await a.send({ type: Body.readings, first: 11, records: [[T0 + 20, 1, 999]] }, { key: new Uint8Array(randomBytes(32)) });
  await eventually(async () => metricValue(await scrape(), 'gridlet_frames_dropped_total', { reason: 'forged' }) === 1, 3000, 'forged drop');
  text = await scrape();
  assert.is(metricValue(text, 'gridlet_frames_received_total'), received + 1);
  assert.is(metricValue(text, 'gridlet_records_stored_total', { kind: 'reading' }), 10);

  // The device reports 40 records it holds unacknowledged.
  await a.send({ type: Body.status, t: T0 + 30, uptime: 90, buffered: 40, dropped: 0, heap: 30000, guests: [], link: 'eth' });
  await eventually(async () => metricValue(await scrape(), 'gridlet_device_backlog_records') === 40, 3000, 'backlog 40');
  text = await scrape();
  assert.is(metricValue(text, 'gridlet_device_backlog_records_max'), 40);
  assert.is(metricValue(text, 'gridlet_devices_backlogged'), 1);

  // It goes away: connected drops to 0.
  await a.close();
  await eventually(async () => metricValue(await scrape(), 'gridlet_devices_connected') === 0, 3000, 'connected 0');
});

test('dropped frames are logged once per reason per window, then summed up', () => {
  const lines: { level: number; msg: string; reason?: string; dropped?: number; device?: string }[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  let now = 0;
  const drop = dropLogger(log, () => now, 10_000);
  for (let i = 0; i < 1000; i++) drop({ deviceId: 'aaaaaaaaaaaaaaaa', reason: 'forged' });
  drop({ deviceId: 'bbbbbbbbbbbbbbbb', reason: 'replay' });
  assert.equal(lines.map((l) => [l.msg, l.reason ?? '', l.device]), [
    ['frame dropped', 'forged', 'aaaaaaaaaaaaaaaa'], ['frame dropped', 'replay', 'bbbbbbbbbbbbbbbb'],
  ]);
  assert.is(lines[0].level, 40);
  now = 10_000;
  drop({ deviceId: 'aaaaaaaaaaaaaaaa', reason: 'forged' });
  assert.equal(lines.slice(2).map((l) => [l.msg, l.dropped]), [['more frames dropped', 999], ['frame dropped', undefined]]);
});

test('gateway logs: JSON lines with ISO time and level names, or one readable line each', () => {
  const json: string[] = [];
  const j = gatewayLogger('info', 'json', { write: (s: string) => void json.push(s) });
  j.debug('not shown');
  j.info({ device: 'aaaaaaaaaaaaaaaa', status: 201 }, 'pairing paired');
  assert.is(json.length, 1);
  const e = JSON.parse(json[0]);
  assert.is(e.level, 'info');
  assert.is(e.msg, 'pairing paired');
  assert.is(e.device, 'aaaaaaaaaaaaaaaa');
  assert.match(e.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

  const pretty: string[] = [];
  const p = gatewayLogger('debug', 'pretty', { write: (s: string) => void pretty.push(s) });
  p.warn({ reason: 'forged', devices: ['a', 'b'], note: 'two words' }, 'frame dropped');
  assert.match(pretty[0], /^\d\d:\d\d:\d\d\.\d{3} WARN  frame dropped reason=forged devices=\["a","b"\] note="two words"\n$/);
  assert.is(prettyLine('not json'), 'not json\n');
  assert.match(prettyLine(JSON.stringify({ time: '2025-01-01T10:00:00.000Z', level: 'error', msg: 'boom', stack: 'Error: boom\n    at x' })),
    /^10:00:00\.000 ERROR boom\nError: boom\n {4}at x\n$/);
});

test.run();
