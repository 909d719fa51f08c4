// WIRE.md "Identity and the pair secret" and "Pairing": the computations both sides share.
// The device's pairing state machine lives in agent/pairing-state.ts; the gateway's in gateway/.

import { base32, constantTimeEqual, equal } from '../bytes.js';
import { decode, encode, type CborValue } from '../cbor.js';
import { hmac, secretbox, secretboxOpen, sha256, sharedKey, text } from '../crypto.js';

export const PROTOCOL_VERSION = 1;

/** Device id or gateway id: b32(sha256(X25519 public key)[0..10]). */
export function idFromPublicKey(publicKey: Uint8Array): string {
  return base32(sha256(publicKey).subarray(0, 10));
}

/** 50 random bits as the 10 lower-case base32 characters of the pair code. */
export function pairSecretFromRandom(random7: Uint8Array): string {
  const bits = new Uint8Array(7);
  bits.set(random7.subarray(0, 7));
  bits[6] &= 0xc0; // 50 bits = 6 bytes + 2 bits
  return base32(bits).slice(0, 10);
}

/** The pair code as printed for people: `XXXXX-XXXXX`. */
export function formatPairCode(secret: string): string {
  const s = secret.toUpperCase();
  return `${s.slice(0, 5)}-${s.slice(5, 10)}`;
}

export { normalizePairCode } from './ids.js';

/** The key form of a pair code: sha256("gridlet-pair-v1" ‖ code in lower case, no dash). */
export function pairKey(normalizedCode: string): Uint8Array {
  return sha256(text('gridlet-pair-v1' + normalizedCode));
}

export interface Hello {
  version: number;
  publicKey: Uint8Array;
  model: string;
  firmware: string;
  capabilities: string[];
  bootNonce: Uint8Array;
  /** The `n` of a PairAccept the device rejected (field 7). */
  rejected?: Uint8Array;
}

export function encodeHello(h: Hello): Uint8Array {
  const m = new Map<number, CborValue>([
    [1, h.version],
    [2, h.publicKey],
    [3, h.model],
    [4, h.firmware],
    [5, h.capabilities],
    [6, h.bootNonce],
  ]);
  if (h.rejected) m.set(7, h.rejected);
  return encode(m, 1024);
}

/** Decodes a Hello; throws with the reason when it is malformed. */
export function decodeHello(bytes: Uint8Array): Hello {
  const m = decode(bytes, { maxDepth: 3 });
  if (!(m instanceof Map)) throw new Error('Hello must be a CBOR map');
  const version = m.get(1), pk = m.get(2), model = m.get(3), fw = m.get(4), caps = m.get(5), nonce = m.get(6);
  const rejected = m.get(7);
  if (version !== PROTOCOL_VERSION) throw new Error(`Hello protocol version ${String(version)} is not 1`);
  if (!(pk instanceof Uint8Array) || pk.length !== 32) throw new Error('Hello public key must be 32 bytes');
  if (typeof model !== 'string' || typeof fw !== 'string') throw new Error('Hello model and firmware must be text');
  if (!Array.isArray(caps) || !caps.every((c) => typeof c === 'string')) throw new Error('Hello capabilities must be text');
  if (!(nonce instanceof Uint8Array) || nonce.length !== 16) throw new Error('Hello boot nonce must be 16 bytes');
  if (rejected !== undefined && (!(rejected instanceof Uint8Array) || rejected.length !== 24))
    throw new Error('Hello field 7 must be a 24-byte nonce');
  return {
    version, publicKey: pk, model, firmware: fw, capabilities: caps as string[], bootNonce: nonce,
    rejected: rejected as Uint8Array | undefined,
  };
}

export interface PairAccept {
  gatewayPublicKey: Uint8Array;
  gatewayId: string;
  nonce: Uint8Array;
  sealed: Uint8Array;
  mac: Uint8Array;
}

export function encodePairAccept(p: PairAccept): Uint8Array {
  return encode(new Map<number, CborValue>([
    [1, p.gatewayPublicKey], [2, p.gatewayId], [3, p.nonce], [4, p.sealed], [5, p.mac],
  ]), 1024);
}

