// The Store contract (gateway/store/store.ts), run against both implementations: SQLite (the one-site
// default, the reference) and PostgreSQL (shared by replicas), each on a fresh database. The
// concurrency cases open a second store on the same database, as a second replica would.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PostgresStore } from '../../gateway/store/postgres.js';
import { SqliteStore } from '../../gateway/store/sqlite.js';
import type { PairingCommit, Store, StoredBlock } from '../../gateway/store/store.js';
import { tempDatabase, type TempDatabase } from './pg-support.js';
import { randomFillSync } from 'node:crypto';
import { useRandom } from '../../firmware/core/crypto.js';

// A store makes the gateway identity its replicas share (postgres-identity.ts) from the core's Random port.
useRandom({ fill: (b) => randomFillSync(b) });

interface Backend {
  name: string;
  /** A fresh, empty database for one test. */
  fresh(): Promise<{ open(): Promise<Store>; done(): Promise<void> }>;
}

const backends: Backend[] = [
  {
    name: 'sqlite',
    async fresh() {
      const dir = mkdtempSync(join(tmpdir(), 'gridlet-store-'));
      return { open: async () => new SqliteStore(join(dir, 'db.sqlite')), done: async () => rmSync(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: 'postgres',
    async fresh() {
      const db: TempDatabase = await tempDatabase();
      return { open: () => PostgresStore.open(db.url), done: () => db.drop() };
    },
  },
];

/** Resolves when `p` rejects with an error that `check` accepts; fails the test otherwise. */
async function rejects(p: Promise<unknown>, check: RegExp | ((e: Error) => boolean) = () => true): Promise<void> {
  try {
    await p;
  } catch (e) {
    const ok = check instanceof RegExp ? check.test((e as Error).message) : check(e as Error);
    assert.ok(ok, `unexpected error: ${(e as Error).message}`);
    return;
  }
  assert.unreachable('expected a rejection');
}

const KS = new Uint8Array(32).fill(7);
const OTHER_KS = new Uint8Array(32).fill(9);
const T0 = 1_700_000_000;

function pairing(id: string, o: Partial<PairingCommit> = {}): PairingCommit {
  return {
    id, publicKey: new Uint8Array(32).fill(1), ks: KS, gatewayId: 'gatewayid2345677', model: 'm1', firmware: '1.0',
    capabilities: ['readings'], firstSeen: 1000, counter: 1, now: 2000, ...o,
  };
}

const reading = (seq: number, value = seq) => ({ kind: 1 as const, seq, t: T0 + seq, gatewayTimed: false, channel: 1, value });

function cid(n: number): Uint8Array {
  return new Uint8Array([1, 0x55, 0x12, 0x20, ...new Uint8Array(32).fill(n)]);
}

function block(n: number, deviceId: string | null = 'dev1aaaaaaaaaaaa'): StoredBlock {
  return { cid: cid(n), bytes: new Uint8Array([n, n, n]), kind: 'readings', deviceId, receivedAt: 5000 + n };
}

for (const backend of backends) {
  const it = (name: string, f: (s: Store, open: () => Promise<Store>) => Promise<void>) =>
    test(`${backend.name}: ${name}`, async () => {
      const db = await backend.fresh();
      const s = await db.open();
      const others: Store[] = [];
      try {
        await f(s, async () => {
          const o = await db.open();
          others.push(o);
          return o;
        });
      } finally {
        for (const o of others) await o.close();
        await s.close();
        await db.done();
      }
    });

  it('registry: pairing, labels, touch, revoke, re-pairing', async (s) => {
    assert.is(await s.getDevice('dev1aaaaaaaaaaaa'), undefined);
    const d = await s.completePairing(pairing('dev1aaaaaaaaaaaa'));
    assert.is(d.state, 'paired');
    assert.equal(d.ks, KS);
    assert.equal(d.capabilities, ['readings']);
    assert.is(d.upHighest, 1);
    assert.equal([d.firstSeen, d.pairedAt, d.lastSeen, d.revokedAt], [1000, 2000, 2000, null]);
    await s.completePairing(pairing('dev0aaaaaaaaaaaa'));
    assert.equal((await s.listDevices()).map((x) => x.id), ['dev0aaaaaaaaaaaa', 'dev1aaaaaaaaaaaa']);
    assert.equal((await s.deviceIds()).sort(), ['dev0aaaaaaaaaaaa', 'dev1aaaaaaaaaaaa']);
    assert.equal((await s.setLabels('dev1aaaaaaaaaaaa', { site: 'north', pole: '' }))!.labels, { site: 'north', pole: '' });
    assert.is(await s.setLabels('nobodyaaaaaaaaaa', {}), undefined);
    await s.touch('dev1aaaaaaaaaaaa', 3000);
    assert.is((await s.getDevice('dev1aaaaaaaaaaaa'))!.lastSeen, 3000);
    await s.addDownlink('dev1aaaaaaaaaaaa', 17, new Uint8Array([1]), 3000);
    const r = (await s.revoke('dev1aaaaaaaaaaaa', 4000))!;
    assert.equal([r.state, r.revokedAt], ['revoked', 4000]);
    assert.is((await s.revoke('dev1aaaaaaaaaaaa', 5000))!.revokedAt, 4000, 'idempotent');
    assert.is(await s.revoke('nobodyaaaaaaaaaa', 5000), undefined);
    assert.equal(await s.countDevices(), { paired: 1, revoked: 1 });
    // Re-pairing: a new session; the old session's downlinks are gone, the labels stay.
    const again = await s.completePairing(pairing('dev1aaaaaaaaaaaa', { ks: OTHER_KS, counter: 5, now: 6000 }));
    assert.equal([again.state, again.revokedAt, again.pairedAt, again.downCounter, again.upHighest], ['paired', null, 6000, 0, 5]);
    assert.equal(again.labels, { site: 'north', pole: '' });
    assert.is(await s.countPendingDownlinks(), 0);
    // A pairing may reserve downlink counter 1 (for the body sent once paired): the next one is 2.
    const reserved = await s.completePairing(pairing('dev0aaaaaaaaaaaa', { counter: 7, now: 7000, reserveDown: true }));
    assert.is(reserved.downCounter, 1);
    assert.is(await s.nextDownCounter('dev0aaaaaaaaaaaa'), 2);
  });

  it('commitFrame: records once, replay and stale sessions refused, the ack is the contiguous prefix', async (s) => {
    const id = 'dev1aaaaaaaaaaaa';
    await s.completePairing(pairing(id));
    const a = await s.commitFrame({ deviceId: id, ks: KS, counter: 2, now: 3000, records: [reading(4), reading(5)] });
    assert.equal(a, { ok: true, added: [reading(4), reading(5)], ackedSeq: 0, downCounter: undefined });
    assert.equal(await s.commitFrame({ deviceId: id, ks: KS, counter: 2, now: 3000, records: [reading(1)] }), { ok: false, why: 'replay' });
    assert.equal(await s.commitFrame({ deviceId: id, ks: OTHER_KS, counter: 3, now: 3000 }), { ok: false, why: 'stale' });
    assert.equal(await s.commitFrame({ deviceId: 'nobodyaaaaaaaaaa', ks: KS, counter: 3, now: 3000 }), { ok: false, why: 'stale' });
    const b = await s.commitFrame({ deviceId: id, ks: KS, counter: 3, now: 3100, records: [reading(1), reading(2), reading(4, 99)], allocateDown: true });
    assert.ok(b.ok);
    if (!b.ok) return;
    assert.equal(b.added, [reading(1), reading(2)], 'a resend of 4 is ignored');
    assert.is(b.ackedSeq, 2);
    assert.is(b.downCounter, 1);
    // A gap fills only the free seqs (4 and 5 are stored), and the ack passes it.
    const g = await s.commitFrame({ deviceId: id, ks: KS, counter: 4, now: 3200, records: [{ kind: 7, seq: 3, last: 8, t: 3200, reason: 'full' }] });
    assert.ok(g.ok);
    if (!g.ok) return;
    assert.equal(g.added, [{ kind: 7, seq: 3, last: 3, t: 3200, reason: 'full' }, { kind: 7, seq: 6, last: 8, t: 3200, reason: 'full' }]);
    assert.is(g.ackedSeq, 8);
    // An event with data and a record inside a gap.
    const e = await s.commitFrame({
      deviceId: id, ks: KS, counter: 10, now: 3300,
      records: [reading(7), { kind: 2, seq: 9, t: T0 + 9, gatewayTimed: true, event: 'power-restored', data: { off_s: 12, why: 'x' } }],
    });
    assert.ok(e.ok && e.added.length === 1 && e.ackedSeq === 9);
    const d = (await s.getDevice(id))!;
    assert.equal([d.ackedSeq, d.upHighest, d.lastSeen], [9, 10, 3300]);
    assert.ok(d.upBits[0] !== 0, 'the window keeps the earlier counters');
    // Counters below the highest but not yet seen are still accepted.
    assert.ok((await s.commitFrame({ deviceId: id, ks: KS, counter: 8, now: 3400 })).ok);
    assert.equal(await s.commitFrame({ deviceId: id, ks: KS, counter: 8, now: 3400 }), { ok: false, why: 'replay' });
    assert.equal(await s.readRecords(id, 1, 100), [
      reading(1), reading(2), { kind: 7, seq: 3, last: 3, t: 3200, reason: 'full' }, reading(4), reading(5),
      { kind: 7, seq: 6, last: 8, t: 3200, reason: 'full' },
      { kind: 2, seq: 9, t: T0 + 9, gatewayTimed: true, event: 'power-restored', data: { off_s: 12, why: 'x' } },
    ]);
    assert.equal(await s.readRecords(id, 7, 2), [{ kind: 7, seq: 6, last: 8, t: 3200, reason: 'full' }, { kind: 2, seq: 9, t: T0 + 9, gatewayTimed: true, event: 'power-restored', data: { off_s: 12, why: 'x' } }],
      'from inside a gap: the gap, then what follows');
    assert.equal(await s.readRecords(id, 100, 10), []);
    // Revoked: commits are stale.
    await s.revoke(id, 4000);
    assert.equal(await s.commitFrame({ deviceId: id, ks: KS, counter: 20, now: 4000 }), { ok: false, why: 'stale' });
  });

  it('commitFrame: the ack passes a long run of records stored ahead of a hole', async (s) => {
    const id = 'dev1aaaaaaaaaaaa';
    await s.completePairing(pairing(id));
    let counter = 1;
    // 2..2501 arrive first (in frames of 100), all at once, then 1.
    await Promise.all(Array.from({ length: 25 }, (_, f) =>
      s.commitFrame({ deviceId: id, ks: KS, counter: ++counter, now: 3000, records: Array.from({ length: 100 }, (_, i) => reading(2 + f * 100 + i)) })));
    assert.is((await s.getDevice(id))!.ackedSeq, 0);
    const r = await s.commitFrame({ deviceId: id, ks: KS, counter: ++counter, now: 3000, records: [reading(1), reading(2, 7)] });
    assert.ok(r.ok && r.ackedSeq === 2501 && r.added.length === 1, JSON.stringify(r.ok && [r.ackedSeq, r.added.length]));
    assert.equal((await s.readRecords(id, 1, 3)).map((x) => x.kind === 1 && x.value), [1, 2, 3]);
  });

  it('commitFrame: status, firmware info and guest-acks', async (s) => {
    const id = 'dev1aaaaaaaaaaaa';
    await s.completePairing(pairing(id));
    const status = { t: 1, uptime: 2, buffered: 3, dropped: 0, heap: 4, guests: [['g', 'bcid', 'running']] as [string, string, string][], link: 'wifi', receivedAt: 5 };
    assert.ok(await s.guests.deploying(id, 'bcid', 'g', 2500));
    assert.is(await s.guests.deploying('nobodyaaaaaaaaaa', 'bcid', 'g', 2500), false);
    assert.ok((await s.commitFrame({ deviceId: id, ks: KS, counter: 2, now: 3000, status, info: { firmware: '2.0', model: 'm2' }, guest: { cid: 'bcid', state: { state: 'running', at: 3000 } } })).ok);
    const d = (await s.getDevice(id))!;
    assert.equal(d.status, status);
    assert.equal([d.firmware, d.model], ['2.0', 'm2']);
    assert.equal(d.guests, { bcid: { state: 'running', at: 3000, name: 'g', deployedAt: 2500 } });
    assert.equal(await s.guests.removing(id, 'g', 3500), ['bcid']);
    assert.is((await s.getDevice(id))!.guests.bcid.state, 'removing');
    assert.ok((await s.commitFrame({ deviceId: id, ks: KS, counter: 3, now: 3600, guest: { cid: 'b', state: { state: 'removed', at: 3600 } } })).ok);
    assert.equal((await s.getDevice(id))!.guests, { bcid: { state: 'removed', at: 3600, name: 'g', deployedAt: 2500 } });
  });

  it('downlinks: counters, resends, down-acks, drops', async (s) => {
    const id = 'dev1aaaaaaaaaaaa';
    await s.completePairing(pairing(id));
    assert.is(await s.nextDownCounter(id), 1);
    const a = await s.addDownlink(id, 17, new Uint8Array([1, 2]), 3000);
    const b = await s.addDownlink(id, 20, new Uint8Array([3]), 3001);
    assert.equal([a.counter, b.counter, a.sentAt], [2, 3, 3000]);
    assert.equal(a.body, new Uint8Array([1, 2]));
    assert.equal((await s.pendingDownlinks(id)).map((x) => x.id), [a.id, b.id]);
    const again = (await s.resendDownlink(a.id, 4000))!;
    assert.equal([again.counter, again.sentAt, again.type], [4, 4000, 17]);
    assert.is(await s.resendDownlink(999_999, 4000), undefined);
    if (backend.name === 'postgres') {
      // A replica that read the downlink before another resent it does not resend it again.
      assert.is(await s.resendDownlink(a.id, 4001, 4000), undefined);
      assert.is((await s.getDevice(id))!.downCounter, 4, 'no counter taken');
    }
    await rejects(s.nextDownCounter('nobodyaaaaaaaaaa'));
    await rejects(s.addDownlink('nobodyaaaaaaaaaa', 17, new Uint8Array(1), 1));
    // A down-ack of 3 covers b (sent with 3), not a (resent with 4).
    assert.ok((await s.commitFrame({ deviceId: id, ks: KS, counter: 2, now: 4100, downAck: 3 })).ok);
    assert.equal((await s.pendingDownlinks(id)).map((x) => x.id), [a.id]);
    await s.addDownlink(id, 20, new Uint8Array([3]), 4200);
    assert.is(await s.countPendingDownlinks(), 2);
    assert.is(await s.dropDownlinks(id, 20), 1);
    assert.is(await s.dropDownlinks(id), 1);
    assert.is(await s.countPendingDownlinks(), 0);
    assert.is((await s.getDevice(id))!.downCounter, 5);
  });

  it('blocks: put, chains with expected heads, coverage, deletion', async (s) => {
    const dev = 'dev1aaaaaaaaaaaa';
    assert.ok(await s.blocks.put(block(1, null)));
    assert.is(await s.blocks.put(block(1, null)), false, 'already kept');
    assert.equal(await s.blocks.get(cid(1)), new Uint8Array([1, 1, 1]));
    assert.ok(await s.blocks.has(cid(1)));
    assert.is(await s.blocks.has(cid(2)), false);
    assert.ok(await s.blocks.appendChain({ deviceId: dev, block: block(2), prev: [], expectHeads: [] }));
    assert.is(await s.blocks.appendChain({ deviceId: dev, block: block(3), prev: [], expectHeads: [] }), false, 'heads moved meanwhile');
    assert.ok(await s.blocks.appendChain({ deviceId: dev, block: block(3), prev: [cid(2)], expectHeads: [cid(2)] }));
    assert.equal(await s.blocks.heads(dev), [cid(3)]);
    // An ancestor fetched late is no head.
    assert.ok(await s.blocks.appendChain({ deviceId: dev, block: block(4), prev: [cid(5)] }));
    assert.ok(await s.blocks.appendChain({ deviceId: dev, block: block(5), prev: [] }));
    assert.equal((await s.blocks.heads(dev)).length, 2);
    assert.equal((await s.blocks.allHeads()).map((h) => h.deviceId), [dev, dev]);
    assert.equal((await s.blocks.list('readings', dev)).map((x) => x.cid[4]), [2, 3, 4, 5]);
    assert.equal((await s.blocks.list('readings')).map((x) => x.cid[4]), [1, 2, 3, 4, 5]);
    assert.equal(await s.blocks.list('identity'), []);
    assert.equal(await s.blocks.parents(cid(3)), [cid(2)]);
    // Coverage of this gateway's own records.
    await s.completePairing(pairing(dev));
    await s.commitFrame({ deviceId: dev, ks: KS, counter: 2, now: 3000, records: [reading(1), reading(2), reading(3)] });
    assert.ok(await s.blocks.appendChain({ deviceId: dev, block: block(6), prev: [cid(3)], covers: [[1, 1], [2, 2]] }));
    assert.equal(await s.blocks.uncovered(dev, 10), [reading(3)]);
    assert.is(await s.blocks.delete([cid(3), cid(9)]), 1);
    assert.is(await s.blocks.has(cid(3)), false);
    assert.equal(await s.blocks.parents(cid(3)), []);
    assert.ok((await s.blocks.heads(dev)).every((h) => h[4] !== 3));
  });

  it('blocks: several messages of one chain kept in one append', async (s) => {
    const dev = 'dev1aaaaaaaaaaaa';
    assert.ok(await s.blocks.appendChain({ deviceId: dev, block: block(2), prev: [], expectHeads: [] }));
    const ok = await s.blocks.appendChain({
      deviceId: dev, block: block(3), prev: [cid(2)], expectHeads: [cid(2)], covers: [[1, 1]],
      next: [{ block: block(4), covers: [[2, 2]] }, { block: block(5), covers: [[3, 3]] }],
    });
    assert.ok(ok);
    assert.equal(await s.blocks.heads(dev), [cid(5)], 'the last message is the only head');
    assert.equal(await s.blocks.parents(cid(4)), [cid(3)]);
    assert.equal(await s.blocks.parents(cid(5)), [cid(4)]);
    assert.equal((await s.blocks.list('readings', dev)).map((x) => x.cid[4]), [2, 3, 4, 5]);
    // A moved head refuses the whole batch: none of its messages is kept.
    const stale = await s.blocks.appendChain({ deviceId: dev, block: block(6), prev: [cid(3)], expectHeads: [cid(3)], next: [{ block: block(7) }] });
    assert.is(stale, false);
    assert.is(await s.blocks.has(cid(7)), false);
    await s.completePairing(pairing(dev));
    await s.commitFrame({ deviceId: dev, ks: KS, counter: 2, now: 3000, records: [reading(1), reading(2), reading(3), reading(4)] });
    assert.equal(await s.blocks.uncovered(dev, 10), [reading(4)], 'every message of the batch records what it covers');
  });

  it('guests: modules by CID', async (s) => {
    const m = { cid: 'bafk1', name: 'g', version: '1.0.0', size: 3, instrumented: false, manifest: { a: 1 }, addedAt: 100 };
    assert.is(await s.guests.put(m, new Uint8Array([0, 97, 115])), 'added');
    assert.is(await s.guests.put(m, new Uint8Array([0, 97, 115])), 'unchanged');
    assert.is(await s.guests.put({ ...m, version: '1.0.1', manifest: { a: 2 } }, new Uint8Array([0, 97, 115])), 'updated');
    assert.equal(await s.guests.get('bafk1'), { ...m, version: '1.0.1', manifest: { a: 2 } });
    assert.equal(await s.guests.wasm('bafk1'), new Uint8Array([0, 97, 115]));
    assert.is(await s.guests.get('nope'), undefined);
    await s.guests.put({ ...m, cid: 'bafk0', addedAt: 50, instrumented: true }, new Uint8Array([1]));
    assert.equal((await s.guests.list()).map((x) => [x.cid, x.instrumented]), [['bafk0', true], ['bafk1', false]]);
  });

  it('retention: expired records and their deletion', async (s) => {
    const id = 'dev1aaaaaaaaaaaa';
    await s.completePairing(pairing(id));
    await s.commitFrame({ deviceId: id, ks: KS, counter: 2, now: 3000, records: [reading(1), reading(2), { kind: 7, seq: 3, last: 4, t: T0 + 3, reason: 'full' }, reading(5)] });
    assert.is(await s.expiredThrough(id, T0 + 1), undefined);
    assert.is(await s.expiredThrough(id, T0 + 4), 4);
    assert.is(await s.deleteRecordsThrough(id, 4), 3);
    assert.equal(await s.readRecords(id, 0, 10), [reading(5)]);
    assert.is((await s.getDevice(id))!.ackedSeq, 5);
  });

  it('privacy: policies and the audit log', async (s) => {
    const policy = { default: 'none' } as never;
    await s.privacy.setDevicePolicy('dev1aaaaaaaaaaaa', policy, 10).catch(() => {});
    await s.privacy.addAudit(10, [
      { audience: 'http', deviceId: 'dev1aaaaaaaaaaaa', kind: 'readings', seq: [1, 5], level: 'raw' as never, purposes: [], via: 'http' },
      { audience: 'peer', operator: 'op', deviceId: 'dev2aaaaaaaaaaaa', cid: 'bx', kind: 'readings', level: 'raw' as never, purposes: [], via: 'serve' },
    ]);
    const all = await s.privacy.audit({ limit: 10 });
    assert.equal(all.map((e) => [e.deviceId, e.seq, e.operator, e.cid]), [['dev2aaaaaaaaaaaa', undefined, 'op', 'bx'], ['dev1aaaaaaaaaaaa', [1, 5], undefined, undefined]]);
    assert.equal((await s.privacy.audit({ deviceId: 'dev1aaaaaaaaaaaa', limit: 10 })).length, 1);
    assert.equal((await s.privacy.audit({ limit: 10, beforeId: all[0].id })).length, 1);
    assert.is(await s.privacy.deleteGroupPolicy('site=x'), false);
  });

  it('quota: takes from two stores at once (replicas) never pass the limit; days are apart and old ones pruned', async (s, open) => {
    const id = 'dev1aaaaaaaaaaaa';
    const day = '2026-01-01';
    const other = await open();
    const both = [s, other];
    const takes = await Promise.all(Array.from({ length: 50 }, (_, i) => both[i % 2].quota.take(id, day, 10)));
    const granted = takes.filter((t) => t.granted);
    assert.is(granted.length, 10, 'exactly the limit granted');
    assert.equal(granted.map((t) => t.used).sort((a, b) => a - b), Array.from({ length: 10 }, (_, i) => i + 1));
    assert.ok(takes.every((t) => t.granted || t.used === 10), 'a refusal reports the count');
    assert.is(await other.quota.used(id, day), 10);
    assert.equal(await s.quota.take(id, day, 12), { granted: true, used: 11 }, 'a higher limit grants more');
    // Other devices and other days count apart.
    assert.equal(await s.quota.take('dev2aaaaaaaaaaaa', day, 10), { granted: true, used: 1 });
    assert.equal(await other.quota.take(id, '2026-01-02', 10), { granted: true, used: 1 });
    assert.is(await s.quota.used('dev3aaaaaaaaaaaa', day), 0);
    assert.is(await other.quota.prune('2026-01-02'), 2);
    assert.is(await s.quota.used(id, day), 0);
    assert.is(await s.quota.used(id, '2026-01-02'), 1);
  });

  it('concurrency: what another store on the database wrote is what this one acts on (revocation, counters, heads)', async (s, open) => {
    const id = 'dev1aaaaaaaaaaaa';
    await s.completePairing(pairing(id));
    assert.ok((await s.commitFrame({ deviceId: id, ks: KS, counter: 2, now: 3000, records: [reading(1)] })).ok);
    const other = await open();
    assert.ok((await other.commitFrame({ deviceId: id, ks: KS, counter: 3, now: 3001, records: [reading(2)] })).ok);
    assert.is((await s.getDevice(id))!.upHighest, 3, 'the counter the other store accepted');
    assert.is((await s.commitFrame({ deviceId: id, ks: KS, counter: 3, now: 3002 })).ok, false, 'and refuses it again');
    const r = await s.commitFrame({ deviceId: id, ks: KS, counter: 4, now: 3003, records: [reading(3)] });
    assert.ok(r.ok && r.ackedSeq === 3, 'the acked prefix runs over the other store\'s record');
    assert.ok(await other.blocks.appendChain({ deviceId: id, block: block(20, id), prev: [] }));
    assert.equal(await s.blocks.heads(id), [block(20, id).cid]);
    await other.revoke(id, 4000);
    assert.is((await s.getDevice(id))!.state, 'revoked');
    assert.equal(await s.commitFrame({ deviceId: id, ks: KS, counter: 5, now: 4001 }), { ok: false, why: 'stale' });
  });

  it('concurrency: two stores on one database (replicas) never accept a counter twice nor store a seq twice', async (s, open) => {
    const id = 'dev1aaaaaaaaaaaa';
    await s.completePairing(pairing(id));
    const other = await open();
    const both = [s, other];
    const tries = [];
    // Each counter is offered by both stores at once, with overlapping records.
    for (let c = 2; c < 42; c++) {
      for (const x of both) tries.push(x.commitFrame({ deviceId: id, ks: KS, counter: c, now: 3000 + c, records: [reading(c), reading(c + 1)] }));
    }
    const results = await Promise.all(tries);
    assert.is(results.filter((r) => r.ok).length, 40, 'one acceptance per counter');
    const added = results.flatMap((r) => (r.ok ? r.added.map((x) => x.seq) : []));
    assert.equal(added.sort((a, b) => a - b), Array.from({ length: 41 }, (_, i) => i + 2), 'each seq added once');
    assert.is((await other.getDevice(id))!.upHighest, 41);
    // Downlink counters are never handed out twice either.
    const counters = await Promise.all(Array.from({ length: 20 }, (_, i) => both[i % 2].nextDownCounter(id)));
    assert.is(new Set(counters).size, 20);
    // Chain appends with expected heads: exactly one of two racing appenders wins.
    const wins = await Promise.all(both.map((x, i) => x.blocks.appendChain({ deviceId: id, block: block(10 + i, id), prev: [], expectHeads: [] })));
    assert.equal(wins.filter(Boolean).length, 1);
  });
}

test('postgres: a bad URL and an unreachable server are clear errors', async () => {
  await rejects(PostgresStore.open('postgres://127.0.0.1:1/gridlet'), /cannot connect to PostgreSQL at postgres:\/\/127\.0\.0\.1:1\/gridlet/);
  await rejects(PostgresStore.open('postgres://u:secret@127.0.0.1:1'), (e: Error) => /not a PostgreSQL URL/.test(e.message) && !e.message.includes('secret'));
  const db = await tempDatabase();
  try {
    const u = new URL(db.url);
    u.pathname = '/gridlet_no_such_database';
    await rejects(PostgresStore.open(u.toString()), /createdb/);
  } finally {
    await db.drop();
  }
});

test('postgres: a newer schema is refused; replicas share one identity', async () => {
  const db = await tempDatabase();
  try {
    const a = await PostgresStore.open(db.url);
    const b = await PostgresStore.open(db.url);
    const ia = await a.identity(() => undefined);
    const ib = await b.identity(() => undefined);
    assert.is(ib.id, ia.id);
    assert.equal(ib.box.secretKey, ia.box.secretKey);
    assert.equal(ib.sign.secretKey, ia.sign.secretKey);
    await rejects(b.identity(() => ({ ...ia, id: 'otheraaaaaaaaaaa' })), /give this replica an empty --data directory/);
    // gridlet gateway rotate-key --store postgres://…: a new mesh key for every replica, the same gateway.
    const rotated = await a.rotateMeshKey();
    assert.is(rotated.id, ia.id);
    assert.not.equal(rotated.sign.publicKey, ia.sign.publicKey);
    assert.equal((await b.identity(() => undefined)).sign.publicKey, rotated.sign.publicKey);
    await a.db.query('UPDATE gridlet_schema SET version = 99');
    await a.close();
    await b.close();
    await rejects(PostgresStore.open(db.url), /schema version 99, newer than this gateway/);
  } finally {
    await db.drop();
  }
});

test.run();
