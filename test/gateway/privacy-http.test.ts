// Privacy over the operator API and CLI (http/privacy-routes.ts, host/cli/privacy.ts): a device's policy
// in force and where it comes from, group policies, clear 400s for bad policies, the audit log, the
// config downlink that tells the device its policy, and the same security rules as other routes.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { auditMain, privacyMain } from '../../host/cli/privacy.js';
import { Body, type Config } from '../../firmware/core/wire/bodies.js';
import { summary, parsePolicy } from '../../gateway/privacy/policy.js';
import { helloSeen, startTestGateway, type TestGateway } from './support.js';
import type { WireDevice } from './wire-device.js';

let t: TestGateway;

test.before(async () => {
  t = await startTestGateway();
});

test.after(async () => {
  await t.close();
});

const DEFAULT_SUMMARY = 'operator=full(grid-operations,billing) peers=none mesh=none retention=396d';

/** Pairs like support.ts's pairDevice, but stays connected until the policy sent at pairing has arrived. */
async function pairDevice(tg: TestGateway): Promise<WireDevice> {
  const d = tg.device();
  await d.connect(tg.gw.mqttUrl);
  await d.hello();
  await helloSeen(tg, d);
  const r = await tg.api('POST', '/api/pairings', { deviceId: d.id, code: d.code });
  if (r.status !== 201) throw new Error(`pairing failed: ${r.status} ${r.text}`);
  await d.until(() => d.bodies(Body.config).length >= 1, 3000, 'the policy sent at pairing');
  await d.close();
  await d.connect(tg.gw.mqttUrl, { credentials: true });
  return d;
}

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => void out.push(l), err: (l: string) => void err.push(l) }, out, err };
}

test('a newly paired device is told the default policy; GET shows it with its source', async () => {
  const d = await pairDevice(t);
  assert.equal(d.bodies(Body.config), [{ type: Body.config, values: { privacy: DEFAULT_SUMMARY } }]);
  const r = await t.api('GET', `/api/devices/${d.id}/privacy`);
  assert.is(r.status, 200, r.text);
  assert.is(r.json.source, 'default');
  assert.is(r.json.summary, DEFAULT_SUMMARY);
  assert.equal(r.json.policy.mesh, { level: 'none', purposes: [] });
});

test('PUT a device policy: it is in force at once and the device gets its summary; DELETE goes back', async () => {
  const d = await pairDevice(t);
  const body = { operator: 'full', peers: { 'community-grid': { level: 'daily', purposes: ['billing'] } }, mesh: 'none', retentionDays: 30 };
  const r = await t.api('PUT', `/api/devices/${d.id}/privacy`, body);
  assert.is(r.status, 200, r.text);
  assert.is(r.json.source, 'device');
  assert.is(r.json.summary, 'operator=full(grid-operations) peers=community-grid:daily(billing) mesh=none retention=30d');
  await d.until(() => d.bodies(Body.config).length >= 2, 3000, 'the new policy');
  assert.equal((d.bodies(Body.config)[1] as Config).values, { privacy: r.json.summary });
  assert.is((await t.api('GET', `/api/devices/${d.id}/privacy`)).json.source, 'device');

  const del = await t.api('DELETE', `/api/devices/${d.id}/privacy`, {});
  assert.is(del.status, 200, del.text);
  assert.equal([del.json.removed, del.json.source, del.json.summary], [true, 'default', DEFAULT_SUMMARY]);
  await d.until(() => d.bodies(Body.config).length >= 3, 3000, 'the default again');
  assert.equal((d.bodies(Body.config)[2] as Config).values, { privacy: DEFAULT_SUMMARY });
  assert.is((await t.api('DELETE', `/api/devices/${d.id}/privacy`, {})).json.removed, false);
});

