// The shared store for gateway replicas (ARCHITECTURE.md "Growing past one machine"): the same
// tables and semantics as sqlite.ts, on PostgreSQL through a pool of connections. Several gateway
// processes may write at once, so every read-check-write runs in one transaction that first locks the
// device's row (SELECT … FOR UPDATE): the replay window, the records' seqs and the acked prefix are
// decided by whoever holds that lock. Commits are synchronous (PostgreSQL's default), which is what
// WIRE.md calls "durably stored"; frame commits arriving together share one transaction (group
// commit, see commitFrame). Sub-stores live beside it, each with its own DDL: postgres-blocks.ts,
// postgres-guests.ts, postgres-privacy.ts, postgres-pairing.ts (Hello table and pairings under way) and
// postgres-identity.ts (the identity the replicas share); postgres-db.ts has the pool and migrations.

import type pg from 'pg';
import { constantTimeEqual } from '../../firmware/core/bytes.js';
import { encode, type CborValue } from '../../firmware/core/cbor.js';
import { ReplayWindow } from '../../firmware/core/wire/frame.js';
import { applyGuestAck } from './sqlite-guests.js';
import { BLOCKS_DDL, PostgresBlockStore } from './postgres-blocks.js';
import { bytea, PgDb } from './postgres-db.js';
import { GUESTS_DDL, PostgresGuestStore } from './postgres-guests.js';
import { firmwareDdl, postgresExec, SqlFirmwareStore } from './firmware.js';
import { completePairingIn, PAIRING_DDL, PostgresPairingShare } from './postgres-pairing.js';
import { PostgresPrivacyStore, PRIVACY_DDL } from './postgres-privacy.js';
import { IDENTITY_DDL, rotateSharedMeshKey, sharedIdentity } from './postgres-identity.js';
import { PostgresQuotaStore, QUOTA_DDL } from './postgres-quota.js';
import { toDevice, toDownlink, toRecord, type DeviceSqlRow, type DownlinkSqlRow, type RecordSqlRow } from './rows.js';
import type { GatewayIdentity } from '../identity.js';
import type {
  DeviceRow, FrameCommit, FrameCommitResult, Labels, PairingCommit, PendingDownlink, Store, StoredRecord,
} from './store.js';
import { RecordKind } from '../../firmware/core/wire/constants.js';

/**
 * 2: the offload daily quota (postgres-quota.ts), the CIDs tombstones removed (mesh_removed) and the
 * retention pass record: an older replica would grant each meter a quota of its own and take removed
 * messages back from peers.
 */
export const PG_SCHEMA_VERSION = 2;

const CORE_DDL = [
  `CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    public_key BYTEA NOT NULL,
    ks BYTEA NOT NULL,
    gateway_id TEXT NOT NULL,
    model TEXT NOT NULL,
    firmware TEXT NOT NULL,
    capabilities TEXT NOT NULL DEFAULT '[]',
    labels TEXT NOT NULL DEFAULT '{}',
    first_seen BIGINT NOT NULL,
    paired_at BIGINT NOT NULL,
    revoked_at BIGINT,
    last_seen BIGINT,
    up_highest BIGINT NOT NULL DEFAULT 0,
    up_bits_lo BIGINT NOT NULL DEFAULT 0,
    up_bits_hi BIGINT NOT NULL DEFAULT 0,
    down_counter BIGINT NOT NULL DEFAULT 0,
    acked_seq BIGINT NOT NULL DEFAULT 0,
    status TEXT,
    guests TEXT NOT NULL DEFAULT '{}'
  )`,
  // One row per record; a gap row occupies seq..last. Rows of one device never overlap.
  `CREATE TABLE IF NOT EXISTS records (
    device_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    last BIGINT NOT NULL,
    kind SMALLINT NOT NULL,
    t BIGINT NOT NULL,
    gateway_timed BOOLEAN NOT NULL DEFAULT false,
    channel INTEGER,
    value BIGINT,
    event TEXT,
    data BYTEA,
    reason TEXT,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, seq)
  )`,
  `CREATE TABLE IF NOT EXISTS downlinks (
    id BIGSERIAL PRIMARY KEY,
    device_id TEXT NOT NULL,
    type INTEGER NOT NULL,
    body BYTEA NOT NULL,
    counter BIGINT NOT NULL,
    sent_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
  )`,
  'CREATE INDEX IF NOT EXISTS downlinks_device ON downlinks (device_id, id)',
];

