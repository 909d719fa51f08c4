// Firmware releases (UPDATES in WIRE.md "Firmware updates"): a release manifest names an image by its
// CID (CIDv1 raw sha2-256, as guests are named), its size, version, the models it is for and the lowest
// version it may replace, and is Ed25519-signed by a release key. A meter carries the public release
// keys it trusts (built into the image) and checks every offer against them before it writes a byte.

import nacl from 'tweetnacl';
import { concat, equal, toHex, utf8Encode } from '../bytes.js';
import { decode, encode, type CborValue } from '../cbor.js';
import { sha256 } from '../crypto.js';
import { guestCid, isGuestCid } from '../guests/cid.js';

/** What a release signature covers, before the manifest bytes (domain separation). */
export const RELEASE_CONTEXT = 'gridlet-release-v1';
/** Key id: the first 8 bytes of sha256(public key). */
export const KEY_ID_BYTES = 8;

export interface ReleaseManifest {
  /** CIDv1 raw sha2-256 of the image bytes (36 bytes). */
  cid: Uint8Array;
  size: number;
  /** X.Y.Z */
  version: string;
  /** Models (Hello's model text) the image is built for. */
  models: string[];
  /** The lowest running version this release may replace (X.Y.Z; "0.0.0" for any). */
  minVersion: string;
  /** Key id of the signing release key. */
  keyId: Uint8Array;
  /** Unix seconds the release was signed. */
  created: number;
}

/** What fw-offer carries and what `gridlet firmware sign` writes beside the image. */
export interface SignedRelease {
  /** The manifest's deterministic CBOR, exactly as signed. */
  manifest: Uint8Array;
  signature: Uint8Array;
}

/** Parses X.Y.Z (each 0–999999, no leading zeros) into a comparable number; NaN when it is not one. */
export function versionNumber(v: string): number {
  // No RegExp: one made at module level does not survive preloading on a meter (docs/firmware.md).
  const parts = v.split('.');
  if (parts.length !== 3) return NaN;
  let n = 0;
  for (const p of parts) {
    if (p.length < 1 || p.length > 6 || (p.length > 1 && p[0] === '0')) return NaN;
    for (let i = 0; i < p.length; i++) if (p.charCodeAt(i) < 48 || p.charCodeAt(i) > 57) return NaN;
    n = n * 1_000_000 + Number(p);
  }
  return n;
}

export function isVersion(v: string): boolean {
  return !Number.isNaN(versionNumber(v));
}

/** Negative when a < b, 0 when equal, positive when a > b. Both must be X.Y.Z. */
export function compareVersions(a: string, b: string): number {
  return versionNumber(a) - versionNumber(b);
}

export function keyIdOf(publicKey: Uint8Array): Uint8Array {
  return sha256(publicKey).slice(0, KEY_ID_BYTES);
}

export function imageCid(image: Uint8Array): Uint8Array {
  return guestCid(image);
}

export function encodeManifest(m: ReleaseManifest): Uint8Array {
  const map = new Map<number, CborValue>([
    [1, m.cid], [2, m.size], [3, m.version], [4, m.models], [5, m.minVersion], [6, m.keyId], [7, m.created],
  ]);
  return encode(map);
}

/** Decodes a manifest; throws an Error naming what is wrong. */
export function decodeManifest(bytes: Uint8Array): ReleaseManifest {
  let v: CborValue;
  try {
    v = decode(bytes, { maxDepth: 4 });
  } catch (e) {
    throw new Error(`release manifest is not valid CBOR: ${(e as Error).message}`);
  }
  if (!(v instanceof Map)) throw new Error('release manifest must be a CBOR map with integer keys');
  const cid = v.get(1), size = v.get(2), version = v.get(3), models = v.get(4), minVersion = v.get(5), keyId = v.get(6), created = v.get(7);
  if (!(cid instanceof Uint8Array) || !isGuestCid(cid)) throw new Error('release manifest field 1 (cid) must be a CIDv1 raw sha2-256');
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0) throw new Error('release manifest field 2 (size) must be a positive integer');
  if (typeof version !== 'string' || !isVersion(version)) throw new Error('release manifest field 3 (version) must be X.Y.Z');
  if (!Array.isArray(models) || !models.length || !models.every((x) => typeof x === 'string' && x.length > 0 && x.length <= 64))
    throw new Error('release manifest field 4 (models) must be a non-empty array of model names');
  if (typeof minVersion !== 'string' || !isVersion(minVersion)) throw new Error('release manifest field 5 (minimum version) must be X.Y.Z');
  if (!(keyId instanceof Uint8Array) || keyId.length !== KEY_ID_BYTES) throw new Error('release manifest field 6 (key id) must be 8 bytes');
  if (typeof created !== 'number' || !Number.isSafeInteger(created) || created < 0) throw new Error('release manifest field 7 (created) must be unix seconds');
  return { cid, size, version, models: models as string[], minVersion, keyId, created };
}

