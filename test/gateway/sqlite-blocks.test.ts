// The SQLite block store's log (gateway/store/sqlite-blocks.ts): heads, coverage and links are derived
// from the append-only log and written only now and then, so what a user would notice is whether they
// are right after a crash between those writes, after a deletion, and after an upgrade from schema 3.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteStore } from '../../gateway/store/sqlite.js';
import type { StoredBlock, StoredRecord } from '../../gateway/store/store.js';

const KS = new Uint8Array(32).fill(7);
const DEV = 'dev1aaaaaaaaaaaa';
const reading = (seq: number): StoredRecord => ({ kind: 1, seq, t: 1000 + seq, gatewayTimed: false, channel: 1, value: seq * 10 });

function cid(n: number): Uint8Array {
  return new Uint8Array([1, 0x55, 0x12, 0x20, ...new Uint8Array(32).fill(n)]);
}

function block(n: number, kind: StoredBlock['kind'] = 'readings', deviceId: string | null = DEV): StoredBlock {
  return { cid: cid(n), bytes: new Uint8Array([n, n, n]), kind, deviceId, receivedAt: 5000 + n };
}

const ids = (xs: Uint8Array[]) => xs.map((x) => x[4]);

async function withDir(f: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'gridlet-blocks-'));
  try {
    await f(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function pair(s: SqliteStore, id: string): Promise<void> {
  await s.completePairing({ id, publicKey: new Uint8Array(32), ks: KS, gatewayId: 'gw', model: 'm', firmware: '1', capabilities: [], firstSeen: 1, counter: 1, now: 1 });
}

/** The database as a crash leaves it: its files copied while the store is open (nothing of close() runs). */
function crashCopy(path: string, dir: string): string {
  const to = join(dir, 'crashed.sqlite');
  copyFileSync(path, to);
  if (existsSync(`${path}-wal`)) copyFileSync(`${path}-wal`, `${to}-wal`);
  return to;
}

/** What a reopened store holds of DEV's chain. */
async function chainOf(s: SqliteStore) {
  return {
    heads: ids(await s.blocks.heads(DEV)),
    all: (await s.blocks.allHeads()).map((h) => [h.deviceId, h.cid[4]]),
    readings: ids((await s.blocks.list('readings', DEV)).map((b) => b.cid)),
    uncovered: (await s.blocks.uncovered(DEV, 100)).map((r) => r.seq),
    parents: await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map(async (n) => ids(await s.blocks.parents(cid(n))))),
  };
}

test('heads, coverage and links are right after a crash between writes of the derived state', () =>
  withDir(async (dir) => {
    const path = join(dir, 'db.sqlite');
    const s = new SqliteStore(path);
    // Written every 3 appends: part of what follows is in mesh_chains, the rest is replayed from the log.
    s.blocks.persistEvery = { appends: 3, ms: 60_000 };
    try {
      await pair(s, DEV);
      await s.commitFrame({ deviceId: DEV, ks: KS, counter: 2, now: 2, records: [1, 2, 3, 4, 5, 6, 7, 8].map(reading) });
      // Each append its own group commit, as frames arriving one by one.
      assert.ok(await s.blocks.appendChain({ deviceId: DEV, block: block(1), prev: [], expectHeads: [], covers: [[1, 1], [2, 2]] }));
      assert.ok(await s.blocks.appendChain({ deviceId: DEV, block: block(2), prev: [cid(1)], expectHeads: [cid(1)], covers: [[3, 3]] }));
      assert.ok(await s.blocks.appendChain({ deviceId: DEV, block: block(3), prev: [cid(2)], expectHeads: [cid(2)], covers: [[4, 4]] }));
      assert.ok(await s.blocks.appendChain({ deviceId: DEV, block: block(4), prev: [cid(3)], covers: [[6, 6]] }));
      // A branch beside it (a peer's), and a message whose parent is not kept yet.
      assert.ok(await s.blocks.appendChain({ deviceId: DEV, block: block(5), prev: [cid(3)] }));
      assert.ok(await s.blocks.appendChain({ deviceId: DEV, block: block(6), prev: [cid(7)] }));
      assert.ok(await s.blocks.put(block(8, 'identity', null)));
      const before = await chainOf(s);
      assert.equal(before.heads, [4, 5, 6]);
      assert.equal(before.uncovered, [5, 7, 8]);
      assert.equal(before.readings, [1, 2, 3, 4, 5, 6]);
      assert.equal(before.parents, [[], [1], [2], [3], [3], [7], [], []]);
      const crashed = new SqliteStore(crashCopy(path, dir));
      try {
        assert.equal(await chainOf(crashed), before, 'the same after the crash');
        // The late ancestor is no head: a kept message names it.
        assert.ok(await crashed.blocks.appendChain({ deviceId: DEV, block: block(7), prev: [cid(3)] }));
        assert.equal(ids(await crashed.blocks.heads(DEV)), [4, 5, 6]);
      } finally {
        await crashed.close();
      }
      // The same again after a clean close of the crashed copy (its state written at close).
      const again = new SqliteStore(join(dir, 'crashed.sqlite'));
      try {
        assert.equal(ids(await again.blocks.heads(DEV)), [4, 5, 6]);
        assert.equal(ids((await again.blocks.list('readings', DEV)).map((b) => b.cid)), [1, 2, 3, 4, 5, 6, 7]);
        assert.equal((await again.blocks.uncovered(DEV, 100)).map((r) => r.seq), [5, 7, 8]);
      } finally {
        await again.close();
      }
    } finally {
      await s.close();
    }
  }));

test('an ancestor arriving after its child is no head, before and after a reopen; a message of its own is', () =>
  withDir(async (dir) => {
    const path = join(dir, 'db.sqlite');
    let s = new SqliteStore(path);
    try {
      assert.ok(await s.blocks.appendChain({ deviceId: DEV, block: block(3), prev: [cid(2)] }));
      assert.ok(await s.blocks.appendChain({ deviceId: DEV, block: block(2), prev: [cid(1)] }));
      assert.equal(ids(await s.blocks.heads(DEV)), [3]);
      await s.close();
      s = new SqliteStore(path);
      assert.ok(await s.blocks.appendChain({ deviceId: DEV, block: block(1), prev: [] }));
      assert.equal(ids(await s.blocks.heads(DEV)), [3], 'the oldest, fetched last, is no head either');
      // Appending a message already kept changes nothing.
      assert.ok(await s.blocks.appendChain({ deviceId: DEV, block: block(2), prev: [cid(1)] }));
      assert.equal(ids(await s.blocks.heads(DEV)), [3]);
      // A message kept by put() and then appended as a chain message is a head when nothing names it.
      assert.ok(await s.blocks.put(block(4)));
      assert.ok(await s.blocks.appendChain({ deviceId: DEV, block: block(4), prev: [cid(3)] }));
      assert.equal(ids(await s.blocks.heads(DEV)), [4]);
      assert.equal(ids(await s.blocks.parents(cid(4))), [3]);
      const crashed = new SqliteStore(crashCopy(path, dir));
      try {
        assert.equal(ids(await crashed.blocks.heads(DEV)), [4]);
      } finally {
        await crashed.close();
      }
    } finally {
      await s.close();
    }
  }));

test('delete(): a deleted head stays a head across a reopen; a deleted message a kept one names is no head when kept again', () =>
  withDir(async (dir) => {
    const path = join(dir, 'db.sqlite');
    let s = new SqliteStore(path);
    try {
      await pair(s, DEV);
      await s.commitFrame({ deviceId: DEV, ks: KS, counter: 2, now: 2, records: [1, 2, 3].map(reading) });
      assert.ok(await s.blocks.appendChain({ deviceId: DEV, block: block(1), prev: [], covers: [[1, 1]] }));
      assert.ok(await s.blocks.appendChain({ deviceId: DEV, block: block(2), prev: [cid(1)], covers: [[2, 2]] }));
      assert.ok(await s.blocks.appendChain({ deviceId: DEV, block: block(3), prev: [cid(2)], covers: [[3, 3]] }));
      assert.is(await s.blocks.delete([cid(2), cid(3)]), 2);
      assert.equal(ids(await s.blocks.heads(DEV)), [3], 'the deleted head stays one');
      assert.equal(await s.blocks.parents(cid(3)), [], 'its links went');
      assert.equal(ids((await s.blocks.list('readings', DEV)).map((b) => b.cid)), [1]);
      assert.equal(await s.blocks.uncovered(DEV, 10), [], 'coverage is not deleted with messages');
      const crashed = new SqliteStore(crashCopy(path, dir));
      try {
        assert.equal(ids(await crashed.blocks.heads(DEV)), [3], 'after a crash');
        assert.equal(ids((await crashed.blocks.list('readings', DEV)).map((b) => b.cid)), [1]);
      } finally {
        await crashed.close();
      }
      await s.close();
      s = new SqliteStore(path);
      assert.equal(ids(await s.blocks.heads(DEV)), [3], 'after a reopen');
      // The next message names the deleted head; then the head is fetched again: it is no head.
      assert.ok(await s.blocks.appendChain({ deviceId: DEV, block: block(4), prev: [cid(3)], expectHeads: [cid(3)] }));
      assert.ok(await s.blocks.appendChain({ deviceId: DEV, block: block(3), prev: [cid(2)] }));
      assert.equal(ids(await s.blocks.heads(DEV)), [4]);
      // 4 was kept when 5 named it; deleted and kept again, it is no head: 5 still names it.
      assert.ok(await s.blocks.appendChain({ deviceId: DEV, block: block(5), prev: [cid(4)], expectHeads: [cid(4)] }));
      assert.is(await s.blocks.delete([cid(4)]), 1);
      assert.ok(await s.blocks.appendChain({ deviceId: DEV, block: block(4), prev: [cid(3)] }));
      assert.equal(ids(await s.blocks.heads(DEV)), [5], 'named by a kept message');
      // 1 was named only by 2, which went: kept again, it is a head.
      assert.is(await s.blocks.delete([cid(1)]), 1);
      assert.ok(await s.blocks.appendChain({ deviceId: DEV, block: block(1), prev: [] }));
      assert.equal(ids(await s.blocks.heads(DEV)), [1, 5]);
      const crashed2 = new SqliteStore(crashCopy(path, dir));
      try {
        assert.equal(ids(await crashed2.blocks.heads(DEV)), [1, 5]);
        assert.equal(ids((await crashed2.blocks.list('readings', DEV)).map((b) => b.cid)), [3, 5, 4, 1]);
      } finally {
        await crashed2.close();
      }
      // Retention of records: the coverage of what went goes with them; the rest is still covered.
      await s.deleteRecordsThrough(DEV, 2);
      assert.equal(await s.blocks.uncovered(DEV, 10), []);
    } finally {
      await s.close();
    }
  }));

test('the derived state is written a share per group commit; a crash at any point in between loses nothing', () =>
  withDir(async (dir) => {
    const path = join(dir, 'db.sqlite');
    const s = new SqliteStore(path);
    // Due every 7 appends, 2 devices per group commit: a write of 12 devices spans several commits.
    s.blocks.persistEvery = { appends: 7, ms: 60_000 };
    s.blocks.persistShare = 2;
    const devs = Array.from({ length: 12 }, (_, i) => `dev${String(i).padStart(2, '0')}aaaaaaaaaaa`);
    const watch = new Database(path, { readonly: true });
    const state = async (st: SqliteStore) => Promise.all(devs.map(async (d) => ({
      heads: ids(await st.blocks.heads(d)),
      readings: ids((await st.blocks.list('readings', d)).map((b) => b.cid)),
      uncovered: (await st.blocks.uncovered(d, 100)).map((r) => r.seq),
    })));
    try {
      for (const d of devs) {
        await pair(s, d);
        await s.commitFrame({ deviceId: d, ks: KS, counter: 2, now: 2, records: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map(reading) });
      }
      // Commits that wrote some devices' state without moving the mark: a crash after one is in the middle of a write.
      let midWrite = 0;
      let chains = new Map<string, string>();
      let lastMark = 0;
      const last = new Map<string, number>();
      for (let n = 1; n <= 100; n++) {
        const d = devs[(n * 5) % devs.length];
        const prev = last.get(d);
        // Each append its own group commit; some devices report twice in a row, and some messages cover nothing.
        assert.ok(await s.blocks.appendChain({ deviceId: d, block: block(n, 'readings', d), prev: prev ? [cid(prev)] : [], covers: n % 4 ? [[n % 10 || 10, n % 10 || 10]] : undefined }));
        last.set(d, n);
        const rows = new Map((watch.prepare('SELECT device_id, heads, covered FROM mesh_chains').all() as { device_id: string; heads: Buffer; covered: string }[])
          .map((r) => [r.device_id, r.heads.toString('hex') + r.covered]));
        const mark = watch.prepare('SELECT n FROM mesh_mark').pluck().get() as number | undefined ?? 0;
        const written = devs.filter((x) => rows.get(x) !== chains.get(x)).length;
        assert.ok(written <= 2, `commit ${n} wrote ${written} devices' state (the share is 2)`);
        if (written > 0 && mark === lastMark) midWrite++;
        chains = rows;
        lastMark = mark;
        const live = await state(s);
        const crashed = new SqliteStore(crashCopy(path, dir));
        try {
          assert.equal(await state(crashed), live, `after a crash at append ${n}`);
        } finally {
          await crashed.close();
        }
      }
      assert.ok(midWrite >= 20, `crashes in the middle of a write: ${midWrite}`);
      const live = await state(s);
      await s.close();
      const again = new SqliteStore(path);
      try {
        assert.equal(await state(again), live, 'after a clean close');
      } finally {
        await again.close();
      }
    } finally {
      watch.close();
      await s.close();
    }
  }));

test('a device\'s readings are listed from the written index and from memory alike; other kinds through their index', () =>
  withDir(async (dir) => {
    const s = new SqliteStore(join(dir, 'db.sqlite'));
    s.blocks.persistEvery = { appends: 2, ms: 60_000 };
    try {
      const other = 'dev2aaaaaaaaaaaa';
      for (let n = 1; n <= 7; n++) {
        const dev = n % 2 ? DEV : other;
        assert.ok(await s.blocks.appendChain({ deviceId: dev, block: block(n, 'readings', dev), prev: [] }));
      }
      assert.ok(await s.blocks.put(block(20, 'tombstone', DEV)));
      assert.ok(await s.blocks.put(block(21, 'registry', other)));
      assert.equal(ids((await s.blocks.list('readings', DEV)).map((b) => b.cid)), [1, 3, 5, 7]);
      assert.equal(ids((await s.blocks.list('readings', other)).map((b) => b.cid)), [2, 4, 6]);
      assert.equal(ids((await s.blocks.list('readings', DEV, 5004)).map((b) => b.cid)), [1, 3], 'kept before then');
      assert.equal(ids((await s.blocks.list('readings')).map((b) => b.cid)), [1, 2, 3, 4, 5, 6, 7]);
      assert.equal(ids((await s.blocks.list('tombstone', DEV)).map((b) => b.cid)), [20]);
      assert.equal(ids((await s.blocks.list('registry')).map((b) => b.cid)), [21]);
      assert.equal((await s.blocks.allHeads()).map((h) => [h.deviceId, h.cid[4]]), [[DEV, 1], [DEV, 3], [DEV, 5], [DEV, 7], [other, 2], [other, 4], [other, 6]]);
    } finally {
      await s.close();
    }
  }));

test('two stores on one database follow each other\'s appends, writes of the derived state and deletions', () =>
  withDir(async (dir) => {
    const path = join(dir, 'db.sqlite');
    const a = new SqliteStore(path);
    const b = new SqliteStore(path);
    a.blocks.persistEvery = { appends: 2, ms: 60_000 };
    try {
      const readings = async (s: SqliteStore) => ids((await s.blocks.list('readings', DEV)).map((x) => x.cid));
      assert.ok(await a.blocks.appendChain({ deviceId: DEV, block: block(1), prev: [], expectHeads: [] }));
      assert.equal(ids(await b.blocks.heads(DEV)), [1]);
      assert.ok(await b.blocks.appendChain({ deviceId: DEV, block: block(2), prev: [cid(1)], expectHeads: [cid(1)] }));
      assert.is(await a.blocks.appendChain({ deviceId: DEV, block: block(3), prev: [cid(1)], expectHeads: [cid(1)] }), false, 'the other moved the head');
      assert.ok(await a.blocks.appendChain({ deviceId: DEV, block: block(3), prev: [cid(2)], expectHeads: [cid(2)] }));
      // a wrote the state (every 2 appends): b's readings past its old mark are listed once.
      assert.equal(await readings(b), [1, 2, 3]);
      assert.ok(await b.blocks.appendChain({ deviceId: DEV, block: block(4), prev: [cid(3)], expectHeads: [cid(3)] }));
      assert.equal(await readings(a), [1, 2, 3, 4]);
      assert.equal(await readings(b), [1, 2, 3, 4]);
      assert.is(await b.blocks.delete([cid(2)]), 1);
      assert.equal(await readings(a), [1, 3, 4]);
      assert.equal(ids(await a.blocks.heads(DEV)), [4]);
      // A message kept by put() in one store and appended to the chain in the other (the state is loaded again).
      assert.ok(await a.blocks.put(block(5)));
      assert.ok(await b.blocks.appendChain({ deviceId: DEV, block: block(5), prev: [cid(4)] }));
      assert.equal(ids(await a.blocks.heads(DEV)), [5]);
      assert.equal(ids(await a.blocks.parents(cid(5))), [4]);
    } finally {
      await a.close();
      await b.close();
    }
    const c = new SqliteStore(path);
    try {
      assert.equal(ids(await c.blocks.heads(DEV)), [5]);
      assert.equal(ids((await c.blocks.list('readings', DEV)).map((x) => x.cid)), [1, 3, 4, 5]);
    } finally {
      await c.close();
    }
  }));

// The mesh tables of schema 3, as gateway/store/sqlite-blocks.ts created them.
const SCHEMA_3 = `
CREATE TABLE mesh_blocks (cid BLOB PRIMARY KEY, bytes BLOB NOT NULL, kind TEXT NOT NULL, device_id TEXT, received_at INTEGER NOT NULL, n INTEGER NOT NULL);
CREATE INDEX mesh_blocks_kind ON mesh_blocks (kind, device_id, n);
CREATE INDEX mesh_blocks_n ON mesh_blocks (n);
CREATE TABLE mesh_links (parent BLOB NOT NULL, child BLOB NOT NULL, PRIMARY KEY (parent, child)) WITHOUT ROWID;
CREATE TABLE mesh_heads (device_id TEXT NOT NULL, cid BLOB NOT NULL, PRIMARY KEY (device_id, cid)) WITHOUT ROWID;
CREATE TABLE mesh_covered (device_id TEXT NOT NULL, seq INTEGER NOT NULL, last INTEGER NOT NULL, PRIMARY KEY (device_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mesh_removed (cid BLOB NOT NULL, gateway TEXT NOT NULL, device_id TEXT NOT NULL, PRIMARY KEY (cid, gateway)) WITHOUT ROWID;
`;

test('a store of schema 3 is upgraded: the same blocks, heads, parents and uncovered records', () =>
  withDir(async (dir) => {
    const path = join(dir, 'db.sqlite');
    const s = new SqliteStore(path);
    await pair(s, DEV);
    await s.commitFrame({ deviceId: DEV, ks: KS, counter: 2, now: 2, records: [1, 2, 3, 4, 5, 6].map(reading) });
    await s.close();
    const db = new Database(path);
    db.exec(`DROP TABLE mesh_log; DROP TABLE mesh_readings; DROP TABLE mesh_chains; DROP TABLE mesh_mark; DROP TABLE mesh_dangling; ${SCHEMA_3}`);
    const put = db.prepare('INSERT INTO mesh_blocks (cid, bytes, kind, device_id, received_at, n) VALUES (?, ?, ?, ?, ?, ?)');
    const b = (n: number, kind: string, dev: string | null, at: number) => put.run(Buffer.from(cid(n)), Buffer.from([n, n, n]), kind, dev, 5000 + n, at);
    b(8, 'identity', null, 1);
    b(2, 'readings', DEV, 2);
    b(3, 'readings', DEV, 3);
    b(7, 'registry', DEV, 4);
    b(4, 'readings', DEV, 5);
    const link = db.prepare('INSERT INTO mesh_links (parent, child) VALUES (?, ?)');
    link.run(Buffer.from(cid(2)), Buffer.from(cid(3)));
    // 4 names 9, which was never kept: 9 is no head when it arrives.
    link.run(Buffer.from(cid(9)), Buffer.from(cid(4)));
    const head = db.prepare('INSERT INTO mesh_heads (device_id, cid) VALUES (?, ?)');
    head.run(DEV, Buffer.from(cid(3)));
    head.run(DEV, Buffer.from(cid(4)));
    const cover = db.prepare('INSERT INTO mesh_covered (device_id, seq, last) VALUES (?, ?, ?)');
    cover.run(DEV, 1, 2);
    cover.run(DEV, 3, 3);
    cover.run(DEV, 5, 5);
    db.pragma('user_version = 3');
    db.close();

    const up = new SqliteStore(path);
    try {
      assert.equal(ids(await up.blocks.heads(DEV)), [3, 4]);
      assert.equal((await up.blocks.allHeads()).map((h) => h.cid[4]), [3, 4]);
      assert.equal(ids(await up.blocks.parents(cid(3))), [2]);
      assert.equal(ids(await up.blocks.parents(cid(4))), [9]);
      assert.equal(await up.blocks.parents(cid(2)), []);
      assert.equal(ids((await up.blocks.list('readings', DEV)).map((x) => x.cid)), [2, 3, 4]);
      assert.equal(ids((await up.blocks.list('registry', DEV)).map((x) => x.cid)), [7]);
      assert.equal(ids((await up.blocks.list('identity')).map((x) => x.cid)), [8]);
      assert.equal(await up.blocks.get(cid(7)), new Uint8Array([7, 7, 7]));
      assert.equal((await up.blocks.uncovered(DEV, 10)).map((r) => r.seq), [4, 6]);
      assert.ok(await up.blocks.appendChain({ deviceId: DEV, block: block(9), prev: [] }));
      assert.equal(ids(await up.blocks.heads(DEV)), [3, 4], 'the late ancestor is no head');
      assert.ok(await up.blocks.appendChain({ deviceId: DEV, block: block(10), prev: [cid(3), cid(4)], expectHeads: [cid(3), cid(4)], covers: [[4, 4], [6, 6]] }));
      assert.equal(ids(await up.blocks.heads(DEV)), [10]);
      assert.equal(await up.blocks.uncovered(DEV, 10), []);
    } finally {
      await up.close();
    }
    const check = new Database(path, { readonly: true });
    try {
      assert.is(check.pragma('user_version', { simple: true }), 4);
      const tables = check.prepare<[], string>(`SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'mesh_%' ORDER BY name`).pluck().all();
      assert.equal(tables, ['mesh_chains', 'mesh_dangling', 'mesh_log', 'mesh_mark', 'mesh_readings', 'mesh_removed']);
    } finally {
      check.close();
    }
  }));


test('chain appends share the group commit of the frames queued with them, and one that cannot be kept fails alone', () =>
  withDir(async (dir) => {
    const path = join(dir, 'db.sqlite');
    const s = new SqliteStore(path);
    try {
      await pair(s, DEV);
      await pair(s, 'dev2aaaaaaaaaaaa');
      const before = { ...s.groupCommits };
      // What the mesh does for a frame stored a moment before, queued in the same turn as the next frames.
      const bad = { ...block(9), bytes: undefined } as unknown as StoredBlock;
      const out = await Promise.allSettled([
        s.commitFrame({ deviceId: DEV, ks: KS, counter: 2, now: 5, records: [reading(1), reading(2)] }),
        s.blocks.appendChain({ deviceId: DEV, block: block(1), prev: [], expectHeads: [], covers: [[1, 2]] }),
        s.blocks.appendChain({ deviceId: 'dev2aaaaaaaaaaaa', block: bad, prev: [] }),
        s.blocks.appendChain({ deviceId: DEV, block: block(2), prev: [cid(1)], expectHeads: [cid(1)] }),
        s.commitFrame({ deviceId: 'dev2aaaaaaaaaaaa', ks: KS, counter: 2, now: 5, records: [reading(1)] }),
      ]);
      assert.equal(out.map((o) => o.status), ['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
      assert.equal([s.groupCommits.count - before.count, s.groupCommits.jobs - before.jobs], [1, 5], 'one transaction, one fsync');
      assert.equal(ids(await s.blocks.heads(DEV)), [2]);
      assert.equal(await s.blocks.heads('dev2aaaaaaaaaaaa'), [], 'nothing of the append that failed');
      // What resolved is in the file: a copy taken now, as a crash would leave it, holds it all.
      const crashed = new SqliteStore(crashCopy(path, dir));
      try {
        assert.equal(ids(await crashed.blocks.heads(DEV)), [2]);
        assert.equal((await crashed.blocks.uncovered(DEV, 10)).map((r) => r.seq), []);
        assert.equal((await crashed.readRecords('dev2aaaaaaaaaaaa', 1, 10)).map((r) => r.seq), [1]);
      } finally {
        await crashed.close();
      }
    } finally {
      await s.close();
    }
  }));

test.run();
