// Privacy on both stores (store.privacy, retention's store methods), SQLite and PostgreSQL each on a
// fresh database; then a gateway on PostgreSQL that applies a policy, runs retention and still verifies.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import pino from 'pino';
import nacl from 'tweetnacl';
import { Body } from '../../firmware/core/wire/bodies.js';
import { cidText } from '../../gateway/mesh/cid.js';
import { decodeMessage, encodeMessage, signerFromSeed } from '../../gateway/mesh/message.js';
import { protocols } from '../../gateway/mesh/pcid.js';
import { parseTombstone, readingsPayload } from '../../gateway/mesh/protocols.js';
import { parsePolicy } from '../../gateway/privacy/policy.js';
import { Retention } from '../../gateway/privacy/retention.js';
import type { PrivacyService } from '../../gateway/privacy/service.js';
import { httpSource, verifyHistory } from '../../gateway/mesh/verify.js';
import { PostgresStore } from '../../gateway/store/postgres.js';
import { SqliteStore } from '../../gateway/store/sqlite.js';
import type { Store, StoredBlock } from '../../gateway/store/store.js';
import { pairDevice, startTestGateway } from '../gateway/support.js';
import { tempDatabase } from './pg-support.js';

const backends: { name: string; fresh(): Promise<{ store: Store; url?: string; done(): Promise<void> }> }[] = [
  {
    name: 'sqlite',
    async fresh() {
      const dir = mkdtempSync(join(tmpdir(), 'gridlet-privacy-store-'));
      const store = new SqliteStore(join(dir, 'db.sqlite'));
      return { store, done: async () => rmSync(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: 'postgres',
    async fresh() {
      const db = await tempDatabase();
      const store = await PostgresStore.open(db.url);
      return { store, url: db.url, done: () => db.drop() };
    },
  },
];

const research = parsePolicy({ mesh: { level: 'daily', purposes: ['research'] }, retentionDays: 30 });
const pilot = parsePolicy({ operator: 'daily', retentionDays: null });
const cid = (n: number) => new Uint8Array([1, 0x55, 0x12, 0x20, ...new Uint8Array(32).fill(n)]);
const block = (n: number, receivedAt: number): StoredBlock => ({ cid: cid(n), bytes: new Uint8Array([n]), kind: 'readings', deviceId: 'dev1aaaaaaaaaaaa', receivedAt });

for (const b of backends) {
  const it = (name: string, f: (s: Store, url?: string) => Promise<void>) => test(`${b.name}: ${name}`, async () => {
    const db = await b.fresh();
    try {
      await f(db.store, db.url);
    } finally {
      await db.store.close();
      await db.done();
    }
  });

  it('device and group policies: kept as set, replaced, removed; groups by priority then selector', async (s) => {
    assert.is(await s.privacy.devicePolicy('dev1aaaaaaaaaaaa'), undefined);
    await s.privacy.setDevicePolicy('dev1aaaaaaaaaaaa', research, 10);
    await s.privacy.setDevicePolicy('dev1aaaaaaaaaaaa', pilot, 20);
    assert.equal(await s.privacy.devicePolicy('dev1aaaaaaaaaaaa'), { policy: pilot, updatedAt: 20 });
    await s.privacy.setDevicePolicy('dev0aaaaaaaaaaaa', research, 30);
    assert.equal(await s.privacy.devicesWithPolicy(), ['dev0aaaaaaaaaaaa', 'dev1aaaaaaaaaaaa']);
    assert.is(await s.privacy.deleteDevicePolicy('dev1aaaaaaaaaaaa'), true);
    assert.is(await s.privacy.deleteDevicePolicy('dev1aaaaaaaaaaaa'), false);

    await s.privacy.setGroupPolicy({ selector: 'b', priority: 1, policy: research, updatedAt: 1 });
    await s.privacy.setGroupPolicy({ selector: 'a', priority: 1, policy: pilot, updatedAt: 2 });
    await s.privacy.setGroupPolicy({ selector: 'Z=1', priority: 5, policy: pilot, updatedAt: 3 });
    await s.privacy.setGroupPolicy({ selector: 'b', priority: -2, policy: pilot, updatedAt: 4 });
    assert.equal((await s.privacy.groupPolicies()).map((g) => [g.selector, g.priority, g.updatedAt]), [['Z=1', 5, 3], ['a', 1, 2], ['b', -2, 4]]);
    assert.equal((await s.privacy.groupPolicies())[2].policy, pilot);
    assert.is(await s.privacy.deleteGroupPolicy('a'), true);
    assert.is(await s.privacy.deleteGroupPolicy('a'), false);
  });

  it('retention: blocks kept before a time, deleted without moving the heads; parents', async (s) => {
    await s.blocks.appendChain({ deviceId: 'dev1aaaaaaaaaaaa', prev: [], block: block(1, 100) });
    await s.blocks.appendChain({ deviceId: 'dev1aaaaaaaaaaaa', prev: [cid(1)], block: block(2, 200) });
    await s.blocks.appendChain({ deviceId: 'dev1aaaaaaaaaaaa', prev: [cid(2)], block: block(3, 300) });
    assert.equal((await s.blocks.list('readings', 'dev1aaaaaaaaaaaa', 250)).map((x) => x.cid[4]), [1, 2]);
    assert.equal((await s.blocks.list('readings', undefined, 150)).map((x) => x.cid[4]), [1]);
    assert.equal(await s.blocks.parents(cid(3)), [cid(2)]);
    assert.is(await s.blocks.delete([cid(1), cid(2)]), 2);
    assert.is(await s.blocks.delete([cid(1)]), 0);
    assert.is(await s.blocks.get(cid(2)), undefined);
    assert.equal(await s.blocks.heads('dev1aaaaaaaaaaaa'), [cid(3)]);
    assert.equal(await s.blocks.parents(cid(3)), [cid(2)], 'the kept message still names its removed parent');
    // A removed message fetched again later is no head: a kept message names it.
    await s.blocks.appendChain({ deviceId: 'dev1aaaaaaaaaaaa', prev: [cid(1)], block: block(2, 400) });
    assert.equal(await s.blocks.heads('dev1aaaaaaaaaaaa'), [cid(3)]);
  });

  it('removed CIDs: noted per tombstone gateway, idempotently', async (s) => {
    assert.equal(await s.blocks.removedBy(cid(1)), []);
    await s.blocks.noteRemoved('dev1aaaaaaaaaaaa', 'gwbbbbbbbbbbbbbb', [cid(1), cid(2)]);
    await s.blocks.noteRemoved('dev1aaaaaaaaaaaa', 'gwbbbbbbbbbbbbbb', [cid(1)]);
    await s.blocks.noteRemoved('dev1aaaaaaaaaaaa', 'gwaaaaaaaaaaaaaa', [cid(1)]);
    await s.blocks.noteRemoved('dev1aaaaaaaaaaaa', 'gwaaaaaaaaaaaaaa', []);
    assert.equal(await s.blocks.removedBy(cid(1)), [
      { deviceId: 'dev1aaaaaaaaaaaa', gateway: 'gwaaaaaaaaaaaaaa' }, { deviceId: 'dev1aaaaaaaaaaaa', gateway: 'gwbbbbbbbbbbbbbb' },
    ]);
    assert.equal(await s.blocks.removedBy(cid(2)), [{ deviceId: 'dev1aaaaaaaaaaaa', gateway: 'gwbbbbbbbbbbbbbb' }]);
    assert.equal(await s.blocks.removedBy(cid(3)), []);
  });

  it('two replicas run retention at once: one pass does it, one tombstone for the removed range', async (s, url) => {
    // On PostgreSQL a second store on the same database is a second replica; SQLite has one process.
    const other = url ? await PostgresStore.open(url) : s;
    try {
      const id = 'devaaaaaaaaaaaaa';
      const gw = 'gwaaaaaaaaaaaaaa';
      const T0 = 1_700_000_000;
      const seed = new Uint8Array(randomBytes(32));
      const signer = signerFromSeed(seed, nacl.sign.keyPair.fromSeed(seed).publicKey);
      const ks = new Uint8Array(32).fill(7);
      await s.completePairing({
        id, publicKey: new Uint8Array(32).fill(1), ks, gatewayId: gw, model: 'm1', firmware: '1.0', capabilities: ['readings'], firstSeen: 1000, counter: 1, now: 2000,
      });
      const reading = (seq: number) => ({ kind: 1 as const, seq, t: T0 + seq, gatewayTimed: false, channel: 1, value: seq });
      assert.ok((await s.commitFrame({ deviceId: id, ks, counter: 2, now: T0 * 1000, records: [reading(1), reading(2), reading(3)] })).ok);
      const P = protocols();
      const m1 = encodeMessage(P.readings.pcid, readingsPayload({ device: id, gateway: gw, records: [[1, T0 + 1, 1, 1], [2, T0 + 2, 1, 2]], prev: [] }), signer);
      const m2 = encodeMessage(P.readings.pcid, readingsPayload({ device: id, gateway: gw, records: [[3, T0 + 3, 1, 3]], prev: [m1.cid] }), signer);
      for (const [m, prev] of [[m1, []], [m2, [m1.cid]]] as const) {
        await s.blocks.appendChain({ deviceId: id, prev: [...prev], block: { cid: m.cid, bytes: m.bytes, kind: 'readings', deviceId: id, receivedAt: T0 * 1000 } });
      }
      const privacy = { effectivePolicy: async () => parsePolicy({ retentionDays: 1 }) } as unknown as PrivacyService;
      const replica = (store: Store, now: number) => new Retention({ store, privacy, gatewayId: gw, signer, log: pino({ level: 'silent' }), now: () => now });
      // Their clocks differ by a millisecond (else both would sign the very same tombstone).
      const at = (T0 + 10 * 86_400) * 1000;
      const [a, b] = await Promise.all([replica(s, at).run(), replica(other, at + 1).run()]);
      const done = [...a.devices, ...b.devices];
      assert.equal(done.map((d) => [d.deviceId, d.through, d.recordsDeleted, d.blocksDeleted]), [[id, 3, 3, 2]]);
      const tombstones = await s.blocks.list('tombstone', id);
      assert.equal(tombstones.map((x) => cidText(x.cid)), [done[0].tombstone]);
      const t = parseTombstone(decodeMessage(tombstones[0].bytes).payload);
      if (typeof t === 'string') throw new Error(t);
      assert.equal([t.from, t.through, t.removed.length], [1, 3, 2]);
      assert.equal(await s.blocks.removedBy(m1.cid), [{ deviceId: id, gateway: gw }]);
      assert.equal(await s.blocks.removedBy(m2.cid), [{ deviceId: id, gateway: gw }]);

      // An hour later each replica runs again: nothing new expired, so no tombstone for the same range.
      for (const r of [replica(other, at + 3_600_000), replica(s, at + 3_600_001)]) assert.equal((await r.run()).devices, []);
      assert.is((await s.blocks.list('tombstone', id)).length, 1);
    } finally {
      if (other !== s) await other.close();
    }
  });

  it('a stored policy that no longer validates is refused with the reason', async (s, url) => {
    await s.privacy.setDevicePolicy('dev1aaaaaaaaaaaa', research, 10);
    if (url) {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      await c.query(`UPDATE privacy_devices SET policy = '{"mesh":"everything"}'`);
      await c.end();
    } else {
      const Database = (await import('better-sqlite3')).default;
      const db = new Database((s as SqliteStore).path);
      db.prepare(`UPDATE privacy_devices SET policy = '{"mesh":"everything"}'`).run();
      db.close();
    }
    const err = await s.privacy.devicePolicy('dev1aaaaaaaaaaaa').then(() => '', (e: Error) => e.message);
    assert.match(err, /stored privacy policy of device dev1aaaaaaaaaaaa is not valid: "mesh.level" is one of/);
  });
}

test('a gateway on PostgreSQL: policy over HTTP, retention, tombstone, verify', async () => {
  const db = await tempDatabase();
  const offset = { ms: 0 };
  const t = await startTestGateway({ store: db.url, clock: () => Date.now() - offset.ms });
  try {
    const d = await pairDevice(t);
    const now = Math.floor(Date.now() / 1000);
    offset.ms = 20 * 86_400_000;
    await d.send({ type: Body.readings, first: 1, records: [[now - 20 * 86_400, 1, 1]] });
    await d.waitAck(1);
    await t.gw.mesh.settled();
    offset.ms = 0;
    await d.send({ type: Body.readings, first: 2, records: [[now, 1, 2]] });
    await d.waitAck(2);
    await t.gw.mesh.settled();
    assert.is((await t.api('PUT', `/api/devices/${d.id}/privacy`, { retentionDays: 10 })).json.source, 'device');
    const run = (await t.api('POST', '/api/privacy/retention/run', {})).json.devices;
    assert.equal(run.map((x: any) => [x.deviceId, x.through, x.recordsDeleted, x.blocksDeleted]), [[d.id, 1, 1, 1]]);
    assert.equal((await t.api('GET', `/api/devices/${d.id}/readings`)).json.records.map((r: number[]) => r[0]), [2]);
    const v = await verifyHistory(d.id, httpSource(t.gw.httpUrl));
    assert.equal([v.problems, v.covered, v.removed], [[], [[2, 2]], [[1, 1]]]);
  } finally {
    await t.close();
    await db.drop();
  }
});

test.run();
