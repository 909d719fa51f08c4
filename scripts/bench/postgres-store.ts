// The shared store (issue 10): frame commits per second through PostgresStore.commitFrame (group
// commit, 4 readings a frame, an ack counter reserved with each) at 1, 50 and 500 commits in flight
// over 300 devices, beside SqliteStore on the same machine. Needs a PostgreSQL server
// (GRIDLET_TEST_PG, default postgres://<user>@127.0.0.1:5432/test; a database of its own is created
// and dropped); without one it reports `skipped`.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PostgresStore } from '../../gateway/store/postgres.js';
import { SqliteStore } from '../../gateway/store/sqlite.js';
import type { Store } from '../../gateway/store/store.js';
import { tempDatabase } from '../../test/integration/pg-support.js';

const KS = new Uint8Array(32).fill(7);
const DEVICES = 300;

async function measure(s: Store): Promise<{ [inFlight: string]: number }> {
  for (let i = 0; i < DEVICES; i++) {
    await s.completePairing({ id: `d${i}`, publicKey: new Uint8Array(32), ks: KS, gatewayId: 'g', model: 'm', firmware: 'f', capabilities: [], firstSeen: 0, counter: 1, now: 0 });
  }
  const seq = new Array<number>(DEVICES).fill(0);
  const counter = new Array<number>(DEVICES).fill(1);
  const out: { [inFlight: string]: number } = {};
  for (const inFlight of [1, 50, 500]) {
    const total = inFlight === 1 ? 500 : 5000;
    let started = 0;
    const t0 = performance.now();
    const worker = async () => {
      while (started < total) {
        const i = started++ % DEVICES;
        const records = [0, 1, 2, 3].map(() => ({ kind: 1 as const, seq: ++seq[i], t: 1, gatewayTimed: false, channel: 1, value: seq[i] }));
        const r = await s.commitFrame({ deviceId: `d${i}`, ks: KS, counter: ++counter[i], now: 1, records, allocateDown: true });
        if (!r.ok) throw new Error(`commit refused: ${r.why}`);
      }
    };
    await Promise.all(Array.from({ length: inFlight }, worker));
    out[`inFlight${inFlight}`] = Math.round(total / ((performance.now() - t0) / 1000));
  }
  return out;
}

export async function run(): Promise<object> {
  let db;
  try {
    db = await tempDatabase();
  } catch (e) {
    return { skipped: `no PostgreSQL server: ${(e as Error).message}` };
  }
  const dir = mkdtempSync(join(tmpdir(), 'gridlet-bench-store-'));
  try {
    const pgStore = await PostgresStore.open(db.url);
    const postgres = await measure(pgStore).finally(() => pgStore.close());
    const sq = new SqliteStore(join(dir, 'bench.sqlite'));
    const sqlite = await measure(sq).finally(() => sq.close());
    return { unit: 'frame commits/s (4 readings each)', devices: DEVICES, postgres, sqlite };
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await db.drop();
  }
}
