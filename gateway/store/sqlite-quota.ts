// The offload daily quota on the gateway's SQLite database (beside sqlite.ts): one row per device and
// UTC day with the jobs it was granted, so that a restart does not hand every meter a fresh quota.

import type Database from 'better-sqlite3';
import type { QuotaStore } from './store.js';
import { quotaTake, type QuotaSqlRow } from './rows.js';

// Rows of days before today are pruned (the queue does it once a day), so the table holds about one
// row per meter that asked something today or yesterday: the prune's scan needs no index on `day`.
export const QUOTA_SCHEMA = `
CREATE TABLE IF NOT EXISTS offload_quota (
  device_id TEXT NOT NULL,
  day TEXT NOT NULL,
  used INTEGER NOT NULL,
  PRIMARY KEY (device_id, day)
) WITHOUT ROWID;
`;

export class SqliteQuotaStore implements QuotaStore {
  readonly #q;

  constructor(db: Database.Database) {
    db.exec(QUOTA_SCHEMA);
    this.#q = {
      // One statement, as on PostgreSQL: the first job of the day inserts the row, a later one counts up
      // only while under the limit; no row comes back when the quota is used up.
      take: db.prepare<[{ device: string; day: string; limit: number }], QuotaSqlRow>(`
        INSERT INTO offload_quota AS q (device_id, day, used) SELECT @device, @day, 1 WHERE @limit >= 1
        ON CONFLICT (device_id, day) DO UPDATE SET used = q.used + 1 WHERE q.used < @limit
        RETURNING used`),
      used: db.prepare<[string, string], QuotaSqlRow>('SELECT used FROM offload_quota WHERE device_id = ? AND day = ?'),
      prune: db.prepare<[string]>('DELETE FROM offload_quota WHERE day < ?'),
    };
  }

  async take(deviceId: string, day: string, limit: number): Promise<{ granted: boolean; used: number }> {
    return quotaTake(this.#q.take.get({ device: deviceId, day, limit }), () => this.used(deviceId, day));
  }

  async used(deviceId: string, day: string): Promise<number> {
    return this.#q.used.get(deviceId, day)?.used ?? 0;
  }

  async prune(day: string): Promise<number> {
    return this.#q.prune.run(day).changes;
  }
}
