// Which sharing policy applies to a device (privacy/service.ts over the SQLite store): its own, else
// the matching group policy of highest priority, else the default; changes are announced to
// subscribers with the devices they affect; the audit log keeps every disclosure, newest first.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pino from 'pino';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_POLICY, parsePolicy, summary } from '../../gateway/privacy/policy.js';
import { PrivacyService } from '../../gateway/privacy/service.js';
import { SqliteStore } from '../../gateway/store/sqlite.js';

const A = 'aaaaaaaaaaaaaaaa';
const B = 'bbbbbbbbbbbbbbbb';
const C = 'cccccccccccccccc';
const dir = mkdtempSync(join(tmpdir(), 'gridlet-privacy-'));
const path = join(dir, 'gridlet.sqlite');
let store: SqliteStore;
let svc: PrivacyService;
let t = 1_700_000_000_000;

async function device(id: string, labels: { [k: string]: string }): Promise<void> {
  await store.completePairing({
    id, publicKey: new Uint8Array(32), ks: new Uint8Array(32), gatewayId: 'gggggggggggggggg', model: 'm', firmware: 'f',
    capabilities: [], firstSeen: t, counter: 1, now: t,
  });
  await store.setLabels(id, labels);
}

test.before(async () => {
  store = new SqliteStore(path);
  svc = new PrivacyService({ store, log: pino({ level: 'silent' }), now: () => t });
  await device(A, { feeder: 'F12', pilot: 'yes' });
  await device(B, { feeder: 'F12' });
  await device(C, {});
});

test.after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const research = parsePolicy({ operator: 'full', mesh: { level: 'daily', purposes: ['research'] }, retentionDays: 30 });
const pilot = parsePolicy({ operator: 'full', peers: { 'community-grid': '15min' }, retentionDays: 90 });

test('a device with no policy and no matching group gets the default: least sharing', async () => {
  assert.equal(await svc.resolve(C), { policy: DEFAULT_POLICY, source: 'default' });
  assert.is(summary(await svc.effectivePolicy(C)), 'operator=full(grid-operations,billing) peers=none mesh=none retention=396d');
  // A device this gateway has never heard of gets the default too (never an error).
  assert.equal((await svc.resolve('zzzzzzzzzzzzzzzz')).source, 'default');
});

test('device > group (highest priority first) > default', async () => {
  await svc.setGroupPolicy('feeder=F12', 10, research);
  await svc.setGroupPolicy('pilot', 20, pilot);
  assert.equal(await svc.resolve(A), { policy: pilot, source: 'group:pilot' });
  assert.equal(await svc.resolve(B), { policy: research, source: 'group:feeder=F12' });
  assert.is((await svc.resolve(C)).source, 'default');

  // Priority decides, not the order they were set in.
  await svc.setGroupPolicy('feeder=F12', 30, research);
  assert.is((await svc.resolve(A)).source, 'group:feeder=F12');

  const own = parsePolicy({ operator: 'daily', retentionDays: 7 });
  await svc.setDevicePolicy(A, own);
  assert.equal(await svc.resolve(A), { policy: own, source: 'device' });
  assert.ok(await svc.deleteDevicePolicy(A));
  assert.not.ok(await svc.deleteDevicePolicy(A));
  assert.is((await svc.resolve(A)).source, 'group:feeder=F12');

  assert.equal((await svc.groupPolicies()).map((g) => [g.selector, g.priority]), [['feeder=F12', 30], ['pilot', 20]]);
  assert.ok(await svc.deleteGroupPolicy('feeder=F12'));
  assert.not.ok(await svc.deleteGroupPolicy('feeder=F12'));
  assert.is((await svc.resolve(B)).source, 'default');
  assert.is((await svc.resolve(A)).source, 'group:pilot');
  await svc.deleteGroupPolicy('pilot');
});

test('policies survive a restart of the store', async () => {
  await svc.setDevicePolicy(B, research);
  await svc.setGroupPolicy('feeder', 5, pilot);
  await store.close();
  store = new SqliteStore(path);
  svc = new PrivacyService({ store, log: pino({ level: 'silent' }), now: () => t });
  assert.equal(await svc.resolve(B), { policy: research, source: 'device' });
  assert.equal(await svc.resolve(A), { policy: pilot, source: 'group:feeder' });
  await svc.deleteDevicePolicy(B);
  await svc.deleteGroupPolicy('feeder');
});

test('a stored policy that no longer validates is refused loudly; effectivePolicy falls back to the default', async () => {
  await svc.setDevicePolicy(C, research);
  const db = new Database(path);
  db.prepare('UPDATE privacy_devices SET policy = ? WHERE device_id = ?').run('{"operator":"everything"}', C);
  db.close();
  const err = await svc.resolve(C).then(() => undefined, (e: Error) => e.message);
  assert.match(err ?? 'resolved', /stored privacy policy of device cccccccccccccccc is not valid: "operator.level" is one of/);
  assert.equal(await svc.effectivePolicy(C), DEFAULT_POLICY);
  await svc.deleteDevicePolicy(C);
});

test('subscribers hear which devices a change affects: a device, its labels, or every device for a group', async () => {
  const heard: (string[] | 'all')[] = [];
  const off = svc.onChange((ids) => heard.push(ids));
  await svc.setDevicePolicy(A, research);
  await svc.deleteDevicePolicy(A);
  await svc.setGroupPolicy('pilot', 1, pilot);
  await store.setLabels(C, { pilot: 'no' });
  await svc.labelsChanged(C);
  assert.is((await svc.resolve(C)).source, 'group:pilot', 'a new label brings the group policy');
  await svc.deleteGroupPolicy('pilot');
  await svc.deleteGroupPolicy('not-there');
  off();
  await svc.setDevicePolicy(A, research);
  assert.equal(heard, [[A], [A], 'all', [C], 'all']);
  await svc.deleteDevicePolicy(A);
});

