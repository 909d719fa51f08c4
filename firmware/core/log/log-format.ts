// The on-flash format of the record log: block header, record encodings and the block decoder.
// flash-log.ts decides what to write and when; this module only knows how bytes look.
//
// Block (one erase block of the partition):
//   [header, 48 bytes rounded up to writeAlign][record][record]…[0xff … erased]
// Header (little-endian):
//   0 'g' 1 'L' 2 version(1) 3 reserved(0)
//   4 blockSeq u32     generation: +1 for every block opened; the highest valid one is the head
//   8 eraseCount u32   how many times this block has been erased (wear report)
//   12 firstSeq u56    the record seq the block starts at (seqs of its own records are implicit from here)
//   19 acked u56       ack position when the block was opened
//   26 reclaimed u32   highest blockSeq reclaimed (emptied for space) when the block was opened
//   30 dropped u48     readings dropped for space, ever, when the block was opened
//   36 droppedEvents u32
//   40 reserved(0 ×4)  44 crc32 of bytes 0..43
// Record: a tag byte, a body, a CRC-32 of tag+body salted with the block's blockSeq, then 0x00 padding
// to writeAlign. Byte 0x00 where a record would start is padding (also how torn garbage is neutralised:
// it is overwritten with zeros, which NOR flash always allows); 0xff is erased space: the end.
//   readings 0x10|flags  [t][channels][values]  — deltas against the previous readings record of the
//            same block (channel values per channel, t), so each block decodes on its own
//            flags: 1 same channel list as the previous multi-reading record, 2 absolute values (a
//            delta would not be a safe integer), 4 same t (no t field), 8 single reading (channel
//            inline, no list)
//   readings 0x60|flags  the same, but t = previous t + the previous non-zero step (a meter's steady
//            period), so no t field; flag 4 is unused
//   event    0x20  seq, t, name length, name (UTF-8), data length, data (CBOR) — context-free, so a
//            record can be copied to another block as is ("relocated"; its seq is then below the
//            block's firstSeq)
//   ack      0x30  (seq of the last record before it) − acked
//   reclaim  0x40  blockSeq − reclaimed blockSeq, dropped, droppedEvents
// Integers: unsigned LEB128 varints (up to 2^53−1); signed ones put the sign in bit 0 of the first byte.

import { crc32 } from './crc32.js';

export const FORMAT_VERSION = 1;
export const HEADER_BYTES = 48;
/** Readings in one record, at most. */
export const MAX_GROUP = 32;
/** Longest event name in bytes. */
export const MAX_EVENT_NAME = 255;

export const Tag = { pad: 0x00, readings: 0x10, event: 0x20, ack: 0x30, reclaim: 0x40, periodic: 0x60, erased: 0xff } as const;
export const ReadingFlag = { sameList: 1, absolute: 2, sameT: 4, single: 8 } as const;

/** What BlockDecoder.step() found. */
export const Step = { end: 0, garbage: 1, readings: 2, event: 3, ack: 4, reclaim: 5 } as const;

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const TWO32 = 0x100000000;

export function alignUp(n: number, align: number): number {
  return Math.ceil(n / align) * align;
}

/** A growing-free byte writer over a fixed scratch buffer (sized by its owner for the largest record). */
export class Sink {
  readonly buf: Uint8Array;
  pos = 0;
  constructor(size: number) {
    this.buf = new Uint8Array(size);
  }
  u8(b: number): void {
    this.buf[this.pos++] = b;
  }
  uvarint(v: number): void {
    while (v >= 128) {
      this.buf[this.pos++] = (v % 128) | 128;
      v = Math.floor(v / 128);
    }
    this.buf[this.pos++] = v;
  }
  svarint(v: number): void {
    let m = v < 0 ? -v : v;
    let b = ((m % 64) << 1) | (v < 0 ? 1 : 0);
    m = Math.floor(m / 64);
    if (m > 0) b |= 128;
    this.buf[this.pos++] = b;
    if (m > 0) this.uvarint(m);
  }
  bytes(b: Uint8Array, start = 0, end = b.length): void {
    this.buf.set(b.subarray(start, end), this.pos);
    this.pos += end - start;
  }
  u32(v: number): void {
    this.buf[this.pos++] = v & 0xff;
    this.buf[this.pos++] = (v >>> 8) & 0xff;
    this.buf[this.pos++] = (v >>> 16) & 0xff;
    this.buf[this.pos++] = (v >>> 24) & 0xff;
  }
  /** Appends the record's CRC (salted) over `start..pos` and zero padding up to `align`. */
  seal(start: number, salt: number, align: number): void {
    this.u32(crc32(this.buf, start, this.pos, salt));
    const end = start + alignUp(this.pos - start, align);
    while (this.pos < end) this.buf[this.pos++] = 0;
  }
}