/** Most frame commits in one group-commit transaction. */
const MAX_GROUP = 256;
/** Group-commit transactions in flight at once. */
const GROUP_LANES = 4;
const ADVANCE_PAGE = 1000;

/**
 * Decides which parts of the records are new (a resend is ignored; a gap fills only the seqs nobody
 * has), given the device's occupied ranges `taken` (sorted by seq), which it extends.
 */
function place(taken: [number, number][], records: StoredRecord[]): { rows: RecordInsert[]; added: StoredRecord[] } {
  const occupied = (seq: number) => taken.some(([s, l]) => s <= seq && seq <= l);
  const occupy = (s: number, l: number) => {
    taken.push([s, l]);
    taken.sort((a, b) => a[0] - b[0]);
  };
  const added: StoredRecord[] = [];
  const rows: RecordInsert[] = [];
  for (const r of records) {
    if (r.kind !== RecordKind.gap) {
      if (occupied(r.seq)) continue;
      if (r.kind === RecordKind.reading) rows.push([r.seq, r.seq, RecordKind.reading, r.t, r.gatewayTimed, r.channel, r.value, null, null, null]);
      else rows.push([r.seq, r.seq, 2, r.t, r.gatewayTimed, null, null, r.event, r.data === undefined ? null : bytea(encode(r.data as CborValue)), null]);
      occupy(r.seq, r.seq);
      added.push(r);
      continue;
    }
    // The free stretches of [r.seq, r.last].
    let cursor = r.seq;
    const free: [number, number][] = [];
    for (const [s, l] of taken) {
      if (l < cursor) continue;
      if (s > r.last) break;
      if (s > cursor) free.push([cursor, s - 1]);
      cursor = Math.max(cursor, l + 1);
      if (cursor > r.last) break;
    }
    if (cursor <= r.last) free.push([cursor, r.last]);
    for (const [s, l] of free) {
      rows.push([s, l, 7, r.t, true, null, null, null, null, r.reason]);
      added.push({ kind: 7, seq: s, last: l, t: r.t, reason: r.reason });
      occupy(s, l);
    }
  }
  return { rows, added };
}

/** The contiguous prefix from `acked` over the occupied ranges; `walked`: it reached their end. */
function advance(taken: [number, number][], acked: number): { acked: number; walked: boolean } {
  for (const [s, l] of taken) {
    if (l <= acked) continue;
    if (s !== acked + 1) return { acked, walked: false };
    acked = l;
  }
  return { acked, walked: true };
}

/** A downlink acknowledged meanwhile: its resend's transaction is rolled back. */
class NoDownlink extends Error {}

interface QueuedFrame { c: FrameCommit; resolve: (r: FrameCommitResult) => void; reject: (e: Error) => void }

/** A row to insert into `records`, in column order from seq to reason. */
type RecordInsert = [seq: number, last: number, kind: number, t: number, gt: boolean, channel: number | null,
  value: number | null, event: string | null, data: Buffer | null, reason: string | null];

export class PostgresStore implements Store {
  readonly db: PgDb;
  readonly blocks: PostgresBlockStore;
  readonly guests: PostgresGuestStore;
  readonly firmware: SqlFirmwareStore;
  readonly privacy: PostgresPrivacyStore;
  readonly quota: PostgresQuotaStore;
  /** The Hello table and pending pairings, shared by the replicas (pairing.ts). */
  readonly pairing: PostgresPairingShare;

  private constructor(db: PgDb) {
    this.db = db;
    this.blocks = new PostgresBlockStore(db);
    this.guests = new PostgresGuestStore(db);
    this.firmware = new SqlFirmwareStore(postgresExec(db), bytea);
    this.privacy = new PostgresPrivacyStore(db);
    this.quota = new PostgresQuotaStore(db);
    this.pairing = new PostgresPairingShare(db);
  }

  /** Connects, creates or checks the schema. `url` is postgres://user:pass@host:port/db. */
  static async open(url: string, o: { max?: number } = {}): Promise<PostgresStore> {
    const db = await PgDb.open(url, o);
    try {
      await db.migrate(PG_SCHEMA_VERSION, [...CORE_DDL, ...BLOCKS_DDL, ...GUESTS_DDL, ...firmwareDdl('postgres'), ...PAIRING_DDL, ...IDENTITY_DDL, ...PRIVACY_DDL, ...QUOTA_DDL]);
    } catch (e) {
      await db.close().catch(() => {});
      throw e;
    }
    return new PostgresStore(db);
  }

