// The one-site store: SQLite through better-sqlite3, WAL with synchronous=FULL, which is what
// WIRE.md calls "durably stored". better-sqlite3 is synchronous; the Store methods are async only so
// that other stores fit the same interface.

import { mkdirSync } from 'node:fs';
import { privateFile, tighten } from '../files.js';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { constantTimeEqual } from '../../firmware/core/bytes.js';
import { encode, type CborValue } from '../../firmware/core/cbor.js';
import { ReplayWindow } from '../../firmware/core/wire/frame.js';
import { SqliteBlockStore } from './sqlite-blocks.js';
import { applyGuestAck, SqliteGuestStore } from './sqlite-guests.js';
import { firmwareDdl, SqlFirmwareStore, sqliteExec } from './firmware.js';
import { SqlitePrivacyStore } from './sqlite-privacy.js';
import { SqliteQuotaStore } from './sqlite-quota.js';
import { blob, toDevice, toDownlink, toRecord, type DeviceSqlRow, type DownlinkSqlRow, type RecordSqlRow } from './rows.js';
import type {
  DeviceRow, FrameCommit, FrameCommitResult, Labels, PairingCommit, PendingDownlink, Store, StoredRecord,
} from './store.js';

/**
 * 1: devices, records, downlinks, mesh blocks, guests. 2: privacy policies and the audit log
 * (sqlite-privacy.ts): a gateway older than that would ignore the policies, so it refuses the store.
 * 3: the offload daily quota (sqlite-quota.ts) and the CIDs tombstones removed (mesh_removed): an older
 * gateway would hand every meter a fresh quota and take removed messages back from peers.
 */
