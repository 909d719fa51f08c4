// The mesh block store on the gateway's SQLite database (beside sqlite.ts): grid messages by CID, the
// parent links of readings messages, each device's chain heads, and which of this gateway's own
// records its messages carry.
//
// Messages are kept in one append-only log (mesh_log): a row holds the message, and for a chain
// message also the parents it was appended with and the record runs it covers. A chain append writes
// its log row (the log's last page, shared by every append of a group commit) and the log's CID index
// (one random page), nothing per device: each device's heads and coverage are derived from the log.
// They are held in memory and written out now and then (mesh_chains, with the log position they reach
// in mesh_mark): at most every PERSIST_APPENDS appends or PERSIST_MS, before a deletion, and at close.
// Opening (or noticing another connection's writes) loads them and replays the log rows past the mark,
// so a crash loses nothing the log holds. The readings of one device are found through mesh_readings,
// written for the log rows up to the mark when the derived state is written (past it: in memory).
// The periodic write is spread over the group commits that follow (PERSIST_SHARE devices each, so that
// no commit holds the event loop for the whole fleet), and the mark moves once every device changed
// before the write began has been written. A crash in between replays, past the old mark, rows some
// devices' written state already holds: applying a device's rows again, in order, to a state that holds
// some of them gives the same heads and coverage, and a readings row both indexed and noted in memory
// is listed once.
//
// "A message some kept message already names is no head" (an ancestor fetched late): the links whose
// parent is not kept (when its child is appended, or when it is deleted while its child is kept) are
// kept in mesh_dangling; own appends name kept heads, so they write none.

import type Database from 'better-sqlite3';
import { busyWithin } from '../busy.js';
import type { BlockKind, BlockStore, ChainAppend, StoredBlock, StoredRecord } from './store.js';
import { blob, toBlock, type BlockRow } from './rows.js';

export const MESH_SCHEMA = `
-- Every kept message, in the order kept (n). A chain message (appendChain) has its parents (CIDs, each
-- after its length in two bytes; none: empty) and the runs [seq, last] of this gateway's records it
-- covers (JSON); chain: the chain's device when it is not device_id.
CREATE TABLE IF NOT EXISTS mesh_log (
  n INTEGER PRIMARY KEY AUTOINCREMENT,
  cid BLOB NOT NULL UNIQUE,
  bytes BLOB NOT NULL,
  kind TEXT NOT NULL,
  device_id TEXT,
  received_at INTEGER NOT NULL,
  parents BLOB,
  covers TEXT,
  chain TEXT
);
-- Kinds other than readings are few (identities, registry, consent, aggregates, guests, tombstones).
CREATE INDEX IF NOT EXISTS mesh_log_kind ON mesh_log (kind, device_id, n) WHERE kind <> 'readings';
-- A device's readings messages up to mesh_mark (those past it are held in memory).
CREATE TABLE IF NOT EXISTS mesh_readings (
  device_id TEXT NOT NULL,
  n INTEGER NOT NULL,
  PRIMARY KEY (device_id, n)
) WITHOUT ROWID;
-- Each device's heads (encoded as parents are) and covered runs (JSON), as of the log row mesh_mark.n.
CREATE TABLE IF NOT EXISTS mesh_chains (
  device_id TEXT PRIMARY KEY,
  heads BLOB NOT NULL,
  covered TEXT NOT NULL
) WITHOUT ROWID;
-- epoch: counts changes of the derived state that are not appends (other connections then load it again).
CREATE TABLE IF NOT EXISTS mesh_mark (
  id INTEGER PRIMARY KEY CHECK (id = 0),
  n INTEGER NOT NULL,
  epoch INTEGER NOT NULL DEFAULT 0
);
-- Links (parent, child) of kept chain messages whose parent was not kept (module comment).
CREATE TABLE IF NOT EXISTS mesh_dangling (
  parent BLOB NOT NULL,
  child BLOB NOT NULL,
  PRIMARY KEY (parent, child)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS mesh_dangling_child ON mesh_dangling (child);
-- CIDs retention tombstones name as removed (retention-tombstone-v1 "Keeping"): not fetched or kept again.
CREATE TABLE IF NOT EXISTS mesh_removed (
  cid BLOB NOT NULL,
  gateway TEXT NOT NULL,
  device_id TEXT NOT NULL,
  PRIMARY KEY (cid, gateway)
) WITHOUT ROWID;
`;

/** The derived state is written at least this often (appends since the last time, or ms). */
export const PERSIST_APPENDS = 100_000;
export const PERSIST_MS = 60_000;
/** How much of the derived state a group commit writes at most: devices, each readings index row an eighth of one more. */
export const PERSIST_SHARE = 250;

const BLOCK_COLUMNS = 'cid, bytes, kind, device_id, received_at';