test('bad policies get a 400 that names the field, and change nothing', async () => {
  const d = await pairDevice(t);
  const cases: [unknown, RegExp][] = [
    [{ operator: 'everything' }, /^PUT \/api\/devices\/:id\/privacy: "operator.level" is one of none, daily, 15min, full$/],
    [{ mesh: { level: 'daily', purposes: ['marketing'] } }, /"mesh.purposes" is a list of billing, grid-operations, research/],
    [{ mesh: { level: 'full', channels: [1, -2] } }, /"mesh.channels" is a list of channel numbers/],
    [{ retentionDays: 0 }, /"retentionDays" is a number of days \(above 0, at most 36500\) or null/],
    [{ retentionDays: '30' }, /"retentionDays" is a number of days/],
    [{ peers: { 'bad name!': 'full' } }, /peer operator name "bad name!" is not a valid operator name/],
    [{ color: 'red' }, /unknown policy field "color"/],
    [[], /a policy is a JSON object/],
  ];
  for (const [body, re] of cases) {
    const r = await t.api('PUT', `/api/devices/${d.id}/privacy`, body);
    assert.is(r.status, 400, JSON.stringify(body));
    assert.match(r.json.error, re);
  }
  assert.is((await t.api('GET', `/api/devices/${d.id}/privacy`)).json.source, 'default');
  assert.is((await t.api('GET', '/api/devices/aaaaaaaaaaaaaaaa/privacy')).status, 404);
  assert.is((await t.api('PUT', '/api/devices/NOT-AN-ID/privacy', {})).status, 404);
  // Same rules as every state-changing route: JSON only (no CSRF from a form).
  const form = await t.api('PUT', `/api/devices/${d.id}/privacy`, 'operator=none', { 'content-type': 'application/x-www-form-urlencoded' });
  assert.is(form.status, 415);
});

test('a stored policy edited by hand into nonsense is named in the error; PUT mends it', async () => {
  const d = await pairDevice(t);
  assert.is((await t.api('PUT', `/api/devices/${d.id}/privacy`, { mesh: 'daily' })).status, 200);
  const db = new Database(join(t.dir, 'gridlet.sqlite'));
  db.prepare('UPDATE privacy_devices SET policy = ? WHERE device_id = ?').run('{"mesh":"lots"}', d.id);
  db.close();
  const r = await t.api('GET', `/api/devices/${d.id}/privacy`);
  assert.is(r.status, 500);
  assert.is(r.json.error, `the stored privacy policy of device ${d.id} is not valid: "mesh.level" is one of none, daily, 15min, full; set that policy again or remove it`);
  assert.is((await t.api('PUT', `/api/devices/${d.id}/privacy`, { mesh: 'none' })).status, 200);
  assert.is((await t.api('GET', `/api/devices/${d.id}/privacy`)).json.policy.mesh.level, 'none');
});

test('group policies: PUT, GET in priority order, selection by labels, DELETE; bad input 400', async () => {
  const d = await pairDevice(t);
  assert.is((await t.api('PUT', `/api/devices/${d.id}/labels`, { labels: { feeder: 'F12' } })).status, 200);
  const research = { operator: 'full', mesh: { level: 'daily', purposes: ['research'] }, retentionDays: 90 };
  let r = await t.api('PUT', '/api/privacy/groups', { selector: 'feeder=F12', priority: 5, policy: research });
  assert.is(r.status, 200, r.text);
  assert.equal([r.json.selector, r.json.priority, r.json.summary], ['feeder=F12', 5, summary(parsePolicy(research))]);
  r = await t.api('PUT', '/api/privacy/groups', { selector: 'feeder', policy: { mesh: 'none' } });
  assert.is(r.json.priority, 0);
  const list = await t.api('GET', '/api/privacy/groups');
  assert.equal(list.json.groups.map((g: any) => g.selector), ['feeder=F12', 'feeder']);
  const got = await t.api('GET', `/api/devices/${d.id}/privacy`);
  assert.equal([got.json.source, got.json.summary], ['group:feeder=F12', summary(parsePolicy(research))]);
  // The device hears of the group policy that now applies to it.
  await d.until(() => d.bodies(Body.config).some((b) => (b as Config).values.privacy === got.json.summary), 3000, 'the group policy');

  const bad: [unknown, RegExp][] = [
    [{ policy: research }, /"selector" is a label key or key=value/],
    [{ selector: 'a b', policy: research }, /"selector" is a label key or key=value/],
    [{ selector: 'x', priority: 1.5, policy: research }, /"priority" is an integer/],
    [{ selector: 'x' }, /give "policy"/],
    [{ selector: 'x', policy: { mesh: 'all' } }, /^policy: "mesh.level" is one of/],
    [{ selector: 'x', policy: research, extra: 1 }, /extra: unknown field/],
  ];
  for (const [body, re] of bad) {
    const b = await t.api('PUT', '/api/privacy/groups', body);
    assert.is(b.status, 400, JSON.stringify(body));
    assert.match(b.json.error, re);
  }
  assert.is((await t.api('DELETE', '/api/privacy/groups?selector=nope', {})).status, 404);
  assert.is((await t.api('DELETE', '/api/privacy/groups', {})).status, 400);
  assert.is((await t.api('DELETE', `/api/privacy/groups?selector=${encodeURIComponent('feeder=F12')}`, {})).status, 200);
  assert.is((await t.api('GET', `/api/devices/${d.id}/privacy`)).json.source, 'group:feeder');
  assert.is((await t.api('DELETE', '/api/privacy/groups?selector=feeder', {})).status, 200);
  assert.equal((await t.api('GET', '/api/privacy/groups')).json.groups, []);
});

