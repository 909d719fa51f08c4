// The gateway's identity (WIRE.md "Identity"): an X25519 key pair for devices and, separately, an
// Ed25519 key pair for the mesh. Kept in the data directory, readable by the owner only.

import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { privateDir, tighten } from './files.js';
import { fromHex, toHex } from '../firmware/core/bytes.js';
import { boxKeyPairFromSecret, type BoxKeyPair } from '../firmware/core/crypto.js';
import { newBoxKeyPair } from './random.js';
import { idFromPublicKey } from '../firmware/core/wire/pairing.js';

export interface GatewayIdentity {
  id: string;
  box: BoxKeyPair;
  /** Ed25519, for signing grid messages (MESH.md). */
  sign: { publicKey: Uint8Array; secretKey: Uint8Array };
}

const FILE = 'identity.json';

function write(path: string, box: BoxKeyPair, seed: Uint8Array): void {
  const tmp = path + '.tmp';
  writeFileSync(tmp, JSON.stringify({
    x25519SecretKey: toHex(box.secretKey),
    ed25519Seed: toHex(seed),
  }, null, 2) + '\n', { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/**
 * Gives the data directory's gateway a new Ed25519 mesh key (and so a new peer id), keeping its X25519
 * key and gateway id, which its meters know it by. Returns the identity with the new key.
 */
export function rotateMeshKey(dataDir: string): GatewayIdentity {
  const path = join(dataDir, FILE);
  if (!existsSync(path)) throw new Error(`no gateway identity in ${dataDir} (${FILE}); nothing to rotate`);
  const old = loadOrCreateIdentity(dataDir);
  const seed = nacl.randomBytes(32);
  write(path, old.box, seed);
  return { id: old.id, box: old.box, sign: nacl.sign.keyPair.fromSeed(seed) };
}

export function loadOrCreateIdentity(dataDir: string): GatewayIdentity {
  privateDir(dataDir);
  const path = join(dataDir, FILE);
  if (existsSync(path)) {
    tighten(path, 0o600);
    let j: { x25519SecretKey?: string; ed25519Seed?: string };
    try {
      j = JSON.parse(readFileSync(path, 'utf8'));
      const box = boxKeyPairFromSecret(fromHex(j.x25519SecretKey ?? ''));
      const sign = nacl.sign.keyPair.fromSeed(fromHex(j.ed25519Seed ?? ''));
      return { id: idFromPublicKey(box.publicKey), box, sign };
    } catch (e) {
      throw new Error(`gateway identity ${path} is unreadable (${(e as Error).message}); restore it from a backup, ` +
        'or move it away to make this gateway a new one (its devices must then be paired again)');
    }
  }
  const box = newBoxKeyPair();
  const seed = nacl.randomBytes(32);
  const sign = nacl.sign.keyPair.fromSeed(seed);
  write(path, box, seed);
  return { id: idFromPublicKey(box.publicKey), box, sign };
}
