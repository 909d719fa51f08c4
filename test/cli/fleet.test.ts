// The operator commands against a real gateway and wire devices: gridlet pair --csv, devices (list,
// show, --json), revoke, labels and dr list, as a user sees their output and exit codes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Body } from '../../firmware/core/wire/bodies.js';
import { type Io } from '../../host/cli/args.js';
import { devicesMain, pairMain } from '../../host/cli/devices.js';
import { parsePairCsv } from '../../gateway/web/pair-csv.js';
import { labelsMain, revokeMain } from '../../host/cli/fleet.js';
import { drMain } from '../../host/cli/ops.js';
import { helloSeen, startTestGateway, type TestGateway } from '../gateway/support.js';
import type { WireDevice } from '../gateway/wire-device.js';

function capture(): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (l) => stdout.push(l), err: (l) => stderr.push(l) };
}

let t: TestGateway;
let good: WireDevice[];
let refusing: WireDevice;
const UNKNOWN = 'abcdefghijklmnop';
const T0 = 1_700_000_000;

test.before(async () => {
  t = await startTestGateway();
  good = [t.device(), t.device(), t.device()];
  refusing = t.device();
  for (const d of [...good, refusing]) {
    await d.connect(t.gw.mqttUrl);
    await d.hello();
    await helloSeen(t, d);
  }
});

test.after(async () => {
  await t.close();
});

function wrongCode(d: WireDevice): string {
  return d.code.startsWith('A') ? 'BBBBB-BBBBB' : 'AAAAA-AAAAA';
}

test('parsePairCsv: header, comments, blank lines, quotes and CRLF are fine; bad lines are named by number', () => {
  const { rows, bad } = parsePairCsv([
    'device_id,code', '# site 7', '', `"${UNKNOWN}" , "aaaaa-bbbbb"`, 'qrstuvwxyzabcdef,AAAAABBBBB,',
    'not-a-device,AAAAA-BBBBB', `${UNKNOWN},AAAAA-BBBBB`, 'bcdefghijklmnopq', 'cdefghijklmnopqr,AAA1',
  ].join('\r\n'));
  assert.equal(rows, [
    { line: 4, deviceId: UNKNOWN, code: 'aaaaa-bbbbb' },
    { line: 5, deviceId: 'qrstuvwxyzabcdef', code: 'AAAAABBBBB' },
  ]);
  assert.equal(bad.map((b) => b.line), [6, 7, 8, 9]);
  assert.match(bad[0].why, /"not-a-device" is not a device id/);
  assert.match(bad[1].why, /already on line 4/);
  assert.match(bad[2].why, /expected "deviceId,code", found 1 field/);
  assert.match(bad[3].why, /"AAA1" is not a pair code/);
});

test('pair --csv refuses to start on a malformed line, naming it; nothing is paired', async () => {
  const csv = join(t.dir, 'bad.csv');
  writeFileSync(csv, `deviceId,code\n${good[0].id},${good[0].code}\nthis line is wrong\n`);
  const io = capture();
  assert.is(await pairMain(['--csv', csv, '--gateway', t.gw.httpUrl], io), 1);
  assert.equal(io.stderr[0], `${csv}:3: expected "deviceId,code", found 1 field(s)`);
  assert.match(io.stderr[1], /1 malformed line\(s\) .*nothing was paired .*--skip-bad/);
  assert.equal(io.stdout, []);
  assert.is((await t.api('GET', `/api/devices/${good[0].id}`)).json.state, 'seen');
});

test('pair --csv --skip-bad pairs the good rows and sums up refused, unknown and skipped ones; exit 1', async () => {
  const csv = join(t.dir, 'fleet.csv');
  writeFileSync(csv, [
    '# delivery 2025-03', 'deviceId,code',
    ...good.map((d) => `${d.id},${d.code.toLowerCase()}`),
    `${refusing.id},${wrongCode(refusing)}`, `${UNKNOWN},AAAAA-AAAAA`, 'garbage', '',
  ].join('\n'));
  const io = capture();
  assert.is(await pairMain(['--csv', csv, '--skip-bad', '--concurrency', '3', '--gateway', t.gw.httpUrl], io), 1);
  assert.equal(io.stdout, ['paired 3, refused 1 (403), unknown 1 (404), timeout 0, skipped 1 malformed line(s)']);
  assert.ok(io.stderr.includes(`${csv}:8: skipped: expected "deviceId,code", found 1 field(s)`), io.stderr.join('\n'));
  assert.ok(io.stderr.some((l) => l.startsWith(`${csv}:6: ${refusing.id}: refused (403): pair code does not match`)), io.stderr.join('\n'));
  assert.ok(io.stderr.some((l) => l.startsWith(`${csv}:7: ${UNKNOWN}: unknown (404): no Hello seen`)), io.stderr.join('\n'));
  for (const d of good) assert.is((await t.api('GET', `/api/devices/${d.id}`)).json.state, 'paired', d.id);
  assert.is((await t.api('GET', `/api/devices/${refusing.id}`)).json.state, 'seen');

  // Again, as JSON: one result per line of the file, in file order.
  const j = capture();
  assert.is(await pairMain(['--csv', csv, '--skip-bad', '--json', '--gateway', t.gw.httpUrl], j), 1);
  const rows = JSON.parse(j.stdout.join('\n')) as { line: number; deviceId: string; status: number; result: string }[];
  assert.equal(rows.map((r) => [r.line, r.result, r.status]), [
    [3, 'conflict', 409], [4, 'conflict', 409], [5, 'conflict', 409], [6, 'refused', 403], [7, 'unknown', 404], [8, 'malformed', 0],
  ]);
  assert.equal(j.stderr, []);
});

