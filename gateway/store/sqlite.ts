// The one-site store: SQLite through better-sqlite3, WAL with synchronous=FULL, which is what
// WIRE.md calls "durably stored". better-sqlite3 is synchronous; the Store methods are async only so
// that other stores fit the same interface.
//
// Frames are the hot path. Each device's state (its row, as a DeviceRow: counters, replay window, acked seq; the top
// of its stored records; its kept downlinks) is held in memory, loaded at start and written through
// in the frame's group commit, so accepting a frame reads nothing from SQLite. Another connection to
// the same file (a second store, a replica) is noticed by `PRAGMA data_version`, which then empties
// the cache. A frame group commits with synchronous=NORMAL (the WAL is written, not synced) and its
// promises resolve only after an fsync of the WAL file, which runs on libuv's thread pool: the fsync
// is off the event loop and no ack leaves before the records are on disk (WIRE.md). The fsync is an
// fdatasync, as SQLite's own syncs of a WAL are: the file's data and its size, not its timestamps
// (which would cost a write of the inode to the disk with every group). WAL checkpoints
// run on a thread of their own too (checkpointer.ts, #maybeCheckpoint), not inside a commit.

import { closeSync, fdatasync, fstatSync, mkdirSync, openSync } from 'node:fs';
import { privateFile, tighten } from '../files.js';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { busy } from '../busy.js';
import { constantTimeEqual } from '../../firmware/core/bytes.js';
import { encode, type CborValue } from '../../firmware/core/cbor.js';
import { ReplayWindow } from '../../firmware/core/wire/frame.js';
import { Checkpointer, type WalCheckpointer } from './checkpointer.js';
import { SqliteBlockStore } from './sqlite-blocks.js';
import { applyGuestAck, SqliteGuestStore } from './sqlite-guests.js';
import { firmwareDdl, SqlFirmwareStore, sqliteExec } from './firmware.js';
import { SqlitePrivacyStore } from './sqlite-privacy.js';
import { SqliteQuotaStore } from './sqlite-quota.js';
import { same } from '../slab.js';
import { blob, keptDevice, toDevice, toDownlink, toRecord, type DeviceSqlRow, type DownlinkSqlRow, type RecordSqlRow } from './rows.js';
import type {
  DeviceRow, FrameCommit, FrameCommitResult, Labels, PairingCommit, PendingDownlink, Store, StoredRecord,
} from './store.js';
import { RecordKind } from '../../firmware/core/wire/constants.js';

/**
 * 1: devices, records, downlinks, mesh blocks, guests. 2: privacy policies and the audit log
 * (sqlite-privacy.ts): a gateway older than that would ignore the policies, so it refuses the store.
 * 3: the offload daily quota (sqlite-quota.ts) and the CIDs tombstones removed (mesh_removed): an older
 * gateway would hand every meter a fresh quota and take removed messages back from peers.
 * 4: mesh messages in one append-only log, each device's heads and coverage derived from it
 * (sqlite-blocks.ts); a store of version 3 is migrated when opened, an older gateway cannot read it.
 */
const SCHEMA_VERSION = 4;
/** Most frame commits in one group-commit transaction. */
const MAX_GROUP_COMMIT = 512;
/** The WAL is checkpointed once it holds this many bytes (SQLite's own default: 1,000 pages, 4 MiB; larger, a page a group rewrites again and again is copied once per checkpoint). */
export const WAL_CHECKPOINT_BYTES = 64 << 20;
/** Most checkpoint passes while commits go on, and the length of one that is short enough to hold commits for the next. */
const CHECKPOINT_PASSES = 4;
const CHECKPOINT_SHORT_MS = 5;
/**
 * The WAL never grows much past this many times `walCheckpointBytes`: once it holds that much while a
 * checkpoint's passes run beside the commits (the thread falls behind: a slow disk, a loaded machine),
 * the next commits wait for the checkpoint to finish.
 */
const WAL_HOLD_FACTOR = 2;

/** Answers each job of a group commit with its outcome, or all of them with `err`. */
function settle(batch: Queued[], out: Outcome[], err: Error | null): void {
  for (let i = 0; i < batch.length; i++) {
    const f = batch[i];
    const r = out[i];
    if (err) f.reject(err);
    else if ('ok' in r) f.resolve(r.ok);
    else f.reject(r.error);
  }
}

