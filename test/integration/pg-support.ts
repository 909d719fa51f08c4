// A PostgreSQL database of its own for a test run: created on the server the integration suite uses
// (GRIDLET_TEST_PG, default postgres://<user>@127.0.0.1:5432/test) and dropped afterwards.

import { randomBytes } from 'node:crypto';
import { userInfo } from 'node:os';
import pg from 'pg';

export const PG_ADMIN = process.env.GRIDLET_TEST_PG ?? `postgres://${userInfo().username}@127.0.0.1:5432/test`;

export interface TempDatabase {
  url: string;
  drop(): Promise<void>;
}

export async function tempDatabase(): Promise<TempDatabase> {
  const name = `gridlet_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(PG_ADMIN);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: PG_ADMIN });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}
