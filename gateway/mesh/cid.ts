// CIDs on the mesh (MESH.md): CIDv1, raw codec 0x55, sha2-256 of the exact bytes. Binary `01 55 12 20`
// ‖ digest (36 bytes); inside CBOR a link is tag 42 around 0x00 ‖ binary CID (the 0x00 form is always
// emitted; the bare form is accepted); as text, "b" ‖ base32 lower case (ARCHITECTURE.md).

import { sha256Of } from '../hash.js';
import { Tagged, type CborValue } from '../../firmware/core/cbor.js';
import { concat, equal } from '../../firmware/core/bytes.js';
import { cidFromText, cidToText, isGuestCid } from '../../firmware/core/guests/cid.js';

export const TAG_LINK = 42;

/** CIDv1 raw sha2-256 of bytes (the same bytes as the core's guestCid; SHA-256 from node:crypto). */
export function cidOf(bytes: Uint8Array): Uint8Array {
  const cid = new Uint8Array(36);
  cid[0] = 0x01;
  cid[1] = 0x55;
  cid[2] = 0x12;
  cid[3] = 0x20;
  cid.set(sha256Of(bytes), 4);
  return cid;
}
export const isCid: (b: Uint8Array) => boolean = isGuestCid;
export const cidText: (cid: Uint8Array) => string = cidToText;
export const parseCidText: (text: string) => Uint8Array | undefined = cidFromText;

/** A tag-42 link in the form encoders emit (0x00 prefix). */
export function link(cid: Uint8Array): Tagged {
  return new Tagged(TAG_LINK, concat(new Uint8Array([0]), cid));
}

/** The binary CID of a tag-42 link in either form; undefined when `v` is not a link to a CIDv1 raw sha2-256. */
export function linkCid(v: CborValue): Uint8Array | undefined {
  if (!(v instanceof Tagged) || v.tag !== TAG_LINK || !(v.value instanceof Uint8Array)) return undefined;
  const b = v.value;
  const cid = b.length === 37 && b[0] === 0 ? b.subarray(1) : b;
  return isCid(cid) ? new Uint8Array(cid) : undefined;
}

export function cidEqual(a: Uint8Array, b: Uint8Array): boolean {
  return equal(a, b);
}

export function compareCid(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}
