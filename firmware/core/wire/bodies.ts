// WIRE.md "Bodies": every body is a CBOR map, key 0 is the type. One table describes each body's
// fields; encodeBody and decodeBody both follow it, so the two directions cannot disagree.

import { CborError, decode, encodeUintKeyed, type CborValue } from '../cbor.js';

export const Body = {
  readings: 1,
  event: 2,
  status: 3,
  job: 4,
  paired: 5,
  guestAck: 6,
  gap: 7,
  downAck: 8,
  fwStatus: 9,
  ack: 16,
  config: 17,
  guestOffer: 18,
  guestChunk: 19,
  guestRemove: 20,
  drEvent: 21,
  jobResult: 22,
  time: 23,
  unpair: 24,
  tariff: 25,
  fwOffer: 26,
  fwChunk: 27,
  fwCancel: 28,
} as const;

export type TextMap = { [key: string]: CborValue };
export type ReadingRecord = [t: number, channel: number, value: number];

export interface Readings { type: 1; first: number; records: ReadingRecord[] }
export interface EventBody { type: 2; seq: number; t: number; kind: string; data?: TextMap }
export interface Status {
  type: 3; t: number; uptime: number; buffered: number; dropped: number; heap: number;
  guests: [name: string, cid: Uint8Array, state: string][]; link: string;
}
export interface Job { type: 4; job: number; kind: string; input: TextMap }
export interface Paired { type: 5; firmware: string; model: string }
export interface GuestAck { type: 6; cid: Uint8Array; state: string; reason?: string }
export interface Gap { type: 7; first: number; last: number; reason: string }
export interface DownAck { type: 8; counter: number }
/** Firmware progress and outcomes (WIRE.md "Firmware updates"); `want` > 0 asks for chunks from `offset`. */
export interface FwStatus { type: 9; cid: Uint8Array; state: string; offset: number; want: number; version: string; reason?: string }
export interface Ack { type: 16; seq: number }
export interface Config { type: 17; values: TextMap }
export interface GuestOffer { type: 18; name: string; cid: Uint8Array; manifest: TextMap; size: number }
export interface GuestChunk { type: 19; cid: Uint8Array; offset: number; bytes: Uint8Array }
export interface GuestRemove { type: 20; name: string }
export interface DrEvent {
  type: 21; id: string; start: number; duration: number; level: number; limit?: number;
  modification: number; window?: number;
}
export interface JobResult { type: 22; job: number; index: number; text: string; final: boolean; error?: string }
export interface Time { type: 23; time: number }
export interface Unpair { type: 24 }
export interface Tariff { type: 25; price: number; currency: string; from: number; until: number }
export interface FwOffer { type: 26; manifest: Uint8Array; signature: Uint8Array }
export interface FwChunk { type: 27; cid: Uint8Array; offset: number; bytes: Uint8Array }
export interface FwCancel { type: 28; cid: Uint8Array }

export type UpBody = Readings | EventBody | Status | Job | Paired | GuestAck | Gap | DownAck | FwStatus;
export type DownBody = Ack | Config | GuestOffer | GuestChunk | GuestRemove | DrEvent | JobResult | Time | Unpair | Tariff | FwOffer | FwChunk | FwCancel;
export type AnyBody = UpBody | DownBody;

// Field kinds. `uint` is 0..2^53-1; `int` any safe integer.
const U = 1, I = 2, T = 3, B = 4, M = 5, L = 6, Z = 7, R = 8, G = 9;
type Kind = typeof U | typeof I | typeof T | typeof B | typeof M | typeof L | typeof Z | typeof R | typeof G;
type Field = readonly [key: number, name: string, kind: Kind, optional?: true];

const SCHEMA: { [type: number]: readonly Field[] } = {
  1: [[1, 'first', U], [2, 'records', R]],
  2: [[1, 'seq', U], [2, 't', U], [3, 'kind', T], [4, 'data', M, true]],
  3: [[1, 't', U], [2, 'uptime', U], [3, 'buffered', U], [4, 'dropped', U], [5, 'heap', U], [6, 'guests', G], [7, 'link', T]],
  4: [[1, 'job', U], [2, 'kind', T], [3, 'input', M]],
  5: [[1, 'firmware', T], [2, 'model', T]],
  6: [[1, 'cid', B], [2, 'state', T], [3, 'reason', T, true]],
  7: [[1, 'first', U], [2, 'last', U], [3, 'reason', T]],
  8: [[1, 'counter', U]],
  9: [[1, 'cid', B], [2, 'state', T], [3, 'offset', U], [4, 'want', U], [5, 'version', T], [6, 'reason', T, true]],
  16: [[1, 'seq', U]],
  17: [[1, 'values', M]],
  18: [[1, 'name', T], [2, 'cid', B], [3, 'manifest', M], [4, 'size', U]],
  19: [[1, 'cid', B], [2, 'offset', U], [3, 'bytes', B]],
  20: [[1, 'name', T]],
  21: [[1, 'id', T], [2, 'start', U], [3, 'duration', U], [4, 'level', U], [5, 'limit', U, true], [6, 'modification', U], [7, 'window', U, true]],
  22: [[1, 'job', U], [2, 'index', U], [3, 'text', T], [4, 'final', Z], [5, 'error', T, true]],
  23: [[1, 'time', U]],
  24: [],
  25: [[1, 'price', I], [2, 'currency', T], [3, 'from', U], [4, 'until', U]],
  26: [[1, 'manifest', B], [2, 'signature', B]],
  27: [[1, 'cid', B], [2, 'offset', U], [3, 'bytes', B]],
  28: [[1, 'cid', B]],
};