const SCHEMA_VERSION = 3;
/** Most frame commits in one group-commit transaction. */
const MAX_GROUP_COMMIT = 512;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS devices (
  id TEXT PRIMARY KEY,
  state TEXT NOT NULL,
  public_key BLOB NOT NULL,
  ks BLOB NOT NULL,
  gateway_id TEXT NOT NULL,
  model TEXT NOT NULL,
  firmware TEXT NOT NULL,
  capabilities TEXT NOT NULL DEFAULT '[]',
  labels TEXT NOT NULL DEFAULT '{}',
  first_seen INTEGER NOT NULL,
  paired_at INTEGER NOT NULL,
  revoked_at INTEGER,
  last_seen INTEGER,
  up_highest INTEGER NOT NULL DEFAULT 0,
  up_bits_lo INTEGER NOT NULL DEFAULT 0,
  up_bits_hi INTEGER NOT NULL DEFAULT 0,
  down_counter INTEGER NOT NULL DEFAULT 0,
  acked_seq INTEGER NOT NULL DEFAULT 0,
  status TEXT,
  guests TEXT NOT NULL DEFAULT '{}'
);
-- One row per record; a gap row occupies seq..last. Rows of one device never overlap.
CREATE TABLE IF NOT EXISTS records (
  device_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  last INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  t INTEGER NOT NULL,
  gateway_timed INTEGER NOT NULL DEFAULT 0,
  channel INTEGER,
  value INTEGER,
  event TEXT,
  data BLOB,
  reason TEXT,
  received_at INTEGER NOT NULL,
  PRIMARY KEY (device_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS downlinks (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  device_id TEXT NOT NULL,
  type INTEGER NOT NULL,
  body BLOB NOT NULL,
  counter INTEGER NOT NULL,
  sent_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS downlinks_device ON downlinks (device_id, id);
`;

export class SqliteStore implements Store {
  readonly #db: Database.Database;
  readonly #q;
  readonly blocks: SqliteBlockStore;
  readonly guests: SqliteGuestStore;
  readonly firmware: SqlFirmwareStore;
  readonly privacy: SqlitePrivacyStore;
  readonly quota: SqliteQuotaStore;

  constructor(readonly path: string) {
    if (path !== ':memory:') {
      // It holds every device's session key: the owner's alone. SQLite gives its -wal and -shm files
      // the database file's rights, so the file is made 0600 before SQLite creates it.
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      privateFile(path);
      for (const f of [`${path}-wal`, `${path}-shm`, `${path}-journal`]) tighten(f, 0o600);
    }
    const db = new Database(path);
    this.#db = db;
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 5000');
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      db.close();
      throw new Error(`store ${path} has schema version ${version}, newer than this gateway (${SCHEMA_VERSION}); upgrade gridlet`);
    }
    db.exec(SCHEMA);
    this.blocks = new SqliteBlockStore(db, toRecord);
    this.guests = new SqliteGuestStore(db);
    for (const ddl of firmwareDdl('sqlite')) db.exec(ddl);
    this.firmware = new SqlFirmwareStore(sqliteExec(db), (b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength));
    this.privacy = new SqlitePrivacyStore(db);
    this.quota = new SqliteQuotaStore(db);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
    this.#q = {
      device: db.prepare<[string], DeviceSqlRow>('SELECT * FROM devices WHERE id = ?'),
      devices: db.prepare<[], DeviceSqlRow>('SELECT * FROM devices ORDER BY id'),
      countDevices: db.prepare<[], { state: string; n: number }>('SELECT state, count(*) AS n FROM devices GROUP BY state'),
      upsertPaired: db.prepare(`
        INSERT INTO devices (id, state, public_key, ks, gateway_id, model, firmware, capabilities, first_seen, paired_at,
          last_seen, up_highest, up_bits_lo, up_bits_hi, down_counter)
        VALUES (@id, 'paired', @pk, @ks, @gw, @model, @firmware, @caps, @firstSeen, @now, @now, @highest, @lo, @hi, 0)
        ON CONFLICT (id) DO UPDATE SET state = 'paired', public_key = @pk, ks = @ks, gateway_id = @gw, model = @model,
          firmware = @firmware, capabilities = @caps, paired_at = @now, revoked_at = NULL, last_seen = @now,
          up_highest = @highest, up_bits_lo = @lo, up_bits_hi = @hi, down_counter = 0`),
      revoke: db.prepare(`UPDATE devices SET state = 'revoked', revoked_at = ? WHERE id = ? AND state = 'paired'`),
      labels: db.prepare('UPDATE devices SET labels = ? WHERE id = ?'),
      touch: db.prepare('UPDATE devices SET last_seen = ? WHERE id = ?'),
      window: db.prepare(`UPDATE devices SET up_highest = ?, up_bits_lo = ?, up_bits_hi = ?, last_seen = ? WHERE id = ?`),
      acked: db.prepare('UPDATE devices SET acked_seq = ? WHERE id = ?'),
      status: db.prepare('UPDATE devices SET status = ? WHERE id = ?'),
      guests: db.prepare('UPDATE devices SET guests = ? WHERE id = ?'),
      info: db.prepare('UPDATE devices SET firmware = ?, model = ? WHERE id = ?'),
      nextDown: db.prepare<[string], { down_counter: number }>(
        'UPDATE devices SET down_counter = down_counter + 1 WHERE id = ? RETURNING down_counter'),
      // The row at or before seq: it occupies seq when its `last` reaches it.
      covering: db.prepare<[string, number], { seq: number; last: number }>(
        'SELECT seq, last FROM records WHERE device_id = ? AND seq <= ? ORDER BY seq DESC LIMIT 1'),
      inRange: db.prepare<[string, number, number], { seq: number; last: number }>(
        'SELECT seq, last FROM records WHERE device_id = ? AND seq >= ? AND seq <= ? ORDER BY seq'),
      after: db.prepare<[string, number, number], { seq: number; last: number }>(
        'SELECT seq, last FROM records WHERE device_id = ? AND seq > ? ORDER BY seq LIMIT ?'),
      insert: db.prepare(`
        INSERT INTO records (device_id, seq, last, kind, t, gateway_timed, channel, value, event, data, reason, received_at)
        VALUES (@device, @seq, @last, @kind, @t, @gt, @channel, @value, @event, @data, @reason, @now)`),
      read: db.prepare<[string, number, number], RecordSqlRow>(
        'SELECT * FROM records WHERE device_id = ? AND seq >= ? ORDER BY seq LIMIT ?'),
      readBefore: db.prepare<[string, number], RecordSqlRow>(
        'SELECT * FROM records WHERE device_id = ? AND seq < ? ORDER BY seq DESC LIMIT 1'),
      addDownlink: db.prepare<[string, number, Buffer, number, number, number], DownlinkSqlRow>(`
        INSERT INTO downlinks (device_id, type, body, counter, sent_at, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING *`),
      pending: db.prepare<[string], DownlinkSqlRow>('SELECT * FROM downlinks WHERE device_id = ? ORDER BY id'),
      downlink: db.prepare<[number], DownlinkSqlRow>('SELECT * FROM downlinks WHERE id = ?'),
      resent: db.prepare('UPDATE downlinks SET counter = ?, sent_at = ? WHERE id = ?'),
      ackDownlinks: db.prepare('DELETE FROM downlinks WHERE device_id = ? AND counter = ?'),
      dropDownlinks: db.prepare('DELETE FROM downlinks WHERE device_id = ?'),
      dropDownlinksOfType: db.prepare('DELETE FROM downlinks WHERE device_id = ? AND type = ?'),
      countDownlinks: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM downlinks'),
    };
  }

  async getDevice(id: string): Promise<DeviceRow | undefined> {
    const r = this.#q.device.get(id);
    return r && toDevice(r);
  }

  async listDevices(): Promise<DeviceRow[]> {
    return this.#q.devices.all().map(toDevice);
  }

  async countDevices(): Promise<{ paired: number; revoked: number }> {
    const out = { paired: 0, revoked: 0 };
    for (const r of this.#q.countDevices.all()) if (r.state === 'paired' || r.state === 'revoked') out[r.state] = r.n;
    return out;
  }

  async completePairing(p: PairingCommit): Promise<DeviceRow> {
    const w = new ReplayWindow();
    w.accept(p.counter);
    const [lo, hi] = w.bits;
    this.#db.transaction(() => {
      this.#q.upsertPaired.run({
        id: p.id, pk: blob(p.publicKey), ks: blob(p.ks), gw: p.gatewayId, model: p.model, firmware: p.firmware,
        caps: JSON.stringify(p.capabilities), firstSeen: p.firstSeen, now: p.now, highest: w.highest, lo, hi,
      });
      // Downlinks of an earlier session were sealed with its key: the new session cannot read them.
      this.#q.dropDownlinks.run(p.id);
    }).immediate();
    return toDevice(this.#q.device.get(p.id)!);
  }

  async revoke(id: string, now: number): Promise<DeviceRow | undefined> {
    this.#q.revoke.run(now, id);
    const r = this.#q.device.get(id);
    return r && toDevice(r);
  }

  async setLabels(id: string, labels: Labels): Promise<DeviceRow | undefined> {
    const n = this.#q.labels.run(JSON.stringify(labels), id).changes;
    if (n === 0) return undefined;
    return toDevice(this.#q.device.get(id)!);
  }

  async touch(id: string, now: number): Promise<void> {
    this.#q.touch.run(now, id);
  }

  // Group commit: frame commits that arrive together (the ingress handles many devices at once) are
  // applied in one transaction, each in a savepoint of its own, so one fsync covers them all. Each
  // promise resolves only after that transaction has committed, with its own result.
  // The fsync blocks the event loop, so under load a group waits a little to grow: the next flush
  // starts no sooner than three times the last one's duration after it (at most 50 ms), which keeps
  // the time spent in commits at about a quarter at most; an idle store flushes at once.
  #frames: { c: FrameCommit; resolve: (r: FrameCommitResult) => void; reject: (e: Error) => void }[] = [];
  #frameFlush: NodeJS.Timeout | NodeJS.Immediate | undefined;
  #lastFlushEnd = 0;
  #lastFlushMs = 0;

  async commitFrame(c: FrameCommit): Promise<FrameCommitResult> {
    return new Promise<FrameCommitResult>((resolve, reject) => {
      this.#frames.push({ c, resolve, reject });
      if (this.#frames.length >= MAX_GROUP_COMMIT) this.#flushFrames();
      else if (!this.#frameFlush) {
        const wait = this.#lastFlushEnd + Math.min(50, 3 * this.#lastFlushMs) - performance.now();
        this.#frameFlush = wait >= 1 ? setTimeout(() => this.#flushFrames(), wait) : setImmediate(() => this.#flushFrames());
      }
    });
  }

  #flushFrames(): void {
    if (this.#frameFlush) {
      clearTimeout(this.#frameFlush as NodeJS.Timeout);
      clearImmediate(this.#frameFlush as NodeJS.Immediate);
    }
    this.#frameFlush = undefined;
    const batch = this.#frames.splice(0);
    if (!batch.length) return;
    const started = performance.now();
    const out: ({ ok: FrameCommitResult } | { error: Error })[] = [];
    try {
      if (!this.#db.open) throw new Error('the store is closed');
      this.#db.transaction(() => {
        for (const f of batch) {
          try {
            out.push({ ok: this.#commitOne(f.c) });
          } catch (e) {
            out.push({ error: e as Error });
          }
        }
      }).immediate();
    } catch (e) {
      for (const f of batch) f.reject(e as Error);
      return;
    } finally {
      this.#lastFlushEnd = performance.now();
      this.#lastFlushMs = this.#lastFlushEnd - started;
    }
    batch.forEach((f, i) => {
      const r = out[i];
      if ('ok' in r) f.resolve(r.ok);
      else f.reject(r.error);
    });
  }

  /** One frame's commit, in a savepoint inside the group's transaction. */
  #commitOne(c: FrameCommit): FrameCommitResult {
    return this.#db.transaction((): FrameCommitResult => {
      const d = this.#q.device.get(c.deviceId);
      if (!d || d.state !== 'paired' || !constantTimeEqual(new Uint8Array(d.ks), c.ks)) return { ok: false, why: 'stale' };
      // Checked again inside the transaction: another writer (a replica) may have taken the counter.
      const w = ReplayWindow.from(d.up_highest, [d.up_bits_lo, d.up_bits_hi]);
      if (!w.check(c.counter)) return { ok: false, why: 'replay' };
      w.accept(c.counter);
      this.#q.window.run(w.highest, w.bits[0], w.bits[1], c.now, c.deviceId);
      const added: StoredRecord[] = [];
      for (const r of c.records ?? []) this.#insert(c.deviceId, r, c.now, added);
      let ackedSeq = d.acked_seq;
      if (added.length > 0) {
        ackedSeq = this.#advance(c.deviceId, ackedSeq);
        if (ackedSeq !== d.acked_seq) this.#q.acked.run(ackedSeq, c.deviceId);
      }
      if (c.downAck !== undefined) this.#q.ackDownlinks.run(c.deviceId, c.downAck);
      if (c.status) this.#q.status.run(JSON.stringify(c.status), c.deviceId);
      if (c.info) this.#q.info.run(c.info.firmware, c.info.model, c.deviceId);
      if (c.guest) {
        const guests = JSON.parse(d.guests);
        applyGuestAck(guests, c.guest.cid, c.guest.state);
        this.#q.guests.run(JSON.stringify(guests), c.deviceId);
      }
      const downCounter = c.allocateDown ? this.#q.nextDown.get(c.deviceId)!.down_counter : undefined;
      return { ok: true, added, ackedSeq, downCounter };
    })();
  }

  /** Inserts the parts of a record whose seqs are not yet occupied (a resend is ignored). */
  #insert(device: string, r: StoredRecord, now: number, added: StoredRecord[]): void {
    const base = {
      device, now, gt: 0, channel: null as number | null, value: null as number | null, event: null as string | null,
      data: null as Buffer | null, reason: null as string | null,
    };
    if (r.kind !== 7) {
      const prior = this.#q.covering.get(device, r.seq);
      if (prior && prior.last >= r.seq) return;
      if (r.kind === 1) {
        this.#q.insert.run({ ...base, seq: r.seq, last: r.seq, kind: 1, t: r.t, gt: r.gatewayTimed ? 1 : 0, channel: r.channel, value: r.value });
      } else {
        const data = r.data === undefined ? null : blob(encode(r.data as CborValue));
        this.#q.insert.run({ ...base, seq: r.seq, last: r.seq, kind: 2, t: r.t, gt: r.gatewayTimed ? 1 : 0, event: r.event, data });
      }
      added.push(r);
      return;
    }
    // A gap fills only the seqs nobody has: a record the device lost may already be stored here.
    let cursor = r.seq;
    const prior = this.#q.covering.get(device, r.seq);
    if (prior && prior.last >= cursor) cursor = prior.last + 1;
    const put = (first: number, last: number) => {
      this.#q.insert.run({ ...base, seq: first, last, kind: 7, t: r.t, gt: 1, reason: r.reason });
      added.push({ kind: 7, seq: first, last, t: r.t, reason: r.reason });
    };
    if (cursor <= r.last) {
      for (const row of this.#q.inRange.all(device, cursor, r.last)) {
        if (row.seq > cursor) put(cursor, row.seq - 1);
        cursor = Math.max(cursor, row.last + 1);
      }
      if (cursor <= r.last) put(cursor, r.last);
    }
  }

  /** Moves the contiguous prefix forward over stored records and gaps. */
  #advance(device: string, acked: number): number {
    const page = 1000;
    for (;;) {
      const rows = this.#q.after.all(device, acked, page);
      for (const row of rows) {
        if (row.seq !== acked + 1) return acked;
        acked = row.last;
      }
      if (rows.length < page) return acked;
    }
  }

  async nextDownCounter(deviceId: string): Promise<number> {
    const r = this.#q.nextDown.get(deviceId);
    if (!r) throw new Error(`no device ${deviceId} in the store`);
    return r.down_counter;
  }

  async addDownlink(deviceId: string, type: number, body: Uint8Array, now: number): Promise<PendingDownlink> {
    return this.#db.transaction(() => {
      const c = this.#q.nextDown.get(deviceId);
      if (!c) throw new Error(`no device ${deviceId} in the store`);
      const r = this.#q.addDownlink.get(deviceId, type, blob(body), c.down_counter, now, now)!;
      return toDownlink(r);
    }).immediate();
  }

  async pendingDownlinks(deviceId: string): Promise<PendingDownlink[]> {
    return this.#q.pending.all(deviceId).map(toDownlink);
  }

  async resendDownlink(id: number, now: number): Promise<PendingDownlink | undefined> {
    return this.#db.transaction(() => {
      const r = this.#q.downlink.get(id);
      if (!r) return undefined;
      const counter = this.#q.nextDown.get(r.device_id)!.down_counter;
      this.#q.resent.run(counter, now, id);
      return toDownlink({ ...r, counter, sent_at: now });
    }).immediate();
  }

  async dropDownlinks(deviceId: string, type?: number): Promise<number> {
    const r = type === undefined ? this.#q.dropDownlinks.run(deviceId) : this.#q.dropDownlinksOfType.run(deviceId, type);
    return r.changes;
  }

  async countPendingDownlinks(): Promise<number> {
    return this.#q.countDownlinks.get()!.n;
  }

  async readRecords(deviceId: string, from: number, limit: number): Promise<StoredRecord[]> {
    const out: StoredRecord[] = [];
    const before = this.#q.readBefore.get(deviceId, from);
    if (before && before.last >= from) out.push(toRecord(before));
    for (const r of this.#q.read.all(deviceId, from, limit - out.length)) out.push(toRecord(r));
    return out;
  }

  async deleteRecordsThrough(deviceId: string, through: number): Promise<number> {
    return this.#db.transaction(() => {
      const n = this.#db.prepare('DELETE FROM records WHERE device_id = ? AND last <= ?').run(deviceId, through).changes;
      this.#db.prepare('DELETE FROM mesh_covered WHERE device_id = ? AND last <= ?').run(deviceId, through);
      return n;
    }).immediate();
  }

  async expiredThrough(deviceId: string, before: number): Promise<number | undefined> {
    const first = this.#db.prepare<[string, number], { seq: number | null }>(
      'SELECT min(seq) AS seq FROM records WHERE device_id = ? AND t >= ?').get(deviceId, before)!.seq;
    const r = this.#db.prepare<[string, number], { last: number | null }>(
      'SELECT max(last) AS last FROM records WHERE device_id = ? AND seq < ?').get(deviceId, first ?? Number.MAX_SAFE_INTEGER)!;
    return r.last ?? undefined;
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#flushFrames();
    if (this.#db.open) this.#db.close();
  }
}
