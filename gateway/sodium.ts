// libsodium through sodium-native (prebuilt for the common platforms), for the gateway's hot paths:
// secretbox open and seal of every frame, the pairing's X25519 keys, Ed25519 signing of mesh messages. Where it does not load
// (a platform without a prebuild) the gateway runs on tweetnacl and node:crypto, the same bytes,
// slower; GRIDLET_NO_SODIUM=1 forces that (tests compare the two).

import { createRequire } from 'node:module';
import nacl from 'tweetnacl';
import type { SecretboxPort } from '../firmware/core/ports.js';

interface SodiumNative {
  crypto_secretbox_easy(c: Uint8Array, m: Uint8Array, n: Uint8Array, k: Uint8Array): void;
  crypto_secretbox_open_easy(m: Uint8Array, c: Uint8Array, n: Uint8Array, k: Uint8Array): boolean;
  crypto_sign_seed_keypair(pk: Uint8Array, sk: Uint8Array, seed: Uint8Array): void;
  crypto_sign_detached(sig: Uint8Array, m: Uint8Array, sk: Uint8Array): void;
  crypto_scalarmult(q: Uint8Array, n: Uint8Array, p: Uint8Array): void;
  crypto_scalarmult_base(q: Uint8Array, n: Uint8Array): void;
}

function load(): SodiumNative | undefined {
  if (process.env.GRIDLET_NO_SODIUM === '1') return undefined;
  try {
    return createRequire(import.meta.url)('sodium-native') as SodiumNative;
  } catch {
    return undefined;
  }
}

/** sodium-native, when it loaded. */
export const sodium: SodiumNative | undefined = load();

const MAC = 16;
const SIGMA = new TextEncoder().encode('expand 32-byte k');
const lowlevel = (nacl as unknown as { lowlevel: { crypto_core_hsalsa20(out: Uint8Array, inp: Uint8Array, k: Uint8Array, c: Uint8Array): void } }).lowlevel;

/** libsodium's secretbox for the core (useSecretbox), when sodium-native loaded. */
export const sodiumSecretbox: SecretboxPort | undefined = sodium && {
  seal(message, nonce, key) {
    const out = new Uint8Array(message.length + MAC);
    sodium.crypto_secretbox_easy(out, message, nonce, key);
    return out;
  },
  open(box, nonce, key) {
    if (box.length < MAC || nonce.length !== 24 || key.length !== 32) return undefined;
    const out = new Uint8Array(box.length - MAC);
    return sodium.crypto_secretbox_open_easy(out, box, nonce, key) ? out : undefined;
  },
  before(theirPublicKey, mySecretKey) {
    // X25519 by libsodium, then HSalsa20 (cheap) by tweetnacl, as NaCl's box.before. A low-order
    // public key makes libsodium throw: tweetnacl's box.before answers it as it always did.
    const shared = new Uint8Array(32);
    try {
      sodium.crypto_scalarmult(shared, mySecretKey, theirPublicKey);
    } catch {
      return nacl.box.before(theirPublicKey, mySecretKey);
    }
    const k = new Uint8Array(32);
    lowlevel.crypto_core_hsalsa20(k, new Uint8Array(16), shared, SIGMA);
    return k;
  },
  publicKey(secretKey) {
    if (secretKey.length !== 32) throw new Error('an X25519 secret key is 32 bytes');
    const pk = new Uint8Array(32);
    sodium.crypto_scalarmult_base(pk, secretKey);
    return pk;
  },
};

/** An Ed25519 signing function of libsodium for a 32-byte seed, with the public key it derives. */
export function sodiumSigner(seed: Uint8Array): { publicKey: Uint8Array; sign(data: Uint8Array): Uint8Array } | undefined {
  if (!sodium) return undefined;
  const publicKey = new Uint8Array(32);
  const secretKey = new Uint8Array(64);
  sodium.crypto_sign_seed_keypair(publicKey, secretKey, seed);
  return {
    publicKey,
    sign(data) {
      const sig = new Uint8Array(64);
      sodium.crypto_sign_detached(sig, data, secretKey);
      return sig;
    },
  };
}