function hexOf(x: Uint8Array): string {
  return blob(x).toString('hex');
}

function sameSet(a: Uint8Array[], b: Uint8Array[]): boolean {
  if (a.length !== b.length) return false;
  const s = new Set(a.map(hexOf));
  return b.every((x) => s.has(hexOf(x)));
}

/** Ranges [seq, last] as sorted, disjoint runs: overlapping and adjacent ranges joined. */
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
    if (seq <= top[1] + 1) top[1] = Math.max(top[1], last);
    else out.push([seq, last]);
  }
  return out.slice();
}

/** `covered` (as runs() makes them) with `add` joined; `covered` itself when nothing changes. */
export function addRuns(covered: [number, number][], add: [number, number][]): [number, number][] {
  const top = covered[covered.length - 1];
  // The common case: the device's next records, after or continuing its last run.
  if (add.length === 1 && (!top || add[0][0] >= top[0])) {
    const [seq, last] = add[0];
    if (!top || seq > top[1] + 1) return covered.concat([[seq, last]]);
    return last > top[1] ? covered.slice(0, -1).concat([[top[0], last]]) : covered;
  }
  const merged = runs([...covered, ...add]);
  return merged.length === covered.length && merged.every(([s, l], i) => s === covered[i][0] && l === covered[i][1]) ? covered : merged;
}

/** CIDs as a column holds them: each after its length (two bytes, big-endian). */
export function encodeCids(cids: Uint8Array[]): Buffer {
  const out = Buffer.allocUnsafe(cids.reduce((n, c) => n + 2 + c.length, 0));
  let at = 0;
  for (const c of cids) {
    out.writeUInt16BE(c.length, at);
    out.set(c, at + 2);
    at += 2 + c.length;
  }
  return out;
}

export function decodeCids(b: Uint8Array | null): Buffer[] {
  const out: Buffer[] = [];
  if (!b) return out;
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  for (let at = 0; at + 2 <= buf.length;) {
    const len = buf.readUInt16BE(at);
    out.push(Buffer.from(buf.subarray(at + 2, at + 2 + len)));
    at += 2 + len;
  }
  return out;
}

/** A device's derived state. Replaced, never changed in place. */
// Every device's chain is held for as long as the store is open, so its arrays are made at their exact
// size (concat, slice and literals; a spread or a push leaves room for ~17 elements: 185 bytes where 58 do).
interface Chain {
  /** Sorted. */
  heads: Buffer[];
  /** Sorted, disjoint runs [seq, last] of this gateway's records its messages carry. */
  covered: [number, number][];
}

const NO_CHAIN: Chain = { heads: [], covered: [] };

interface LogRow {
  n: number;
  cid: Buffer;
  kind: string;
  device_id: string | null;
  parents: Buffer | null;
  covers: string | null;
  chain: string | null;
}

export class SqliteBlockStore implements BlockStore {
  readonly #db: Database.Database;
  readonly #q;

  /** When the derived state is written (tests set smaller numbers). */
  persistEvery = { appends: PERSIST_APPENDS, ms: PERSIST_MS };
  /** Devices a group commit writes of a periodic write of the derived state (tests set smaller numbers). */
  persistShare = PERSIST_SHARE;