export function uvarintSize(v: number): number {
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

export function getU32(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
}
export function putU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = (v >>> 24) & 0xff;
}
function putWide(b: Uint8Array, o: number, v: number, bytes: number): void {
  putU32(b, o, v % TWO32);
  let hi = Math.floor(v / TWO32);
  for (let i = 4; i < bytes; i++) {
    b[o + i] = hi & 0xff;
    hi = hi >>> 8;
  }
}
function getWide(b: Uint8Array, o: number, bytes: number): number {
  let hi = 0;
  for (let i = bytes - 1; i >= 4; i--) hi = hi * 256 + b[o + i];
  return hi * TWO32 + getU32(b, o);
}

export interface BlockHeader {
  blockSeq: number;
  eraseCount: number;
  firstSeq: number;
  acked: number;
  reclaimed: number;
  dropped: number;
  droppedEvents: number;
}

export function encodeHeader(h: BlockHeader, out: Uint8Array): void {
  out.fill(0, 0, HEADER_BYTES);
  out[0] = 0x67;
  out[1] = 0x4c;
  out[2] = FORMAT_VERSION;
  putU32(out, 4, h.blockSeq);
  putU32(out, 8, h.eraseCount);
  putWide(out, 12, h.firstSeq, 7);
  putWide(out, 19, h.acked, 7);
  putU32(out, 26, h.reclaimed);
  putWide(out, 30, h.dropped, 6);
  putU32(out, 36, h.droppedEvents);
  putU32(out, 44, crc32(out, 0, 44));
}

/** Decodes a header, or returns undefined when the bytes are not a whole, valid one. */
export function decodeHeader(b: Uint8Array, into: BlockHeader): boolean {
  if (b.length < HEADER_BYTES || b[0] !== 0x67 || b[1] !== 0x4c || b[2] !== FORMAT_VERSION) return false;
  if (getU32(b, 44) !== crc32(b, 0, 44)) return false;
  into.blockSeq = getU32(b, 4);
  into.eraseCount = getU32(b, 8);
  into.firstSeq = getWide(b, 12, 7);
  into.acked = getWide(b, 19, 7);
  into.reclaimed = getU32(b, 26);
  into.dropped = getWide(b, 30, 6);
  into.droppedEvents = getU32(b, 36);
  if (into.blockSeq === 0 || into.firstSeq < 1 || into.firstSeq > MAX_SAFE || into.acked >= into.firstSeq) return false;
  return true;
}

export function emptyHeader(): BlockHeader {
  return { blockSeq: 0, eraseCount: 0, firstSeq: 0, acked: 0, reclaimed: 0, dropped: 0, droppedEvents: 0 };
}

/**
 * Walks the records of one block, keeping the delta context, without allocating per record.
 * After step() returns a record kind, the fields below describe it; `pos` is already past it.
 * Nothing is trusted before its CRC checks: a torn record comes back as Step.garbage at `start`.
 */
export class BlockDecoder {
  buf: Uint8Array = new Uint8Array(0);
  limit = 0;
  pos = 0;
  align = 1;
  blockSeq = 0;
  firstSeq = 0;
  /** Seq the next own (non-relocated) record of this block gets. */
  running = 0;
  prevT = 0;
  /** The last non-zero step between readings records' t. */
  prevDt = 0;
  readonly last = new Map<number, number>();
  readonly list: number[] = new Array(MAX_GROUP).fill(0);
  listLen = 0;

  // The current record.
  start = 0;
  /** Record bytes (tag to CRC, without padding). */
  bodyEnd = 0;
  seq = 0;
  t = 0;
  count = 0;
  readonly channels: number[] = new Array(MAX_GROUP).fill(0);
  readonly values: number[] = new Array(MAX_GROUP).fill(0);
  relocated = false;
  nameStart = 0;
  nameLen = 0;
  dataStart = 0;
  dataLen = 0;
  ackSeq = 0;
  reclaimed = 0;
  dropped = 0;
  droppedEvents = 0;

  #bad = false;
  #p = 0;

  begin(buf: Uint8Array, limit: number, from: number, header: BlockHeader, align: number): void {
    this.buf = buf;
    this.limit = Math.min(limit, buf.length);
    this.pos = from;
    this.align = align;
    this.blockSeq = header.blockSeq;
    this.firstSeq = header.firstSeq;
    this.running = header.firstSeq;
    this.prevT = 0;
    this.prevDt = 0;
    this.last.clear();
    this.listLen = 0;
  }

  /** True when every byte from `from` to the limit is erased. */
  erasedFrom(from: number): boolean {
    const b = this.buf;
    for (let i = from; i < this.limit; i++) if (b[i] !== 0xff) return false;
    return true;
  }

  step(): number {
    const b = this.buf;
    for (;;) {
      if (this.pos >= this.limit) {
        this.pos = this.limit;
        return Step.end;
      }
      const tag = b[this.pos];
      if (tag === Tag.pad) {
        this.pos += this.align;
        continue;
      }
      this.start = this.pos;
      if (tag === Tag.erased) return this.erasedFrom(this.pos) ? Step.end : Step.garbage;
      const kind = this.#record(tag);
      if (kind === Step.garbage) this.pos = this.start;
      return kind;
    }
  }

  #uvarint(): number {
    const b = this.buf;
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      if (this.#p >= this.limit) break;
      const x = b[this.#p++];
      v += (x & 127) * mul;
      if (x < 128) {
        if (v > MAX_SAFE) break;
        return v;
      }
      mul *= 128;
    }
    this.#bad = true;
    return 0;
  }

