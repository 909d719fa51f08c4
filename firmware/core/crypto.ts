// The crypto of WIRE.md: NaCl box/secretbox (tweetnacl), SHA-256, HMAC-SHA256 and PBKDF2 (sha256.ts);
// a platform may offer faster secretbox and hashes (useSecretbox, useHash), the same bytes.
// Randomness comes only from the Random port (installed with useRandom), so the same code runs on XS;
// tweetnacl never draws random bytes itself (key pairs are made from the port's bytes).

import nacl from 'tweetnacl';
import type { HashPort, Random, SecretboxPort } from './ports.js';
import { utf8Encode } from './bytes.js';
import { HmacSha256, pbkdf2HmacSha256, Sha256 } from './sha256.js';

/**
 * The installed Random port. A property of an object, not a module variable: on a meter this module
 * is preloaded into flash, where a module variable cannot be assigned at run time.
 */
const installed: { source: Random | undefined; box: SecretboxPort | undefined; hash: HashPort | undefined } = {
  source: undefined, box: undefined, hash: undefined,
};

/** Seals and opens secretboxes with `port` instead of tweetnacl (undefined: tweetnacl again). */
export function useSecretbox(port: SecretboxPort | undefined): void {
  installed.box = port;
}

/** Hashes with `port` instead of sha256.ts (undefined: sha256.ts again). */
export function useHash(port: HashPort | undefined): void {
  installed.hash = port;
}

/** Routes all of the core's randomness through the platform's Random port. */
export function useRandom(random: Random): void {
  installed.source = random;
}

/**
 * Runs `f` with the Random port's strongest entropy source on (Random.strong): for secrets made at
 * boot, before the radio that makes an ESP32's RNG truly random is up.
 */
export function withStrongEntropy<T>(f: () => T): T {
  const source = installed.source;
  if (!source?.strong) return f();
  const out: { value: T | undefined } = { value: undefined };
  source.strong(() => {
    out.value = f();
  });
  return out.value as T;
}

export function randomBytes(n: number): Uint8Array {
  const source = installed.source;
  if (!source) throw new Error('no Random port installed: call useRandom() at startup');
  const b = new Uint8Array(n);
  source.fill(b);
  return b;
}

export function sha256(...parts: Uint8Array[]): Uint8Array {
  const port = installed.hash;
  if (port) return port.sha256(parts);
  const h = new Sha256();
  for (const p of parts) h.update(p);
  return h.digest();
}

export function hmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const port = installed.hash;
  if (port) return port.hmac(key, parts);
  return new HmacSha256(key).mac(parts);
}

/** PBKDF2-HMAC-SHA256 (RFC 8018): the console's PIN hash (console/pin.ts). */
export function pbkdf2Sha256(password: Uint8Array, salt: Uint8Array, iterations: number, dkLen = 32): Uint8Array {
  return pbkdf2HmacSha256(password, salt, iterations, dkLen);
}

export function text(s: string): Uint8Array {
  return utf8Encode(s);
}

export interface BoxKeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

export function boxKeyPair(): BoxKeyPair {
  return boxKeyPairFromSecret(randomBytes(32));
}

export function boxKeyPairFromSecret(secretKey: Uint8Array): BoxKeyPair {
  const port = installed.box;
  return port?.publicKey ? { publicKey: port.publicKey(secretKey), secretKey: secretKey.slice() } : nacl.box.keyPair.fromSecretKey(secretKey);
}

/** `box.before`: the X25519 shared key of two parties. */
export function sharedKey(theirPublicKey: Uint8Array, mySecretKey: Uint8Array): Uint8Array {
  const port = installed.box;
  return port?.before ? port.before(theirPublicKey, mySecretKey) : nacl.box.before(theirPublicKey, mySecretKey);
}

export function secretbox(message: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array {
  const port = installed.box;
  return port ? port.seal(message, nonce, key) : nacl.secretbox(message, nonce, key);
}

/** Opens a secretbox; undefined when it does not authenticate. */
export function secretboxOpen(box: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array | undefined {
  if (box.length < nacl.secretbox.overheadLength) return undefined;
  const port = installed.box;
  return port ? port.open(box, nonce, key) : nacl.secretbox.open(box, nonce, key) ?? undefined;
}

export const SECRETBOX_OVERHEAD = 16;
