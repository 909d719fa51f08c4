// Firmware releases and rollouts (WIRE.md "Firmware updates"; gateway/firmware/): the signed releases
// uploaded by POST /api/firmware with their images, each rollout and, per device, how far it got. One
// implementation for both stores, over a small SQL executor (sqlite.ts and postgres.ts each give theirs).

export interface FirmwareRelease {
  /** Text CID of the image, `b…`. */
  cid: string;
  version: string;
  models: string[];
  minVersion: string;
  size: number;
  /** Hex key id of the signing release key. */
  keyId: string;
  /** Unix seconds the release was signed. */
  created: number;
  manifest: Uint8Array;
  signature: Uint8Array;
  /** Unix ms. */
  addedAt: number;
}

/** Per-device rollout states: the gateway's `pending`, `offered` and the device's fw-status states. */
export type TargetState = 'pending' | 'offered' | 'downloading' | 'verified' | 'rebooting' | 'confirmed' | 'rolled-back' | 'failed' | 'cancelled';
export const TERMINAL: ReadonlySet<string> = new Set(['confirmed', 'rolled-back', 'failed', 'cancelled']);

export interface RolloutTarget {
  rolloutId: number;
  deviceId: string;
  stage: 'canary' | 'rest';
  state: TargetState;
  /** Bytes the device has (downloading). */
  offset: number;
  reason: string | null;
  /** The version the device ran when the rollout reached it. */
  fromVersion: string | null;
  /** Unix ms of the last change. */
  updatedAt: number;
}

export type RolloutState = 'canary' | 'running' | 'stopped' | 'done';

export interface Rollout {
  id: number;
  cid: string;
  version: string;
  /** Devices in the canary stage (0: none, every device at once). */
  canary: number;
  /** Rolled-back or failed devices at which the rollout stops itself (0: never). */
  maxFailures: number;
  state: RolloutState;
  reason: string | null;
  /** How the devices were chosen (`--label SEL`, or the ids). */
  selector: string;
  createdAt: number;
  updatedAt: number;
}

export interface FirmwareStore {
  putRelease(r: FirmwareRelease, image: Uint8Array): Promise<'added' | 'unchanged'>;
  release(cid: string): Promise<FirmwareRelease | undefined>;
  releaseByVersion(version: string): Promise<FirmwareRelease[]>;
  image(cid: string): Promise<Uint8Array | undefined>;
  releases(): Promise<FirmwareRelease[]>;
  createRollout(r: Omit<Rollout, 'id'>, targets: Omit<RolloutTarget, 'rolloutId'>[]): Promise<Rollout>;
  rollout(id: number): Promise<Rollout | undefined>;
  rollouts(): Promise<Rollout[]>;
  updateRollout(id: number, state: RolloutState, reason: string | null, now: number): Promise<void>;
  targets(rolloutId: number): Promise<RolloutTarget[]>;
  /** The device's targets in rollouts that are not over, newest rollout first. */
  activeTargets(deviceId: string): Promise<RolloutTarget[]>;
  setTarget(rolloutId: number, deviceId: string, state: TargetState, offset: number, reason: string | null, now: number): Promise<void>;
}

/** What the firmware store needs of a database: `?` placeholders, rows as plain objects. */
export interface SqlExec {
  all<T>(sql: string, params?: unknown[]): Promise<T[]>;
  run(sql: string, params?: unknown[]): Promise<void>;
}

