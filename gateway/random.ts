// The gateway's randomness: Node's CSPRNG. The core's Random port (firmware/core/crypto.ts
// useRandom) is how a device is given one; gateway code does not depend on it being installed.

import { randomFillSync } from 'node:crypto';
import { boxKeyPairFromSecret, type BoxKeyPair } from '../firmware/core/crypto.js';

export function randomBytes(n: number): Uint8Array {
  return randomFillSync(new Uint8Array(n));
}

/** A new X25519 key pair. */
export function newBoxKeyPair(): BoxKeyPair {
  return boxKeyPairFromSecret(randomBytes(32));
}
