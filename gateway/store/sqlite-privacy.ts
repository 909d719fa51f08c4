// Privacy on the gateway's SQLite database (beside sqlite.ts): each device's own sharing policy, the
// group policies (label selector + priority) and the audit log of disclosures (gateway/privacy).
// Policies are kept as the JSON parsePolicy returned; they are parsed again when read, so a policy
// edited by hand in the database that no longer validates is refused loudly rather than half-applied.

import type Database from 'better-sqlite3';
import { parsePolicy, type PrivacyPolicy } from '../privacy/policy.js';
import { EVERY_DEVICE, type AuditEntry, type Disclosure, type GroupPolicy, type PrivacyStore, type RetentionMark } from './store.js';
import { readPolicy, toAuditEntry as toEntry, type AuditRow } from './rows.js';

export const PRIVACY_SCHEMA = `
CREATE TABLE IF NOT EXISTS privacy_devices (
  device_id TEXT PRIMARY KEY,
  policy TEXT NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS privacy_groups (
  selector TEXT PRIMARY KEY,
  priority INTEGER NOT NULL,
  policy TEXT NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS privacy_audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  audience TEXT NOT NULL,
  operator TEXT,
  device_id TEXT NOT NULL,
  cid TEXT,
  kind TEXT NOT NULL,
  seq INTEGER,
  last INTEGER,
  level TEXT NOT NULL,
  purposes TEXT NOT NULL,
  via TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS privacy_audit_device ON privacy_audit (device_id, id);
`;

export class SqlitePrivacyStore implements PrivacyStore {
  readonly #db: Database.Database;
  readonly #q;
  /** One process owns a SQLite database: retention passes queue here, and the mark is this process's. */
  #retention: Promise<unknown> = Promise.resolve();
  #mark?: RetentionMark;

  constructor(db: Database.Database) {
    this.#db = db;
    db.exec(PRIVACY_SCHEMA);
    this.#q = {
      device: db.prepare<[string], { policy: string; updated_at: number }>('SELECT policy, updated_at FROM privacy_devices WHERE device_id = ?'),
      setDevice: db.prepare(`INSERT INTO privacy_devices (device_id, policy, updated_at) VALUES (?, ?, ?)
        ON CONFLICT (device_id) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at`),
      deleteDevice: db.prepare('DELETE FROM privacy_devices WHERE device_id = ?'),
      devices: db.prepare<[], { device_id: string }>('SELECT device_id FROM privacy_devices ORDER BY device_id'),
      groups: db.prepare<[], { selector: string; priority: number; policy: string; updated_at: number }>(
        'SELECT selector, priority, policy, updated_at FROM privacy_groups ORDER BY priority DESC, selector'),
      setGroup: db.prepare(`INSERT INTO privacy_groups (selector, priority, policy, updated_at) VALUES (?, ?, ?, ?)
        ON CONFLICT (selector) DO UPDATE SET priority = excluded.priority, policy = excluded.policy, updated_at = excluded.updated_at`),
      deleteGroup: db.prepare('DELETE FROM privacy_groups WHERE selector = ?'),
      addAudit: db.prepare(`INSERT INTO privacy_audit (at, audience, operator, device_id, cid, kind, seq, last, level, purposes, via)
        VALUES (@at, @audience, @operator, @device, @cid, @kind, @seq, @last, @level, @purposes, @via)`),
      audit: db.prepare<[number, number], AuditRow>('SELECT * FROM privacy_audit WHERE id < ? ORDER BY id DESC LIMIT ?'),
      auditDevice: db.prepare<[string, number, number], AuditRow>(
        `SELECT * FROM privacy_audit WHERE device_id IN (?, '${EVERY_DEVICE}') AND id < ? ORDER BY id DESC LIMIT ?`),
    };
  }

  /**
   * The devices that have a policy of their own (most have none: the mesh asks for every frame's
   * message, and a device without one then costs no read). Undefined until read, and once another
   * connection wrote (forget()).
   */
  #withPolicy: Set<string> | undefined;

  /** Lets sqlite.ts notice other connections' writes before a read (once per turn of the event loop). */
  fresh: () => void = () => {};

  /** Another connection changed the database: which devices have a policy is read again when next needed. */
  forget(): void {
    this.#withPolicy = undefined;
  }

  async devicePolicy(deviceId: string): Promise<{ policy: PrivacyPolicy; updatedAt: number } | undefined> {
    this.fresh();
    this.#withPolicy ??= new Set(this.#q.devices.all().map((r) => r.device_id));
    if (!this.#withPolicy.has(deviceId)) return undefined;
    const r = this.#q.device.get(deviceId);
    return r && { policy: readPolicy(r.policy, `device ${deviceId}`), updatedAt: r.updated_at };
  }

  async setDevicePolicy(deviceId: string, policy: PrivacyPolicy, now: number): Promise<void> {
    this.#q.setDevice.run(deviceId, JSON.stringify(policy), now);
    this.#withPolicy?.add(deviceId);
  }

  async deleteDevicePolicy(deviceId: string): Promise<boolean> {
    const gone = this.#q.deleteDevice.run(deviceId).changes > 0;
    this.#withPolicy?.delete(deviceId);
    return gone;
  }

  async devicesWithPolicy(): Promise<string[]> {
    return this.#q.devices.all().map((r) => r.device_id);
  }

  async groupPolicies(): Promise<GroupPolicy[]> {
    return this.#q.groups.all().map((r) => ({
      selector: r.selector, priority: r.priority, policy: readPolicy(r.policy, `group ${r.selector}`), updatedAt: r.updated_at,
    }));
  }

  async setGroupPolicy(g: GroupPolicy): Promise<void> {
    this.#q.setGroup.run(g.selector, g.priority, JSON.stringify(g.policy), g.updatedAt);
  }

  async deleteGroupPolicy(selector: string): Promise<boolean> {
    return this.#q.deleteGroup.run(selector).changes > 0;
  }

  /**
   * Runs a write in the store's next durable group commit (sqlite.ts sets it: the fsync is shared and
   * off the event loop). Alone: at once, in a transaction of its own.
   */
  durably: <T>(job: () => T) => Promise<T> = async <T>(job: () => T): Promise<T> => this.#db.transaction(job).immediate();

  async addAudit(at: number, entries: Disclosure[]): Promise<void> {
    // Every read of a device's records through the API is audited: an fsync of its own on the event
    // loop for each is what joining the group commit saves.
    await this.durably(() => {
      for (const e of entries) {
        this.#q.addAudit.run({
          at, audience: e.audience, operator: e.operator ?? null, device: e.deviceId, cid: e.cid ?? null, kind: e.kind,
          seq: e.seq?.[0] ?? null, last: e.seq?.[1] ?? null, level: e.level, purposes: JSON.stringify(e.purposes), via: e.via,
        });
      }
    });
  }

  async audit(q: { deviceId?: string; limit: number; beforeId?: number }): Promise<AuditEntry[]> {
    const before = q.beforeId ?? Number.MAX_SAFE_INTEGER;
    const rows = q.deviceId === undefined ? this.#q.audit.all(before, q.limit) : this.#q.auditDevice.all(q.deviceId, before, q.limit);
    return rows.map(toEntry);
  }

  retentionPass<T>(pass: (last: RetentionMark | undefined) => Promise<{ result: T; mark?: RetentionMark }>): Promise<T> {
    const run = this.#retention.then(async () => {
      const out = await pass(this.#mark);
      if (out.mark) this.#mark = out.mark;
      return out.result;
    });
    this.#retention = run.catch(() => {});
    return run;
  }
}
