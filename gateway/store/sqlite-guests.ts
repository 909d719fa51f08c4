// Guests on the gateway's SQLite database (beside sqlite.ts): admitted modules by CID (POST
// /api/guests), and the deployment notes kept in each device's `guests` map (devices.guests, keyed by
// CID), which guest-ack bodies then settle (applyGuestAck, called from commitFrame).

import type Database from 'better-sqlite3';
import type { GuestModule, GuestState, GuestStore } from './store.js';
import { MAX_GUESTS_PER_DEVICE, markDeploying, markRemoving, pruneGuests as prune, toModule, type GuestMap, type ModuleRow } from './rows.js';
export { MAX_GUESTS_PER_DEVICE };

export const GUEST_SCHEMA = `
CREATE TABLE IF NOT EXISTS guest_modules (
  cid TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  version TEXT NOT NULL,
  size INTEGER NOT NULL,
  instrumented INTEGER NOT NULL,
  manifest TEXT NOT NULL,
  wasm BLOB NOT NULL,
  added_at INTEGER NOT NULL
);
`;

/** The text CID of an empty byte string: a guest-ack for a removal of a name the device does not run. */
export const EMPTY_CID = 'b';

/**
 * Applies a guest-ack to a device's guests map: the entry of its CID takes the new state and keeps the
 * name it was deployed under. A `removed` ack with no CID (the device ran no guest of that name)
 * settles the removals still pending.
 */
export function applyGuestAck(guests: GuestMap, cid: string, state: GuestState): void {
  if (cid === EMPTY_CID && state.state === 'removed') {
    for (const [k, g] of Object.entries(guests)) {
      if (g.state === 'removing') guests[k] = { ...state, ...(g.name === undefined ? {} : { name: g.name, deployedAt: g.deployedAt }) };
    }
    return;
  }
  const prior = guests[cid];
  guests[cid] = prior?.name === undefined ? state : { ...state, name: prior.name, deployedAt: prior.deployedAt };
}

export class SqliteGuestStore implements GuestStore {
  readonly #db: Database.Database;
  readonly #q;

  /** `changed` is told of each device whose row this store wrote (the device cache of sqlite.ts). */
  constructor(db: Database.Database, readonly changed: (deviceId: string) => void = () => {}) {
    this.#db = db;
    db.exec(GUEST_SCHEMA);
    this.#q = {
      get: db.prepare<[string], ModuleRow>(
        'SELECT cid, name, version, size, instrumented, manifest, added_at FROM guest_modules WHERE cid = ?'),
      wasm: db.prepare<[string], { wasm: Buffer }>('SELECT wasm FROM guest_modules WHERE cid = ?'),
      list: db.prepare<[], ModuleRow>(
        'SELECT cid, name, version, size, instrumented, manifest, added_at FROM guest_modules ORDER BY added_at, cid'),
      insert: db.prepare(`INSERT INTO guest_modules (cid, name, version, size, instrumented, manifest, wasm, added_at)
        VALUES (@cid, @name, @version, @size, @instrumented, @manifest, @wasm, @addedAt)`),
      manifest: db.prepare('UPDATE guest_modules SET name = ?, version = ?, manifest = ? WHERE cid = ?'),
      deviceGuests: db.prepare<[string], { guests: string }>('SELECT guests FROM devices WHERE id = ?'),
      setDeviceGuests: db.prepare('UPDATE devices SET guests = ? WHERE id = ?'),
    };
  }

  async put(m: GuestModule, wasm: Uint8Array): Promise<'added' | 'updated' | 'unchanged'> {
    return this.#db.transaction(() => {
      const had = this.#q.get.get(m.cid);
      const manifest = JSON.stringify(m.manifest);
      if (!had) {
        this.#q.insert.run({
          cid: m.cid, name: m.name, version: m.version, size: m.size, instrumented: m.instrumented ? 1 : 0, manifest,
          wasm: Buffer.from(wasm.buffer, wasm.byteOffset, wasm.byteLength), addedAt: m.addedAt,
        });
        return 'added' as const;
      }
      if (had.manifest === manifest) return 'unchanged' as const;
      this.#q.manifest.run(m.name, m.version, manifest, m.cid);
      return 'updated' as const;
    }).immediate();
  }

  async get(cid: string): Promise<GuestModule | undefined> {
    const r = this.#q.get.get(cid);
    return r && toModule(r);
  }

  async wasm(cid: string): Promise<Uint8Array | undefined> {
    const r = this.#q.wasm.get(cid);
    return r && new Uint8Array(r.wasm);
  }

  async list(): Promise<GuestModule[]> {
    return this.#q.list.all().map(toModule);
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
    return Promise.resolve(this.#db.transaction(() => {
      const r = this.#q.deviceGuests.get(deviceId);
      if (!r) return false;
      const guests = JSON.parse(r.guests) as GuestMap;
      f(guests);
      prune(guests);
      this.#q.setDeviceGuests.run(JSON.stringify(guests), deviceId);
      this.changed(deviceId);
      return true;
    }).immediate());
  }
}