  #svarint(): number {
    if (this.#p >= this.limit) {
      this.#bad = true;
      return 0;
    }
    const x = this.buf[this.#p++];
    let m = (x >> 1) & 63;
    if (x & 128) m += this.#uvarint() * 64;
    if (m > MAX_SAFE) this.#bad = true;
    return x & 1 ? -m : m;
  }

  /** Checks the CRC at #p and moves `pos` past the record and its padding. */
  #sealed(): boolean {
    const p = this.#p;
    if (this.#bad || p + 4 > this.limit) return false;
    if (getU32(this.buf, p) !== crc32(this.buf, this.start, p, this.blockSeq)) return false;
    this.bodyEnd = p + 4;
    this.pos = this.start + alignUp(p + 4 - this.start, this.align);
    return true;
  }

  #record(tag: number): number {
    this.#bad = false;
    this.#p = this.start + 1;
    switch (tag & 0xf0) {
      case Tag.readings:
        return this.#readings(tag & 15, false);
      case Tag.periodic:
        if (tag & ReadingFlag.sameT) return Step.garbage;
        return this.#readings(tag & 15, true);
      case Tag.event: {
        if (tag !== Tag.event) return Step.garbage;
        const seq = this.#uvarint();
        const t = this.#uvarint();
        const nameLen = this.#uvarint();
        if (nameLen > MAX_EVENT_NAME) return Step.garbage;
        this.nameStart = this.#p;
        this.#p += nameLen;
        const dataLen = this.#uvarint();
        this.dataStart = this.#p;
        this.#p += dataLen;
        if (this.#p > this.limit || !this.#sealed()) return Step.garbage;
        if (seq === this.running) this.relocated = false;
        else if (seq >= 1 && seq < this.firstSeq) this.relocated = true;
        else return Step.garbage;
        this.seq = seq;
        this.t = t;
        this.nameLen = nameLen;
        this.dataLen = dataLen;
        if (!this.relocated) this.running++;
        return Step.event;
      }
      case Tag.ack: {
        if (tag !== Tag.ack) return Step.garbage;
        const d = this.#uvarint();
        if (!this.#sealed() || d > this.running - 1) return Step.garbage;
        this.ackSeq = this.running - 1 - d;
        return Step.ack;
      }
      case Tag.reclaim: {
        if (tag !== Tag.reclaim) return Step.garbage;
        const d = this.#uvarint();
        const dropped = this.#uvarint();
        const droppedEvents = this.#uvarint();
        if (!this.#sealed() || d < 1 || d > this.blockSeq) return Step.garbage;
        this.reclaimed = this.blockSeq - d;
        this.dropped = dropped;
        this.droppedEvents = droppedEvents;
        return Step.reclaim;
      }
      default:
        return Step.garbage;
    }
  }

  #readings(flags: number, periodic: boolean): number {
    const single = (flags & ReadingFlag.single) !== 0;
    const sameList = (flags & ReadingFlag.sameList) !== 0;
    const absolute = (flags & ReadingFlag.absolute) !== 0;
    const sameT = (flags & ReadingFlag.sameT) !== 0;
    if (single && sameList) return Step.garbage;
    if (periodic && this.prevDt === 0) return Step.garbage;
    const tRaw = sameT || periodic ? 0 : absolute ? this.#uvarint() : this.#svarint();
    let n: number;
    const ch = this.channels;
    if (single) {
      n = 1;
      ch[0] = this.#uvarint();
    } else if (sameList) {
      n = this.listLen;
      if (n === 0) return Step.garbage;
      for (let i = 0; i < n; i++) ch[i] = this.list[i];
    } else {
      n = this.#uvarint();
      if (n < 1 || n > MAX_GROUP) return Step.garbage;
      for (let i = 0; i < n; i++) ch[i] = this.#uvarint();
    }
    const v = this.values;
    for (let i = 0; i < n; i++) v[i] = this.#svarint();
    if (!this.#sealed()) return Step.garbage;
    // Checked: validate everything before touching the context (the writer never repeats a channel
    // within one record, so the deltas are independent).
    const t = periodic ? this.prevT + this.prevDt : sameT ? this.prevT : absolute ? tRaw : this.prevT + tRaw;
    if (!Number.isSafeInteger(t) || t < 0) return Step.garbage;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < i; j++) if (ch[j] === ch[i]) return Step.garbage;
      if (!absolute) {
        const x = (this.last.get(ch[i]) ?? 0) + v[i];
        if (!Number.isSafeInteger(x)) return Step.garbage;
        v[i] = x;
      }
    }
    for (let i = 0; i < n; i++) this.last.set(ch[i], v[i]);
    if (!single) {
      for (let i = 0; i < n; i++) this.list[i] = ch[i];
      this.listLen = n;
    }
    this.t = t;
    if (t !== this.prevT) this.prevDt = t - this.prevT;
    this.prevT = t;
    this.count = n;
    this.seq = this.running;
    this.running += n;
    return Step.readings;
  }
}