  /** `toRecord` turns a row of the records table into a StoredRecord (sqlite.ts owns that table). */
  constructor(db: Database.Database, readonly toRecord: (row: any) => StoredRecord) {
    this.#db = db;
    const old = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'mesh_blocks'`).get();
    db.transaction(() => {
      db.exec(MESH_SCHEMA);
      if (old) migrate(db);
    }).immediate();
    this.#q = {
      insert: db.prepare(`INSERT INTO mesh_log (cid, bytes, kind, device_id, received_at, parents, covers, chain)
        VALUES (@cid, @bytes, @kind, @device, @at, @parents, @covers, @chain) ON CONFLICT (cid) DO NOTHING`),
      get: db.prepare<[Buffer], { bytes: Buffer }>('SELECT bytes FROM mesh_log WHERE cid = ?'),
      has: db.prepare<[Buffer], number>('SELECT 1 FROM mesh_log WHERE cid = ?').pluck(),
      row: db.prepare<[Buffer], LogRow>('SELECT n, cid, kind, device_id, parents, covers, chain FROM mesh_log WHERE cid = ?'),
      byN: db.prepare<[number], BlockRow>(`SELECT ${BLOCK_COLUMNS} FROM mesh_log WHERE n = ?`),
      linksByN: db.prepare<[number], { cid: Buffer; parents: Buffer | null }>('SELECT cid, parents FROM mesh_log WHERE n = ?'),
      // The literal `kind <> 'readings'` lets SQLite use the partial index.
      list: db.prepare<[string], BlockRow>(`SELECT ${BLOCK_COLUMNS} FROM mesh_log WHERE kind = ? AND kind <> 'readings' ORDER BY n`),
      listDevice: db.prepare<[string, string], BlockRow>(
        `SELECT ${BLOCK_COLUMNS} FROM mesh_log WHERE kind = ? AND kind <> 'readings' AND device_id = ? ORDER BY n`),
      listReadings: db.prepare<[], BlockRow>(`SELECT ${BLOCK_COLUMNS} FROM mesh_log WHERE kind = 'readings' ORDER BY n`),
      deviceReadings: db.prepare<[string], BlockRow & { n: number }>(`SELECT l.n, l.cid, l.bytes, l.kind, l.device_id, l.received_at
        FROM mesh_readings r JOIN mesh_log l ON l.n = r.n WHERE r.device_id = ? AND l.kind = 'readings' AND l.device_id = r.device_id ORDER BY r.n`),
      deviceChain: db.prepare<[string], { cid: Buffer; parents: Buffer | null }>(`SELECT l.cid, l.parents
        FROM mesh_readings r JOIN mesh_log l ON l.n = r.n WHERE r.device_id = ? AND l.parents IS NOT NULL`),
      named: db.prepare<[Buffer], number>('SELECT 1 FROM mesh_dangling WHERE parent = ? LIMIT 1').pluck(),
      anyDangling: db.prepare<[], number>('SELECT 1 FROM mesh_dangling LIMIT 1').pluck(),
      dangle: db.prepare('INSERT INTO mesh_dangling (parent, child) VALUES (?, ?) ON CONFLICT DO NOTHING'),
      undangle: db.prepare('DELETE FROM mesh_dangling WHERE child = ?'),
      relink: db.prepare('UPDATE mesh_log SET parents = ?, covers = ?, chain = ? WHERE n = ?'),
      deleteN: db.prepare('DELETE FROM mesh_log WHERE n = ?'),
      unindex: db.prepare('DELETE FROM mesh_readings WHERE device_id = ? AND n = ?'),
      index: db.prepare('INSERT INTO mesh_readings (device_id, n) VALUES (?, ?) ON CONFLICT DO NOTHING'),
      top: db.prepare<[], number | null>('SELECT max(n) FROM mesh_log').pluck(),
      mark: db.prepare<[], { n: number; epoch: number }>('SELECT n, epoch FROM mesh_mark WHERE id = 0'),
      setMark: db.prepare('INSERT INTO mesh_mark (id, n, epoch) VALUES (0, ?, ?) ON CONFLICT (id) DO UPDATE SET n = excluded.n, epoch = excluded.epoch'),
      chains: db.prepare<[], { device_id: string; heads: Buffer; covered: string }>('SELECT device_id, heads, covered FROM mesh_chains'),
      setChain: db.prepare(`INSERT INTO mesh_chains (device_id, heads, covered) VALUES (?, ?, ?)
        ON CONFLICT (device_id) DO UPDATE SET heads = excluded.heads, covered = excluded.covered`),
      dropChain: db.prepare('DELETE FROM mesh_chains WHERE device_id = ?'),
      replay: db.prepare<[number, number], LogRow>(`SELECT n, cid, kind, device_id, parents, covers, chain FROM mesh_log
        WHERE n > ? ORDER BY n LIMIT ?`),
      // The record at or before a seq, and the records from one seq up to (not including) another.
      before: db.prepare<[string, number, number]>('SELECT * FROM records WHERE device_id = ? AND seq >= ? AND seq <= ? ORDER BY seq DESC LIMIT 1'),
      between: db.prepare<[string, number, number, number]>('SELECT * FROM records WHERE device_id = ? AND seq >= ? AND seq < ? ORDER BY seq LIMIT ?'),
    };
  }

  // ------------------------------------------------------------------ derived state

  /** False until the derived state is loaded (and after reset()). */
  #ready = false;
  /** Another connection may have written since the state was loaded (forget()). */
  #stale = false;
  /** The last log position the state holds (replayed or appended through this connection). */
  #seen = 0;
  /** mesh_mark.epoch as loaded. */
  #epoch = 0;
  readonly #chains = new Map<string, Chain>();
  /** Devices whose state changed since it was last written. */
  readonly #dirty = new Set<string>();
  /** Each device's readings messages past the mark (log positions), not yet in mesh_readings. */
  readonly #tail = new Map<string, number[]>();
  /** The log position the written state reaches. */
  #mark = 0;
  #appendsSince = 0;
  #persistedAt = Date.now();
  /**
   * A periodic write of the derived state under way, a share per group commit: the devices that had
   * changed when it began (written in turn, each as it is when its turn comes), and the log position
   * it began at (the mark once all are written).
   */
  #writing: { devices: string[]; next: number; top: number } | undefined;

  /**
   * Called before the derived state is used: lets sqlite.ts notice other connections' changes (`turn`:
   * a read outside a transaction, checked once per turn of the event loop).
   */
  fresh: (turn?: boolean) => void = () => {};

  /**
   * Another connection changed the database: before the state is next used, the log rows it appended
   * are replayed (and it is loaded again if that connection changed it otherwise).
   */
  forget(): void {
    this.#stale = true;
  }

  /** Forgets the derived state (a write rolled back): it is loaded again when next used. */
  reset(): void {
    this.#ready = false;
  }

  /** Loads the written state and replays the log rows past its mark, or catches up (in one read transaction). */
  #load(): void {
    if (this.#ready && !this.#stale) return;
    this.#loadTx ??= this.#db.transaction(() => (this.#ready ? this.#catchUp() : this.#loadNow()));
    this.#loadTx();
  }

  #loadTx: (() => void) | undefined;

  #loadNow(): void {
    this.#chains.clear();
    this.#dirty.clear();
    this.#tail.clear();
    this.#writing = undefined;
    const m = this.#q.mark.get();
    this.#mark = m?.n ?? 0;
    this.#epoch = m?.epoch ?? 0;
    for (const r of this.#q.chains.all()) {
      this.#chains.set(r.device_id, { heads: decodeCids(r.heads).slice(), covered: JSON.parse(r.covered) });
    }
    this.#ready = true;
    this.#stale = false;
    this.#seen = this.#mark;
    this.#appendsSince = this.#replay();
    this.#persistedAt = Date.now();
  }

  /** After another connection's writes: its appends are replayed; anything else it changed, the state is loaded again. */
  #catchUp(): void {
    this.#stale = false;
    const m = this.#q.mark.get();
    if ((m?.epoch ?? 0) !== this.#epoch || (m?.n ?? 0) < this.#mark) return this.#loadNow();
    if (m && m.n > this.#mark) {
      // It wrote the state up to there, with the readings index: what this connection had past its old mark and up to there is in it.
      for (const [d, ns] of this.#tail) {
        const left = ns.filter((n) => n > m.n);
        if (left.length) this.#tail.set(d, left);
        else this.#tail.delete(d);
      }
      this.#mark = m.n;
    }
    this.#appendsSince += this.#replay();
  }

  /** Applies the log rows past #seen; returns how many there were. */
  #replay(): number {
    // Without dangling links (the usual case) no message replayed is named by another.
    const dangling = this.#q.anyDangling.get() !== undefined;
    let replayed = 0;
    for (let from = this.#seen; ;) {
      const rows = this.#q.replay.all(from, 1000);
      for (const r of rows) {
        if (r.kind === 'readings' && r.device_id !== null) this.#noteTail(r.device_id, r.n);
        if (r.parents !== null) {
          const covers = r.covers === null ? undefined : (JSON.parse(r.covers) as [number, number][]);
          this.#apply(r.chain ?? r.device_id!, r.cid, decodeCids(r.parents), covers, !dangling || this.#q.named.get(r.cid) === undefined);
        }
        from = r.n;
        this.#seen = r.n;
      }
      replayed += rows.length;
      if (rows.length < 1000) break;
    }
    return replayed;
  }

  #chain(deviceId: string): Chain {
    this.#load();
    return this.#chains.get(deviceId) ?? NO_CHAIN;
  }

  #noteTail(deviceId: string, n: number): void {
    const t = this.#tail.get(deviceId);
    if (t) t.push(n);
    else this.#tail.set(deviceId, [n]);
  }

  /** A chain message's effect on its device: its parents are no heads, it is one unless `mayHead` is false or it already is. */
  #apply(deviceId: string, cid: Buffer, prev: Uint8Array[], covers: [number, number][] | undefined, mayHead: boolean): void {
    const old = this.#chain(deviceId);
    let heads = old.heads;
    for (const p of prev) {
      const i = heads.findIndex((h) => h.equals(p));
      if (i >= 0) heads = heads.slice(0, i).concat(heads.slice(i + 1));
    }
    if (mayHead && !heads.some((h) => h.equals(cid))) {
      let at = heads.length;
      while (at > 0 && Buffer.compare(heads[at - 1], cid) > 0) at--;
      heads = heads.slice(0, at).concat([cid], heads.slice(at));
    }
    const covered = covers?.length ? addRuns(old.covered, covers) : old.covered;
    if (heads === old.heads && covered === old.covered) return;
    this.#chains.set(deviceId, { heads, covered });
    this.#dirty.add(deviceId);
  }

  /** Writes the derived state of the devices that changed, and the readings past the mark; in the caller's transaction. */
  #persist(): void {
    this.#load();
    const top = this.#q.top.get() ?? this.#mark;
    for (const d of this.#dirty) this.#writeChain(d);
    for (const [d, ns] of this.#tail) for (const n of ns) this.#q.index.run(d, n);
    const m = this.#q.mark.get();
    if (!m || m.n !== top || m.epoch !== this.#epoch) this.#q.setMark.run(top, this.#epoch);
    this.#dirty.clear();
    this.#tail.clear();
    this.#writing = undefined;
    this.#mark = top;
    this.#appendsSince = 0;
    this.#persistedAt = Date.now();
  }

  #writeChain(d: string): void {
    const c = this.#chains.get(d);
    if (!c || (c.heads.length === 0 && c.covered.length === 0)) this.#q.dropChain.run(d);
    else this.#q.setChain.run(d, encodeCids(c.heads), JSON.stringify(c.covered));
  }

  /**
   * In each group commit: begins a periodic write of the derived state when it is due, and writes the
   * next share of one under way (the devices' rows as they are now, at the log's end, with their readings
   * index); the last share moves the mark to where the write began.
   */
  #maybePersist(): void {
    // A write rolled back since the last share (reset()), or another connection wrote: the state is
    // loaded again first (which abandons the write under way; the mark has not moved, so nothing is lost).
    if (this.#writing && (!this.#ready || this.#stale)) this.#load();
    if (!this.#writing) {
      if (!(this.#appendsSince >= this.persistEvery.appends || (this.#appendsSince > 0 && Date.now() - this.#persistedAt >= this.persistEvery.ms))) return;
      this.#load();
      const devices = [...this.#dirty];
      for (const d of this.#tail.keys()) if (!this.#dirty.has(d)) devices.push(d);
      this.#writing = { devices, next: 0, top: this.#q.top.get() ?? this.#mark };
      this.#appendsSince = 0;
      this.#persistedAt = Date.now();
    }
    const w = this.#writing;
    for (let budget = this.persistShare; w.next < w.devices.length && budget > 0; w.next++) {
      const d = w.devices[w.next];
      // Written already in this write (a full write in between, or twice in the list): nothing to do.
      const ns = this.#tail.get(d);
      const dirty = this.#dirty.delete(d);
      if (!dirty && !ns) continue;
      if (dirty) this.#writeChain(d);
      if (ns) for (const n of ns) this.#q.index.run(d, n);
      this.#tail.delete(d);
      budget -= 1 + (ns?.length ?? 0) / 8;
    }
    if (w.next < w.devices.length) return;
    // Every device changed before the write began is written as of then or later: the mark moves there.
    const m = this.#q.mark.get();
    if (!m || m.n < w.top || m.epoch !== this.#epoch) this.#q.setMark.run(Math.max(w.top, m?.n ?? 0), this.#epoch);
    this.#mark = Math.max(this.#mark, w.top);
    this.#writing = undefined;
  }

  /** Writes the derived state now, in a transaction of its own (the store is closing, or a test). */
  persist(): void {
    if (!this.#db.open || !this.#ready || (!this.#writing && !this.#dirty.size && !this.#tail.size && (this.#q.top.get() ?? 0) === this.#mark)) return;
    try {
      this.#db.transaction(() => {
        this.fresh();
        this.#persist();
      }).immediate();
    } catch (e) {
      this.reset();
      throw e;
    }
  }

  /** Retention of records (sqlite.ts deleteRecordsThrough): the coverage runs wholly at or below `through` go. */
  trimCovered(deviceId: string, through: number): void {
    const c = this.#chain(deviceId);
    const covered = c.covered.filter(([, last]) => last > through);
    if (covered.length === c.covered.length) return;
    this.#chains.set(deviceId, { heads: c.heads, covered });
    this.#dirty.add(deviceId);
  }

  // ------------------------------------------------------------------ reads

  /**
   * Runs a write in the store's next durable group commit (sqlite.ts sets it, and calls groupDone() at
   * the end of each group's transaction). Alone: at once, in a transaction of its own.
   */
  durably: <T>(job: () => T) => Promise<T> = async <T>(job: () => T): Promise<T> =>
    this.#db.transaction(() => {
      this.fresh();
      const out = job();
      this.groupDone();
      return out;
    }).immediate();

  async put(b: StoredBlock): Promise<boolean> {
    return this.durably(() => this.#put(b, null, undefined, null));
  }

  /** Appends a message to the log; false when its CID is already kept. */
  #put(b: StoredBlock, parents: Uint8Array[] | null, covers: [number, number][] | undefined, chain: string | null): boolean {
    const r = this.#q.insert.run({
      cid: blob(b.cid), bytes: blob(b.bytes), kind: b.kind, device: b.deviceId, at: b.receivedAt,
      parents: parents && encodeCids(parents), covers: covers?.length ? JSON.stringify(covers) : null, chain,
    });
    if (r.changes !== 1) return false;
    // Up to date: this connection's state follows its own appends (else they are replayed with the others').
    if (this.#ready && !this.#stale) {
      const n = Number(r.lastInsertRowid);
      if (b.kind === 'readings' && b.deviceId !== null) this.#noteTail(b.deviceId, n);
      this.#seen = n;
    }
    return true;
  }

  async get(cid: Uint8Array): Promise<Uint8Array | undefined> {
    const r = this.#q.get.get(blob(cid));
    return r && new Uint8Array(r.bytes);
  }

  async has(cid: Uint8Array): Promise<boolean> {
    return this.#q.has.get(blob(cid)) !== undefined;
  }

  async list(kind: BlockKind, deviceId?: string, receivedBefore?: number): Promise<StoredBlock[]> {
    let rows: BlockRow[];
    if (kind !== 'readings') rows = deviceId === undefined ? this.#q.list.all(kind) : this.#q.listDevice.all(kind, deviceId);
    else if (deviceId === undefined) rows = this.#q.listReadings.all();
    else rows = this.#deviceReadings(deviceId);
    if (receivedBefore !== undefined) rows = rows.filter((r) => r.received_at < receivedBefore);
    return rows.map(toBlock);
  }

  /** A device's readings messages, oldest first: those up to the mark through mesh_readings, the others from memory. */
  #deviceReadings(deviceId: string): BlockRow[] {
    this.fresh();
    this.#load();
    const indexed = this.#q.deviceReadings.all(deviceId);
    const tail = this.#tail.get(deviceId);
    if (!tail) return indexed;
    // Some may be indexed already (a write of the derived state cut short by a crash, or another connection's).
    const have = indexed.length ? new Set(indexed.map((r) => r.n)) : undefined;
    const rows: BlockRow[] = indexed;
    for (const n of tail) {
      if (have?.has(n)) continue;
      const r = this.#q.byN.get(n);
      if (r && r.kind === 'readings' && r.device_id === deviceId) rows.push(r);
    }
    return rows;
  }

  async heads(deviceId: string): Promise<Uint8Array[]> {
    this.fresh(true);
    return this.#chain(deviceId).heads.map((c) => new Uint8Array(c));
  }

  async allHeads(): Promise<{ deviceId: string; cid: Uint8Array }[]> {
    this.fresh(true);
    this.#load();
    const out: { deviceId: string; cid: Uint8Array }[] = [];
    const ids = [...this.#chains.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const id of ids) for (const h of this.#chains.get(id)!.heads) out.push({ deviceId: id, cid: new Uint8Array(h) });
    return out;
  }

  // ------------------------------------------------------------------ chain appends

  // A chain append is a job of the store's group commit (durably): it shares the transaction and the
  // fsync of the frames, pairings and downlinks committed with it, and resolves once that commit is
  // durable. Appends for many devices at once thus write the log's last page once.
  async appendChain(a: ChainAppend): Promise<boolean> {
    return this.durably(() => this.#groupedAppend(a));
  }

  /** One append as a job of a group commit (its time counted as the mesh store's, not the commit's). */
  #groupedAppend(a: ChainAppend): boolean {
    // The group's transaction has checked for other connections' writes (fresh()) before this.
    const t0 = performance.now();
    try {
      return this.#appendChain(a);
    } catch (e) {
      // What it did in memory is derived again from what the transaction holds (after the savepoint's rollback).
      this.reset();
      throw e;
    } finally {
      busyWithin('mesh-store', 'commit', t0);
    }
  }

  /** The end of a group commit's transaction (sqlite.ts): the next share of a periodic write of the derived state. */
  groupDone(): void {
    const t0 = performance.now();
    this.#maybePersist();
    busyWithin('mesh-store', 'commit', t0);
  }

  /** One append inside the group's transaction. */
  #appendChain(a: ChainAppend): boolean {
    if (a.expectHeads && !sameSet(this.#chain(a.deviceId).heads, a.expectHeads)) return false;
    this.#link(a.deviceId, a.block, a.prev, a.covers);
    let prev = a.block.cid;
    for (const n of a.next ?? []) {
      this.#link(a.deviceId, n.block, [prev], n.covers);
      prev = n.block.cid;
    }
    return true;
  }

  #link(deviceId: string, block: StoredBlock, prev: Uint8Array[], covers: [number, number][] | undefined): void {
    this.#load();
    const merged = covers?.length ? runs(covers) : undefined;
    const cid = Buffer.from(block.cid);
    if (!this.#put(block, prev, merged, block.deviceId === deviceId ? null : deviceId)) {
      this.#relink(deviceId, cid, prev, merged);
      return;
    }
    for (const p of prev) if (this.#q.has.get(blob(p)) === undefined) this.#q.dangle.run(blob(p), cid);
    // A message some kept message already names (an ancestor fetched late) is no head.
    this.#apply(deviceId, cid, prev, merged, this.#q.named.get(cid) === undefined);
    this.#appendsSince++;
  }

  /**
   * A chain append of a message already kept (rare): the parents and coverage it adds are written to its
   * log row, and the derived state at once (the row may be at or below the mark).
   */
  #relink(deviceId: string, cid: Buffer, prev: Uint8Array[], covers: [number, number][] | undefined): void {
    const row = this.#q.row.get(cid)!;
    const had = row.parents === null ? undefined : decodeCids(row.parents);
    const added = prev.filter((p) => !had?.some((h) => h.equals(p)));
    const oldCovers: [number, number][] = row.covers === null ? [] : JSON.parse(row.covers);
    const allCovers = covers ? addRuns(oldCovers, covers) : oldCovers;
    if (had && added.length === 0 && allCovers === oldCovers) return;
    const parents = [...(had ?? []), ...added.map((p) => Buffer.from(p))];
    this.#q.relink.run(encodeCids(parents), allCovers.length ? JSON.stringify(allCovers) : null, row.chain ?? (row.device_id === deviceId ? null : deviceId), row.n);
    for (const p of added) if (this.#q.has.get(blob(p)) === undefined) this.#q.dangle.run(blob(p), cid);
    // A message kept by put() becomes a chain message: a head unless a kept chain message names it.
    const mayHead = !had && this.#q.named.get(cid) === undefined && !this.#childrenOf(deviceId, [cid]).size;
    this.#apply(deviceId, cid, added, covers, mayHead);
    // Other connections load the state again rather than only replaying appends.
    this.#epoch++;
    this.#persist();
  }

  /** The device's kept chain messages that name one of `cids`, by the parent they name (hex). Scans the device's readings. */
  #childrenOf(deviceId: string, cids: Buffer[]): Map<string, Buffer[]> {
    const want = new Set(cids.map((c) => c.toString('hex')));
    const out = new Map<string, Buffer[]>();
    const note = (child: Buffer, parents: Buffer | null) => {
      for (const p of decodeCids(parents)) {
        const k = p.toString('hex');
        if (!want.has(k)) continue;
        const l = out.get(k);
        if (l) l.push(child);
        else out.set(k, [child]);
      }
    };
    for (const r of this.#q.deviceChain.all(deviceId)) note(r.cid, r.parents);
    for (const n of this.#tail.get(deviceId) ?? []) {
      const r = this.#q.linksByN.get(n);
      if (r) note(r.cid, r.parents);
    }
    return out;
  }

  // ------------------------------------------------------------------ retention and the rest

  async delete(cids: Uint8Array[]): Promise<number> {
    if (cids.length === 0) return 0;
    // After the appends and puts queued before it (one queue: the store's group commits).
    return this.durably(() => {
      try {
        return this.#delete(cids);
      } catch (e) {
        this.reset();
        throw e;
      }
    });
  }

  #delete(cids: Uint8Array[]): number {
    // The derived state is written first: replaying the log never needs a deleted row.
    this.fresh();
    this.#persist();
    let n = 0;
    /** By device: deleted messages that are no heads (a kept chain message may name them). */
    const named = new Map<string, Buffer[]>();
    for (const c of cids) {
      const cid = blob(c);
      const row = this.#q.row.get(cid);
      if (!row) continue;
      n += this.#q.deleteN.run(row.n).changes;
      if (row.kind === 'readings' && row.device_id !== null) this.#q.unindex.run(row.device_id, row.n);
      // Only the links to the block's own parents go: a kept child still names it (and keeps it out of the heads).
      this.#q.undangle.run(cid);
      const dev = row.chain ?? row.device_id;
      if (dev === null || this.#chain(dev).heads.some((h) => h.equals(cid))) continue;
      const l = named.get(dev);
      if (l) l.push(Buffer.from(cid));
      else named.set(dev, [Buffer.from(cid)]);
    }
    for (const [dev, gone] of named) {
      for (const [parent, children] of this.#childrenOf(dev, gone)) {
        for (const child of children) this.#q.dangle.run(Buffer.from(parent, 'hex'), child);
      }
    }
    return n;
  }

  async noteRemoved(deviceId: string, gateway: string, cids: Uint8Array[]): Promise<void> {
    const add = this.#db.prepare('INSERT INTO mesh_removed (cid, gateway, device_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING');
    return this.durably(() => {
      for (const c of cids) add.run(blob(c), gateway, deviceId);
    });
  }

  async removedBy(cid: Uint8Array): Promise<{ deviceId: string; gateway: string }[]> {
    return this.#db.prepare<[Buffer], { device_id: string; gateway: string }>('SELECT device_id, gateway FROM mesh_removed WHERE cid = ? ORDER BY gateway')
      .all(blob(cid)).map((r) => ({ deviceId: r.device_id, gateway: r.gateway }));
  }

  async parents(cid: Uint8Array): Promise<Uint8Array[]> {
    const r = this.#q.row.get(blob(cid));
    return decodeCids(r?.parents ?? null).sort(Buffer.compare).map((p) => new Uint8Array(p));
  }

  async uncovered(deviceId: string, limit: number): Promise<StoredRecord[]> {
    this.fresh(true);
    // A record is covered by the run starting at or before it when that reaches its last seq.
    const covered = this.#chain(deviceId).covered;
    const out: StoredRecord[] = [];
    const take = (rows: unknown[]) => {
      for (const r of rows) if (out.length < limit) out.push(this.toRecord(r));
    };
    take(this.#q.between.all(deviceId, Number.MIN_SAFE_INTEGER, covered.length ? covered[0][0] : Number.MAX_SAFE_INTEGER, limit));
    for (let i = 0; i < covered.length && out.length < limit; i++) {
      const [seq, last] = covered[i];
      const r = this.#q.before.get(deviceId, seq, last) as { last: number } | undefined;
      if (r && r.last > last) take([r]);
      const next = i + 1 < covered.length ? covered[i + 1][0] : Number.MAX_SAFE_INTEGER;
      if (out.length < limit) take(this.#q.between.all(deviceId, last + 1, next, limit - out.length));
    }
    return out;
  }
}

/**
 * Schema 3 to 4: mesh_blocks, mesh_links, mesh_heads and mesh_covered become the log, the links whose
 * parent is not kept, and each device's derived state (written, with the mark at the end of the log).
 */
function migrate(db: Database.Database): void {
  const page = db.prepare<[number], { n: number; cid: Buffer; bytes: Buffer; kind: string; device_id: string | null; received_at: number }>(
    'SELECT n, cid, bytes, kind, device_id, received_at FROM mesh_blocks WHERE n > ? ORDER BY n LIMIT 1000');
  const links = db.prepare<[Buffer], Buffer>('SELECT parent FROM mesh_links WHERE child = ? ORDER BY parent').pluck();
  const insert = db.prepare(`INSERT INTO mesh_log (cid, bytes, kind, device_id, received_at, parents)
    VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (cid) DO NOTHING`);
  for (let from = Number.MIN_SAFE_INTEGER; ;) {
    const rows = page.all(from);
    for (const r of rows) {
      const parents = links.all(r.cid);
      // A readings message without links was the first of its chain (appended with no parents).
      insert.run(r.cid, r.bytes, r.kind, r.device_id, r.received_at, parents.length || r.kind === 'readings' ? encodeCids(parents) : null);
      from = r.n;
    }
    if (rows.length < 1000) break;
  }
  db.exec(`INSERT INTO mesh_dangling (parent, child) SELECT parent, child FROM mesh_links l
    WHERE NOT EXISTS (SELECT 1 FROM mesh_log WHERE cid = l.parent) ON CONFLICT DO NOTHING`);
  db.exec(`INSERT INTO mesh_readings (device_id, n) SELECT device_id, n FROM mesh_log WHERE kind = 'readings' AND device_id IS NOT NULL
    ON CONFLICT DO NOTHING`);
  const chains = new Map<string, Chain>();
  const chain = (id: string) => chains.get(id) ?? (chains.set(id, { heads: [], covered: [] }), chains.get(id)!);
  for (const h of db.prepare<[], { device_id: string; cid: Buffer }>('SELECT device_id, cid FROM mesh_heads ORDER BY device_id, cid').all()) {
    chain(h.device_id).heads.push(h.cid);
  }
  for (const c of db.prepare<[], { device_id: string; seq: number; last: number }>('SELECT device_id, seq, last FROM mesh_covered ORDER BY device_id, seq').all()) {
    const ch = chain(c.device_id);
    ch.covered = addRuns(ch.covered, [[c.seq, c.last]]);
  }
  const set = db.prepare('INSERT INTO mesh_chains (device_id, heads, covered) VALUES (?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET heads = excluded.heads, covered = excluded.covered');
  for (const [id, c] of chains) set.run(id, encodeCids(c.heads), JSON.stringify(c.covered));
  const top = db.prepare<[], number | null>('SELECT max(n) FROM mesh_log').pluck().get() ?? 0;
  db.prepare('INSERT INTO mesh_mark (id, n) VALUES (0, ?) ON CONFLICT (id) DO UPDATE SET n = excluded.n').run(top);
  db.exec('DROP TABLE mesh_blocks; DROP TABLE mesh_links; DROP TABLE mesh_heads; DROP TABLE mesh_covered;');
}