test('pair --csv exits 0 when every row pairs; a CSV of nothing to pair and a bad --concurrency are errors', async () => {
  // The refusing device, now with its right code.
  const csv = join(t.dir, 'one.csv');
  writeFileSync(csv, `${refusing.id},${refusing.code}\n`);
  const io = capture();
  assert.is(await pairMain(['--csv', csv, '--gateway', t.gw.httpUrl], io), 0, io.stderr.join('\n'));
  assert.equal(io.stdout, ['paired 1, refused 0 (403), unknown 0 (404), timeout 0']);
  const empty = join(t.dir, 'empty.csv');
  writeFileSync(empty, '# nothing yet\n');
  const e = capture();
  assert.is(await pairMain(['--csv', empty, '--gateway', t.gw.httpUrl], e), 1);
  assert.match(e.stderr[0], /lists no device to pair/);
  const c = capture();
  assert.is(await pairMain(['--csv', csv, '--concurrency', '0', '--gateway', t.gw.httpUrl], c), 2);
  assert.match(c.stderr[0], /--concurrency must be a whole number from 1 to 64/);
});

test('devices --json and the table show state, online, last reading, backlog, link and guests', async () => {
  const d = good[0];
  // Reconnect with the session's credentials, as a paired device does, and report.
  await d.close();
  await d.connect(t.gw.mqttUrl, { credentials: true });
  await d.send({ type: Body.readings, first: 1, records: [[T0, 3, 1234], [T0 + 10, 1, 5000], [T0 + 10, 8, 700]] });
  await d.waitAck(3);
  await d.send({ type: Body.status, t: T0 + 11, uptime: 60, buffered: 7, dropped: 0, heap: 20000, guests: [], link: 'wifi -60dBm' });
  await d.until(async () => (await t.api('GET', `/api/devices/${d.id}`)).json.status?.buffered === 7, 3000, 'status stored');

  const j = capture();
  assert.is(await devicesMain(['--gateway', t.gw.httpUrl, '--json'], j), 0, j.stderr.join('\n'));
  const list = JSON.parse(j.stdout.join('\n')) as { id: string; state: string; connected: boolean; lastReading: unknown; status: { buffered: number } | null }[];
  assert.is(list.length, 4);
  const mine = list.find((x) => x.id === d.id)!;
  assert.equal(mine.lastReading, { seq: 2, t: T0 + 10, channel: 1, value: 5000 });
  assert.is(mine.status!.buffered, 7);
  assert.ok(mine.connected);
  assert.is(list.find((x) => x.id === good[1].id)!.lastReading, null);

  const tab = capture();
  assert.is(await devicesMain(['--gateway', t.gw.httpUrl], tab), 0);
  assert.match(tab.stdout[0], /^ID\s+STATE\s+ONLINE\s+LAST READING\s+BACKLOG\s+LINK\s+GUESTS\s+LABELS$/);
  const row = tab.stdout.find((l) => l.startsWith(d.id))!;
  assert.match(row, new RegExp(`^${d.id}\\s+paired\\s+yes\\s+2023-11-14T22:13:30Z energy-imported=5000 Wh\\s+7\\s+wifi -60dBm\\s+-\\s+-$`));
  assert.is(tab.stdout[tab.stdout.length - 1], '4 device(s): 4 paired (4 online), 0 seen, 0 revoked');

  const show = capture();
  assert.is(await devicesMain(['show', d.id, '--gateway', t.gw.httpUrl], show), 0, show.stderr.join('\n'));
  assert.ok(show.stdout.some((l) => /^status\s+as of .*backlog 7 record\(s\), link wifi -60dBm/.test(l)), show.stdout.join('\n'));
  assert.ok(show.stdout.includes('  seq 2  2023-11-14T22:13:30Z  energy-imported  5000 Wh'), show.stdout.join('\n'));
  const sj = capture();
  assert.is(await devicesMain(['show', d.id, '--json', '--readings', '1', '--gateway', t.gw.httpUrl], sj), 0);
  assert.equal(JSON.parse(sj.stdout.join('\n')).records, [[3, T0 + 10, 8, 700]]);
  const none = capture();
  assert.is(await devicesMain(['show', UNKNOWN, '--gateway', t.gw.httpUrl], none), 1);
  assert.match(none.stderr[0], /^gridlet devices show: no device abcdefghijklmnop/);
});