export function firmwareDdl(dialect: 'sqlite' | 'postgres'): string[] {
  const blob = dialect === 'sqlite' ? 'BLOB' : 'BYTEA';
  const big = dialect === 'sqlite' ? 'INTEGER' : 'BIGINT';
  return [
    `CREATE TABLE IF NOT EXISTS fw_releases (
      cid TEXT PRIMARY KEY, version TEXT NOT NULL, models TEXT NOT NULL, min_version TEXT NOT NULL, size ${big} NOT NULL,
      key_id TEXT NOT NULL, created ${big} NOT NULL, manifest ${blob} NOT NULL, signature ${blob} NOT NULL, image ${blob} NOT NULL,
      added_at ${big} NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS fw_rollouts (
      id INTEGER PRIMARY KEY, cid TEXT NOT NULL, version TEXT NOT NULL, canary INTEGER NOT NULL, max_failures INTEGER NOT NULL,
      state TEXT NOT NULL, reason TEXT, selector TEXT NOT NULL, created_at ${big} NOT NULL, updated_at ${big} NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS fw_targets (
      rollout_id INTEGER NOT NULL, device_id TEXT NOT NULL, stage TEXT NOT NULL, state TEXT NOT NULL, bytes ${big} NOT NULL,
      reason TEXT, from_version TEXT, updated_at ${big} NOT NULL, PRIMARY KEY (rollout_id, device_id))`,
    'CREATE INDEX IF NOT EXISTS fw_targets_device ON fw_targets (device_id)',
  ];
}

interface ReleaseRow {
  cid: string; version: string; models: string; min_version: string; size: number; key_id: string; created: number;
  manifest: Uint8Array; signature: Uint8Array; added_at: number;
}
interface RolloutRow {
  id: number; cid: string; version: string; canary: number; max_failures: number; state: string; reason: string | null;
  selector: string; created_at: number; updated_at: number;
}
interface TargetRow {
  rollout_id: number; device_id: string; stage: string; state: string; bytes: number; reason: string | null;
  from_version: string | null; updated_at: number;
}

const RELEASE_COLUMNS = 'cid, version, models, min_version, size, key_id, created, manifest, signature, added_at';

function toRelease(r: ReleaseRow): FirmwareRelease {
  return {
    cid: r.cid, version: r.version, models: JSON.parse(r.models) as string[], minVersion: r.min_version, size: Number(r.size),
    keyId: r.key_id, created: Number(r.created), manifest: new Uint8Array(r.manifest), signature: new Uint8Array(r.signature),
    addedAt: Number(r.added_at),
  };
}
function toRollout(r: RolloutRow): Rollout {
  return {
    id: Number(r.id), cid: r.cid, version: r.version, canary: Number(r.canary), maxFailures: Number(r.max_failures),
    state: r.state as RolloutState, reason: r.reason, selector: r.selector, createdAt: Number(r.created_at), updatedAt: Number(r.updated_at),
  };
}
function toTarget(r: TargetRow): RolloutTarget {
  return {
    rolloutId: Number(r.rollout_id), deviceId: r.device_id, stage: r.stage as RolloutTarget['stage'], state: r.state as TargetState,
    offset: Number(r.bytes), reason: r.reason, fromVersion: r.from_version, updatedAt: Number(r.updated_at),
  };
}

export class SqlFirmwareStore implements FirmwareStore {
  constructor(readonly db: SqlExec, readonly bytes: (b: Uint8Array) => unknown) {}

