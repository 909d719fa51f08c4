// Pairing state shared by gateway replicas (pairing.ts `PairingShare`): the Hello table and the
// pairings under way, so that an operator's POST /api/pairings on one replica completes when the
// device's Hello or `paired` frame reaches another. The replica that settles a pairing (the device
// answered or refused) claims its row and leaves the outcome; the replica holding the HTTP request
// reads it from there.

import pg from 'pg';
import { bytea, type PgDb } from './postgres-db.js';
import type { PairingShare, SharedHello, SharedOutcome, SharedPending } from '../pairing.js';
import type { DeviceRow, PairingCommit } from './store.js';
import { ReplayWindow } from '../../firmware/core/wire/frame.js';
import { toDevice, type DeviceSqlRow } from './rows.js';

/** completePairing inside a caller's transaction (the shared pairing ends its attempt in the same one). */
export async function completePairingIn(c: pg.PoolClient, p: PairingCommit): Promise<DeviceRow> {
  const w = new ReplayWindow();
  w.accept(p.counter);
  const [lo, hi] = w.bits;
  const r = await c.query<DeviceSqlRow>(`
    INSERT INTO devices (id, state, public_key, ks, gateway_id, model, firmware, capabilities, first_seen, paired_at,
      last_seen, up_highest, up_bits_lo, up_bits_hi, down_counter)
    VALUES ($1, 'paired', $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13)
    ON CONFLICT (id) DO UPDATE SET state = 'paired', public_key = $2, ks = $3, gateway_id = $4, model = $5,
      firmware = $6, capabilities = $7, paired_at = $9, revoked_at = NULL, last_seen = $9,
      up_highest = $10, up_bits_lo = $11, up_bits_hi = $12, down_counter = $13
    RETURNING *`,
  [p.id, bytea(p.publicKey), bytea(p.ks), p.gatewayId, p.model, p.firmware, JSON.stringify(p.capabilities),
    p.firstSeen, p.now, w.highest, lo, hi, p.reserveDown ? 1 : 0]);
  // Downlinks of an earlier session were sealed with its key: the new session cannot read them.
  await c.query('DELETE FROM downlinks WHERE device_id = $1', [p.id]);
  return toDevice(r.rows[0]);
}

export const PAIRING_DDL = [
  `CREATE TABLE IF NOT EXISTS hellos (
    id TEXT PRIMARY KEY,
    bytes BYTEA NOT NULL,
    first_seen BIGINT NOT NULL,
    received_at BIGINT NOT NULL
  )`,
  'CREATE INDEX IF NOT EXISTS hellos_received ON hellos (received_at)',
  `CREATE TABLE IF NOT EXISTS pairings (
    id TEXT PRIMARY KEY,
    attempt TEXT NOT NULL,
    pair_key BYTEA NOT NULL,
    n BYTEA NOT NULL,
    ks BYTEA NOT NULL,
    accept BYTEA NOT NULL,
    hello BYTEA NOT NULL,
    first_seen BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
  )`,
  `CREATE TABLE IF NOT EXISTS pairing_outcomes (
    attempt TEXT PRIMARY KEY,
    status INTEGER NOT NULL,
    error TEXT,
    at BIGINT NOT NULL
  )`,
];

interface HelloRow { id: string; bytes: Buffer; first_seen: number; received_at: number }
interface PendingRow {
  id: string; attempt: string; pair_key: Buffer; n: Buffer; ks: Buffer; accept: Buffer; hello: Buffer; first_seen: number; expires_at: number;
}

const toHello = (r: HelloRow): SharedHello => ({ id: r.id, bytes: new Uint8Array(r.bytes), firstSeen: r.first_seen, receivedAt: r.received_at });
const toPending = (r: PendingRow): SharedPending => ({
  id: r.id, attempt: r.attempt, pairKey: new Uint8Array(r.pair_key), n: new Uint8Array(r.n), ks: new Uint8Array(r.ks),
  accept: new Uint8Array(r.accept), hello: new Uint8Array(r.hello), firstSeen: r.first_seen, expiresAt: r.expires_at,
});

/** The channel on which settled attempts are announced (payload: the attempt). */
const CHANNEL = 'gridlet_pairing';

export class PostgresPairingShare implements PairingShare {
  #lastSweep = 0;
  /** A connection of its own that LISTENs for settled attempts while this replica waits on some. */
  #listener?: Promise<pg.Client | undefined>;
  readonly #waiting = new Set<(attempt: string) => void>();
  #closed = false;

  constructor(readonly db: PgDb) {}

  /** Calls `f` with each attempt settled on any replica; returns the unsubscribe. */
  onSettled(f: (attempt: string) => void): () => void {
    this.#waiting.add(f);
    this.#listener ??= this.#listen();
    return () => this.#waiting.delete(f);
  }

