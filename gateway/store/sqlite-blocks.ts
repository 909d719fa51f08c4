// The mesh block store on the gateway's SQLite database (beside sqlite.ts): grid messages by CID, the
// parent links of readings messages, each device's chain heads, and which of this gateway's own
// records its messages carry. A chain append is one transaction, so heads move atomically.
// Each device's heads are held in memory once read (sqlite.ts empties them, with its device cache,
// when another connection changed the database), and the record ranges a message carries are kept
// as one row per contiguous run, so a readings message of four records is one coverage row.

import type Database from 'better-sqlite3';
import { busy } from '../busy.js';
import type { BlockKind, BlockStore, ChainAppend, StoredBlock, StoredRecord } from './store.js';
import { blob, toBlock, type BlockRow } from './rows.js';

export const MESH_SCHEMA = `
CREATE TABLE IF NOT EXISTS mesh_blocks (
  cid BLOB PRIMARY KEY,
  bytes BLOB NOT NULL,
  kind TEXT NOT NULL,
  device_id TEXT,
  received_at INTEGER NOT NULL,
  n INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS mesh_blocks_kind ON mesh_blocks (kind, device_id, n);
-- Every insert takes max(n) + 1: without this index that is a scan of all blocks per insert.
CREATE INDEX IF NOT EXISTS mesh_blocks_n ON mesh_blocks (n);
CREATE TABLE IF NOT EXISTS mesh_links (
  parent BLOB NOT NULL,
  child BLOB NOT NULL,
  PRIMARY KEY (parent, child)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mesh_heads (
  device_id TEXT NOT NULL,
  cid BLOB NOT NULL,
  PRIMARY KEY (device_id, cid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mesh_covered (
  device_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  last INTEGER NOT NULL,
  PRIMARY KEY (device_id, seq)
) WITHOUT ROWID;
-- CIDs retention tombstones name as removed (retention-tombstone-v1 "Keeping"): not fetched or kept again.
CREATE TABLE IF NOT EXISTS mesh_removed (
  cid BLOB NOT NULL,
  gateway TEXT NOT NULL,
  device_id TEXT NOT NULL,
  PRIMARY KEY (cid, gateway)
) WITHOUT ROWID;
`;

function sameSet(a: Uint8Array[], b: Uint8Array[]): boolean {
  if (a.length !== b.length) return false;
  const hex = (x: Uint8Array) => Buffer.from(x).toString('hex');
  const s = new Set(a.map(hex));
  return b.every((x) => s.has(hex(x)));
}

/** Ranges [seq, last] merged where one continues the next (in order of seq). */
export function runs(ranges: [number, number][]): [number, number][] {
  if (ranges.length < 2) return ranges;
  let sorted = ranges;
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i - 1][0] > ranges[i][0]) {
      sorted = [...ranges].sort((a, b) => a[0] - b[0]);
      break;
    }
  }
  const out: [number, number][] = [[sorted[0][0], sorted[0][1]]];
  for (let i = 1; i < sorted.length; i++) {
    const [seq, last] = sorted[i];
    const top = out[out.length - 1];
    if (seq === top[1] + 1) top[1] = Math.max(top[1], last);
    else out.push([seq, last]);
  }
  return out;
}

export class SqliteBlockStore implements BlockStore {
  readonly #db: Database.Database;
  readonly #q;