/** Most readings in one INSERT. */
const MAX_ROWS = 16;

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

/** A write waiting for the next group commit, and how it comes out. */
interface Queued {
  job: () => unknown;
  resolve: (r: unknown) => void;
  reject: (e: Error) => void;
}
type Outcome = { ok: unknown } | { error: Error };

/** A device's state as this store holds it in memory (module comment). */
interface Cached {
  /** The device's row as getDevice hands it out; replaced (never changed) when the row changes. */
  dev: DeviceRow;
  /** The highest `last` of the device's stored records (rows never overlap), once looked up. */
  top?: number;
  /** Kept downlinks, oldest first, once looked up. */
  pending?: PendingDownlink[];
}

export class SqliteStore implements Store {
  readonly #db: Database.Database;
  readonly #q;
  readonly #cache = new Map<string, Cached>();
  /**
   * True while the cache holds every device of the table except those in `#stale` (from a full load to
   * the next time the cache is emptied): a device it does not hold is then not in the table, and a
   * Hello or connection attempt of an unknown id costs no read.
   */
  #complete = false;
  readonly #stale = new Set<string>();
  /** INSERT statements of n readings, by n. */
  readonly #readings: Database.Statement[] = [];
  readonly #savepoint: Database.Transaction<(job: () => unknown) => unknown>;
  readonly #group: Database.Transaction<(batch: Queued[], out: Outcome[], isolate: boolean) => void>;
  /** `PRAGMA data_version` when the cache was last known to match the database. */
  #version = -1;
  /** The WAL file, opened for fsync (undefined for `:memory:` or until the first frame commit). */
  #walFd: number | undefined;
  #syncing = false;
  #syncWaiters: ((e: Error | null) => void)[] = [];
  #synced: (() => void)[] = [];
  /** Checkpoints the WAL off the event loop (checkpointer.ts); undefined for `:memory:` or after it failed. */
  #checkpointer: WalCheckpointer | undefined;
  /** The checkpoint under way: 1 its first pass, 2 its second (commits are held back meanwhile). */
  #checkpointPhase: 0 | 1 | 2 = 0;
  /** WAL size after the last checkpoint that could not start the WAL again (a reader held it). */
  #walFloor = 0;
  #closing = false;
  /** When the commits were held (#hold), for `checkpoints.heldMs`. */
  #heldAt = 0;
  /**
   * Checkpoints done off the event loop, the time commits waited for their second pass, and how many
   * held commits early because the WAL outgrew WAL_HOLD_FACTOR times the threshold meanwhile.
   */
  readonly checkpoints = { count: 0, heldMs: 0, ms: 0, failed: 0, forced: 0 };
  /** Group commits made durable, and the jobs (frames, pairings, downlinks, chain appends…) they held. */
  readonly groupCommits = { count: 0, jobs: 0 };
  readonly blocks: SqliteBlockStore;
  readonly guests: SqliteGuestStore;
  readonly firmware: SqlFirmwareStore;
  readonly privacy: SqlitePrivacyStore;
  readonly quota: SqliteQuotaStore;

  readonly #walCheckpointBytes: number;

