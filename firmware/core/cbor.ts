// Deterministic CBOR (RFC 8949 §4.2.1) for WIRE.md and MESH.md, small enough for XS.
// Encoding: shortest-form integers and lengths, definite lengths only, map keys sorted bytewise by
// their encoding. No floats (v1 carries none). Decoding is strict about structure and bounds and
// never trusts a declared length beyond the bytes actually present.

import { utf8Decode, utf8Encode } from './bytes.js';

export class Tagged {
  constructor(readonly tag: number, readonly value: CborValue) {}
}

export type CborKey = number | string;
export type CborValue =
  | number
  | bigint
  | string
  | boolean
  | null
  | undefined
  | Uint8Array
  | Tagged
  | CborValue[]
  | Map<CborKey, CborValue>
  | { [key: string]: CborValue };

export class CborError extends Error {
  constructor(message: string, readonly offset: number) {
    super(`${message} at byte ${offset}`);
  }
}
// On a meter Error.prototype is frozen, so `this.name = …` in the constructor would throw there.
Object.defineProperty(CborError.prototype, 'name', { value: 'CborError' });

// ---------------------------------------------------------------- encoder

class Writer {
  buf: Uint8Array;
  pos = 0;
  constructor(size: number | Uint8Array, readonly max: number) {
    this.buf = typeof size === 'number' ? new Uint8Array(size) : size;
  }
  ensure(n: number): void {
    const need = this.pos + n;
    if (need > this.max) throw new CborError(`encoding exceeds ${this.max} bytes`, this.pos);
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(Math.min(size, this.max));
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }
  byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  head(major: number, n: number): void {
    const m = major << 5;
    if (n < 24) this.byte(m | n);
    else if (n < 0x100) {
      this.ensure(2);
      this.buf[this.pos++] = m | 24;
      this.buf[this.pos++] = n;
    } else if (n < 0x10000) {
      this.ensure(3);
      this.buf[this.pos++] = m | 25;
      this.buf[this.pos++] = n >> 8;
      this.buf[this.pos++] = n & 0xff;
    } else if (n < 0x100000000) {
      this.ensure(5);
      this.buf[this.pos++] = m | 26;
      this.buf[this.pos++] = n >>> 24;
      this.buf[this.pos++] = (n >>> 16) & 0xff;
      this.buf[this.pos++] = (n >>> 8) & 0xff;
      this.buf[this.pos++] = n & 0xff;
    } else {
      this.ensure(9);
      const hi = Math.floor(n / 0x100000000);
      const lo = n >>> 0;
      this.buf[this.pos++] = m | 27;
      this.buf[this.pos++] = hi >>> 24;
      this.buf[this.pos++] = (hi >>> 16) & 0xff;
      this.buf[this.pos++] = (hi >>> 8) & 0xff;
      this.buf[this.pos++] = hi & 0xff;
      this.buf[this.pos++] = lo >>> 24;
      this.buf[this.pos++] = (lo >>> 16) & 0xff;
      this.buf[this.pos++] = (lo >>> 8) & 0xff;
      this.buf[this.pos++] = lo & 0xff;
    }
  }
  /** A text string; ASCII is written straight into the buffer, anything else through utf8Encode. */
  text(t: string): void {
    const n = t.length;
    if (!isAscii(t)) {
      const b = utf8Encode(t);
      this.head(3, b.length);
      this.bytes(b);
      return;
    }
    this.head(3, n);
    this.ensure(n);
    const buf = this.buf;
    let pos = this.pos;
    for (let i = 0; i < n; i++) buf[pos++] = t.charCodeAt(i);
    this.pos = pos;
  }
  bigHead(major: number, n: bigint): void {
    if (n < BigInt(Number.MAX_SAFE_INTEGER) + 1n) return this.head(major, Number(n));
    if (n >= 1n << 64n) throw new CborError('integer does not fit in 64 bits', this.pos);
    this.ensure(9);
    this.buf[this.pos++] = (major << 5) | 27;
    for (let shift = 56n; shift >= 0n; shift -= 8n) this.buf[this.pos++] = Number((n >> shift) & 0xffn);
  }
}

function isAscii(t: string): boolean {
  for (let i = 0; i < t.length; i++) if (t.charCodeAt(i) > 0x7f) return false;
  return true;
}

/**
 * Sorts ASCII keys in place into the order of their encodings: a shorter text's head is smaller
 * (shortest-form lengths), and for one length the bytes are the code units. Insertion sort: maps
 * here have a handful of keys.
 */