  /** `toRecord` turns a row of the records table into a StoredRecord (sqlite.ts owns that table). */
  constructor(db: Database.Database, readonly toRecord: (row: any) => StoredRecord) {
    this.#db = db;
    db.exec(MESH_SCHEMA);
    this.#transactions(db);
    this.#q = {
      insert: db.prepare(`INSERT INTO mesh_blocks (cid, bytes, kind, device_id, received_at, n)
        VALUES (@cid, @bytes, @kind, @device, @at, (SELECT coalesce(max(n), 0) + 1 FROM mesh_blocks)) ON CONFLICT (cid) DO NOTHING`),
      get: db.prepare<[Buffer], { bytes: Buffer }>('SELECT bytes FROM mesh_blocks WHERE cid = ?'),
      list: db.prepare<[string], BlockRow>('SELECT * FROM mesh_blocks WHERE kind = ? ORDER BY n'),
      listDevice: db.prepare<[string, string], BlockRow>('SELECT * FROM mesh_blocks WHERE kind = ? AND device_id = ? ORDER BY n'),
      heads: db.prepare<[string], { cid: Buffer }>('SELECT cid FROM mesh_heads WHERE device_id = ? ORDER BY cid'),
      allHeads: db.prepare<[], { device_id: string; cid: Buffer }>('SELECT device_id, cid FROM mesh_heads ORDER BY device_id, cid'),
      link: db.prepare('INSERT INTO mesh_links (parent, child) VALUES (?, ?) ON CONFLICT DO NOTHING'),
      hasChild: db.prepare<[Buffer], { n: number }>('SELECT count(*) AS n FROM mesh_links WHERE parent = ?'),
      dropHead: db.prepare('DELETE FROM mesh_heads WHERE device_id = ? AND cid = ?'),
      addHead: db.prepare('INSERT INTO mesh_heads (device_id, cid) VALUES (?, ?) ON CONFLICT DO NOTHING'),
      cover: db.prepare('INSERT INTO mesh_covered (device_id, seq, last) VALUES (?, ?, ?) ON CONFLICT DO NOTHING'),
      // A record is covered by the coverage row starting at or before it that reaches it (rows of one
      // device's own messages never overlap).
      uncovered: db.prepare(`SELECT r.* FROM records r WHERE r.device_id = ? AND coalesce((SELECT c.last FROM mesh_covered c
        WHERE c.device_id = r.device_id AND c.seq <= r.seq ORDER BY c.seq DESC LIMIT 1), -1) < r.last ORDER BY r.seq LIMIT ?`),
      syncNormal: db.prepare('PRAGMA synchronous = NORMAL'),
      syncFull: db.prepare('PRAGMA synchronous = FULL'),
    };
  }

  /** Each device's heads (sorted), as read or written through this connection. */
  readonly #heads = new Map<string, Buffer[]>();
  /**
   * Called before the cached heads are used: lets sqlite.ts notice other connections' changes (`turn`:
   * a read outside a transaction, checked once per turn of the event loop).
   */
  fresh: (turn?: boolean) => void = () => {};

  /** Forgets the cached heads (another connection changed the database). */
  forget(): void {
    this.#heads.clear();
  }

  #headsOf(deviceId: string): Buffer[] {
    let h = this.#heads.get(deviceId);
    if (!h) this.#heads.set(deviceId, (h = this.#q.heads.all(deviceId).map((r) => r.cid)));
    return h;
  }

  /** True when writes are held back for now (a checkpoint's second pass, sqlite.ts); `then` runs after. */
  held: (then: () => void) => boolean = () => false;

  /** Runs a write in the store's next durable group commit (sqlite.ts sets it; alone: at once). */
  durably: <T>(job: () => T) => Promise<T> = async (job) => job();

  async put(b: StoredBlock): Promise<boolean> {
    return this.durably(() => this.#put(b));
  }

  #put(b: StoredBlock): boolean {
    return this.#q.insert.run({ cid: blob(b.cid), bytes: blob(b.bytes), kind: b.kind, device: b.deviceId, at: b.receivedAt }).changes === 1;
  }

  async get(cid: Uint8Array): Promise<Uint8Array | undefined> {
    const r = this.#q.get.get(blob(cid));
    return r && new Uint8Array(r.bytes);
  }

  async has(cid: Uint8Array): Promise<boolean> {
    return this.#q.get.get(blob(cid)) !== undefined;
  }

  async list(kind: BlockKind, deviceId?: string, receivedBefore?: number): Promise<StoredBlock[]> {
    if (receivedBefore !== undefined) {
      return this.#db.prepare<[string, string | null, string | null, number], BlockRow>(
        'SELECT * FROM mesh_blocks WHERE kind = ? AND (? IS NULL OR device_id = ?) AND received_at < ? ORDER BY n',
      ).all(kind, deviceId ?? null, deviceId ?? null, receivedBefore).map(toBlock);
    }
    const rows = deviceId === undefined ? this.#q.list.all(kind) : this.#q.listDevice.all(kind, deviceId);
    return rows.map(toBlock);
  }

  async heads(deviceId: string): Promise<Uint8Array[]> {
    this.fresh(true);
    return this.#headsOf(deviceId).map((c) => new Uint8Array(c));
  }

  async allHeads(): Promise<{ deviceId: string; cid: Uint8Array }[]> {
    return this.#q.allHeads.all().map((r) => ({ deviceId: r.device_id, cid: new Uint8Array(r.cid) }));
  }

  // Chain appends that arrive together (the mesh appends for many devices at once) are kept in one
  // transaction, each in a savepoint of its own, so the pages they share are written once.
  #appends: { a: ChainAppend; resolve: (ok: boolean) => void; reject: (e: Error) => void }[] = [];
  #appendFlush: NodeJS.Immediate | undefined;

  async appendChain(a: ChainAppend): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.#appends.push({ a, resolve, reject });
      this.#appendFlush ??= setImmediate(() => this.#flushAppends());
    });
  }

  #flushAppends(): void {
    this.#appendFlush = undefined;
    if (this.#appends.length && this.held(() => this.#flushAppends())) return;
    const batch = this.#appends.splice(0);
    if (!batch.length) return;
    // Without an fsync of its own (the next FULL commit makes it durable): a chain message lost in a
    // crash is rebuilt from the records no message covers at startup, and peers' messages are fetched
    // again. A lost message a peer already had comes back as a branch beside its rebuilt twin.
    const t0 = performance.now();
    const out: ({ ok: boolean } | { error: Error })[] = [];
    try {
      if (!this.#db.open) throw new Error('the store is closed');
      this.fresh();
      this.#q.syncNormal.run();
      try {
        try {
          // Without a savepoint per append; one that throws rolls the group back, which is then applied
          // again with one savepoint per append, so that only it fails.
          this.#group.immediate(batch, out, false);
        } catch {
          this.#heads.clear();
          out.length = 0;
          this.#group.immediate(batch, out, true);
        }
      } finally {
        this.#q.syncFull.run();
        busy('mesh-store', t0);
      }
    } catch (e) {
      this.#heads.clear();
      for (const b of batch) b.reject(e as Error);
      return;
    }
    batch.forEach((b, i) => {
      const r = out[i];
      if ('ok' in r) b.resolve(r.ok);
      else b.reject(r.error);
    });
  }

  /** Keeps what is queued now (the store is closing). */
  flush(): void {
    if (this.#appendFlush) clearImmediate(this.#appendFlush);
    this.#flushAppends();
  }

  #savepoint!: Database.Transaction<(a: ChainAppend) => boolean>;
  #group!: Database.Transaction<(batch: { a: ChainAppend }[], out: ({ ok: boolean } | { error: Error })[], isolate: boolean) => void>;

  #transactions(db: Database.Database): void {
    this.#savepoint = db.transaction((a: ChainAppend) => this.#appendChain(a));
    this.#group = db.transaction((batch: { a: ChainAppend }[], out: ({ ok: boolean } | { error: Error })[], isolate: boolean) => {
      for (const { a } of batch) {
        if (!isolate) out.push({ ok: this.#appendChain(a) });
        else {
          try {
            out.push({ ok: this.#savepoint(a) });
          } catch (e) {
            this.#heads.delete(a.deviceId);
            out.push({ error: e as Error });
          }
        }
      }
    });
  }

  /** One append inside the group's transaction. */
  #appendChain(a: ChainAppend): boolean {
    if (a.expectHeads && !sameSet(this.#headsOf(a.deviceId), a.expectHeads)) return false;
    this.#link(a.deviceId, a.block, a.prev, a.covers);
    let prev = a.block.cid;
    for (const n of a.next ?? []) {
      this.#link(a.deviceId, n.block, [prev], n.covers);
      prev = n.block.cid;
    }
    return true;
  }

  #link(deviceId: string, block: StoredBlock, prev: Uint8Array[], covers: [number, number][] | undefined): void {
    this.#put(block);
    const cid = Buffer.from(block.cid);
    let heads = this.#headsOf(deviceId);
    for (const p of prev) {
      this.#q.link.run(blob(p), cid);
      const i = heads.findIndex((h) => h.equals(p));
      if (i >= 0) {
        this.#q.dropHead.run(deviceId, blob(p));
        heads = heads.filter((_, j) => j !== i);
      }
    }
    // A message some kept message already names (an ancestor fetched late) is no head.
    if (this.#q.hasChild.get(cid)!.n === 0 && !heads.some((h) => h.equals(cid))) {
      this.#q.addHead.run(deviceId, cid);
      let at = heads.length;
      while (at > 0 && Buffer.compare(heads[at - 1], cid) > 0) at--;
      heads = [...heads.slice(0, at), cid, ...heads.slice(at)];
    }
    this.#heads.set(deviceId, heads);
    for (const [seq, last] of runs(covers ?? [])) this.#q.cover.run(deviceId, seq, last);
  }


  async delete(cids: Uint8Array[]): Promise<number> {
    const del = this.#db.prepare('DELETE FROM mesh_blocks WHERE cid = ?');
    // Only the links to the block's own parents go: a kept child still names it (and keeps it out of the heads).
    const unlink = this.#db.prepare('DELETE FROM mesh_links WHERE child = ?');
    // After the appends and puts queued before it.
    this.flush();
    return this.durably(() => {
      let n = 0;
      for (const c of cids) {
        n += del.run(blob(c)).changes;
        unlink.run(blob(c));
      }
      return n;
    });
  }

  async noteRemoved(deviceId: string, gateway: string, cids: Uint8Array[]): Promise<void> {
    const add = this.#db.prepare('INSERT INTO mesh_removed (cid, gateway, device_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING');
    this.flush();
    return this.durably(() => {
      for (const c of cids) add.run(blob(c), gateway, deviceId);
    });
  }

  async removedBy(cid: Uint8Array): Promise<{ deviceId: string; gateway: string }[]> {
    return this.#db.prepare<[Buffer], { device_id: string; gateway: string }>('SELECT device_id, gateway FROM mesh_removed WHERE cid = ? ORDER BY gateway')
      .all(blob(cid)).map((r) => ({ deviceId: r.device_id, gateway: r.gateway }));
  }

  async parents(cid: Uint8Array): Promise<Uint8Array[]> {
    return this.#db.prepare<[Buffer], { parent: Buffer }>('SELECT parent FROM mesh_links WHERE child = ? ORDER BY parent')
      .all(blob(cid)).map((r) => new Uint8Array(r.parent));
  }

  async uncovered(deviceId: string, limit: number): Promise<StoredRecord[]> {
    return this.#q.uncovered.all(deviceId, limit).map((r) => this.toRecord(r));
  }
}
