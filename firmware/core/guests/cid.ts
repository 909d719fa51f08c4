// Guest CIDs (GUESTS.md "Deployment", WIRE.md guest-offer): CIDv1, raw codec, sha2-256 of the .wasm
// bytes. Binary form: 01 55 12 20 ‖ digest (36 bytes); text form: "b" ‖ base32 lower case, no padding.
// A world (GUESTS.md "Microworlds") is named by CIDv1, dag-cbor codec, sha2-256 of its bundle (the
// deterministic CBOR of its manifest and modules): 01 71 12 20 ‖ digest.

import { base32, base32Decode, equal } from '../bytes.js';
import { sha256 } from '../crypto.js';

export const CID_PREFIX = new Uint8Array([0x01, 0x55, 0x12, 0x20]);
export const CID_BYTES = 36;
/** Multicodec of a guest's CID (raw bytes) and of a world's (dag-cbor). */
export const RAW_CODEC = 0x55;
export const WORLD_CODEC = 0x71;

function cidOf(codec: number, bytes: Uint8Array): Uint8Array {
  const cid = new Uint8Array(CID_BYTES);
  cid.set(CID_PREFIX, 0);
  cid[1] = codec;
  cid.set(sha256(bytes), 4);
  return cid;
}

function isCid(cid: Uint8Array, codec: number): boolean {
  return cid.length === CID_BYTES && cid[0] === 0x01 && cid[1] === codec && cid[2] === 0x12 && cid[3] === 0x20;
}

export function guestCid(wasm: Uint8Array): Uint8Array {
  return cidOf(RAW_CODEC, wasm);
}

/** A world's CID: dag-cbor sha2-256 of its bundle. */
export function worldCid(bundle: Uint8Array): Uint8Array {
  return cidOf(WORLD_CODEC, bundle);
}

/** Is this a CIDv1 raw sha2-256 (the only form a guest is named by)? */
export function isGuestCid(cid: Uint8Array): boolean {
  return isCid(cid, RAW_CODEC);
}

/** Is this a CIDv1 dag-cbor sha2-256 (the form a world is named by)? */
export function isWorldCid(cid: Uint8Array): boolean {
  return isCid(cid, WORLD_CODEC);
}

/** Do `bytes` hash to `cid` (a guest's or a world's)? */
export function cidMatches(cid: Uint8Array, bytes: Uint8Array): boolean {
  if (isGuestCid(cid)) return equal(cid, guestCid(bytes));
  return isWorldCid(cid) && equal(cid, worldCid(bytes));
}

export function cidToText(cid: Uint8Array): string {
  return 'b' + base32(cid);
}

function fromText(text: string): Uint8Array | undefined {
  if (text.length < 2 || text[0] !== 'b') return undefined;
  return base32Decode(text.slice(1));
}

/** Parses "b…" text into a guest CID; undefined when it is not one. */
export function cidFromText(text: string): Uint8Array | undefined {
  const bytes = fromText(text);
  return bytes && isGuestCid(bytes) ? bytes : undefined;
}

/** Parses "b…" text into a guest's or a world's CID (what a gateway deploys); undefined when it is neither. */
export function deployableCidFromText(text: string): Uint8Array | undefined {
  const bytes = fromText(text);
  return bytes && (isGuestCid(bytes) || isWorldCid(bytes)) ? bytes : undefined;
}