export const UPLINK_TYPES: readonly number[] = [1, 2, 3, 4, 5, 6, 7, 8, 9];
export const DOWNLINK_TYPES: readonly number[] = [16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28];

export class BodyError extends Error {
  constructor(message: string) {
    super(message);
  }
}
// On a meter Error.prototype is frozen, so `this.name = …` in the constructor would throw there.
Object.defineProperty(BodyError.prototype, 'name', { value: 'BodyError' });

function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function isTextMap(v: unknown): v is TextMap {
  return typeof v === 'object' && v !== null && !(v instanceof Map) && !(v instanceof Uint8Array) && !Array.isArray(v) &&
    Object.getPrototypeOf(v) === Object.prototype;
}

function check(kind: Kind, v: unknown, where: string): void {
  switch (kind) {
    case U:
      if (!isUint(v)) throw new BodyError(`${where} must be an unsigned integer`);
      return;
    case I:
      if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new BodyError(`${where} must be an integer`);
      return;
    case T:
      if (typeof v !== 'string') throw new BodyError(`${where} must be text`);
      return;
    case B:
      if (!(v instanceof Uint8Array)) throw new BodyError(`${where} must be a byte string`);
      return;
    case M:
      // An empty CBOR map decodes as an empty object; maps with non-text keys come back as Map.
      if (!isTextMap(v)) throw new BodyError(`${where} must be a map with text keys`);
      return;
    case Z:
      if (typeof v !== 'boolean') throw new BodyError(`${where} must be a boolean`);
      return;
    case R:
      if (!Array.isArray(v)) throw new BodyError(`${where} must be an array`);
      for (let i = 0; i < v.length; i++) {
        const r = v[i];
        if (!Array.isArray(r) || r.length !== 3 || !isUint(r[0]) || !isUint(r[1]) ||
            typeof r[2] !== 'number' || !Number.isSafeInteger(r[2]))
          throw new BodyError(`${where}[${i}] must be [t, channel, value] integers`);
      }
      return;
    case G:
      if (!Array.isArray(v)) throw new BodyError(`${where} must be an array`);
      for (let i = 0; i < v.length; i++) {
        const g = v[i];
        if (!Array.isArray(g) || g.length !== 3 || typeof g[0] !== 'string' || !(g[1] instanceof Uint8Array) || typeof g[2] !== 'string')
          throw new BodyError(`${where}[${i}] must be [name, cid bytes, state]`);
      }
      return;
    case L:
      if (!Array.isArray(v)) throw new BodyError(`${where} must be an array`);
      return;
  }
}

/** Encodes a body as its deterministic CBOR map. Throws BodyError when a field is missing or mistyped. */
export function encodeBody(body: AnyBody, max = 2048): Uint8Array {
  const schema = SCHEMA[body.type];
  if (!schema) throw new BodyError(`unknown body type ${body.type}`);
  // Key 0 and the schema's keys, in increasing order.
  const keys: number[] = [0];
  const values: CborValue[] = [body.type];
  const b = body as unknown as { [k: string]: unknown };
  for (let i = 0; i < schema.length; i++) {
    const [key, name, kind, optional] = schema[i];
    const v = b[name];
    if (v === undefined) {
      if (optional) continue;
      throw new BodyError(`body type ${body.type} needs field ${name}`);
    }
    check(kind, v, name);
    keys.push(key);
    values.push(v as CborValue);
  }
  return encodeUintKeyed(keys, values, max);
}

/**
 * Decodes and validates a body. Unknown keys are ignored (a newer peer may add optional fields);
 * a missing or mistyped known field is an error. `allowed` restricts the types accepted (uplink or downlink).
 */
export function decodeBody(bytes: Uint8Array, allowed?: readonly number[]): AnyBody {
  let v: CborValue;
  try {
    v = decode(bytes, { maxDepth: 8 });
  } catch (e) {
    throw new BodyError(`body is not valid CBOR: ${(e as Error).message}`);
  }
  if (!(v instanceof Map)) throw new BodyError('body must be a CBOR map with integer keys');
  const type = v.get(0);
  if (!isUint(type) || !SCHEMA[type]) throw new BodyError(`unknown body type ${String(type)}`);
  if (allowed && allowed.indexOf(type) < 0) throw new BodyError(`body type ${type} is not allowed in this direction`);
  const out: { [k: string]: unknown } = { type };
  for (const [key, name, kind, optional] of SCHEMA[type]) {
    const f = v.get(key);
    if (f === undefined) {
      if (optional) continue;
      throw new BodyError(`body type ${type} lacks field ${key} (${name})`);
    }
    check(kind, f, `field ${key} (${name})`);
    out[name] = f;
  }
  return out as unknown as AnyBody;
}

export { CborError };
