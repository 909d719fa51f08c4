// The crypto of WIRE.md: NaCl box/secretbox (tweetnacl), SHA-256 and HMAC-SHA256 (@noble/hashes).
// Randomness comes only from the Random port (installed with useRandom), so the same code runs on XS.

import nacl from 'tweetnacl';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { hmac as nobleHmac } from '@noble/hashes/hmac.js';
import { pbkdf2 as noblePbkdf2 } from '@noble/hashes/pbkdf2.js';
import type { Random } from './ports.js';
import { concat, utf8Encode } from './bytes.js';

let source: Random | undefined;

/** Routes all of the core's randomness (and tweetnacl's) through the platform's Random port. */
export function useRandom(random: Random): void {
  source = random;
  nacl.setPRNG((x: Uint8Array, n: number) => {
    const b = new Uint8Array(n);
    random.fill(b);
    x.set(b);
  });
}

export function randomBytes(n: number): Uint8Array {
  if (!source) throw new Error('no Random port installed: call useRandom() at startup');
  const b = new Uint8Array(n);
  source.fill(b);
  return b;
}

export function sha256(...parts: Uint8Array[]): Uint8Array {
  return nobleSha256(parts.length === 1 ? parts[0] : concat(...parts));
}

export function hmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  return nobleHmac(nobleSha256, key, parts.length === 1 ? parts[0] : concat(...parts));
}

/** PBKDF2-HMAC-SHA256 (RFC 8018), pure JS: the console's PIN hash (console/pin.ts). */
export function pbkdf2Sha256(password: Uint8Array, salt: Uint8Array, iterations: number, dkLen = 32): Uint8Array {
  return noblePbkdf2(nobleSha256, password, salt, { c: iterations, dkLen });
}

export function text(s: string): Uint8Array {
  return utf8Encode(s);
}

export interface BoxKeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

export function boxKeyPair(): BoxKeyPair {
  return nacl.box.keyPair();
}

export function boxKeyPairFromSecret(secretKey: Uint8Array): BoxKeyPair {
  return nacl.box.keyPair.fromSecretKey(secretKey);
}

/** `box.before`: the X25519 shared key of two parties. */
export function sharedKey(theirPublicKey: Uint8Array, mySecretKey: Uint8Array): Uint8Array {
  return nacl.box.before(theirPublicKey, mySecretKey);
}

export function secretbox(message: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array {
  return nacl.secretbox(message, nonce, key);
}

/** Opens a secretbox; undefined when it does not authenticate. */
export function secretboxOpen(box: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array | undefined {
  if (box.length < nacl.secretbox.overheadLength) return undefined;
  return nacl.secretbox.open(box, nonce, key) ?? undefined;
}

export const SECRETBOX_OVERHEAD = 16;