  /**
   * `walCheckpointBytes`: the WAL size at which a checkpoint starts (WAL_CHECKPOINT_BYTES).
   * `checkpointer`: what runs the passes (default: a Checkpointer thread on `path`).
   */
  constructor(readonly path: string, o: { walCheckpointBytes?: number; checkpointer?: (path: string) => WalCheckpointer } = {}) {
    this.#walCheckpointBytes = o.walCheckpointBytes ?? WAL_CHECKPOINT_BYTES;
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
    if (path !== ':memory:') {
      // Checkpoints run on a thread of their own (#maybeCheckpoint). When the WAL starts again after
      // one, SQLite cuts the file back to walCheckpointBytes and then writes over it from the start: the
      // file grows past that size only when the WAL holds more, which is when the next one starts.
      db.pragma('wal_autocheckpoint = 0');
      db.pragma(`journal_size_limit = ${this.#walCheckpointBytes}`);
    }
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      db.close();
      throw new Error(`store ${path} has schema version ${version}, newer than this gateway (${SCHEMA_VERSION}); upgrade gridlet`);
    }
    db.exec(SCHEMA);
    this.blocks = new SqliteBlockStore(db, toRecord);
    this.guests = new SqliteGuestStore(db, (id) => this.#forget(id));
    for (const ddl of firmwareDdl('sqlite')) db.exec(ddl);
    this.firmware = new SqlFirmwareStore(sqliteExec(db), (b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength));
    this.privacy = new SqlitePrivacyStore(db);
    this.quota = new SqliteQuotaStore(db);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
    this.#q = {
      device: db.prepare<[string], DeviceSqlRow>('SELECT * FROM devices WHERE id = ?'),
      devices: db.prepare<[], DeviceSqlRow>('SELECT * FROM devices ORDER BY id'),
      deviceIds: db.prepare<[], string>('SELECT id FROM devices').pluck(),
      countDevices: db.prepare<[], { state: string; n: number }>('SELECT state, count(*) AS n FROM devices GROUP BY state'),
      upsertPaired: db.prepare(`
        INSERT INTO devices (id, state, public_key, ks, gateway_id, model, firmware, capabilities, first_seen, paired_at,
          last_seen, up_highest, up_bits_lo, up_bits_hi, down_counter)
        VALUES (@id, 'paired', @pk, @ks, @gw, @model, @firmware, @caps, @firstSeen, @now, @now, @highest, @lo, @hi, @down)
        ON CONFLICT (id) DO UPDATE SET state = 'paired', public_key = @pk, ks = @ks, gateway_id = @gw, model = @model,
          firmware = @firmware, capabilities = @caps, paired_at = @now, revoked_at = NULL, last_seen = @now,
          up_highest = @highest, up_bits_lo = @lo, up_bits_hi = @hi, down_counter = @down`),
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
      allDownlinks: db.prepare<[], DownlinkSqlRow>('SELECT * FROM downlinks ORDER BY id'),
      // A frame's whole device update, one statement.
      frame: db.prepare(`UPDATE devices SET up_highest = ?, up_bits_lo = ?, up_bits_hi = ?, last_seen = ?, acked_seq = ?,
        down_counter = ? WHERE id = ?`),
      // Rows never overlap: the row with the highest seq has the highest last.
      top: db.prepare<[string], { last: number }>('SELECT last FROM records WHERE device_id = ? ORDER BY seq DESC LIMIT 1'),
      dataVersion: db.prepare<[], number>('PRAGMA data_version').pluck(),
      syncNormal: db.prepare('PRAGMA synchronous = NORMAL'),
      syncFull: db.prepare('PRAGMA synchronous = FULL'),
    };
    this.#load();
    if (path !== ':memory:') this.#checkpointer = (o.checkpointer ?? ((p) => new Checkpointer(p)))(path);
    this.blocks.fresh = (turn) => this.#fresh(turn);
    this.blocks.durably = (job) => this.#enqueue(job);
    this.privacy.fresh = () => this.#fresh(true);
    this.privacy.durably = (job) => this.#enqueue(job);
    this.#savepoint = db.transaction((job: () => unknown) => job());
    this.#group = db.transaction((batch: Queued[], out: Outcome[], isolate: boolean) => {
      this.#fresh();
      for (const f of batch) {
        if (!isolate) out.push({ ok: f.job() });
        else {
          try {
            out.push({ ok: this.#savepoint(f.job) });
          } catch (e) {
            out.push({ error: e as Error });
          }
        }
      }
      // The mesh store's share of a periodic write of its derived state (sqlite-blocks.ts), in this commit.
      this.blocks.groupDone();
    });
  }

  /** Loads every device's row and kept downlinks into the cache. */
  #load(): void {
    this.#forgetAll();
    this.#version = this.#q.dataVersion.get()!;
    for (const row of this.#q.devices.iterate()) this.#cache.set(row.id, { dev: keptDevice(row), pending: [] });
    for (const r of this.#q.allDownlinks.iterate()) this.#cache.get(r.device_id)?.pending!.push(toDownlink(r));
    this.#complete = true;
  }

  /** True from a check of `data_version` to the end of that turn of the event loop. */
  #checkedThisTurn = false;

  /**
   * Empties the cache when another connection changed the database. Reads outside a transaction
   * (`turn`: getDevice, a device's chain heads) check once per turn of the event loop: what they read
   * may be stale the moment after anyway; writes check inside their transaction, every time.
   */
  #fresh(turn = false): void {
    if (turn && this.#checkedThisTurn) return;
    if (!this.#checkedThisTurn) {
      this.#checkedThisTurn = true;
      setImmediate(() => (this.#checkedThisTurn = false));
    }
    const v = this.#q.dataVersion.get()!;
    if (v === this.#version) return;
    this.#forgetAll();
    this.blocks.forget();
    this.privacy.forget();
    this.#version = v;
  }

  #entry(id: string): Cached | undefined {
    let e = this.#cache.get(id);
    if (!e) {
      if (this.#complete && !this.#stale.has(id)) return undefined;
      const row = this.#q.device.get(id);
      this.#stale.delete(id);
      if (!row) return undefined;
      this.#cache.set(id, (e = { dev: keptDevice(row) }));
    }
    return e;
  }

  /**
   * The device's downlink counter was taken on this connection (`nextDown`): its cached row follows, and
   * `keep` edits its cached downlinks, if they were looked up. A device not in the cache is read again
   * when next needed. (A frame's commit writes the cached counter back: a stale one would be reused.)
   */
  #counted(id: string, counter: number, keep?: (pending: PendingDownlink[]) => void): void {
    const e = this.#cache.get(id);
    if (!e) return this.#forget(id);
    e.dev = { ...e.dev, downCounter: counter };
    if (keep && e.pending) keep(e.pending);
  }

  /** Drops a device's cached state, to be read again when next needed. */
  #forget(id: string): void {
    this.#cache.delete(id);
    if (this.#complete) this.#stale.add(id);
  }

  /** Drops every device's cached state (another connection wrote, or a group commit failed). */
  #forgetAll(): void {
    this.#cache.clear();
    this.#complete = false;
    this.#stale.clear();
  }

  #top(e: Cached): number {
    return (e.top ??= this.#q.top.get(e.dev.id)?.last ?? 0);
  }

  async getDevice(id: string): Promise<DeviceRow | undefined> {
    this.#fresh(true);
    const e = this.#entry(id);
    return e?.dev;
  }

  /** Every device, by id, from the cache (a /metrics scrape at 10,000 devices read and decoded the whole table). */
  async listDevices(): Promise<DeviceRow[]> {
    this.#fresh(true);
    if (!this.#complete) this.#load();
    for (const id of [...this.#stale]) this.#entry(id);
    const out: DeviceRow[] = [];
    for (const e of this.#cache.values()) out.push(e.dev);
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async deviceIds(): Promise<string[]> {
    return this.#q.deviceIds.all();
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
    return this.#enqueue(() => {
      this.#q.upsertPaired.run({
        id: p.id, pk: blob(p.publicKey), ks: blob(p.ks), gw: p.gatewayId, model: p.model, firmware: p.firmware,
        caps: JSON.stringify(p.capabilities), firstSeen: p.firstSeen, now: p.now, highest: w.highest, lo, hi, down: p.reserveDown ? 1 : 0,
      });
      // Downlinks of an earlier session were sealed with its key: the new session cannot read them.
      this.#q.dropDownlinks.run(p.id);
      // Cached as written (the meter's next frames, its mesh pairing message and its recount read it at
      // once); a group commit that fails empties the cache. Its records are looked up when first needed.
      const e: Cached = { dev: keptDevice(this.#q.device.get(p.id)!), pending: [] };
      this.#cache.set(p.id, e);
      this.#stale.delete(p.id);
      return e.dev;
    });
  }

  async revoke(id: string, now: number): Promise<DeviceRow | undefined> {
    return this.#enqueue(() => {
      this.#q.revoke.run(now, id);
      this.#forget(id);
      const r = this.#q.device.get(id);
      return r && toDevice(r);
    });
  }

  async setLabels(id: string, labels: Labels): Promise<DeviceRow | undefined> {
    const n = this.#q.labels.run(JSON.stringify(labels), id).changes;
    this.#forget(id);
    if (n === 0) return undefined;
    return toDevice(this.#q.device.get(id)!);
  }

  async touch(id: string, now: number): Promise<void> {
    return this.#enqueue(() => {
      this.#q.touch.run(now, id);
      const e = this.#cache.get(id);
      if (e) e.dev = { ...e.dev, lastSeen: now };
    });
  }

  // Group commit: frame commits that arrive together (the ingress handles many devices at once) are
  // applied in one transaction, each in a savepoint of its own, so one fsync covers them all. Each
  // promise resolves only after that transaction is durable, with its own result. The transaction
  // runs with synchronous=NORMAL and the fsync of the WAL runs off the event loop (module comment);
  // while one fsync is under way the next group gathers, so a group is what arrives during an fsync.
  // Other writes of the hot paths (pairing, kept downlinks, revocation, Hellos, the mesh's chain appends
  // and kept messages, sqlite-blocks.ts) join the same groups: each is a job run inside the group's
  // transaction, answered once the group is durable.
  #frames: Queued[] = [];
  #frameFlush: NodeJS.Immediate | undefined;

  async commitFrame(c: FrameCommit): Promise<FrameCommitResult> {
    return this.#enqueue(() => this.#commitOne(c));
  }

  /** Runs `job` in the next group commit; resolves with its result once that is durable. */
  #enqueue<T>(job: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#frames.push({ job, resolve: resolve as (r: unknown) => void, reject });
      if (this.#checkpointPhase === 2) return;
      if (this.#frames.length >= MAX_GROUP_COMMIT) this.#flushFrames();
      else if (!this.#frameFlush && !this.#syncing) this.#frameFlush = setImmediate(() => this.#flushFrames());
    });
  }

  /** Runs `job` in a group commit (sqlite-blocks.ts keeps blocks durably this way). */
  durably<T>(job: () => T): Promise<T> {
    return this.#enqueue(job);
  }

  #flushFrames(): void {
    if (this.#frameFlush) clearImmediate(this.#frameFlush);
    this.#frameFlush = undefined;
    if (this.#checkpointPhase === 2) return;
    const batch = this.#frames.splice(0);
    if (!batch.length) return;
    const out: Outcome[] = [];
    const memory = this.path === ':memory:';
    const t0 = performance.now();
    try {
      if (!this.#db.open) throw new Error('the store is closed');
      if (!memory) this.#q.syncNormal.run();
      try {
        try {
          // Without a savepoint per frame: a frame that throws (a bug, a full disk) rolls the group back
          // and the group is applied again with one savepoint per frame, so that only it fails.
          this.#group.immediate(batch, out, false);
        } catch {
          this.#forgetAll();
          this.blocks.reset();
          out.length = 0;
          this.#group.immediate(batch, out, true);
        }
      } finally {
        if (!memory) this.#q.syncFull.run();
        busy('commit', t0);
      }
    } catch (e) {
      // The cache may hold what the rolled-back transaction wrote.
      this.#forgetAll();
      this.blocks.reset();
      for (const f of batch) f.reject(e as Error);
      return;
    }
    this.groupCommits.count++;
    this.groupCommits.jobs += batch.length;
    if (memory) settle(batch, out, null);
    else this.#durable((err) => settle(batch, out, err));
  }

  /** Calls `done` once everything committed so far is on disk (an fdatasync of the WAL on the thread pool). */
  #durable(done: (e: Error | null) => void): void {
    this.#syncWaiters.push(done);
    if (!this.#syncing) this.#sync();
  }

  #sync(): void {
    const waiters = this.#syncWaiters.splice(0);
    this.#syncing = true;
    let fd: number;
    try {
      fd = this.#walFd ??= openSync(`${this.path}-wal`, 'r');
    } catch (e) {
      this.#syncing = false;
      for (const w of waiters) w(e as Error);
      return;
    }
    fdatasync(fd, (err) => {
      this.#syncing = false;
      for (const w of waiters) w(err ? new Error(`store ${this.path}: fdatasync of the WAL failed: ${err.message}`) : null);
      if (!err) this.#maybeCheckpoint(fd);
      if (this.#syncWaiters.length) this.#sync();
      else if (this.#frames.length) this.#flushFrames();
      else for (const f of this.#synced.splice(0)) f();
    });
  }

  /**
   * Starts a checkpoint when the WAL has grown by `walCheckpointBytes`. Passes run while commits go on,
   * each copying what the WAL held when it started, until one is short (CHECKPOINT_SHORT_MS); then one
   * more with commits held back, which finds only what they wrote during the one before. With nothing
   * written meanwhile the whole WAL is then in the database file, and the next commit starts the WAL
   * again. Should the WAL outgrow WAL_HOLD_FACTOR times the threshold while the first passes run,
   * commits are held from then on, not only for the last pass. If the thread fails, SQLite's own
   * checkpoints on this connection take over.
   */
  #maybeCheckpoint(fd: number): void {
    const ck = this.#checkpointer;
    if (!ck || this.#checkpointPhase === 2 || !this.#db.open) return;
    let size: number;
    try {
      size = fstatSync(fd).size;
    } catch {
      return;
    }
    if (this.#checkpointPhase === 1) {
      // The passes fall behind the commits: hold the commits now, not after the passes.
      if (size > this.#walFloor + WAL_HOLD_FACTOR * this.#walCheckpointBytes) this.#hold();
      return;
    }
    if (size < this.#walFloor) this.#walFloor = 0;
    if (size <= this.#walFloor + this.#walCheckpointBytes) return;
    this.#checkpointPhase = 1;
    void this.#checkpoint(ck, size);
  }

  /** Holds the next commits until the checkpoint under way is over. */
  #hold(): void {
    if (this.#checkpointPhase !== 1) return;
    this.#checkpointPhase = 2;
    this.#heldAt = performance.now();
  }

  async #checkpoint(ck: WalCheckpointer, size: number): Promise<void> {
    const t0 = performance.now();
    this.#heldAt = 0;
    try {
      for (let i = 0; i < CHECKPOINT_PASSES; i++) {
        const pass = await ck.pass();
        if (!this.#db.open) return;
        if (this.#checkpointPhase === 2) {
          this.checkpoints.forced++;
          break;
        }
        if (pass.ms < CHECKPOINT_SHORT_MS) break;
      }
      this.#hold();
      const last = await ck.pass();
      this.checkpoints.count++;
      this.checkpoints.ms += performance.now() - t0;
      // A reader kept part of the WAL: the WAL goes on from here, the next checkpoint that much later.
      if (last.busy || last.checkpointed < last.log) this.#walFloor = size;
    } catch {
      if (!this.#closing) {
        this.checkpoints.failed++;
        this.#checkpointer = undefined;
        if (this.#db.open) this.#db.pragma('wal_autocheckpoint = 1000');
      }
    } finally {
      this.#checkpointPhase = 0;
      if (this.#heldAt) this.checkpoints.heldMs += performance.now() - this.#heldAt;
      this.#heldAt = 0;
      if (this.#frames.length && !this.#syncing && !this.#frameFlush) this.#frameFlush = setImmediate(() => this.#flushFrames());
    }
  }

  /** One frame's commit inside the group's transaction, from and into the cached state. */
  #commitOne(c: FrameCommit): FrameCommitResult {
    {
      const e = this.#entry(c.deviceId);
      const d = e?.dev;
      if (!e || !d || d.state !== 'paired' || !constantTimeEqual(d.ks, c.ks)) return { ok: false, why: 'stale' };
      // Checked again inside the transaction: another writer (a replica) may have taken the counter.
      const w = ReplayWindow.from(d.upHighest, d.upBits);
      if (!w.check(c.counter)) return { ok: false, why: 'replay' };
      w.accept(c.counter);
      const added: StoredRecord[] = [];
      const top0 = this.#top(e);
      let top = top0;
      const recs = c.records ?? [];
      for (let i = 0; i < recs.length;) {
        // A run of readings above the top, in seq order: one INSERT of several rows.
        let j = i;
        let t = top;
        while (j < recs.length && j - i < MAX_ROWS && recs[j].kind === RecordKind.reading && recs[j].seq > t) t = recs[j++].seq;
        if (j - i > 1) {
          this.#insertReadings(c.deviceId, recs, i, j, c.now);
          for (let k = i; k < j; k++) added.push(recs[k]);
          top = t;
          i = j;
        } else top = this.#insert(c.deviceId, recs[i++], c.now, added, top);
      }
      let ackedSeq = d.ackedSeq;
      if (added.length > 0) ackedSeq = top0 <= ackedSeq ? advanceOver(ackedSeq, added) : this.#advance(c.deviceId, ackedSeq);
      const downCounter = c.allocateDown ? d.downCounter + 1 : undefined;
      const [lo, hi] = w.bits;
      this.#q.frame.run(w.highest, lo, hi, c.now, ackedSeq, downCounter ?? d.downCounter, c.deviceId);
      if (c.downAck !== undefined) this.#q.ackDownlinks.run(c.deviceId, c.downAck);
      const dev: DeviceRow = {
        ...d, upHighest: w.highest, upBits: [lo, hi], lastSeen: c.now, ackedSeq, downCounter: downCounter ?? d.downCounter,
      };
      if (c.status) {
        // Kept as read back from its text, as a reload would: nothing of the caller's object is shared.
        const text = JSON.stringify(c.status);
        this.#q.status.run(text, c.deviceId);
        dev.status = JSON.parse(text);
      }
      if (c.info) this.#q.info.run((dev.firmware = same(c.info.firmware)), (dev.model = same(c.info.model)), c.deviceId);
      if (c.guest) {
        const guests = structuredClone(d.guests);
        applyGuestAck(guests, c.guest.cid, c.guest.state);
        this.#q.guests.run(JSON.stringify(guests), c.deviceId);
        dev.guests = guests;
      }
      // Everything written: the cache follows (a failed group commit empties it).
      e.dev = dev;
      e.top = top;
      if (c.downAck !== undefined && e.pending) e.pending = e.pending.filter((p) => p.counter !== c.downAck); // as ackDownlinks: that counter only
      return { ok: true, added, ackedSeq, downCounter };
    }
  }

  /** Inserts readings `recs[from..to)`, all above the device's top and in seq order, as one statement. */
  #insertReadings(device: string, recs: StoredRecord[], from: number, to: number, now: number): void {
    const n = to - from;
    const stmt = (this.#readings[n] ??= this.#db.prepare(
      'INSERT INTO records (device_id, seq, last, kind, t, gateway_timed, channel, value, received_at) VALUES ' +
      Array(n).fill('(?, ?, ?, 1, ?, ?, ?, ?, ?)').join(', ')));
    const params: (string | number)[] = new Array(n * 8);
    for (let k = from, p = 0; k < to; k++, p += 8) {
      const r = recs[k] as Extract<StoredRecord, { kind: 1 }>;
      params[p] = device;
      params[p + 1] = r.seq;
      params[p + 2] = r.seq;
      params[p + 3] = r.t;
      params[p + 4] = r.gatewayTimed ? 1 : 0;
      params[p + 5] = r.channel;
      params[p + 6] = r.value;
      params[p + 7] = now;
    }
    stmt.run(params);
  }

  /**
   * Inserts the parts of a record whose seqs are not yet occupied (a resend is ignored). `top` is the
   * highest seq occupied so far: above it nothing needs looking up. Returns the new top.
   */
  #insert(device: string, r: StoredRecord, now: number, added: StoredRecord[], top: number): number {
    const base = {
      device, now, gt: 0, channel: null as number | null, value: null as number | null, event: null as string | null,
      data: null as Buffer | null, reason: null as string | null,
    };
    if (r.kind !== RecordKind.gap) {
      if (r.seq <= top) {
        const prior = this.#q.covering.get(device, r.seq);
        if (prior && prior.last >= r.seq) return top;
      }
      if (r.kind === RecordKind.reading) {
        this.#q.insert.run({ ...base, seq: r.seq, last: r.seq, kind: RecordKind.reading, t: r.t, gt: r.gatewayTimed ? 1 : 0, channel: r.channel, value: r.value });
      } else {
        const data = r.data === undefined ? null : blob(encode(r.data as CborValue));
        this.#q.insert.run({ ...base, seq: r.seq, last: r.seq, kind: RecordKind.event, t: r.t, gt: r.gatewayTimed ? 1 : 0, event: r.event, data });
      }
      added.push(r);
      return Math.max(top, r.seq);
    }
    // A gap fills only the seqs nobody has: a record the device lost may already be stored here.
    const put = (first: number, last: number) => {
      this.#q.insert.run({ ...base, seq: first, last, kind: RecordKind.gap, t: r.t, gt: 1, reason: r.reason });
      added.push({ kind: 7, seq: first, last, t: r.t, reason: r.reason });
    };
    if (r.seq > top) {
      if (r.seq <= r.last) put(r.seq, r.last);
      return Math.max(top, r.last);
    }
    let cursor = r.seq;
    const prior = this.#q.covering.get(device, r.seq);
    if (prior && prior.last >= cursor) cursor = prior.last + 1;
    if (cursor <= r.last) {
      for (const row of this.#q.inRange.all(device, cursor, r.last)) {
        if (row.seq > cursor) put(cursor, row.seq - 1);
        cursor = Math.max(cursor, row.last + 1);
      }
      if (cursor <= r.last) put(cursor, r.last);
    }
    return Math.max(top, r.last);
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
    // At once (synchronous=FULL): a body under this counter may be published while the gateway closes.
    const r = this.#q.nextDown.get(deviceId);
    if (!r) {
      this.#forget(deviceId);
      throw new Error(`no device ${deviceId} in the store`);
    }
    this.#counted(deviceId, r.down_counter);
    return r.down_counter;
  }

  async addDownlink(deviceId: string, type: number, body: Uint8Array, now: number): Promise<PendingDownlink> {
    return this.#enqueue(() => {
      const c = this.#q.nextDown.get(deviceId);
      if (!c) {
        this.#forget(deviceId);
        throw new Error(`no device ${deviceId} in the store`);
      }
      const kept = toDownlink(this.#q.addDownlink.get(deviceId, type, blob(body), c.down_counter, now, now)!);
      this.#counted(deviceId, c.down_counter, (pending) => pending.push(kept));
      return kept;
    });
  }

  async pendingDownlinks(deviceId: string): Promise<PendingDownlink[]> {
    // No data_version check (it costs as much as the rest of this): what another connection keeps for
    // the device is seen once the next group commit has found the change and emptied the cache.
    const e = this.#entry(deviceId);
    if (!e) return this.#q.pending.all(deviceId).map(toDownlink);
    return (e.pending ??= this.#q.pending.all(deviceId).map(toDownlink)).slice();
  }

  async resendDownlink(id: number, now: number, sentBefore?: number): Promise<PendingDownlink | undefined> {
    return this.#enqueue(() => {
      const r = this.#q.downlink.get(id);
      if (!r || (sentBefore !== undefined && r.sent_at >= sentBefore)) return undefined;
      const counter = this.#q.nextDown.get(r.device_id)!.down_counter;
      this.#q.resent.run(counter, now, id);
      const resent = toDownlink({ ...r, counter, sent_at: now });
      this.#counted(r.device_id, counter, (pending) => {
        const i = pending.findIndex((p) => p.id === id);
        if (i >= 0) pending[i] = resent;
      });
      return resent;
    });
  }

  async dropDownlinks(deviceId: string, type?: number): Promise<number> {
    this.#forget(deviceId);
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
    this.#forget(deviceId);
    const n = this.#db.prepare('DELETE FROM records WHERE device_id = ? AND last <= ?').run(deviceId, through).changes;
    // The coverage of what went (held in memory, written with the chains' state).
    this.blocks.trimCovered(deviceId, through);
    return n;
  }

  async expiredThrough(deviceId: string, before: number): Promise<number | undefined> {
    const first = this.#db.prepare<[string, number], { seq: number | null }>(
      'SELECT min(seq) AS seq FROM records WHERE device_id = ? AND t >= ?').get(deviceId, before)!.seq;
    const r = this.#db.prepare<[string, number], { last: number | null }>(
      'SELECT max(last) AS last FROM records WHERE device_id = ? AND seq < ?').get(deviceId, first ?? Number.MAX_SAFE_INTEGER)!;
    return r.last ?? undefined;
  }

  async close(): Promise<void> {
    // The last connection to close checkpoints what is left and removes the WAL.
    this.#closing = true;
    await this.#checkpointer?.close();
    this.#checkpointer = undefined;
    this.#checkpointPhase = 0;
    if (this.#db.open) this.#flushFrames();
    if (this.#syncing) await new Promise<void>((r) => this.#synced.push(r));
    // The chains' derived state, so that the next start replays nothing (if it cannot be written, the
    // next start derives it from the log).
    if (this.#db.open) {
      try {
        this.blocks.persist();
      } catch {
        // replayed at the next start
      }
    }
    if (this.#db.open) this.#db.close();
    if (this.#walFd !== undefined) closeSync(this.#walFd);
    this.#walFd = undefined;
  }
}

/** The contiguous prefix moved over `added`, the only rows stored above `acked`. */
function advanceOver(acked: number, added: StoredRecord[]): number {
  let sorted = true;
  for (let i = 1; i < added.length; i++) if (added[i].seq < added[i - 1].seq) sorted = false;
  const rows = sorted ? added : [...added].sort((a, b) => a.seq - b.seq);
  for (const r of rows) {
    if (r.seq !== acked + 1) return acked;
    acked = r.kind === RecordKind.gap ? r.last : r.seq;
  }
  return acked;
}
