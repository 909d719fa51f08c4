// The mesh block store on PostgreSQL (beside postgres.ts; mirrors sqlite-blocks.ts): grid messages by
// CID, the parent links of readings messages, each device's chain heads, and which of this gateway's
// own records its messages carry. Replicas append to one device's chain under a transaction-scoped
// advisory lock on the device, so `expectHeads` and the head move are one atomic step.

import type pg from 'pg';
import { bytea, PgDb, sameSet } from './postgres-db.js';
import type { BlockKind, BlockStore, ChainAppend, StoredBlock, StoredRecord } from './store.js';
import { toBlock, toRecord, type BlockRow, type RecordSqlRow } from './rows.js';

export const BLOCKS_DDL = [
  `CREATE TABLE IF NOT EXISTS mesh_blocks (
    cid BYTEA PRIMARY KEY,
    bytes BYTEA NOT NULL,
    kind TEXT NOT NULL,
    device_id TEXT,
    received_at BIGINT NOT NULL,
    n BIGSERIAL NOT NULL
  )`,
  'CREATE INDEX IF NOT EXISTS mesh_blocks_kind ON mesh_blocks (kind, device_id, n)',
  `CREATE TABLE IF NOT EXISTS mesh_links (
    parent BYTEA NOT NULL,
    child BYTEA NOT NULL,
    PRIMARY KEY (parent, child)
  )`,
  `CREATE TABLE IF NOT EXISTS mesh_heads (
    device_id TEXT NOT NULL,
    cid BYTEA NOT NULL,
    PRIMARY KEY (device_id, cid)
  )`,
  `CREATE TABLE IF NOT EXISTS mesh_covered (
    device_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    last BIGINT NOT NULL,
    PRIMARY KEY (device_id, seq)
  )`,
  // CIDs retention tombstones name as removed (retention-tombstone-v1 "Keeping"): not fetched or kept again.
  `CREATE TABLE IF NOT EXISTS mesh_removed (
    cid BYTEA NOT NULL,
    gateway TEXT NOT NULL,
    device_id TEXT NOT NULL,
    PRIMARY KEY (cid, gateway)
  )`,
];

const INSERT = `INSERT INTO mesh_blocks (cid, bytes, kind, device_id, received_at) VALUES ($1, $2, $3, $4, $5)
  ON CONFLICT (cid) DO NOTHING`;

export class PostgresBlockStore implements BlockStore {
  constructor(readonly db: PgDb) {}

  async put(b: StoredBlock): Promise<boolean> {
    const r = await this.db.query(INSERT, [bytea(b.cid), bytea(b.bytes), b.kind, b.deviceId, b.receivedAt]);
    return r.rowCount === 1;
  }

  async get(cid: Uint8Array): Promise<Uint8Array | undefined> {
    const r = (await this.db.query<{ bytes: Buffer }>('SELECT bytes FROM mesh_blocks WHERE cid = $1', [bytea(cid)])).rows[0];
    return r && new Uint8Array(r.bytes);
  }

  async has(cid: Uint8Array): Promise<boolean> {
    return (await this.db.query('SELECT 1 FROM mesh_blocks WHERE cid = $1', [bytea(cid)])).rows.length > 0;
  }

  async list(kind: BlockKind, deviceId?: string, receivedBefore?: number): Promise<StoredBlock[]> {
    if (receivedBefore !== undefined) {
      // Retention (privacy/retention.ts): only blocks kept before then.
      return (await this.db.query<BlockRow>(`SELECT * FROM mesh_blocks WHERE kind = $1 AND ($2::text IS NULL OR device_id = $2)
        AND received_at < $3 ORDER BY n`, [kind, deviceId ?? null, receivedBefore])).rows.map(toBlock);
    }
    const r = deviceId === undefined
      ? await this.db.query<BlockRow>('SELECT * FROM mesh_blocks WHERE kind = $1 ORDER BY n', [kind])
      : await this.db.query<BlockRow>('SELECT * FROM mesh_blocks WHERE kind = $1 AND device_id = $2 ORDER BY n', [kind, deviceId]);
    return r.rows.map(toBlock);
  }

  async heads(deviceId: string): Promise<Uint8Array[]> {
    const r = await this.db.query<{ cid: Buffer }>('SELECT cid FROM mesh_heads WHERE device_id = $1 ORDER BY cid', [deviceId]);
    return r.rows.map((x) => new Uint8Array(x.cid));
  }