test('the audit log: reads over HTTP and disclosures the mesh records, newest first, by device; bad parameters 400', async () => {
  const d = await pairDevice(t);
  assert.equal((await t.api('GET', `/api/audit?device=${d.id}`)).json.entries, []);
  await d.send({ type: Body.readings, first: 1, records: [[1_700_000_000, 1, 5], [1_700_000_010, 1, 6]] });
  await d.waitAck(2);
  assert.is((await t.api('GET', `/api/devices/${d.id}/readings`)).status, 200);
  // What the mesh side records when it serves a peer (ctx.privacy.recordDisclosure).
  await t.gw.privacy.recordDisclosure({
    audience: '12D3KooWExample', operator: 'community-grid', deviceId: d.id, cid: 'bexample', kind: 'aggregate', seq: [1, 2],
    level: 'daily', purposes: ['research'], via: 'serve',
  });
  const r = await t.api('GET', `/api/audit?device=${d.id}`);
  assert.is(r.status, 200, r.text);
  const [served, read] = r.json.entries;
  assert.is(r.json.entries.length, 2);
  assert.equal({ ...read, id: 0, at: '' }, {
    id: 0, at: '', audience: 'http', deviceId: d.id, kind: 'records', seq: [1, 2], level: 'full', purposes: ['grid-operations', 'billing'], via: 'http',
  });
  assert.match(read.at, /^\d{4}-\d\d-\d\dT/);
  assert.equal([served.audience, served.operator, served.via, served.level, served.purposes], ['12D3KooWExample', 'community-grid', 'serve', 'daily', ['research']]);
  assert.equal((await t.api('GET', `/api/audit?device=${d.id}&limit=1`)).json.entries.map((e: any) => e.via), ['serve']);

  const c = io();
  assert.is(await auditMain(['--device', d.id, '--gateway', t.gw.httpUrl], c.io), 0, c.err.join('\n'));
  assert.is(c.out.length, 3);
  assert.match(c.out[0], /^TIME\s+DEVICE\s+TO\s+VIA\s+WHAT\s+LEVEL\s+PURPOSES$/);
  assert.match(c.out[1], new RegExp(`^\\S+Z  ${d.id}  12D3KooWExample \\(community-grid\\)  serve  aggregate 1-2 bexample  daily\\s+research$`));
  assert.match(c.out[2], new RegExp(`${d.id}  http\\s+http\\s+records 1-2\\s+full\\s+grid-operations,billing$`));

  assert.is((await t.api('GET', '/api/audit?device=bogus')).status, 400);
  assert.is((await t.api('GET', '/api/audit?limit=0')).status, 400);
  assert.is((await t.api('GET', '/api/audit?limit=abc')).status, 400);
});