export function decodePairAccept(bytes: Uint8Array): PairAccept {
  const m = decode(bytes, { maxDepth: 2 });
  if (!(m instanceof Map)) throw new Error('PairAccept must be a CBOR map');
  const pk = m.get(1), id = m.get(2), n = m.get(3), sealed = m.get(4), mac = m.get(5);
  if (!(pk instanceof Uint8Array) || pk.length !== 32) throw new Error('PairAccept gateway key must be 32 bytes');
  if (typeof id !== 'string') throw new Error('PairAccept gateway id must be text');
  if (!(n instanceof Uint8Array) || n.length !== 24) throw new Error('PairAccept nonce must be 24 bytes');
  if (!(sealed instanceof Uint8Array) || !(mac instanceof Uint8Array) || mac.length !== 32)
    throw new Error('PairAccept box or MAC malformed');
  return { gatewayPublicKey: pk, gatewayId: id, nonce: n, sealed, mac };
}

/** Gateway side: builds the PairAccept for a Hello (as received) and the operator's pair code. */
export function buildPairAccept(args: {
  helloBytes: Uint8Array;
  devicePublicKey: Uint8Array;
  deviceId: string;
  gatewayPublicKey: Uint8Array;
  gatewaySecretKey: Uint8Array;
  gatewayId: string;
  pairKey: Uint8Array;
  nonce: Uint8Array;
}): { accept: PairAccept; k: Uint8Array } {
  const h = sha256(args.helloBytes);
  const k = sharedKey(args.devicePublicKey, args.gatewaySecretKey);
  const inner = encode(new Map<number, CborValue>([[1, args.deviceId], [2, h]]));
  const sealed = secretbox(inner, args.nonce, k);
  const mac = hmac(args.pairKey, h, args.gatewayPublicKey, args.nonce);
  return {
    accept: { gatewayPublicKey: args.gatewayPublicKey, gatewayId: args.gatewayId, nonce: args.nonce, sealed, mac },
    k,
  };
}

export const PairCheck = { ok: 0, badMac: 1, badBox: 2, badGatewayId: 3, pinned: 4 } as const;

/**
 * Device side: checks a PairAccept against the hashes of the Hellos sent this boot.
 * Returns the shared key K and the Hello hash it matched, or the failure.
 */
export function verifyPairAccept(args: {
  accept: PairAccept;
  helloHashes: Uint8Array[];
  deviceId: string;
  deviceSecretKey: Uint8Array;
  pairKey: Uint8Array;
  pinnedGatewayId?: string;
}): { ok: true; k: Uint8Array; helloHash: Uint8Array } | { ok: false; why: number } {
  const a = args.accept;
  if (args.pinnedGatewayId && a.gatewayId !== args.pinnedGatewayId) return { ok: false, why: PairCheck.pinned };
  if (idFromPublicKey(a.gatewayPublicKey) !== a.gatewayId) return { ok: false, why: PairCheck.badGatewayId };
  let matched: Uint8Array | undefined;
  for (const h of args.helloHashes) {
    if (constantTimeEqual(hmac(args.pairKey, h, a.gatewayPublicKey, a.nonce), a.mac)) matched = h;
  }
  if (!matched) return { ok: false, why: PairCheck.badMac };
  const k = sharedKey(a.gatewayPublicKey, args.deviceSecretKey);
  const inner = secretboxOpen(a.sealed, a.nonce, k);
  if (!inner) return { ok: false, why: PairCheck.badBox };
  let m;
  try {
    m = decode(inner, { maxDepth: 2 });
  } catch {
    return { ok: false, why: PairCheck.badBox };
  }
  if (!(m instanceof Map) || m.get(1) !== args.deviceId) return { ok: false, why: PairCheck.badBox };
  const h2 = m.get(2);
  if (!(h2 instanceof Uint8Array) || !equal(h2, matched)) return { ok: false, why: PairCheck.badBox };
  return { ok: true, k, helloHash: matched };
}

/** Ks = sha256("gridlet-session-v1" ‖ K ‖ boot nonce ‖ n). */
export function sessionKey(k: Uint8Array, bootNonce: Uint8Array, n: Uint8Array): Uint8Array {
  return sha256(text('gridlet-session-v1'), k, bootNonce, n);
}

/** The device's MQTT password once paired: b32(hmac(Ks, "mqtt")). */
export function mqttPassword(ks: Uint8Array): string {
  return base32(hmac(ks, text('mqtt')));
}
