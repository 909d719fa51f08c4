// Guest CIDs (GUESTS.md "Deployment", WIRE.md guest-offer): CIDv1, raw codec, sha2-256 of the .wasm
// bytes. Binary form: 01 55 12 20 ‖ digest (36 bytes); text form: "b" ‖ base32 lower case, no padding.

import { base32, base32Decode, equal } from '../bytes.js';
import { sha256 } from '../crypto.js';

export const CID_PREFIX = new Uint8Array([0x01, 0x55, 0x12, 0x20]);
export const CID_BYTES = 36;

export function guestCid(wasm: Uint8Array): Uint8Array {
  const cid = new Uint8Array(CID_BYTES);
  cid.set(CID_PREFIX, 0);
  cid.set(sha256(wasm), 4);
  return cid;
}

/** Is this a CIDv1 raw sha2-256 (the only form a guest is named by)? */
export function isGuestCid(cid: Uint8Array): boolean {
  return cid.length === CID_BYTES && cid[0] === 0x01 && cid[1] === 0x55 && cid[2] === 0x12 && cid[3] === 0x20;
}

/** Does `wasm` hash to `cid`? */
export function cidMatches(cid: Uint8Array, wasm: Uint8Array): boolean {
  return isGuestCid(cid) && equal(cid, guestCid(wasm));
}

export function cidToText(cid: Uint8Array): string {
  return 'b' + base32(cid);
}

/** Parses "b…" text into a guest CID; undefined when it is not one. */
export function cidFromText(text: string): Uint8Array | undefined {
  if (text.length < 2 || text[0] !== 'b') return undefined;
  const bytes = base32Decode(text.slice(1));
  return bytes && isGuestCid(bytes) ? bytes : undefined;
}