test('a config downlink with the policy summary goes to each affected paired device', async () => {
  const sent: [string, unknown][] = [];
  svc.send = async (id, body) => void sent.push([id, body]);
  await svc.setGroupPolicy('feeder=F12', 1, research);
  const r = summary(research);
  assert.equal(sent.sort((x, y) => x[0].localeCompare(y[0])), [
    [A, { type: 17, values: { privacy: r } }], [B, { type: 17, values: { privacy: r } }],
  ]);
  sent.length = 0;
  // Setting the same group policy again moves no device's policy: nothing is sent.
  await svc.setGroupPolicy('feeder=F12', 1, research);
  assert.equal(sent, []);
  // Nor does a label edit that leaves the device under the same policy.
  await store.setLabels(B, { feeder: 'F12', pole: '7' });
  await svc.labelsChanged(B);
  assert.equal(sent, []);
  await store.setLabels(B, {});
  await svc.labelsChanged(B);
  assert.equal(sent, [[B, { type: 17, values: { privacy: summary(DEFAULT_POLICY) } }]]);
  sent.length = 0;
  await svc.setDevicePolicy(C, pilot);
  assert.equal(sent, [[C, { type: 17, values: { privacy: summary(pilot) } }]]);
  sent.length = 0;
  await store.revoke(C, t);
  await svc.deleteDevicePolicy(C);
  assert.equal(sent, [], 'a revoked device is sent nothing');
  await svc.deleteGroupPolicy('feeder=F12');
  svc.send = undefined;
});

test('the audit log keeps every disclosure (who, what, why), newest first, by device, in pages', async () => {
  t += 1000;
  await svc.recordDisclosure({
    audience: '12D3KooWPeer', operator: 'community-grid', deviceId: A, cid: 'bafkreiabc', kind: 'aggregate', seq: [1, 90], level: '15min',
    purposes: ['research'], via: 'serve',
  });
  t += 1000;
  await svc.recordDisclosure([
    { audience: 'http', deviceId: B, kind: 'records', seq: [5, 9], level: 'full', purposes: ['billing'], via: 'http' },
    { audience: '12D3KooWPeer', operator: 'local', deviceId: A, kind: 'readings', level: 'full', purposes: ['grid-operations'], via: 'announce' },
  ]);
  const all = await store.privacy.audit({ limit: 10 });
  assert.is(all.length, 3);
  assert.equal(all.map((e) => [e.deviceId, e.via, e.at]), [[A, 'announce', t], [B, 'http', t], [A, 'serve', t - 1000]]);
  assert.equal(all[2], {
    id: all[2].id, at: t - 1000, audience: '12D3KooWPeer', operator: 'community-grid', deviceId: A, cid: 'bafkreiabc', kind: 'aggregate',
    seq: [1, 90], level: '15min', purposes: ['research'], via: 'serve',
  });
  assert.equal(all[1].operator, undefined);
  assert.equal((await store.privacy.audit({ deviceId: A, limit: 10 })).map((e) => e.via), ['announce', 'serve']);
  const page = await store.privacy.audit({ limit: 1, beforeId: all[0].id });
  assert.equal(page.map((e) => e.id), [all[1].id]);
});

test('a store of schema 1 (before privacy) is upgraded in place; a gateway from before privacy would refuse it', async () => {
  const p = join(dir, 'v1.sqlite');
  const old = new Database(p);
  old.exec('CREATE TABLE devices (id TEXT PRIMARY KEY, state TEXT NOT NULL, public_key BLOB NOT NULL, ks BLOB NOT NULL, gateway_id TEXT NOT NULL, model TEXT NOT NULL, firmware TEXT NOT NULL, capabilities TEXT NOT NULL DEFAULT \'[]\', labels TEXT NOT NULL DEFAULT \'{}\', first_seen INTEGER NOT NULL, paired_at INTEGER NOT NULL, revoked_at INTEGER, last_seen INTEGER, up_highest INTEGER NOT NULL DEFAULT 0, up_bits_lo INTEGER NOT NULL DEFAULT 0, up_bits_hi INTEGER NOT NULL DEFAULT 0, down_counter INTEGER NOT NULL DEFAULT 0, acked_seq INTEGER NOT NULL DEFAULT 0, status TEXT, guests TEXT NOT NULL DEFAULT \'{}\')');
  old.pragma('user_version = 1');
  old.close();
  const s = new SqliteStore(p);
  await s.privacy.setGroupPolicy({ selector: 'pilot', priority: 1, policy: research, updatedAt: 1 });
  assert.equal((await s.privacy.groupPolicies()).map((g) => g.selector), ['pilot']);
  await s.close();
  const after = new Database(p);
  assert.is(after.pragma('user_version', { simple: true }), 4);
  after.pragma('user_version = 5');
  after.close();
  let err = '';
  try {
    new SqliteStore(p);
  } catch (e) {
    err = (e as Error).message;
  }
  assert.match(err, /has schema version 5, newer than this gateway \(4\); upgrade gridlet/);
});

test('a failing audit write is logged, not thrown at the mesh', async () => {
  const lines: string[] = [];
  const s2 = new SqliteStore(':memory:');
  const svc2 = new PrivacyService({ store: s2, log: pino({ level: 'error' }, { write: (l: string) => void lines.push(l) }), now: () => t });
  await s2.close();
  await svc2.recordDisclosure({ audience: 'http', deviceId: A, kind: 'records', level: 'full', purposes: [], via: 'http' });
  assert.match(lines.join(''), /audit entries not recorded/);
});

test.run();
