// The one gateway identity of a set of replicas (ARCHITECTURE.md: "its keys are configuration shared
// by the replicas"), kept in PostgreSQL: the first replica to start stores the identity of its data
// directory (creating one if it has none); every later replica loads it from here, whatever its own
// data directory holds. The secret keys are then as safe as the database: restrict who may read it.

import nacl from 'tweetnacl';
import { fromHex, toHex } from '../../firmware/core/bytes.js';
import { boxKeyPairFromSecret } from '../../firmware/core/crypto.js';
import { newBoxKeyPair } from '../random.js';
import { idFromPublicKey } from '../../firmware/core/wire/pairing.js';
import type { GatewayIdentity } from '../identity.js';
import type { PgDb } from './postgres-db.js';

export const IDENTITY_DDL = [
  `CREATE TABLE IF NOT EXISTS gateway_identity (
    one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
    id TEXT NOT NULL,
    x25519_secret_key TEXT NOT NULL,
    ed25519_seed TEXT NOT NULL,
    created_at BIGINT NOT NULL
  )`,
];

function fromRow(r: { x25519_secret_key: string; ed25519_seed: string }): GatewayIdentity {
  const box = boxKeyPairFromSecret(fromHex(r.x25519_secret_key));
  const sign = nacl.sign.keyPair.fromSeed(fromHex(r.ed25519_seed));
  return { id: idFromPublicKey(box.publicKey), box, sign };
}

/** Gives the shared identity a new Ed25519 mesh key (its X25519 key and gateway id stay). */
export async function rotateSharedMeshKey(db: PgDb): Promise<GatewayIdentity> {
  const r = await db.query<{ x25519_secret_key: string; ed25519_seed: string }>(
    'UPDATE gateway_identity SET ed25519_seed = $1 RETURNING x25519_secret_key, ed25519_seed', [toHex(nacl.randomBytes(32))]);
  if (!r.rows[0]) throw new Error('the store holds no gateway identity yet; nothing to rotate');
  return fromRow(r.rows[0]);
}

/**
 * The shared identity. `local` is the data directory's identity when it has one: the first replica
 * shares it (a site moving from SQLite keeps its identity), and a replica whose directory holds
 * another gateway's identity is refused. Without either, a new identity is made and stored here.
 */
export async function sharedIdentity(db: PgDb, local: () => GatewayIdentity | undefined): Promise<GatewayIdentity> {
  const read = async () =>
    (await db.query<{ x25519_secret_key: string; ed25519_seed: string }>('SELECT x25519_secret_key, ed25519_seed FROM gateway_identity')).rows[0];
  const mine = local();
  let row = await read();
  if (!row) {
    const box = mine?.box ?? newBoxKeyPair();
    const seed = mine ? mine.sign.secretKey.subarray(0, 32) : nacl.randomBytes(32);
    // Two replicas starting together: the first insert wins and both read it back.
    await db.query(`INSERT INTO gateway_identity (one, id, x25519_secret_key, ed25519_seed, created_at)
      VALUES (true, $1, $2, $3, $4) ON CONFLICT DO NOTHING`,
    [idFromPublicKey(box.publicKey), toHex(box.secretKey), toHex(seed), Date.now()]);
    row = (await read())!;
  }
  const shared = fromRow(row);
  if (mine && mine.id !== shared.id) {
    throw new Error(`the data directory holds gateway identity ${mine.id}, but the store's replicas share identity ${shared.id}; ` +
      'give this replica an empty --data directory (it then uses the shared identity), or use another database');
  }
  return shared;
}