  async #listen(): Promise<pg.Client | undefined> {
    if (this.#closed) return undefined;
    const c = new pg.Client({ ...this.db.pool.options });
    const lost = () => {
      // Waiters fall back to polling; the next wait listens again.
      if (this.#listener) this.#listener = undefined;
      c.end().catch(() => {});
    };
    c.on('error', lost);
    c.on('end', lost);
    c.on('notification', (n) => {
      if (n.channel === CHANNEL && n.payload) for (const f of [...this.#waiting]) f(n.payload);
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${CHANNEL}`);
      return c;
    } catch {
      lost();
      return undefined;
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    const c = await this.#listener;
    this.#listener = undefined;
    await c?.end().catch(() => {});
  }

  async putHello(id: string, bytes: Uint8Array, now: number, ttlMs: number): Promise<number> {
    if (now - this.#lastSweep > 60_000) {
      this.#lastSweep = now;
      await this.db.query('DELETE FROM hellos WHERE received_at < $1', [now - ttlMs]);
      await this.db.query('DELETE FROM pairing_outcomes WHERE at < $1', [now - ttlMs]);
    }
    // A Hello older than the table's lifetime no longer counts: the device is first seen again.
    const r = await this.db.query<{ first_seen: number }>(`INSERT INTO hellos (id, bytes, first_seen, received_at) VALUES ($1, $2, $3, $3)
      ON CONFLICT (id) DO UPDATE SET bytes = $2, received_at = $3,
        first_seen = CASE WHEN hellos.received_at < $4 THEN $3 ELSE hellos.first_seen END
      RETURNING first_seen`, [id, bytea(bytes), now, now - ttlMs]);
    return r.rows[0].first_seen;
  }

  async hello(id: string, since: number): Promise<SharedHello | undefined> {
    const r = (await this.db.query<HelloRow>('SELECT * FROM hellos WHERE id = $1 AND received_at >= $2', [id, since])).rows[0];
    return r && toHello(r);
  }

  async hellos(since: number, limit: number): Promise<SharedHello[]> {
    const r = await this.db.query<HelloRow>('SELECT * FROM hellos WHERE received_at >= $1 ORDER BY received_at DESC, id LIMIT $2', [since, limit]);
    return r.rows.map(toHello).reverse();
  }

  async forgetHello(id: string): Promise<void> {
    await this.db.query('DELETE FROM hellos WHERE id = $1', [id]);
  }

  async begin(p: SharedPending, now: number): Promise<boolean> {
    const r = await this.db.query(`INSERT INTO pairings (id, attempt, pair_key, n, ks, accept, hello, first_seen, expires_at)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
      ON CONFLICT (id) DO UPDATE SET attempt = $2, pair_key = $3, n = $4, ks = $5, accept = $6, hello = $7, first_seen = $8, expires_at = $9
        WHERE pairings.expires_at <= $10`,
    [p.id, p.attempt, bytea(p.pairKey), bytea(p.n), bytea(p.ks), bytea(p.accept), bytea(p.hello), p.firstSeen, p.expiresAt, now]);
    return r.rowCount === 1;
  }

  async pending(id: string, now: number): Promise<SharedPending | undefined> {
    const r = (await this.db.query<PendingRow>('SELECT * FROM pairings WHERE id = $1 AND expires_at > $2', [id, now])).rows[0];
    return r && toPending(r);
  }

  async rebuilt(p: SharedPending): Promise<void> {
    await this.db.query('UPDATE pairings SET n = $3, ks = $4, accept = $5, hello = $6 WHERE id = $1 AND attempt = $2',
      [p.id, p.attempt, bytea(p.n), bytea(p.ks), bytea(p.accept), bytea(p.hello)]);
  }

  async claim(id: string, attempt: string): Promise<boolean> {
    return (await this.db.query('DELETE FROM pairings WHERE id = $1 AND attempt = $2', [id, attempt])).rowCount === 1;
  }

  async complete(attempt: string, p: PairingCommit): Promise<DeviceRow | undefined> {
    return this.db.tx(async (c) => {
      const ended = await c.query('DELETE FROM pairings WHERE id = $1 AND attempt = $2', [p.id, attempt]);
      if (ended.rowCount !== 1) return undefined;
      const device = await completePairingIn(c, p);
      await c.query('DELETE FROM hellos WHERE id = $1', [p.id]);
      return device;
    });
  }

  async settle(attempt: string, o: SharedOutcome, now: number): Promise<void> {
    await this.db.query(`WITH o AS (INSERT INTO pairing_outcomes (attempt, status, error, at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING)
      SELECT pg_notify('${CHANNEL}', $1)`, [attempt, o.status, o.error ?? null, now]);
  }

  async outcome(attempt: string): Promise<SharedOutcome | undefined> {
    const r = (await this.db.query<{ status: number; error: string | null }>(
      'SELECT status, error FROM pairing_outcomes WHERE attempt = $1', [attempt])).rows[0];
    return r && (r.error === null ? { status: r.status } : { status: r.status, error: r.error });
  }
}