function signedBytes(manifest: Uint8Array): Uint8Array {
  return concat(utf8Encode(RELEASE_CONTEXT), manifest);
}

/** Signs a manifest with an Ed25519 secret key (64 bytes, tweetnacl's form). */
export function signManifest(manifest: Uint8Array, secretKey: Uint8Array): Uint8Array {
  return nacl.sign.detached(signedBytes(manifest), secretKey);
}

/** Ed25519 key pair from a 32-byte seed. */
export function releaseKeyPair(seed: Uint8Array): { publicKey: Uint8Array; secretKey: Uint8Array } {
  return nacl.sign.keyPair.fromSeed(seed);
}

/** Why a meter refuses a release, as a short text that travels in fw-status (and shows in `gridlet firmware status`). */
export interface OfferCheck {
  running: string;
  model: string;
  /** Public keys of the release keys this image trusts. */
  keys: Uint8Array[];
  /** Bytes the inactive slot can hold. */
  slotSize: number;
}

/**
 * Checks a signed release as a meter does before writing a byte: the signature by a trusted key,
 * the model, the version against the running one and the manifest's minimum, the size against the slot.
 * Returns the manifest, or the reason it is refused.
 */
export function checkRelease(r: SignedRelease, c: OfferCheck): { ok: true; manifest: ReleaseManifest } | { ok: false; reason: string } {
  let m: ReleaseManifest;
  try {
    m = decodeManifest(r.manifest);
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
  const key = c.keys.find((k) => equal(keyIdOf(k), m.keyId));
  if (!c.keys.length) return { ok: false, reason: 'this meter has no release key built in; it accepts no firmware over the air' };
  if (!key) return { ok: false, reason: `bad signature: release key ${toHex(m.keyId)} is not one this firmware trusts` };
  if (r.signature.length !== nacl.sign.signatureLength || !nacl.sign.detached.verify(signedBytes(r.manifest), r.signature, key))
    return { ok: false, reason: `bad signature: the release is not signed by key ${toHex(m.keyId)}` };
  if (m.models.indexOf(c.model) < 0) return { ok: false, reason: `wrong model: the release is for ${m.models.join(', ')}, this meter is ${c.model}` };
  if (isVersion(c.running)) {
    if (compareVersions(m.version, c.running) <= 0) return { ok: false, reason: `version ${m.version} is not newer than the running ${c.running}` };
    if (compareVersions(c.running, m.minVersion) < 0) return { ok: false, reason: `the release needs at least ${m.minVersion} running; this meter runs ${c.running}` };
  }
  if (m.size > c.slotSize) return { ok: false, reason: `image of ${m.size} bytes does not fit the ${c.slotSize}-byte update slot` };
  return { ok: true, manifest: m };
}

/** The release file `gridlet firmware sign` writes: CBOR {1: manifest, 2: signature, 3: image}. */
export function encodeReleaseFile(r: SignedRelease, image: Uint8Array): Uint8Array {
  return encode(new Map<number, CborValue>([[1, r.manifest], [2, r.signature], [3, image]]), 1 << 30);
}

export function decodeReleaseFile(bytes: Uint8Array): { release: SignedRelease; manifest: ReleaseManifest; image: Uint8Array } {
  let v: CborValue;
  try {
    v = decode(bytes, { maxDepth: 4 });
  } catch (e) {
    throw new Error(`not a gridlet release file (CBOR {1: manifest, 2: signature, 3: image}): ${(e as Error).message}`);
  }
  if (!(v instanceof Map)) throw new Error('not a gridlet release file (CBOR {1: manifest, 2: signature, 3: image})');
  const manifest = v.get(1), signature = v.get(2), image = v.get(3);
  if (!(manifest instanceof Uint8Array) || !(signature instanceof Uint8Array) || !(image instanceof Uint8Array))
    throw new Error('release file: fields 1 (manifest), 2 (signature) and 3 (image) must be byte strings');
  return { release: { manifest, signature }, manifest: decodeManifest(manifest), image };
}

/** Does the image match the manifest's size and CID? The reason when it does not. */
export function imageMismatch(m: ReleaseManifest, image: Uint8Array): string | undefined {
  if (image.length !== m.size) return `truncated image: ${image.length} bytes, the manifest says ${m.size}`;
  if (!equal(imageCid(image), m.cid)) return 'image hash does not match the manifest\'s CID';
  return undefined;
}
