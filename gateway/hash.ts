// SHA-256 and HMAC-SHA256 for the core (useHash) from node:crypto: the pairing's hashes and MACs, the
// MQTT password checked at every connect, device ids of Hellos, registry messages' key hashes. The
// same bytes as the core's sha256.ts, 2–4× faster for these sizes (tests compare the two).

import * as nodeCrypto from 'node:crypto';
import { createHash, createHmac } from 'node:crypto';
import type { HashPort } from '../firmware/core/ports.js';
import { useHash, useSecretbox } from '../firmware/core/crypto.js';
import { sodiumSecretbox } from './sodium.js';

/**
 * SHA-256 of one input in one call (node:crypto `hash`, Node ≥ 20.12): half the time of a Hash
 * object for the few hundred bytes of a mesh message. Undefined on older Nodes (createHash then).
 */
export const sha256Once: ((data: Uint8Array) => Buffer) | undefined = typeof (nodeCrypto as { hash?: unknown }).hash === 'function'
  ? (data) => (nodeCrypto as unknown as { hash(alg: string, data: Uint8Array, enc: 'buffer'): Buffer }).hash('sha256', data, 'buffer')
  : undefined;

/** SHA-256 of one input: the one-shot hash where Node has it, else a Hash object. */
export function sha256Of(data: Uint8Array): Buffer {
  return sha256Once ? sha256Once(data) : createHash('sha256').update(data).digest();
}

export const nodeHash: HashPort = {
  sha256(parts) {
    if (parts.length === 1) return new Uint8Array(sha256Of(parts[0]));
    const h = createHash('sha256');
    for (const p of parts) h.update(p);
    // A Uint8Array of its own, not a Buffer (whose slice() would share its bytes).
    return new Uint8Array(h.digest());
  },
  hmac(key, parts) {
    const h = createHmac('sha256', key);
    for (const p of parts) h.update(p);
    return new Uint8Array(h.digest());
  },
};

/** Installs the platform's faster crypto in the core: libsodium's secretbox where it loads, these hashes. */
export function useFastCrypto(): void {
  if (sodiumSecretbox) useSecretbox(sodiumSecretbox);
  useHash(nodeHash);
}
