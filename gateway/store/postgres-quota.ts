// The offload daily quota on PostgreSQL (beside postgres.ts; mirrors sqlite-quota.ts), shared by the
// replicas: one row per device and UTC day with the jobs it was granted, whichever replica granted them.

import type { PgDb } from './postgres-db.js';
import type { QuotaStore } from './store.js';
import { quotaTake, type QuotaSqlRow } from './rows.js';

// Rows of days before today are pruned (each replica's queue does it once a day), so the table holds
// about one row per meter that asked something today or yesterday.
export const QUOTA_DDL = [
  `CREATE TABLE IF NOT EXISTS offload_quota (
    device_id TEXT NOT NULL,
    day TEXT NOT NULL,
    used INTEGER NOT NULL,
    PRIMARY KEY (device_id, day)
  )`,
];

export class PostgresQuotaStore implements QuotaStore {
  constructor(readonly db: PgDb) {}

  async take(deviceId: string, day: string, limit: number): Promise<{ granted: boolean; used: number }> {
    // One statement, safe when replicas take at once: a second insert of the row waits for the first and
    // then updates it; the update re-checks `used < limit` on the row as committed, under its lock. No
    // row comes back when the quota is used up.
    const r = await this.db.query<QuotaSqlRow>(`
      INSERT INTO offload_quota AS q (device_id, day, used) SELECT $1, $2, 1 WHERE $3::int >= 1
      ON CONFLICT (device_id, day) DO UPDATE SET used = q.used + 1 WHERE q.used < $3::int
      RETURNING used`, [deviceId, day, limit]);
    return quotaTake(r.rows[0], () => this.used(deviceId, day));
  }

  async used(deviceId: string, day: string): Promise<number> {
    const r = await this.db.query<QuotaSqlRow>('SELECT used FROM offload_quota WHERE device_id = $1 AND day = $2', [deviceId, day]);
    return r.rows[0]?.used ?? 0;
  }

  async prune(day: string): Promise<number> {
    return (await this.db.query('DELETE FROM offload_quota WHERE day < $1', [day])).rowCount ?? 0;
  }
}
