// Privacy on PostgreSQL (beside postgres.ts; mirrors sqlite-privacy.ts): each device's own sharing
// policy, the group policies (label selector + priority) and the audit log of disclosures.

import type { PrivacyPolicy } from '../privacy/policy.js';
import type { PgDb } from './postgres-db.js';
import { EVERY_DEVICE, type AuditEntry, type Disclosure, type GroupPolicy, type PrivacyStore, type RetentionMark } from './store.js';
import { readPolicy, toAuditEntry as toEntry, type AuditRow } from './rows.js';

export const PRIVACY_DDL = [
  `CREATE TABLE IF NOT EXISTS privacy_devices (
    device_id TEXT PRIMARY KEY,
    policy TEXT NOT NULL,
    updated_at BIGINT NOT NULL
  )`,
  `CREATE TABLE IF NOT EXISTS privacy_groups (
    selector TEXT PRIMARY KEY,
    priority INTEGER NOT NULL,
    policy TEXT NOT NULL,
    updated_at BIGINT NOT NULL
  )`,
  `CREATE TABLE IF NOT EXISTS privacy_audit (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    audience TEXT NOT NULL,
    operator TEXT,
    device_id TEXT NOT NULL,
    cid TEXT,
    kind TEXT NOT NULL,
    seq BIGINT,
    last BIGINT,
    level TEXT NOT NULL,
    purposes TEXT NOT NULL,
    via TEXT NOT NULL
  )`,
  'CREATE INDEX IF NOT EXISTS privacy_audit_device ON privacy_audit (device_id, id)',
  // The latest retention pass of any replica (one row).
  `CREATE TABLE IF NOT EXISTS privacy_retention (
    id SMALLINT PRIMARY KEY,
    ran_at BIGINT NOT NULL,
    ran_by TEXT NOT NULL
  )`,
];

/** Arbitrary, fixed: the advisory lock one replica's retention pass holds. */
const RETENTION_LOCK = 0x7265_7465;

export class PostgresPrivacyStore implements PrivacyStore {
  constructor(readonly db: PgDb) {}

  async devicePolicy(deviceId: string): Promise<{ policy: PrivacyPolicy; updatedAt: number } | undefined> {
    const r = (await this.db.query<{ policy: string; updated_at: number }>(
      'SELECT policy, updated_at FROM privacy_devices WHERE device_id = $1', [deviceId])).rows[0];
    return r && { policy: readPolicy(r.policy, `device ${deviceId}`), updatedAt: r.updated_at };
  }

  async setDevicePolicy(deviceId: string, policy: PrivacyPolicy, now: number): Promise<void> {
    await this.db.query(`INSERT INTO privacy_devices (device_id, policy, updated_at) VALUES ($1, $2, $3)
      ON CONFLICT (device_id) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at`, [deviceId, JSON.stringify(policy), now]);
  }

  async deleteDevicePolicy(deviceId: string): Promise<boolean> {
    return ((await this.db.query('DELETE FROM privacy_devices WHERE device_id = $1', [deviceId])).rowCount ?? 0) > 0;
  }

  async devicesWithPolicy(): Promise<string[]> {
    return (await this.db.query<{ device_id: string }>('SELECT device_id FROM privacy_devices ORDER BY device_id')).rows.map((r) => r.device_id);
  }

  async groupPolicies(): Promise<GroupPolicy[]> {
    const r = await this.db.query<{ selector: string; priority: number; policy: string; updated_at: number }>(
      'SELECT selector, priority, policy, updated_at FROM privacy_groups ORDER BY priority DESC, selector COLLATE "C"');
    return r.rows.map((x) => ({ selector: x.selector, priority: x.priority, policy: readPolicy(x.policy, `group ${x.selector}`), updatedAt: x.updated_at }));
  }

  async setGroupPolicy(g: GroupPolicy): Promise<void> {
    await this.db.query(`INSERT INTO privacy_groups (selector, priority, policy, updated_at) VALUES ($1, $2, $3, $4)
      ON CONFLICT (selector) DO UPDATE SET priority = excluded.priority, policy = excluded.policy, updated_at = excluded.updated_at`,
    [g.selector, g.priority, JSON.stringify(g.policy), g.updatedAt]);
  }

  async deleteGroupPolicy(selector: string): Promise<boolean> {
    return ((await this.db.query('DELETE FROM privacy_groups WHERE selector = $1', [selector])).rowCount ?? 0) > 0;
  }

  async addAudit(at: number, entries: Disclosure[]): Promise<void> {
    if (!entries.length) return;
    const values: unknown[] = [at];
    const tuples = entries.map((e) => {
      const n = values.length;
      values.push(e.audience, e.operator ?? null, e.deviceId, e.cid ?? null, e.kind, e.seq?.[0] ?? null, e.seq?.[1] ?? null,
        e.level, JSON.stringify(e.purposes), e.via);
      return `($1, ${Array.from({ length: 10 }, (_, i) => `$${n + i + 1}`).join(', ')})`;
    });
    // One statement: all of the entries or none.
    await this.db.query(`INSERT INTO privacy_audit (at, audience, operator, device_id, cid, kind, seq, last, level, purposes, via)
      VALUES ${tuples.join(', ')}`, values);
  }

  async audit(q: { deviceId?: string; limit: number; beforeId?: number }): Promise<AuditEntry[]> {
    const before = q.beforeId ?? Number.MAX_SAFE_INTEGER;
    const r = q.deviceId === undefined
      ? await this.db.query<AuditRow>('SELECT * FROM privacy_audit WHERE id < $1 ORDER BY id DESC LIMIT $2', [before, q.limit])
      : await this.db.query<AuditRow>('SELECT * FROM privacy_audit WHERE device_id IN ($1, $4) AND id < $2 ORDER BY id DESC LIMIT $3',
        [q.deviceId, before, q.limit, EVERY_DEVICE]);
    return r.rows.map(toEntry);
  }

  async retentionPass<T>(pass: (last: RetentionMark | undefined) => Promise<{ result: T; mark?: RetentionMark }>): Promise<T> {
    // The lock (and this transaction's connection) is held for the whole pass; the pass's own writes go
    // through other connections and are committed as they go.
    return this.db.tx(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1)', [RETENTION_LOCK]);
      const r = (await c.query<{ ran_at: number; ran_by: string }>('SELECT ran_at, ran_by FROM privacy_retention WHERE id = 1')).rows[0];
      const out = await pass(r && { at: r.ran_at, by: r.ran_by });
      if (out.mark) {
        await c.query(`INSERT INTO privacy_retention (id, ran_at, ran_by) VALUES (1, $1, $2)
          ON CONFLICT (id) DO UPDATE SET ran_at = excluded.ran_at, ran_by = excluded.ran_by`, [out.mark.at, out.mark.by]);
      }
      return out.result;
    });
  }
}