  /** A new Ed25519 mesh key for the replicas' shared identity (gridlet gateway rotate-key). */
  rotateMeshKey(): Promise<GatewayIdentity> {
    return rotateSharedMeshKey(this.db);
  }

  /** The gateway identity all replicas share: kept here by the first replica, loaded by the others. */
  identity(local: () => GatewayIdentity | undefined): Promise<GatewayIdentity> {
    return sharedIdentity(this.db, local);
  }

  async getDevice(id: string): Promise<DeviceRow | undefined> {
    const r = await this.db.query<DeviceSqlRow>('SELECT * FROM devices WHERE id = $1', [id]);
    return r.rows[0] && toDevice(r.rows[0]);
  }

  async listDevices(): Promise<DeviceRow[]> {
    return (await this.db.query<DeviceSqlRow>('SELECT * FROM devices ORDER BY id COLLATE "C"')).rows.map(toDevice);
  }

  async deviceIds(): Promise<string[]> {
    return (await this.db.query<{ id: string }>('SELECT id FROM devices')).rows.map((r) => r.id);
  }

  async countDevices(): Promise<{ paired: number; revoked: number }> {
    const out = { paired: 0, revoked: 0 };
    const r = await this.db.query<{ state: string; n: number }>('SELECT state, count(*)::int AS n FROM devices GROUP BY state');
    for (const x of r.rows) if (x.state === 'paired' || x.state === 'revoked') out[x.state] = x.n;
    return out;
  }

  async completePairing(p: PairingCommit): Promise<DeviceRow> {
    return this.db.tx((c) => completePairingIn(c, p));
  }

  async revoke(id: string, now: number): Promise<DeviceRow | undefined> {
    await this.db.query(`UPDATE devices SET state = 'revoked', revoked_at = $1 WHERE id = $2 AND state = 'paired'`, [now, id]);
    return this.getDevice(id);
  }

  async setLabels(id: string, labels: Labels): Promise<DeviceRow | undefined> {
    const r = await this.db.query<DeviceSqlRow>('UPDATE devices SET labels = $1 WHERE id = $2 RETURNING *', [JSON.stringify(labels), id]);
    return r.rows[0] && toDevice(r.rows[0]);
  }

  async touch(id: string, now: number): Promise<void> {
    await this.db.query('UPDATE devices SET last_seen = $1 WHERE id = $2', [now, id]);
  }

  // Group commit: frame commits that arrive together (the ingress handles many devices at once) share
  // one transaction, so one WAL flush covers them all; at most GROUP_LANES such transactions run at
  // once and the rest of the pool serves reads. A group locks all of its devices' rows up front in id
  // order (as every group of every replica does, so groups never deadlock each other). Each promise
  // resolves only after its group has committed; a group that fails is retried frame by frame, so one
  // bad frame fails alone.
  #frames: QueuedFrame[] = [];
  #lanes = 0;
  #pumping = false;

  commitFrame(c: FrameCommit): Promise<FrameCommitResult> {
    return new Promise<FrameCommitResult>((resolve, reject) => {
      this.#frames.push({ c, resolve, reject });
      if (!this.#pumping) {
        this.#pumping = true;
        // Gather the commits of this turn of the event loop before starting a group.
        setImmediate(() => {
          this.#pumping = false;
          this.#pump();
        });
      }
    });
  }