function sortAsciiKeys(keys: string[]): void {
  for (let i = 1; i < keys.length; i++) {
    const k = keys[i];
    let j = i - 1;
    while (j >= 0 && (keys[j].length > k.length || (keys[j].length === k.length && keys[j] > k))) {
      keys[j + 1] = keys[j];
      j--;
    }
    keys[j + 1] = k;
  }
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function writeValue(w: Writer, v: CborValue, depth: number): void {
  if (depth > 64) throw new CborError('nesting deeper than 64', w.pos);
  switch (typeof v) {
    case 'number':
      if (!Number.isInteger(v)) throw new CborError(`cannot encode non-integer number ${v} (v1 has no floats)`, w.pos);
      if (!Number.isSafeInteger(v)) throw new CborError(`integer ${v} is outside ±(2^53-1)`, w.pos);
      if (v >= 0) w.head(0, v);
      else w.head(1, -1 - v);
      return;
    case 'bigint':
      if (v >= 0n) w.bigHead(0, v);
      else w.bigHead(1, -1n - v);
      return;
    case 'string':
      w.text(v);
      return;
    case 'boolean':
      w.byte(v ? 0xf5 : 0xf4);
      return;
    case 'undefined':
      w.byte(0xf7);
      return;
    case 'object':
      if (v === null) {
        w.byte(0xf6);
        return;
      }
      if (v instanceof Uint8Array) {
        w.head(2, v.length);
        w.bytes(v);
        return;
      }
      if (Array.isArray(v)) {
        w.head(4, v.length);
        for (let i = 0; i < v.length; i++) writeValue(w, v[i], depth + 1);
        return;
      }
      if (v instanceof Tagged) {
        w.head(6, v.tag);
        writeValue(w, v.value, depth + 1);
        return;
      }
      if (v instanceof Map) {
        writeMap(w, Array.from(v.entries()), depth);
        return;
      }
      writeObject(w, v as { [key: string]: CborValue }, depth);
      return;
    default:
      throw new CborError(`cannot encode a ${typeof v}`, w.pos);
  }
}

/** A map of an object's own keys; with ASCII keys (every map of WIRE.md and MESH.md) without a writer per key. */
function writeObject(w: Writer, v: { [key: string]: CborValue }, depth: number): void {
  const keys = Object.keys(v);
  for (let i = 0; i < keys.length; i++) {
    if (!isAscii(keys[i])) {
      writeMap(w, keys.map((k) => [k, v[k]]), depth);
      return;
    }
  }
  sortAsciiKeys(keys);
  w.head(5, keys.length);
  for (let i = 0; i < keys.length; i++) {
    w.text(keys[i]);
    writeValue(w, v[keys[i]], depth + 1);
  }
}

function writeMap(w: Writer, entries: [CborKey, CborValue][], depth: number): void {
  let smallUints = true;
  for (let i = 0; i < entries.length; i++) {
    const k = entries[i][0];
    if (typeof k !== 'number' || k < 0 || !Number.isSafeInteger(k)) {
      smallUints = false;
      break;
    }
  }
  w.head(5, entries.length);
  if (smallUints) {
    // For unsigned integers, numeric order is bytewise order of their shortest encodings (bodies
    // are mostly built in key order: then nothing is sorted).
    for (let i = 1; i < entries.length; i++) {
      if ((entries[i - 1][0] as number) > (entries[i][0] as number)) {
        entries.sort((a, b) => (a[0] as number) - (b[0] as number));
        break;
      }
    }
    for (let i = 0; i < entries.length; i++) {
      if (i > 0 && entries[i][0] === entries[i - 1][0]) throw new CborError(`duplicate map key ${entries[i][0]}`, w.pos);
      w.head(0, entries[i][0] as number);
      writeValue(w, entries[i][1], depth + 1);
    }
    return;
  }
  const keyed = entries.map(([k, val]) => {
    const kw = new Writer(16, 1 << 16);
    writeValue(kw, k, depth + 1);
    return { key: kw.buf.subarray(0, kw.pos), val };
  });
  keyed.sort((a, b) => compareBytes(a.key, b.key));
  for (let i = 0; i < keyed.length; i++) {
    if (i > 0 && compareBytes(keyed[i].key, keyed[i - 1].key) === 0) throw new CborError('duplicate map key', w.pos);
    w.bytes(keyed[i].key);
    writeValue(w, keyed[i].val, depth + 1);
  }
}

/** Encodes a value as deterministic CBOR. `max` bounds the output (a frame is at most 2048 bytes). */
export function encode(value: CborValue, max = 1 << 24): Uint8Array {
  const w = scratchWriter(max);
  try {
    writeValue(w, value, 0);
    return w.buf.slice(0, w.pos);
  } finally {
    release(w);
  }
}

/**
 * Encodes a map whose keys are unsigned integers, given in increasing order as `keys[i]` → `values[i]`
 * (a WIRE.md body): the bytes encode() makes of the same Map, without making the Map.
 */
export function encodeUintKeyed(keys: readonly number[], values: readonly CborValue[], max = 1 << 24): Uint8Array {
  let inOrder = true;
  for (let i = 0; i < keys.length && inOrder; i++) {
    const k = keys[i];
    inOrder = typeof k === 'number' && k >= 0 && Number.isSafeInteger(k) && (i === 0 || k > keys[i - 1]);
  }
  const w = scratchWriter(max);
  try {
    if (!inOrder) writeMap(w, keys.map((key, j): [CborKey, CborValue] => [key, values[j]]), 0);
    else {
      w.head(5, keys.length);
      for (let i = 0; i < keys.length; i++) {
        w.head(0, keys[i]);
        writeValue(w, values[i], 1);
      }
    }
    return w.buf.slice(0, w.pos);
  } finally {
    release(w);
  }
}

// One buffer for encode() to write into, kept between calls while it is small (the result is a copy of
// what was written): most encodes are a frame body or a mesh message of a few hundred bytes, and a
// buffer of their own each was an allocation more per message. An encode that starts while another
// one runs gets a buffer of its own.
// (A property, not a module variable, and made at run time: on a meter this module is preloaded into
// flash, where a module variable cannot be assigned and what the preload made is read-only.)
const SCRATCH_KEEP = 1024;
const scratch: { buf: Uint8Array | undefined } = { buf: undefined };

function scratchWriter(max: number): Writer {
  const buf = scratch.buf;
  scratch.buf = undefined;
  return new Writer(buf ?? 256, max);
}

function release(w: Writer): void {
  if (w.buf.length <= SCRATCH_KEEP) scratch.buf = w.buf;
}

// ---------------------------------------------------------------- decoder

export interface DecodeOptions {
  /** Deepest nesting accepted (default 16). */
  maxDepth?: number;
  /** Reject anything that is not in deterministic form: long-form integers, unsorted or duplicate keys. */
  canonical?: boolean;
}

class Reader {
  pos = 0;
  constructor(readonly b: Uint8Array, readonly maxDepth: number, readonly canonical: boolean) {}
  fail(msg: string): never {
    throw new CborError(msg, this.pos);
  }
  // Reads the argument of a head; returns a number (or a bigint when it exceeds 2^53-1).
  arg(info: number): number | bigint {
    const b = this.b;
    if (info < 24) return info;
    let n: number;
    switch (info) {
      case 24:
        if (this.pos + 1 > b.length) this.fail('truncated');
        n = b[this.pos++];
        if (this.canonical && n < 24) this.fail('non-shortest integer');
        return n;
      case 25:
        if (this.pos + 2 > b.length) this.fail('truncated');
        n = (b[this.pos] << 8) | b[this.pos + 1];
        this.pos += 2;
        if (this.canonical && n < 0x100) this.fail('non-shortest integer');
        return n;
      case 26:
        if (this.pos + 4 > b.length) this.fail('truncated');
        n = ((b[this.pos] << 24) | (b[this.pos + 1] << 16) | (b[this.pos + 2] << 8) | b[this.pos + 3]) >>> 0;
        this.pos += 4;
        if (this.canonical && n < 0x10000) this.fail('non-shortest integer');
        return n;
      case 27: {
        if (this.pos + 8 > b.length) this.fail('truncated');
        const hi = ((b[this.pos] << 24) | (b[this.pos + 1] << 16) | (b[this.pos + 2] << 8) | b[this.pos + 3]) >>> 0;
        const lo = ((b[this.pos + 4] << 24) | (b[this.pos + 5] << 16) | (b[this.pos + 6] << 8) | b[this.pos + 7]) >>> 0;
        this.pos += 8;
        if (this.canonical && hi === 0) this.fail('non-shortest integer');
        if (hi < 0x200000) return hi * 0x100000000 + lo;
        return (BigInt(hi) << 32n) | BigInt(lo);
      }
      case 31:
        return this.fail('indefinite length is not allowed');
      default:
        return this.fail(`reserved additional information ${info}`);
    }
  }
  length(info: number, unit: number): number {
    const n = this.arg(info);
    // Every item takes at least `unit` bytes, so a length beyond what is left is a lie: refuse it
    // before allocating anything (this is what keeps "huge arrays" harmless).
    if (typeof n !== 'number' || n * unit > this.b.length - this.pos) this.fail(`length ${n} exceeds the input`);
    return n;
  }
  value(depth: number): CborValue {
    if (depth > this.maxDepth) this.fail(`nesting deeper than ${this.maxDepth}`);
    if (this.pos >= this.b.length) this.fail('truncated');
    const ib = this.b[this.pos++];
    const major = ib >> 5;
    const info = ib & 31;
    switch (major) {
      case 0:
        return this.arg(info);
      case 1: {
        const n = this.arg(info);
        return typeof n === 'number' && n < Number.MAX_SAFE_INTEGER ? -1 - n : -1n - BigInt(n);
      }
      case 2: {
        const n = this.length(info, 1);
        const out = this.b.slice(this.pos, this.pos + n);
        this.pos += n;
        return out;
      }
      case 3: {
        const n = this.length(info, 1);
        const s = utf8Decode(this.b, this.pos, this.pos + n);
        if (s === undefined) this.fail('text is not valid UTF-8');
        this.pos += n;
        return s;
      }
      case 4: {
        const n = this.length(info, 1);
        const out: CborValue[] = new Array(n);
        for (let i = 0; i < n; i++) out[i] = this.value(depth + 1);
        return out;
      }
      case 5:
        return this.map(this.length(info, 2), depth);
      case 6: {
        const tag = this.arg(info);
        if (typeof tag !== 'number') this.fail('tag number too large');
        return new Tagged(tag, this.value(depth + 1));
      }
      default:
        switch (info) {
          case 20:
            return false;
          case 21:
            return true;
          case 22:
            return null;
          case 23:
            return undefined;
          case 25:
          case 26:
          case 27:
            return this.fail('floating-point numbers are not allowed');
          case 31:
            return this.fail('unexpected break');
          default:
            return this.fail(`unsupported simple value ${info}`);
        }
    }
  }
  map(n: number, depth: number): CborValue {
    // Maps whose keys are all text become plain objects; any other key makes it a Map.
    const keys: CborKey[] = [];
    const vals: CborValue[] = [];
    let allText = true;
    let prevStart = -1;
    let prevEnd = -1;
    for (let i = 0; i < n; i++) {
      const start = this.pos;
      const k = this.value(depth + 1);
      const end = this.pos;
      if (typeof k === 'string') {
        // keep
      } else if (typeof k === 'number') allText = false;
      else this.fail('map keys must be integers or text');
      if (this.canonical && prevStart >= 0) {
        if (compareBytes(this.b.subarray(prevStart, prevEnd), this.b.subarray(start, end)) >= 0)
          this.fail('map keys are not in deterministic order');
      }
      prevStart = start;
      prevEnd = end;
      keys.push(k as CborKey);
      vals.push(this.value(depth + 1));
    }
    if (allText) {
      const o: { [key: string]: CborValue } = {};
      for (let i = 0; i < n; i++) {
        const k = keys[i] as string;
        if (Object.prototype.hasOwnProperty.call(o, k)) this.fail(`duplicate map key "${k}"`);
        Object.defineProperty(o, k, { value: vals[i], enumerable: true, writable: true, configurable: true });
      }
      return o;
    }
    const m = new Map<CborKey, CborValue>();
    for (let i = 0; i < n; i++) {
      if (m.has(keys[i])) this.fail(`duplicate map key ${String(keys[i])}`);
      m.set(keys[i], vals[i]);
    }
    return m;
  }
}

/** Decodes exactly one CBOR item that fills `bytes`; throws CborError on anything malformed. */
export function decode(bytes: Uint8Array, options: DecodeOptions = {}): CborValue {
  const r = new Reader(bytes, options.maxDepth ?? 16, options.canonical ?? false);
  const v = r.value(0);
  if (r.pos !== bytes.length) r.fail(`${bytes.length - r.pos} trailing bytes`);
  return v;
}

/** Decodes one item at the start of `bytes` and returns it with the number of bytes it took. */
export function decodePrefix(bytes: Uint8Array, options: DecodeOptions = {}): [CborValue, number] {
  const r = new Reader(bytes, options.maxDepth ?? 16, options.canonical ?? false);
  const v = r.value(0);
  return [v, r.pos];
}