  async allHeads(): Promise<{ deviceId: string; cid: Uint8Array }[]> {
    const r = await this.db.query<{ device_id: string; cid: Buffer }>('SELECT device_id, cid FROM mesh_heads ORDER BY device_id COLLATE "C", cid');
    return r.rows.map((x) => ({ deviceId: x.device_id, cid: new Uint8Array(x.cid) }));
  }

  async appendChain(a: ChainAppend): Promise<boolean> {
    return this.db.tx(async (c) => {
      // One appender per device chain at a time, across replicas.
      await c.query(`SELECT pg_advisory_xact_lock(hashtext('gridlet-chain:' || $1))`, [a.deviceId]);
      if (a.expectHeads) {
        const heads = (await c.query<{ cid: Buffer }>('SELECT cid FROM mesh_heads WHERE device_id = $1', [a.deviceId])).rows;
        if (!sameSet(heads.map((r) => new Uint8Array(r.cid)), a.expectHeads)) return false;
      }
      await link(c, a.deviceId, a.block, a.prev, a.covers);
      let prev = a.block.cid;
      for (const n of a.next ?? []) {
        await link(c, a.deviceId, n.block, [prev], n.covers);
        prev = n.block.cid;
      }
      return true;
    });
  }

  async delete(cids: Uint8Array[]): Promise<number> {
    if (!cids.length) return 0;
    const all = cids.map(bytea);
    return this.db.tx(async (c) => {
      const n = (await c.query('DELETE FROM mesh_blocks WHERE cid = ANY($1::bytea[])', [all])).rowCount ?? 0;
      // Only the links to the block's own parents go: a kept child still names it (and keeps it out of the heads).
      await c.query('DELETE FROM mesh_links WHERE child = ANY($1::bytea[])', [all]);
      return n;
    });
  }

  async noteRemoved(deviceId: string, gateway: string, cids: Uint8Array[]): Promise<void> {
    if (!cids.length) return;
    await this.db.query(`INSERT INTO mesh_removed (cid, gateway, device_id) SELECT c, $2, $3 FROM unnest($1::bytea[]) AS c
      ON CONFLICT DO NOTHING`, [cids.map(bytea), gateway, deviceId]);
  }

  async removedBy(cid: Uint8Array): Promise<{ deviceId: string; gateway: string }[]> {
    const r = await this.db.query<{ device_id: string; gateway: string }>(
      'SELECT device_id, gateway FROM mesh_removed WHERE cid = $1 ORDER BY gateway COLLATE "C"', [bytea(cid)]);
    return r.rows.map((x) => ({ deviceId: x.device_id, gateway: x.gateway }));
  }

  async parents(cid: Uint8Array): Promise<Uint8Array[]> {
    const r = await this.db.query<{ parent: Buffer }>('SELECT parent FROM mesh_links WHERE child = $1 ORDER BY parent', [bytea(cid)]);
    return r.rows.map((x) => new Uint8Array(x.parent));
  }

  async uncovered(deviceId: string, limit: number): Promise<StoredRecord[]> {
    const r = await this.db.query<RecordSqlRow>(`SELECT r.* FROM records r WHERE r.device_id = $1 AND NOT EXISTS
      (SELECT 1 FROM mesh_covered c WHERE c.device_id = r.device_id AND c.seq = r.seq) ORDER BY r.seq LIMIT $2`, [deviceId, limit]);
    return r.rows.map(toRecord);
  }
}

/** Keeps one chain message: the block, its links to its parents, the device's heads and what it covers. */
async function link(c: pg.PoolClient, deviceId: string, b: StoredBlock, prev: Uint8Array[], covers: [number, number][] | undefined): Promise<void> {
  const cid = bytea(b.cid);
  await c.query(INSERT, [cid, bytea(b.bytes), b.kind, b.deviceId, b.receivedAt]);
  for (const p of prev) {
    await c.query('INSERT INTO mesh_links (parent, child) VALUES ($1, $2) ON CONFLICT DO NOTHING', [bytea(p), cid]);
    await c.query('DELETE FROM mesh_heads WHERE device_id = $1 AND cid = $2', [deviceId, bytea(p)]);
  }
  // A message some kept message already names (an ancestor fetched late) is no head.
  const child = await c.query('SELECT 1 FROM mesh_links WHERE parent = $1 LIMIT 1', [cid]);
  if (child.rows.length === 0) {
    await c.query('INSERT INTO mesh_heads (device_id, cid) VALUES ($1, $2) ON CONFLICT DO NOTHING', [deviceId, cid]);
  }
  for (const [seq, last] of covers ?? []) {
    await c.query('INSERT INTO mesh_covered (device_id, seq, last) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [deviceId, seq, last]);
  }
}
