// The connection pool under the PostgreSQL store (postgres.ts and its sub-stores postgres-*.ts):
// opening with a clear error, transactions, and the versioned schema. Each sub-store brings its
// own DDL (a list of statements); `migrate` applies them all under an advisory lock, so replicas
// starting together create the schema once.

import { userInfo } from 'node:os';
import pg from 'pg';

/** int8 (bigint, ms timestamps, counters) as a JS number: every value the gateway keeps fits 2^53. */
const INT8 = 20;
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8 && format !== 'binary') return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format as 'text');
  },
};

export type Sql = pg.PoolClient | pg.Pool;

/** Arbitrary, fixed: the advisory lock that serialises schema creation across replicas. */
const SCHEMA_LOCK = 0x6772_6964;

export class PgDb {
  constructor(readonly pool: pg.Pool, readonly url: string) {}

  /** Connects (within `timeoutMs`) and checks the server answers; the error names what to fix. */
  static async open(url: string, o: { max?: number; timeoutMs?: number } = {}): Promise<PgDb> {
    let shown = url;
    try {
      const u = new URL(url);
      if (u.password) u.password = '***';
      shown = u.toString();
      if (!u.pathname || u.pathname === '/') throw new Error('no database name');
    } catch (e) {
      throw new Error(`--store "${shown}" is not a PostgreSQL URL such as postgres://user:pass@host:5432/gridlet (${(e as Error).message})`);
    }
    // Like libpq (psql): without a user in the URL (or PGUSER), the operating-system user's name.
    const user = new URL(url).username ? undefined : process.env.PGUSER || process.env.USER || userInfo().username;
    // A commit returns once it is on disk (WIRE.md "durably stored"), whatever the server's default.
    const pool = new pg.Pool({
      connectionString: url, ...(user ? { user } : {}), max: o.max ?? 10, connectionTimeoutMillis: o.timeoutMs ?? 10_000, types,
      options: '-c synchronous_commit=on',
    });
    // An idle client's error (server restart) must not crash the gateway; the next query reconnects.
    pool.on('error', () => {});
    try {
      await pool.query('SELECT 1');
    } catch (e) {
      await pool.end().catch(() => {});
      const err = e as Error & { code?: string };
      throw new Error(`cannot connect to PostgreSQL at ${shown}: ${err.message || err.code}` +
        (err.code === '3D000' ? '; create the database first (createdb)' : ''));
    }
    return new PgDb(pool, shown);
  }

  query<R extends pg.QueryResultRow = any>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
    return this.pool.query<R>(text, values);
  }

  /** Runs `f` in one transaction on one connection (READ COMMITTED; callers lock the rows they change). */
  async tx<T>(f: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    try {
      await c.query('BEGIN');
      const out = await f(c);
      await c.query('COMMIT');
      return out;
    } catch (e) {
      await c.query('ROLLBACK').catch(() => {});
      throw e;
    } finally {
      c.release();
    }
  }

  /**
   * Creates the schema (idempotent DDL) and records its version; refuses a database written by a
   * newer gridlet. Concurrent starts wait on an advisory lock.
   */
  async migrate(version: number, ddl: string[]): Promise<void> {
    await this.tx(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK]);
      await c.query('CREATE TABLE IF NOT EXISTS gridlet_schema (version INTEGER NOT NULL)');
      const r = await c.query<{ version: number }>('SELECT version FROM gridlet_schema');
      const have = r.rows[0]?.version ?? 0;
      if (have > version) {
        throw new Error(`store ${this.url} has schema version ${have}, newer than this gateway (${version}); upgrade gridlet`);
      }
      for (const s of ddl) await c.query(s);
      if (r.rows.length === 0) await c.query('INSERT INTO gridlet_schema (version) VALUES ($1)', [version]);
      else if (have !== version) await c.query('UPDATE gridlet_schema SET version = $1', [version]);
    });
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

export function bytea(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

export function sameSet(a: Uint8Array[], b: Uint8Array[]): boolean {
  if (a.length !== b.length) return false;
  const hex = (x: Uint8Array) => Buffer.from(x).toString('hex');
  const s = new Set(a.map(hex));
  return b.every((x) => s.has(hex(x)));
}