  #pump(): void {
    while (this.#lanes < GROUP_LANES && this.#frames.length) {
      const group = this.#frames.splice(0, MAX_GROUP);
      this.#lanes++;
      void this.#commitGroup(group).finally(() => {
        this.#lanes--;
        this.#pump();
      });
    }
  }

  async #commitGroup(group: QueuedFrame[]): Promise<void> {
    let results: FrameCommitResult[];
    try {
      results = await this.db.tx((q) => this.#applyGroup(q, group.map((f) => f.c)));
    } catch (e) {
      if (group.length === 1) return group[0].reject(e as Error);
      for (const f of group) await this.#commitGroup([f]);
      return;
    }
    group.forEach((f, i) => f.resolve(results[i]));
  }

  /**
   * A group's commits in a handful of statements whatever its size: lock the devices' rows, read the
   * records rows the frames can meet, decide each frame in order here (a device may have several in
   * the group), then write all records, all device rows and all down-acks at once.
   */
  async #applyGroup(q: pg.PoolClient, commits: FrameCommit[]): Promise<FrameCommitResult[]> {
    const ids = [...new Set(commits.map((c) => c.deviceId))].sort();
    const locked = (await q.query<DeviceSqlRow>('SELECT * FROM devices WHERE id = ANY($1) ORDER BY id COLLATE "C" FOR UPDATE', [ids])).rows;
    const devices = new Map(locked.map((r) => [r.id, r]));

    // The stored rows each device's records can meet, and those after its acked prefix.
    const spans = new Map<string, { lo: number; hi: number }>();
    for (const c of commits) {
      if (!devices.has(c.deviceId) || !c.records?.length) continue;
      const span = spans.get(c.deviceId) ?? { lo: Infinity, hi: -Infinity };
      for (const r of c.records) {
        span.lo = Math.min(span.lo, r.seq);
        span.hi = Math.max(span.hi, r.kind === RecordKind.gap ? r.last : r.seq);
      }
      spans.set(c.deviceId, span);
    }
    const ranges = new Map<string, { base: number; limit: number }>();
    for (const [id, { lo, hi }] of spans) {
      const base = Math.min(lo, devices.get(id)!.acked_seq + 1);
      // Rows in (base, hi] are at most hi - base; the rest of the page serves the prefix's advance.
      ranges.set(id, { base, limit: Math.min(hi - base, 1_000_000) + ADVANCE_PAGE });
    }
    const taken = new Map<string, { rows: [number, number][]; complete: boolean }>();
    if (ranges.size) {
      const keys = [...ranges.keys()];
      const fetched = (await q.query<{ device_id: string; seq: number; last: number }>(`
        SELECT x.device_id, r.seq, r.last FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS x(device_id, base, lim)
        CROSS JOIN LATERAL (
          (SELECT seq, last FROM records WHERE device_id = x.device_id AND seq <= x.base ORDER BY seq DESC LIMIT 1)
          UNION ALL
          (SELECT seq, last FROM records WHERE device_id = x.device_id AND seq > x.base ORDER BY seq LIMIT x.lim)) r`,
      [keys, keys.map((k) => ranges.get(k)!.base), keys.map((k) => ranges.get(k)!.limit)])).rows;
      for (const k of keys) taken.set(k, { rows: [], complete: true });
      const after = new Map<string, number>();
      for (const r of fetched) {
        taken.get(r.device_id)!.rows.push([r.seq, r.last]);
        if (r.seq > ranges.get(r.device_id)!.base) after.set(r.device_id, (after.get(r.device_id) ?? 0) + 1);
      }
      for (const [k, t] of taken) {
        t.rows.sort((a, b) => a[0] - b[0]);
        t.complete = (after.get(k) ?? 0) < ranges.get(k)!.limit;
      }
    }

    const inserts: (RecordInsert & { device: string; now: number })[] = [];
    const downAcks: [string, number][] = [];
    const changed = new Set<DeviceSqlRow>();
    const out: FrameCommitResult[] = [];
    for (const c of commits) {
      const d = devices.get(c.deviceId);
      if (!d || d.state !== 'paired' || !constantTimeEqual(new Uint8Array(d.ks), c.ks)) {
        out.push({ ok: false, why: 'stale' });
        continue;
      }
      // Checked under the row lock: another replica may have taken the counter since the frame was opened.
      const w = ReplayWindow.from(d.up_highest, [d.up_bits_lo, d.up_bits_hi]);
      if (!w.check(c.counter)) {
        out.push({ ok: false, why: 'replay' });
        continue;
      }
      w.accept(c.counter);
      let added: StoredRecord[] = [];
      if (c.records?.length) {
        const t = taken.get(c.deviceId)!;
        const placed = place(t.rows, c.records);
        added = placed.added;
        for (const row of placed.rows) inserts.push(Object.assign(row, { device: c.deviceId, now: c.now }));
        if (added.length) {
          const walk = advance(t.rows, d.acked_seq);
          // The page ended while the prefix was still contiguous: read on (this group's rows are all
          // within the page, so what lies beyond it is stored already).
          d.acked_seq = walk.walked && !t.complete ? await this.#advance(q, c.deviceId, walk.acked) : walk.acked;
        }
      }
      if (c.guest) {
        const g = JSON.parse(d.guests);
        applyGuestAck(g, c.guest.cid, c.guest.state);
        d.guests = JSON.stringify(g);
      }
      if (c.status) d.status = JSON.stringify(c.status);
      if (c.info) Object.assign(d, { firmware: c.info.firmware, model: c.info.model });
      Object.assign(d, { up_highest: w.highest, up_bits_lo: w.bits[0], up_bits_hi: w.bits[1], last_seen: c.now });
      if (c.allocateDown) d.down_counter += 1;
      if (c.downAck !== undefined) downAcks.push([c.deviceId, c.downAck]);
      changed.add(d);
      out.push({ ok: true, added, ackedSeq: d.acked_seq, downCounter: c.allocateDown ? d.down_counter : undefined });
    }

    if (inserts.length) {
      const col = (i: number) => inserts.map((r) => r[i]);
      await q.query(`INSERT INTO records (device_id, seq, last, kind, t, gateway_timed, channel, value, event, data, reason, received_at)
        SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::smallint[], $5::bigint[], $6::boolean[], $7::int[],
          $8::bigint[], $9::text[], $10::bytea[], $11::text[], $12::bigint[])`,
      [inserts.map((r) => r.device), col(0), col(1), col(2), col(3), col(4), col(5), col(6), col(7), col(8), col(9), inserts.map((r) => r.now)]);
    }
    if (changed.size) {
      const rows = [...changed];
      const v = <K extends keyof DeviceSqlRow>(k: K) => rows.map((r) => r[k]);
      await q.query(`UPDATE devices d SET up_highest = v.up_highest, up_bits_lo = v.lo, up_bits_hi = v.hi, last_seen = v.last_seen,
          acked_seq = v.acked_seq, status = v.status, guests = v.guests, firmware = v.firmware, model = v.model, down_counter = v.down_counter
        FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[], $8::text[], $9::text[],
          $10::text[], $11::bigint[]) AS v(id, up_highest, lo, hi, last_seen, acked_seq, status, guests, firmware, model, down_counter)
        WHERE d.id = v.id`,
      [v('id'), v('up_highest'), v('up_bits_lo'), v('up_bits_hi'), v('last_seen'), v('acked_seq'), v('status'), v('guests'),
        v('firmware'), v('model'), v('down_counter')]);
    }
    if (downAcks.length) {
      await q.query(`DELETE FROM downlinks dl USING unnest($1::text[], $2::bigint[]) AS v(id, ack)
        WHERE dl.device_id = v.id AND dl.counter = v.ack`, [downAcks.map((x) => x[0]), downAcks.map((x) => x[1])]);
    }
    return out;
  }

  /** Moves the contiguous prefix forward over stored records and gaps. */
  async #advance(q: pg.PoolClient, device: string, acked: number): Promise<number> {
    for (;;) {
      const rows = (await q.query<{ seq: number; last: number }>(
        'SELECT seq, last FROM records WHERE device_id = $1 AND seq > $2 ORDER BY seq LIMIT $3', [device, acked, ADVANCE_PAGE])).rows;
      for (const row of rows) {
        if (row.seq !== acked + 1) return acked;
        acked = row.last;
      }
      if (rows.length < ADVANCE_PAGE) return acked;
    }
  }

  async nextDownCounter(deviceId: string): Promise<number> {
    const r = await this.db.query<{ down_counter: number }>(
      'UPDATE devices SET down_counter = down_counter + 1 WHERE id = $1 RETURNING down_counter', [deviceId]);
    if (!r.rows[0]) throw new Error(`no device ${deviceId} in the store`);
    return r.rows[0].down_counter;
  }

  async addDownlink(deviceId: string, type: number, body: Uint8Array, now: number): Promise<PendingDownlink> {
    return this.db.tx(async (c) => {
      const n = await c.query<{ down_counter: number }>(
        'UPDATE devices SET down_counter = down_counter + 1 WHERE id = $1 RETURNING down_counter', [deviceId]);
      if (!n.rows[0]) throw new Error(`no device ${deviceId} in the store`);
      const r = await c.query<DownlinkSqlRow>(`INSERT INTO downlinks (device_id, type, body, counter, sent_at, created_at)
        VALUES ($1, $2, $3, $4, $5, $5) RETURNING *`, [deviceId, type, bytea(body), n.rows[0].down_counter, now]);
      return toDownlink(r.rows[0]);
    });
  }

  async pendingDownlinks(deviceId: string): Promise<PendingDownlink[]> {
    return (await this.db.query<DownlinkSqlRow>('SELECT * FROM downlinks WHERE device_id = $1 ORDER BY id', [deviceId])).rows.map(toDownlink);
  }

  async resendDownlink(id: number, now: number, sentBefore?: number): Promise<PendingDownlink | undefined> {
    const owner = (await this.db.query<{ device_id: string }>('SELECT device_id FROM downlinks WHERE id = $1', [id])).rows[0];
    if (!owner) return undefined;
    return this.db.tx(async (c) => {
      // The device's row first, then the downlink's, as commits (down-acks) lock them.
      const n = await c.query<{ down_counter: number }>(
        'UPDATE devices SET down_counter = down_counter + 1 WHERE id = $1 RETURNING down_counter', [owner.device_id]);
      const r = (await c.query<DownlinkSqlRow>('SELECT * FROM downlinks WHERE id = $1 FOR UPDATE', [id])).rows[0];
      // Gone (acknowledged), or resent meanwhile by another replica: the transaction is rolled back.
      if (!r || !n.rows[0] || (sentBefore !== undefined && r.sent_at >= sentBefore)) throw new NoDownlink();
      const counter = n.rows[0].down_counter;
      await c.query('UPDATE downlinks SET counter = $1, sent_at = $2 WHERE id = $3', [counter, now, id]);
      return toDownlink({ ...r, counter, sent_at: now });
    }).catch((e) => {
      if (e instanceof NoDownlink) return undefined;
      throw e;
    });
  }

  async dropDownlinks(deviceId: string, type?: number): Promise<number> {
    const r = type === undefined
      ? await this.db.query('DELETE FROM downlinks WHERE device_id = $1', [deviceId])
      : await this.db.query('DELETE FROM downlinks WHERE device_id = $1 AND type = $2', [deviceId, type]);
    return r.rowCount ?? 0;
  }

  async countPendingDownlinks(): Promise<number> {
    return (await this.db.query<{ n: number }>('SELECT count(*)::int AS n FROM downlinks')).rows[0].n;
  }

  async readRecords(deviceId: string, from: number, limit: number): Promise<StoredRecord[]> {
    const out: StoredRecord[] = [];
    const before = (await this.db.query<RecordSqlRow>(
      'SELECT * FROM records WHERE device_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT 1', [deviceId, from])).rows[0];
    if (before && before.last >= from) out.push(toRecord(before));
    const rows = (await this.db.query<RecordSqlRow>(
      'SELECT * FROM records WHERE device_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3', [deviceId, from, Math.max(0, limit - out.length)])).rows;
    for (const r of rows) out.push(toRecord(r));
    return out;
  }

  async deleteRecordsThrough(deviceId: string, through: number): Promise<number> {
    return this.db.tx(async (c) => {
      const n = (await c.query('DELETE FROM records WHERE device_id = $1 AND last <= $2', [deviceId, through])).rowCount ?? 0;
      await c.query('DELETE FROM mesh_covered WHERE device_id = $1 AND last <= $2', [deviceId, through]);
      return n;
    });
  }

  async expiredThrough(deviceId: string, before: number): Promise<number | undefined> {
    const r = await this.db.query<{ last: number | null }>(`SELECT max(last) AS last FROM records WHERE device_id = $1
      AND seq < coalesce((SELECT min(seq) FROM records WHERE device_id = $1 AND t >= $2), $3)`, [deviceId, before, Number.MAX_SAFE_INTEGER]);
    return r.rows[0].last ?? undefined;
  }

  #closed?: Promise<void>;
  async close(): Promise<void> {
    this.#closed ??= (async () => {
      // Frame commits already handed over are written before the pool goes (within 10 s).
      for (const end = Date.now() + 10_000; (this.#frames.length || this.#lanes) && Date.now() < end;) await new Promise((r) => setTimeout(r, 5));
      await this.pairing.close();
      await this.db.close();
    })();
    return this.#closed;
  }
}
