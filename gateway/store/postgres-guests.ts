// Guests on PostgreSQL (beside postgres.ts; mirrors sqlite-guests.ts): admitted modules by CID and
// the deployment notes in each device's `guests` map, changed under the device's row lock.

import type pg from 'pg';
import { PgDb } from './postgres-db.js';
import type { GuestModule, GuestStore } from './store.js';
import { markDeploying, markRemoving, pruneGuests as prune, toModule, type GuestMap, type ModuleRow } from './rows.js';

export const GUESTS_DDL = [
  `CREATE TABLE IF NOT EXISTS guest_modules (
    cid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    size INTEGER NOT NULL,
    instrumented BOOLEAN NOT NULL,
    manifest TEXT NOT NULL,
    wasm BYTEA NOT NULL,
    added_at BIGINT NOT NULL
  )`,
];

const COLUMNS = 'cid, name, version, size, instrumented, manifest, added_at';

export class PostgresGuestStore implements GuestStore {
  constructor(readonly db: PgDb) {}

  async put(m: GuestModule, wasm: Uint8Array): Promise<'added' | 'updated' | 'unchanged'> {
    const manifest = JSON.stringify(m.manifest);
    return this.db.tx(async (c) => {
      const ins = await c.query(`INSERT INTO guest_modules (cid, name, version, size, instrumented, manifest, wasm, added_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (cid) DO NOTHING`,
      [m.cid, m.name, m.version, m.size, m.instrumented, manifest, Buffer.from(wasm.buffer, wasm.byteOffset, wasm.byteLength), m.addedAt]);
      if (ins.rowCount === 1) return 'added' as const;
      const had = (await c.query<{ manifest: string }>('SELECT manifest FROM guest_modules WHERE cid = $1 FOR UPDATE', [m.cid])).rows[0];
      if (had.manifest === manifest) return 'unchanged' as const;
      await c.query('UPDATE guest_modules SET name = $1, version = $2, manifest = $3 WHERE cid = $4', [m.name, m.version, manifest, m.cid]);
      return 'updated' as const;
    });
  }

  async get(cid: string): Promise<GuestModule | undefined> {
    const r = (await this.db.query<ModuleRow>(`SELECT ${COLUMNS} FROM guest_modules WHERE cid = $1`, [cid])).rows[0];
    return r && toModule(r);
  }

  async wasm(cid: string): Promise<Uint8Array | undefined> {
    const r = (await this.db.query<{ wasm: Buffer }>('SELECT wasm FROM guest_modules WHERE cid = $1', [cid])).rows[0];
    return r && new Uint8Array(r.wasm);
  }

  async list(): Promise<GuestModule[]> {
    return (await this.db.query<ModuleRow>(`SELECT ${COLUMNS} FROM guest_modules ORDER BY added_at, cid COLLATE "C"`)).rows.map(toModule);
  }

  async deploying(deviceId: string, cid: string, name: string, at: number): Promise<boolean> {
    return this.#update(deviceId, (guests) => markDeploying(guests, cid, name, at));
  }

  async removing(deviceId: string, name: string, at: number): Promise<string[]> {
    let cids: string[] = [];
    await this.#update(deviceId, (guests) => void (cids = markRemoving(guests, name, at)));
    return cids;
  }

  #update(deviceId: string, f: (guests: GuestMap) => void): Promise<boolean> {
    return this.db.tx(async (c: pg.PoolClient) => {
      const r = (await c.query<{ guests: string }>('SELECT guests FROM devices WHERE id = $1 FOR UPDATE', [deviceId])).rows[0];
      if (!r) return false;
      const guests = JSON.parse(r.guests) as GuestMap;
      f(guests);
      prune(guests);
      await c.query('UPDATE devices SET guests = $1 WHERE id = $2', [JSON.stringify(guests), deviceId]);
      return true;
    });
  }
}
