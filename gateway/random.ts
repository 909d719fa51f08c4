// The gateway's randomness: Node's CSPRNG. The core's Random port (firmware/core/crypto.ts
// useRandom) is how a device is given one; gateway code does not depend on it being installed.

import { randomFillSync } from 'node:crypto';
import { boxKeyPairFromSecret, type BoxKeyPair } from '../firmware/core/crypto.js';

/** Small draws (frame salts, 8 bytes each) come from a pool filled 4 KiB at a time: one system call per 512 salts. */
const POOL_BYTES = 4096;
let pool = new Uint8Array(0);
let used = 0;

export function randomBytes(n: number): Uint8Array {
  if (n > 64) return randomFillSync(new Uint8Array(n));
  if (used + n > pool.length) {
    pool = randomFillSync(new Uint8Array(POOL_BYTES));
    used = 0;
  }
  // A copy: no two draws share bytes, and the pool is never handed out.
  const out = pool.slice(used, used + n);
  pool.fill(0, used, used + n);
  used += n;
  return out;
}

/** A new X25519 key pair. */
export function newBoxKeyPair(): BoxKeyPair {
  return boxKeyPairFromSecret(randomBytes(32));
}