  async putRelease(r: FirmwareRelease, image: Uint8Array): Promise<'added' | 'unchanged'> {
    if (await this.release(r.cid)) return 'unchanged';
    await this.db.run(`INSERT INTO fw_releases (${RELEASE_COLUMNS}, image) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, [
      r.cid, r.version, JSON.stringify(r.models), r.minVersion, r.size, r.keyId, r.created, this.bytes(r.manifest), this.bytes(r.signature),
      r.addedAt, this.bytes(image),
    ]);
    return 'added';
  }

  async release(cid: string): Promise<FirmwareRelease | undefined> {
    const r = (await this.db.all<ReleaseRow>(`SELECT ${RELEASE_COLUMNS} FROM fw_releases WHERE cid = ?`, [cid]))[0];
    return r && toRelease(r);
  }

  async releaseByVersion(version: string): Promise<FirmwareRelease[]> {
    return (await this.db.all<ReleaseRow>(`SELECT ${RELEASE_COLUMNS} FROM fw_releases WHERE version = ? ORDER BY added_at`, [version])).map(toRelease);
  }

  async image(cid: string): Promise<Uint8Array | undefined> {
    const r = (await this.db.all<{ image: Uint8Array }>('SELECT image FROM fw_releases WHERE cid = ?', [cid]))[0];
    return r && new Uint8Array(r.image);
  }

  async releases(): Promise<FirmwareRelease[]> {
    return (await this.db.all<ReleaseRow>(`SELECT ${RELEASE_COLUMNS} FROM fw_releases ORDER BY added_at, cid`)).map(toRelease);
  }

  async createRollout(r: Omit<Rollout, 'id'>, targets: Omit<RolloutTarget, 'rolloutId'>[]): Promise<Rollout> {
    const next = (await this.db.all<{ n: number }>('SELECT COALESCE(MAX(id), 0) + 1 AS n FROM fw_rollouts'))[0];
    const id = Number(next.n);
    await this.db.run(`INSERT INTO fw_rollouts (id, cid, version, canary, max_failures, state, reason, selector, created_at, updated_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, [id, r.cid, r.version, r.canary, r.maxFailures, r.state, r.reason, r.selector, r.createdAt, r.updatedAt]);
    for (const t of targets) {
      await this.db.run(`INSERT INTO fw_targets (rollout_id, device_id, stage, state, bytes, reason, from_version, updated_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, [id, t.deviceId, t.stage, t.state, t.offset, t.reason, t.fromVersion, t.updatedAt]);
    }
    return { ...r, id };
  }

  async rollout(id: number): Promise<Rollout | undefined> {
    const r = (await this.db.all<RolloutRow>('SELECT * FROM fw_rollouts WHERE id = ?', [id]))[0];
    return r && toRollout(r);
  }

  async rollouts(): Promise<Rollout[]> {
    return (await this.db.all<RolloutRow>('SELECT * FROM fw_rollouts ORDER BY id')).map(toRollout);
  }

  async updateRollout(id: number, state: RolloutState, reason: string | null, now: number): Promise<void> {
    await this.db.run('UPDATE fw_rollouts SET state = ?, reason = ?, updated_at = ? WHERE id = ?', [state, reason, now, id]);
  }

  async targets(rolloutId: number): Promise<RolloutTarget[]> {
    return (await this.db.all<TargetRow>('SELECT * FROM fw_targets WHERE rollout_id = ? ORDER BY device_id', [rolloutId])).map(toTarget);
  }

  async activeTargets(deviceId: string): Promise<RolloutTarget[]> {
    return (await this.db.all<TargetRow>(`SELECT t.* FROM fw_targets t JOIN fw_rollouts r ON r.id = t.rollout_id
      WHERE t.device_id = ? AND r.state IN ('canary', 'running', 'stopped') ORDER BY t.rollout_id DESC`, [deviceId])).map(toTarget);
  }

  async setTarget(rolloutId: number, deviceId: string, state: TargetState, offset: number, reason: string | null, now: number): Promise<void> {
    await this.db.run('UPDATE fw_targets SET state = ?, bytes = ?, reason = ?, updated_at = ? WHERE rollout_id = ? AND device_id = ?',
      [state, offset, reason, now, rolloutId, deviceId]);
  }
}

/** The executor of a better-sqlite3 database. */
export function sqliteExec(db: { prepare(sql: string): { all(...p: unknown[]): unknown[]; run(...p: unknown[]): unknown } }): SqlExec {
  const cache = new Map<string, ReturnType<typeof db.prepare>>();
  const stmt = (sql: string) => {
    let s = cache.get(sql);
    if (!s) cache.set(sql, (s = db.prepare(sql)));
    return s;
  };
  return {
    async all<T>(sql: string, params: unknown[] = []) { return stmt(sql).all(...params) as T[]; },
    async run(sql: string, params: unknown[] = []) { stmt(sql).run(...params); },
  };
}

/** The executor of a PostgreSQL pool: `?` becomes `$n`. */
export function postgresExec(db: { query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }> }): SqlExec {
  const numbered = (sql: string) => {
    let n = 0;
    return sql.replace(/\?/g, () => `$${++n}`);
  };
  return {
    async all<T>(sql: string, params: unknown[] = []) { return (await db.query(numbered(sql), params)).rows as T[]; },
    async run(sql: string, params: unknown[] = []) { await db.query(numbered(sql), params); },
  };
}
