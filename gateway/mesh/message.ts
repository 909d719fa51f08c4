// Grid messages (MESH.md "Envelope"): `grid([42(pCID), payload, proof])`, deterministic CBOR, signed
// with a detached COSE_Sign1 Ed25519 proof over `[42(pCID), payload]` as the bytes were received.
// The decoder is strict: one well-formed deterministic item, exactly this shape, nothing trailing; it
// never re-encodes what it checks. Ed25519 signing is libsodium's where sodium-native loads
// (gateway/sodium.ts), else node:crypto's; verifying is node:crypto's.

import { createPrivateKey, createPublicKey, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
import { CborError, decode, decodePrefix, encode, Tagged, type CborValue } from '../../firmware/core/cbor.js';
import { concat, equal, toHex } from '../../firmware/core/bytes.js';
import { cidOf, link, linkCid, TAG_LINK } from './cid.js';
import { sodiumSigner } from '../sodium.js';

/** CBOR tag 1735551332 = 0x67726964, the bytes "grid". */
export const TAG_GRID = 1735551332;
export const TAG_COSE_SIGN1 = 18;
/** The encoding of the COSE protected header `{1: -8}` (alg: EdDSA). */
export const PROTECTED = new Uint8Array([0xa1, 0x01, 0x27]);
/** A message larger than this is refused before decoding. */
export const MAX_MESSAGE_BYTES = 1 << 20;
const MAX_DEPTH = 32;
/** `da 67 72 69 64` (tag 1735551332) then `83` (array of 3). */
const HEAD = new Uint8Array([0xda, 0x67, 0x72, 0x69, 0x64, 0x83]);

export type MessageFault = 'too-large' | 'malformed' | 'envelope' | 'pcid' | 'payload' | 'proof' | 'signature';

export class MessageError extends Error {
  constructor(readonly fault: MessageFault, message: string) {
    super(message);
    this.name = 'MessageError';
  }
}

export type Payload = { [key: string]: CborValue };

export interface GridMessage {
  /** The whole message as received (or encoded). */
  bytes: Uint8Array;
  /** Binary CID of `bytes`. */
  cid: Uint8Array;
  /** Binary CID of the protocol document (without the 0x00 prefix). */
  pcid: Uint8Array;
  payload: Payload;
  /** The signer's Ed25519 public key (COSE kid). */
  kid: Uint8Array;
  signature: Uint8Array;
  /** The deterministic encoding of `[42(pCID), payload]` made of the received bytes. */
  signable: Uint8Array;
}

export interface Signer {
  publicKey: Uint8Array;
  sign(data: Uint8Array): Uint8Array;
}

const ED25519_PKCS8 = new Uint8Array([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);
const ED25519_SPKI = new Uint8Array([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]);

/** An Ed25519 signer from a 32-byte seed (the gateway identity's mesh key): libsodium's, else node:crypto's. */
export function signerFromSeed(seed: Uint8Array, publicKey: Uint8Array): Signer {
  if (seed.length !== 32 || publicKey.length !== 32) throw new Error('an Ed25519 seed and public key are 32 bytes each');
  const fast = sodiumSigner(seed);
  if (fast) {
    if (!equal(fast.publicKey, publicKey)) throw new Error('the Ed25519 public key does not belong to the seed');
    return { publicKey: new Uint8Array(publicKey), sign: fast.sign };
  }
  const key = createPrivateKey({ key: Buffer.from(concat(ED25519_PKCS8, seed)), format: 'der', type: 'pkcs8' });
  const derived = new Uint8Array(createPublicKey(key).export({ format: 'der', type: 'spki' })).subarray(12);
  if (!equal(derived, publicKey)) throw new Error('the Ed25519 public key does not belong to the seed');
  return { publicKey: new Uint8Array(publicKey), sign: (data) => new Uint8Array(edSign(null, data, key)) };
}

const publicKeys = new Map<string, KeyObject>();
function publicKeyObject(kid: Uint8Array): KeyObject {
  const hex = toHex(kid);
  let k = publicKeys.get(hex);
  if (!k) {
    k = createPublicKey({ key: Buffer.from(concat(ED25519_SPKI, kid)), format: 'der', type: 'spki' });
    if (publicKeys.size > 4096) publicKeys.clear();
    publicKeys.set(hex, k);
  }
  return k;
}

/** `["Signature1", h'a10127', h'', signable]` encoded: what the Ed25519 signature covers. */
export function sigStructure(signable: Uint8Array): Uint8Array {
  // Written out: `84 6a "Signature1" 43 a10127 40`, then signable as a byte string.
  const head = bstrHead(signable.length);
  const out = new Uint8Array(SIG_PREFIX.length + head.length + signable.length);
  out.set(SIG_PREFIX, 0);
  out.set(head, SIG_PREFIX.length);
  out.set(signable, SIG_PREFIX.length + head.length);
  return out;
}

const SIG_PREFIX = new Uint8Array([0x84, 0x6a, ...new TextEncoder().encode('Signature1'), 0x43, ...PROTECTED, 0x40]);

/** The head of a CBOR byte string of `n` bytes. */
function bstrHead(n: number): Uint8Array {
  if (n < 24) return new Uint8Array([0x40 + n]);
  if (n < 0x100) return new Uint8Array([0x58, n]);
  if (n < 0x10000) return new Uint8Array([0x59, n >> 8, n & 0xff]);
  return new Uint8Array([0x5a, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
}

/**
 * Encodes and signs a message; the result is what travels and what its CID names. The payload is
 * encoded once: the message is the signable's items after the grid head, then the proof
 * `18([h'a10127', {4: kid}, null, signature])`, the bytes the generic encoder would make.
 */
export function encodeMessage(pcid: Uint8Array, payload: Payload, signer: Signer): GridMessage {
  const signable = messageSignable(pcid, payload);
  return assemble(pcid, payload, signable, signer.publicKey, signer.sign(sigStructure(signable)));
}

/** What encodeMessage signs a message over: the deterministic encoding of `[42(pCID), payload]` (signable). */
export function messageSignable(pcid: Uint8Array, payload: Payload): Uint8Array {
  return encode([link(pcid), payload]);
}

/**
 * encodeMessage's result from a signature made elsewhere (sign-pool.ts: on a worker thread) over
 * sigStructure(signable): the same bytes.
 */
export function assembleMessage(pcid: Uint8Array, payload: Payload, signable: Uint8Array, kid: Uint8Array, signature: Uint8Array): GridMessage {
  return assemble(pcid, payload, signable, kid, signature);
}

function assemble(pcid: Uint8Array, payload: Payload, signable: Uint8Array, kid: Uint8Array, signature: Uint8Array): GridMessage {
  if (kid.length !== 32 || signature.length !== 64) throw new Error('an Ed25519 key is 32 bytes and a signature 64');
  // d2 84 43 a10127 a1 04 58 20 <kid> f6 58 40 <signature>
  const proofHead = [0xd2, 0x84, 0x43, ...PROTECTED, 0xa1, 0x04, 0x58, 0x20];
  const size = HEAD.length + signable.length - 1 + proofHead.length + 32 + 3 + 64;
  if (size > MAX_MESSAGE_BYTES) throw new CborError(`encoding exceeds ${MAX_MESSAGE_BYTES} bytes`, MAX_MESSAGE_BYTES);
  const bytes = new Uint8Array(size);
  let at = 0;
  bytes.set(HEAD, at);
  at += HEAD.length;
  bytes.set(signable.subarray(1), at); // without its own head, 82 (an array of 2)
  at += signable.length - 1;
  bytes.set(proofHead, at);
  at += proofHead.length;
  bytes.set(kid, at);
  at += 32;
  bytes.set([0xf6, 0x58, 0x40], at);
  at += 3;
  bytes.set(signature, at);
  return { bytes, cid: cidOf(bytes), pcid: new Uint8Array(pcid), payload, kid, signature, signable };
}

/** The message as the generic CBOR encoder makes it (tests: encodeMessage gives these bytes). */
export function encodeMessageGeneric(pcid: Uint8Array, payload: Payload, kid: Uint8Array, signature: Uint8Array): Uint8Array {
  const unprotected = new Map<number, CborValue>([[4, kid]]);
  const proof = new Tagged(TAG_COSE_SIGN1, [PROTECTED, unprotected, null, signature]);
  return encode(new Tagged(TAG_GRID, [link(pcid), payload, proof]), MAX_MESSAGE_BYTES);
}

/** Is every value DAG-CBOR compatible (no floats, no undefined, text map keys, only tag 42 as a link)? */
function dagCheck(v: CborValue, path: string): void {
  if (v === undefined) throw new MessageError('payload', `${path}: undefined is not allowed`);
  if (v instanceof Tagged) {
    if (v.tag !== TAG_LINK) throw new MessageError('payload', `${path}: tag ${v.tag} is not allowed (only 42, a link)`);
    if (!linkCid(v)) throw new MessageError('payload', `${path}: tag 42 must hold a CIDv1 raw sha2-256`);
    return;
  }
  if (v instanceof Map) throw new MessageError('payload', `${path}: map keys must be text`);
  if (Array.isArray(v)) {
    v.forEach((x, i) => dagCheck(x, `${path}[${i}]`));
    return;
  }
  if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array)) {
    for (const k of Object.keys(v)) dagCheck(v[k], `${path}.${k}`);
  }
}

/**
 * Decodes a message strictly (envelope, determinism, pCID form, payload form, proof form) and
 * computes its CID. The signature is checked by verifySignature(); a caller trusts nothing before.
 */
export function decodeMessage(bytes: Uint8Array): GridMessage {
  if (bytes.length > MAX_MESSAGE_BYTES) throw new MessageError('too-large', `message of ${bytes.length} bytes exceeds ${MAX_MESSAGE_BYTES}`);
  let whole: CborValue;
  try {
    whole = decode(bytes, { canonical: true, maxDepth: MAX_DEPTH });
  } catch (e) {
    if (e instanceof CborError) throw new MessageError('malformed', `not one deterministic CBOR item: ${e.message}`);
    throw e;
  }
  if (bytes.length < HEAD.length || !equal(bytes.subarray(0, HEAD.length), HEAD) || !(whole instanceof Tagged)) {
    throw new MessageError('envelope', 'not grid([pCID, payload, proof]): expected tag 1735551332 around a 3-element array');
  }
  // Spans of the three items as received: the signature covers these exact bytes.
  let pos = HEAD.length;
  const spans: Uint8Array[] = [];
  for (let i = 0; i < 3; i++) {
    const [, n] = decodePrefix(bytes.subarray(pos), { canonical: true, maxDepth: MAX_DEPTH });
    spans.push(bytes.subarray(pos, pos + n));
    pos += n;
  }
  const [pcidItem, payload, proof] = (whole.value as CborValue[]);

  if (!(pcidItem instanceof Tagged) || pcidItem.tag !== TAG_LINK || !(pcidItem.value instanceof Uint8Array)) {
    throw new MessageError('pcid', 'the pCID must be tag 42 around a byte string');
  }
  const pcid = linkCid(pcidItem);
  if (!pcid) throw new MessageError('pcid', 'the pCID must be a CIDv1 raw sha2-256, with or without the 0x00 prefix');

  if (payload === null || typeof payload !== 'object' || Array.isArray(payload) || payload instanceof Map ||
      payload instanceof Uint8Array || payload instanceof Tagged) {
    throw new MessageError('payload', 'the payload must be a map with text keys');
  }
  dagCheck(payload, 'payload');

  if (!(proof instanceof Tagged) || proof.tag !== TAG_COSE_SIGN1 || !Array.isArray(proof.value) || proof.value.length !== 4) {
    throw new MessageError('proof', 'the proof must be a COSE_Sign1: tag 18 around [protected, unprotected, nil, signature]');
  }
  const [prot, unprot, detached, signature] = proof.value;
  if (!(prot instanceof Uint8Array) || !equal(prot, PROTECTED)) throw new MessageError('proof', "the protected header must be h'a10127' ({1: -8}, EdDSA)");
  if (!(unprot instanceof Map) || unprot.size !== 1 || !(unprot.get(4) instanceof Uint8Array) || (unprot.get(4) as Uint8Array).length !== 32) {
    throw new MessageError('proof', 'the unprotected header must be {4: kid} with a 32-byte Ed25519 public key');
  }
  if (detached !== null) throw new MessageError('proof', 'the COSE payload must be detached (nil)');
  if (!(signature instanceof Uint8Array) || signature.length !== 64) throw new MessageError('proof', 'the signature must be 64 bytes');

  return {
    bytes, cid: cidOf(bytes), pcid, payload: payload as Payload, kid: unprot.get(4) as Uint8Array, signature,
    signable: concat(new Uint8Array([0x82]), spans[0], spans[1]),
  };
}

/** Checks the Ed25519 signature over the Sig_structure of the received bytes. */
export function verifySignature(m: GridMessage): boolean {
  return ed25519Verify(m.kid, sigStructure(m.signable), m.signature);
}

/** Ed25519 (RFC 8032) by node:crypto: does `signature` verify for `data` under the 32-byte public key? */
export function ed25519Verify(publicKey: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    return publicKey.length === 32 && signature.length === 64 && edVerify(null, data, publicKeyObject(publicKey), signature);
  } catch {
    return false;
  }
}

/** decodeMessage + verifySignature; throws MessageError('signature') on a bad signature. */
export function openMessage(bytes: Uint8Array): GridMessage {
  const m = decodeMessage(bytes);
  if (!verifySignature(m)) throw new MessageError('signature', 'the Ed25519 signature does not verify');
  return m;
}