test('labels sets, removes and shows; devices --label selects by them', async () => {
  const [a, b] = good;
  const io = capture();
  assert.is(await labelsMain([a.id, 'feeder=f7', 'site=north', '--gateway', t.gw.httpUrl], io), 0, io.stderr.join('\n'));
  assert.equal(io.stdout, [`${a.id}: feeder=f7 site=north`]);
  assert.is(await labelsMain([b.id, 'feeder=f7', '--gateway', t.gw.httpUrl], capture()), 0);
  const rm = capture();
  assert.is(await labelsMain([a.id, 'site-', '--json', '--gateway', t.gw.httpUrl], rm), 0);
  assert.equal(JSON.parse(rm.stdout.join('\n')), { feeder: 'f7' });
  const sel = capture();
  assert.is(await devicesMain(['--label', 'feeder=f7', '--json', '--gateway', t.gw.httpUrl], sel), 0);
  assert.equal(JSON.parse(sel.stdout.join('\n')).map((x: { id: string }) => x.id), [a.id, b.id].sort());
  const bad = capture();
  assert.is(await labelsMain([a.id, 'feeder', '--gateway', t.gw.httpUrl], bad), 2);
  assert.match(bad.stderr[0], /neither key=value .* nor key-/);
  const missing = capture();
  assert.is(await labelsMain([a.id, 'nope-', '--gateway', t.gw.httpUrl], missing), 1);
  assert.match(missing.stderr[0], /has no label "nope"/);
});

test('dr list prints what the device reported running', async () => {
  const d = good[0];
  const empty = capture();
  assert.is(await drMain(['list', d.id, '--gateway', t.gw.httpUrl], empty), 0, empty.stderr.join('\n'));
  assert.equal(empty.stdout, [`${d.id}: no demand-response event reported`]);
  await d.send({ type: Body.event, seq: 4, t: T0 + 20, kind: 'dr', data: { event: 'peak-1', phase: 'start' } });
  await d.waitAck(4);
  const io = capture();
  assert.is(await drMain(['list', d.id, '--gateway', t.gw.httpUrl], io), 0);
  assert.match(io.stdout[0], /^SEQ\s+TIME\s+EVENT\s+PHASE$/);
  assert.match(io.stdout[1], /^4\s+2023-11-14T22:13:40Z\s+peak-1\s+start$/);
});

test('revoke revokes several devices and names those it cannot; --json gives one result each', async () => {
  const io = capture();
  assert.is(await revokeMain([good[1].id, good[2].id, UNKNOWN, '--gateway', t.gw.httpUrl], io), 1);
  assert.ok(io.stdout.includes(`revoked ${good[1].id}`) && io.stdout.includes(`revoked ${good[2].id}`), io.stderr.join("\n"));
  assert.is(io.stdout[io.stdout.length - 1], 'revoked 2 of 3');
  assert.equal(io.stderr, [`gridlet revoke: ${UNKNOWN}: no paired device ${UNKNOWN} on this gateway`]);
  for (const d of [good[1], good[2]]) assert.is((await t.api('GET', `/api/devices/${d.id}`)).json.state, 'revoked');
  const j = capture();
  assert.is(await revokeMain([refusing.id, '--json', '--gateway', t.gw.httpUrl], j), 0);
  assert.equal(JSON.parse(j.stdout.join('\n')), [{ deviceId: refusing.id, status: 200, state: 'revoked' }]);
  const u = capture();
  assert.is(await revokeMain(['--gateway', t.gw.httpUrl], u), 2);
  assert.match(u.stderr[0], /expected one or more device ids[\s\S]*usage: gridlet revoke/);
});

test('GRIDLET_GATEWAY stands for --gateway', async () => {
  process.env.GRIDLET_GATEWAY = t.gw.httpUrl;
  try {
    const io = capture();
    assert.is(await devicesMain(['--json'], io), 0, io.stderr.join('\n'));
    assert.is(JSON.parse(io.stdout.join('\n')).length, 4);
  } finally {
    delete process.env.GRIDLET_GATEWAY;
  }
});

test.run();
