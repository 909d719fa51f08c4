// The SQLite store's frame path (gateway/store/sqlite.ts): device state held in memory, group commits
// made durable by an fsync off the event loop. What a user would notice: a frame that cannot be stored
// fails alone, the others of its group are kept; what was acknowledged is there after a reopen.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../gateway/store/sqlite.js';
import { Checkpointer } from '../../gateway/store/checkpointer.js';
import type { DeviceStatus, StoredRecord } from '../../gateway/store/store.js';
import { DEFAULT_POLICY } from '../../gateway/privacy/policy.js';

const KS = new Uint8Array(32).fill(7);
const LIMIT = 1 << 20;
const reading = (seq: number): StoredRecord => ({ kind: 1, seq, t: 1000 + seq, gatewayTimed: false, channel: 1, value: seq * 10 });

async function withStore(f: (s: SqliteStore, path: string) => Promise<void>, o: ConstructorParameters<typeof SqliteStore>[1] = {}): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'gridlet-sqlite-'));
  const path = join(dir, 'db.sqlite');
  const s = new SqliteStore(path, o);
  try {
    await f(s, path);
  } finally {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function pair(s: SqliteStore, id: string): Promise<void> {
  await s.completePairing({ id, publicKey: new Uint8Array(32), ks: KS, gatewayId: 'gw', model: 'm', firmware: '1', capabilities: [], firstSeen: 1, counter: 1, now: 1 });
}

test("devices with equal labels and capabilities share them read-only: one device's label edit leaves the others' as they were", () =>
  withStore(async (s) => {
    for (const id of ['dev1aaaaaaaaaaaa', 'dev2aaaaaaaaaaaa', 'dev3aaaaaaaaaaaa']) {
      await pair(s, id);
      await s.setLabels(id, { site: 'north', feeder: '7' });
    }
    const [a, b] = [(await s.getDevice('dev1aaaaaaaaaaaa'))!, (await s.getDevice('dev2aaaaaaaaaaaa'))!];
    assert.is(a.labels, b.labels, 'one copy');
    assert.throws(() => {
      (a.labels as { [k: string]: string }).site = 'south';
    }, TypeError, 'read-only');
    await s.setLabels('dev1aaaaaaaaaaaa', { site: 'south' });
    assert.equal((await s.getDevice('dev1aaaaaaaaaaaa'))!.labels, { site: 'south' });
    assert.equal((await s.getDevice('dev2aaaaaaaaaaaa'))!.labels, { site: 'north', feeder: '7' });
    assert.equal((await s.getDevice('dev3aaaaaaaaaaaa'))!.labels, { site: 'north', feeder: '7' });
    assert.equal((await s.listDevices()).map((d) => d.model), ['m', 'm', 'm']);
  }));

test('a frame that cannot be stored fails alone; the others of its group are kept and its counter stays free', () =>
  withStore(async (s) => {
    await pair(s, 'dev1aaaaaaaaaaaa');
    await pair(s, 'dev2aaaaaaaaaaaa');
    // A status JSON cannot hold (a BigInt) makes that frame's commit throw inside the group.
    const bad = { t: 1n } as unknown as DeviceStatus;
    const [a, b] = await Promise.allSettled([
      s.commitFrame({ deviceId: 'dev1aaaaaaaaaaaa', ks: KS, counter: 2, now: 5, records: [reading(1), reading(2)] }),
      s.commitFrame({ deviceId: 'dev2aaaaaaaaaaaa', ks: KS, counter: 2, now: 5, records: [reading(1)], status: bad }),
    ]);
    assert.is(a.status, 'fulfilled');
    assert.ok(a.status === 'fulfilled' && a.value.ok && a.value.ackedSeq === 2);
    assert.is(b.status, 'rejected');
    assert.equal((await s.readRecords('dev1aaaaaaaaaaaa', 1, 10)).map((r) => r.seq), [1, 2]);
    assert.equal(await s.readRecords('dev2aaaaaaaaaaaa', 1, 10), [], 'nothing of the failed frame');
    assert.is((await s.getDevice('dev2aaaaaaaaaaaa'))!.upHighest, 1);
    const again = await s.commitFrame({ deviceId: 'dev2aaaaaaaaaaaa', ks: KS, counter: 2, now: 6, records: [reading(1)] });
    assert.ok(again.ok && again.ackedSeq === 1, 'the counter was not taken');
  }));

test('what a commit resolved is in the file after a reopen: records, counters, acked prefix, downlink counter', () =>
  withStore(async (s, path) => {
    await pair(s, 'dev1aaaaaaaaaaaa');
    let last;
    for (let c = 2; c < 40; c++) {
      last = await s.commitFrame({ deviceId: 'dev1aaaaaaaaaaaa', ks: KS, counter: c, now: c, allocateDown: true, records: [reading(2 * c - 3), reading(2 * c - 2)] });
    }
    assert.ok(last!.ok && last!.ackedSeq === 76 && last!.downCounter === 38);
    const other = new SqliteStore(path);
    try {
      const d = (await other.getDevice('dev1aaaaaaaaaaaa'))!;
      assert.equal([d.upHighest, d.ackedSeq, d.downCounter], [39, 76, 38]);
      assert.is((await other.readRecords('dev1aaaaaaaaaaaa', 1, 1000)).length, 76);
    } finally {
      await other.close();
    }
  }));

test('downlink counters taken between frames are never given out twice; the kept downlinks this store lists (sent, resent, one acknowledged) are what a reopen reads', () =>
  withStore(async (s, path) => {
    const id = 'dev1aaaaaaaaaaaa';
    await pair(s, id);
    const counters: number[] = [];
    let up = 2;
    const frame = async () => {
      const r = await s.commitFrame({ deviceId: id, ks: KS, counter: up++, now: up, allocateDown: true });
      assert.ok(r.ok);
      counters.push(r.downCounter!);
    };
    await frame();
    const a = await s.addDownlink(id, 17, new Uint8Array([1]), 10);
    counters.push(a.counter);
    assert.equal((await s.pendingDownlinks(id)).map((d) => [d.id, d.counter]), [[a.id, a.counter]], 'the kept downlink is listed at once');
    await frame();
    counters.push(await s.nextDownCounter(id));
    await frame();
    const b = await s.addDownlink(id, 20, new Uint8Array([2]), 11);
    counters.push(b.counter);
    const again = (await s.resendDownlink(a.id, 12))!;
    counters.push(again.counter);
    await frame();
    // In one group: a frame, a kept downlink, a frame.
    const [, c] = await Promise.all([frame(), s.addDownlink(id, 17, new Uint8Array([3]), 13), frame()]);
    counters.push(c.counter);
    assert.equal([...new Set(counters)].length, counters.length, `no counter twice: ${counters.join(',')}`);
    assert.equal((await s.pendingDownlinks(id)).map((d) => [d.id, d.counter, d.sentAt]), [[a.id, again.counter, 12], [b.id, b.counter, 11], [c.id, c.counter, 13]]);
    // A down-ack covers its own counter: the lower ones may have been lost on the way.
    assert.ok((await s.commitFrame({ deviceId: id, ks: KS, counter: up++, now: up, downAck: c.counter })).ok);
    const here = { dev: (await s.getDevice(id))!, pending: await s.pendingDownlinks(id) };
    assert.is(here.dev.downCounter, Math.max(...counters));
    assert.equal(here.pending.map((d) => [d.id, d.counter]), [[a.id, again.counter], [b.id, b.counter]]);
    const other = new SqliteStore(path);
    try {
      assert.equal(await other.getDevice(id), here.dev);
      assert.equal(await other.pendingDownlinks(id), here.pending);
    } finally {
      await other.close();
    }
  }));

test('records out of order and gaps: only free seqs are stored, the prefix moves over what is contiguous', () =>
  withStore(async (s) => {
    await pair(s, 'dev1aaaaaaaaaaaa');
    const gap = (seq: number, last: number): StoredRecord => ({ kind: 7, seq, last, t: 9, reason: 'lost' });
    let r = await s.commitFrame({ deviceId: 'dev1aaaaaaaaaaaa', ks: KS, counter: 2, now: 1, records: [reading(5), reading(6), reading(3)] });
    assert.ok(r.ok && r.ackedSeq === 0);
    r = await s.commitFrame({ deviceId: 'dev1aaaaaaaaaaaa', ks: KS, counter: 3, now: 2, records: [gap(1, 8), reading(6)] });
    assert.ok(r.ok && r.ackedSeq === 8);
    assert.equal(r.ok && r.added.map((x) => [x.seq, x.kind === 7 ? x.last : x.seq]), [[1, 2], [4, 4], [7, 8]]);
    r = await s.commitFrame({ deviceId: 'dev1aaaaaaaaaaaa', ks: KS, counter: 4, now: 3, records: [reading(9), reading(10), reading(9)] });
    assert.ok(r.ok && r.ackedSeq === 10 && r.added.length === 2);
  }));

/**
 * 40 devices send `rounds` frames of 16 readings each, all devices at once (one group commit a round).
 * Returns the largest size of the WAL file after a round and the most one round added to it.
 */
async function fortyDevices(s: SqliteStore, path: string, rounds: number): Promise<{ ids: string[]; walPeak: number; roundMax: number }> {
  const ids = Array.from({ length: 40 }, (_, i) => `dev${String(i).padStart(13, '0')}`);
  for (const id of ids) await pair(s, id);
  let walPeak = 0;
  let roundMax = 0;
  let last = statSync(`${path}-wal`).size;
  for (let c = 2; c < rounds + 2; c++) {
    const results = await Promise.all(ids.map((id) => s.commitFrame({
      deviceId: id, ks: KS, counter: c, now: c, records: Array.from({ length: 16 }, (_, k) => reading((c - 2) * 16 + k + 1)),
    })));
    assert.ok(results.every((r) => r.ok && r.ackedSeq === (c - 1) * 16));
    const size = statSync(`${path}-wal`).size;
    walPeak = Math.max(walPeak, size);
    roundMax = Math.max(roundMax, size - last);
    last = size;
  }
  return { ids, walPeak, roundMax };
}

async function allThere(path: string, ids: string[], records: number): Promise<void> {
  const other = new SqliteStore(path);
  try {
    for (const id of [ids[0], ids[ids.length - 1]]) {
      assert.is((await other.readRecords(id, 1, 10_000)).length, records);
      assert.is((await other.getDevice(id))!.ackedSeq, records);
    }
  } finally {
    await other.close();
  }
}

test('the WAL is checkpointed off the event loop and stays bounded while frames keep coming; nothing is lost', () =>
  withStore(async (s, path) => {
    // 192,000 rows, several times the WAL size at which a checkpoint starts (1 MiB here).
    const { ids, walPeak, roundMax } = await fortyDevices(s, path, 300);
    const file = statSync(path).size;
    assert.ok(file > 6 * LIMIT, `the database file holds what was checkpointed (${file} bytes)`);
    assert.ok(s.checkpoints.count >= 3 && s.checkpoints.failed === 0, `checkpoints: ${JSON.stringify(s.checkpoints)}`);
    // Twice the threshold, past which commits wait for the checkpoint, and the round that went past it.
    assert.ok(walPeak <= 2 * LIMIT + roundMax, `the WAL stayed bounded (peak ${walPeak} bytes, ${roundMax} a round)`);
    await allThere(path, ids, 4800);
  }, { walCheckpointBytes: LIMIT }));

test('a checkpoint thread that falls behind holds the commits back: the WAL stays bounded; nothing is lost', () =>
  withStore(async (s, path) => {
    // Each pass of the real thread starts 100 ms late (a slow disk, a loaded machine): without the
    // hold, the commits of four passes' time would pile up in the WAL.
    const { ids, walPeak, roundMax } = await fortyDevices(s, path, 100);
    assert.ok(s.checkpoints.forced >= 1 && s.checkpoints.failed === 0, `checkpoints: ${JSON.stringify(s.checkpoints)}`);
    assert.ok(walPeak <= 2 * LIMIT + roundMax, `the WAL stayed bounded (peak ${walPeak} bytes, ${roundMax} a round)`);
    await allThere(path, ids, 1600);
  }, {
    walCheckpointBytes: LIMIT,
    checkpointer: (p) => {
      const real = new Checkpointer(p);
      return { pass: () => new Promise((r) => setTimeout(r, 100)).then(() => real.pass()), close: () => real.close() };
    },
  }));

test('a store closed while a checkpoint is under way closes once it is over; everything committed is there', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gridlet-sqlite-'));
  try {
    for (let k = 0; k < 5; k++) {
      const path = join(dir, `db${k}.sqlite`);
      // A checkpoint starts after nearly every commit here.
      const s = new SqliteStore(path, { walCheckpointBytes: 4096 });
      await pair(s, 'dev1aaaaaaaaaaaa');
      for (let c = 2; c < 12; c++) {
        await s.commitFrame({ deviceId: 'dev1aaaaaaaaaaaa', ks: KS, counter: c, now: c, records: Array.from({ length: 16 }, (_, i) => reading((c - 2) * 16 + i + 1)) });
      }
      await s.close();
      const other = new SqliteStore(path);
      try {
        assert.is((await other.readRecords('dev1aaaaaaaaaaaa', 1, 1000)).length, 160);
      } finally {
        await other.close();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});


test('devices paired here or through another connection to the file are found; an unknown id is not', () =>
  withStore(async (s, path) => {
    await pair(s, 'dev1aaaaaaaaaaaa');
    const other = new SqliteStore(path);
    try {
      assert.is(await s.getDevice('dev2aaaaaaaaaaaa'), undefined, 'unknown');
      assert.is(await other.getDevice('dev2aaaaaaaaaaaa'), undefined, 'unknown to the other too');
      await pair(other, 'dev2aaaaaaaaaaaa');
      await new Promise((r) => setImmediate(r));
      assert.is((await s.getDevice('dev2aaaaaaaaaaaa'))?.state, 'paired', 'paired through the other connection');
      await pair(s, 'dev3aaaaaaaaaaaa');
      assert.is((await s.getDevice('dev3aaaaaaaaaaaa'))?.state, 'paired', 'paired here');
      await new Promise((r) => setImmediate(r));
      assert.is((await other.getDevice('dev3aaaaaaaaaaaa'))?.state, 'paired', 'seen by the other');
      await s.revoke('dev3aaaaaaaaaaaa', 9);
      assert.is((await s.getDevice('dev3aaaaaaaaaaaa'))?.state, 'revoked');
      assert.equal((await s.deviceIds()).sort(), ['dev1aaaaaaaaaaaa', 'dev2aaaaaaaaaaaa', 'dev3aaaaaaaaaaaa']);
      assert.equal((await s.listDevices()).map((x) => `${x.id} ${x.state}`), ['dev1aaaaaaaaaaaa paired', 'dev2aaaaaaaaaaaa paired', 'dev3aaaaaaaaaaaa revoked']);
      await pair(other, 'dev0aaaaaaaaaaaa');
      await other.revoke('dev2aaaaaaaaaaaa', 10);
      await new Promise((r) => setImmediate(r));
      assert.equal((await s.listDevices()).map((x) => `${x.id} ${x.state}`),
        ['dev0aaaaaaaaaaaa paired', 'dev1aaaaaaaaaaaa paired', 'dev2aaaaaaaaaaaa revoked', 'dev3aaaaaaaaaaaa revoked'], 'the other connection\'s changes');
      const d = (await s.getDevice('dev1aaaaaaaaaaaa'))!;
      assert.equal([...d.ks], [...KS], 'the session key as paired');
      assert.is(d.publicKey.length, 32);
    } finally {
      await other.close();
    }
  }));

test("a device's own privacy policy is read here, set here or through another connection, and gone when deleted", () =>
  withStore(async (s, path) => {
    const policy = (days: number) => ({ ...DEFAULT_POLICY, retentionDays: days });
    const other = new SqliteStore(path);
    try {
      assert.is(await s.privacy.devicePolicy('dev1aaaaaaaaaaaa'), undefined, 'none yet');
      await s.privacy.setDevicePolicy('dev1aaaaaaaaaaaa', policy(30), 1);
      assert.is((await s.privacy.devicePolicy('dev1aaaaaaaaaaaa'))?.policy.retentionDays, 30, 'set here');
      assert.is(await other.privacy.devicePolicy('dev2aaaaaaaaaaaa'), undefined);
      await other.privacy.setDevicePolicy('dev2aaaaaaaaaaaa', policy(60), 2);
      await new Promise((r) => setImmediate(r));
      assert.is((await s.privacy.devicePolicy('dev2aaaaaaaaaaaa'))?.policy.retentionDays, 60, 'set through the other connection');
      await new Promise((r) => setImmediate(r));
      assert.ok(await other.privacy.deleteDevicePolicy('dev2aaaaaaaaaaaa'));
      await new Promise((r) => setImmediate(r));
      assert.is(await s.privacy.devicePolicy('dev2aaaaaaaaaaaa'), undefined, 'deleted through the other connection');
      assert.ok(await s.privacy.deleteDevicePolicy('dev1aaaaaaaaaaaa'));
      assert.is(await s.privacy.devicePolicy('dev1aaaaaaaaaaaa'), undefined, 'deleted here');
    } finally {
      await other.close();
    }
  }));

test('audit entries join the group commit of the frames queued with them; what resolved is in a crash copy', () =>
  withStore(async (s, path) => {
    await pair(s, 'dev1aaaaaaaaaaaa');
    const before = { ...s.groupCommits };
    const entry = (seq: number) => ({ audience: 'http', deviceId: 'dev1aaaaaaaaaaaa', kind: 'records' as const, seq: [seq, seq] as [number, number], level: 'full' as const, purposes: ['billing' as const], via: 'http' as const });
    await Promise.all([
      s.commitFrame({ deviceId: 'dev1aaaaaaaaaaaa', ks: KS, counter: 2, now: 5, records: [reading(1)] }),
      s.privacy.addAudit(7, [entry(1)]),
      s.privacy.addAudit(8, [entry(2), entry(3)]),
    ]);
    assert.equal([s.groupCommits.count - before.count, s.groupCommits.jobs - before.jobs], [1, 3], 'one transaction, one fsync');
    const dir = mkdtempSync(join(tmpdir(), 'gridlet-sqlite-crash-'));
    try {
      const copy = join(dir, 'db.sqlite');
      copyFileSync(path, copy);
      copyFileSync(`${path}-wal`, `${copy}-wal`);
      const crashed = new SqliteStore(copy);
      try {
        assert.equal((await crashed.privacy.audit({ limit: 10 })).map((e) => e.seq?.[0]).sort(), [1, 2, 3]);
      } finally {
        await crashed.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }));

test.run();