test('CLI: privacy set/get/unset for a device and a group, groups, audit; usage errors exit 2', async () => {
  const d = await pairDevice(t);
  const g = ['--gateway', t.gw.httpUrl];
  let c = io();
  assert.is(await privacyMain(['set', d.id, '--operator', 'full', '--mesh', 'daily', '--peer', 'community-grid=15min', '--purposes', 'research',
    '--channels', '1,2', '--retention-days', '30', ...g], c.io), 0, c.err.join('\n'));
  assert.equal(c.out, [
    `${d.id}: operator=full(research;ch=1,2) peers=community-grid:15min(research;ch=1,2) mesh=daily(research;ch=1,2) retention=30d`,
    "  from: the device's own policy",
  ]);
  c = io();
  assert.is(await privacyMain(['get', d.id, '--json', ...g], c.io), 0);
  const j = JSON.parse(c.out.join('\n'));
  assert.equal([j.source, j.policy.retentionDays, j.policy.mesh], ['device', 30, { level: 'daily', purposes: ['research'], channels: [1, 2] }]);

  const file = join(t.dir, 'policy.json');
  writeFileSync(file, JSON.stringify({ operator: 'daily', retentionDays: null }));
  c = io();
  assert.is(await privacyMain(['set', '--label', 'pilot', '--priority', '3', '--file', file, ...g], c.io), 0, c.err.join('\n'));
  assert.equal(c.out, ['group pilot (priority 3): operator=daily(grid-operations) peers=none mesh=none retention=forever']);
  c = io();
  assert.is(await privacyMain(['groups', ...g], c.io), 0);
  assert.equal(c.out, ['SELECTOR  PRIORITY  POLICY', 'pilot     3         operator=daily(grid-operations) peers=none mesh=none retention=forever']);

  c = io();
  assert.is(await privacyMain(['unset', d.id, ...g], c.io), 0);
  assert.equal(c.out, [`${d.id}: ${DEFAULT_SUMMARY}`, '  from: the default policy']);
  c = io();
  assert.is(await privacyMain(['unset', '--label', 'pilot', ...g], c.io), 0);
  assert.equal(c.out, ['group policy pilot removed']);

  // The gateway's 400 comes back as the reason, exit 1; flags the CLI can check itself are usage errors.
  writeFileSync(file, JSON.stringify({ operator: 'all' }));
  c = io();
  assert.is(await privacyMain(['set', d.id, '--file', file, ...g], c.io), 1);
  assert.match(c.err.join('\n'), /"operator.level" is one of none, daily, 15min, full/);
  for (const argv of [['set', d.id, '--mesh', 'hourly'], ['set', d.id], ['set', d.id, '--file', file, '--mesh', 'none'], ['get'], ['frob'],
    ['set', d.id, '--purposes', 'marketing', '--mesh', 'full'], ['set', d.id, '--retention-days', 'soon']]) {
    c = io();
    assert.is(await privacyMain([...argv, ...g], c.io), 2, argv.join(' '));
  }
  c = io();
  assert.is(await auditMain(['--device', d.id, ...g], c.io), 0, c.err.join('\n'));
  assert.equal(c.out, ['no disclosures recorded']);
  c = io();
  assert.is(await auditMain(['--device', 'nope', ...g], c.io), 2);
});

test('CLI: privacy retention --run removes what the default policy (396 days) no longer keeps', async () => {
  // The audit test's device sent readings of November 2023: past 396 days. The message that carried
  // them was received today: it stays until it is that old too.
  let c = io();
  assert.is(await privacyMain(['retention', '--run', '--gateway', t.gw.httpUrl], c.io), 0, c.err.join('\n'));
  assert.is(c.out.length, 1);
  assert.match(c.out[0], /^[a-z2-7]{16}: removed seqs up to 2 \(2 record row\(s\), 0 message\(s\)\); tombstone b[a-z2-7]+$/);
  c = io();
  assert.is(await privacyMain(['retention', '--run', '--gateway', t.gw.httpUrl], c.io), 0);
  assert.equal(c.out, ['nothing past its retention']);
  c = io();
  assert.is(await privacyMain(['retention', '--gateway', t.gw.httpUrl], c.io), 2, 'without --run');
});

test.run();
