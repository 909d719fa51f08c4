// Persistent monotonic counters: the frame counters of WIRE.md ("persisted across reboots; a device
// may reserve counters in blocks and skip ahead after a reboot; gaps are allowed") and any other
// high-water mark that must never go back (the highest downlink counter acted on).
//
// Design: two blocks of their own Flash (partition.ts puts them at the end of the data partition),
// used in turn. A block is [header][record][record]…; a record is `0x50, name length, name, value
// (varint), CRC-32 salted with the block's generation`, zero-padded to writeAlign, and says "counter
// `name` may have been used up to `value`". A counter's value is the highest record for its name.
// A record that a power cut tears fails its CRC and is zeroed at the next boot; the value it was
// writing was never handed out (reserveCounter() returns only after the write), so nothing is lost.
// When the active block is full, the other one is erased, a snapshot of every counter is written
// into it, and only then its header (generation + 1): the header is the commit, so a cut anywhere in
// between leaves the old block active and intact.
// Reserving `block` values per write keeps flash writes rare: with a frame every 10 s and blocks of
// 64, one small record every ~11 minutes, one erase every few days.

import type { Flash } from '../ports.js';
import { utf8Decode, utf8Encode } from '../bytes.js';
import { crc32 } from './crc32.js';
import { alignUp, getU32, putU32, Sink } from './log-format.js';

const HEADER = 16;
const TAG = 0x50;
const MAX_NAME = 32;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

interface Counter {
  /** Highest value persisted (reserved or raised). */
  hwm: number;
  /** Next value next() hands out. */
  next: number;
}

export class FlashCounters {
  readonly #flash: Flash;
  readonly #bs: number;
  readonly #align: number;
  readonly #hdr: number;
  readonly #maxNames: number;
  readonly #counters = new Map<string, Counter>();
  readonly #out: Sink;
  /** Active block (0 or 1), -1 before the first write. */
  #active = -1;
  #gen = 0;
  #end = 0;
  readonly #erases = [0, 0];
  /** Flash writes made, for tests and benchmarks. */
  writes = 0;

  constructor(flash: Flash) {
    if (flash.blocks < 2) throw new RangeError('persistent counters need 2 flash blocks');
    if (flash.erasedValue !== 0xff) throw new RangeError('persistent counters need NOR flash that erases to 0xff');
    this.#flash = flash;
    this.#bs = flash.blockSize;
    this.#align = flash.writeAlign;
    this.#hdr = alignUp(HEADER, this.#align);
    const record = alignUp(1 + 1 + MAX_NAME + 8 + 4, this.#align);
    this.#maxNames = Math.min(16, Math.floor((this.#bs - this.#hdr) / record) - 1);
    if (this.#maxNames < 2) throw new RangeError(`flash blocks of ${this.#bs} bytes are too small for the counters`);
    this.#out = new Sink(record);
    this.#recover();
  }

  /** The highest value persisted for `name` (0 if none): every value handed out so far is at most this. */
  value(name: string): number {
    return this.#counters.get(name)?.hwm ?? 0;
  }

  /**
   * Reserves the next `block` values of counter `name` (values start at 1) and returns the first; they
   * are persisted as used before this returns, so after a reboot the counter continues above them.
   */
  reserveCounter(name: string, block = 64): number {
    if (!(Number.isSafeInteger(block) && block >= 1)) throw new RangeError(`counter block ${block} must be a positive integer`);
    const c = this.#counter(name);
    const first = c.hwm + 1;
    this.#persist(name, c.hwm + block);
    c.next = c.hwm + 1;
    return first;
  }

  /** The next value of counter `name`, never handed out before, not even before a power cut. */
  next(name: string, block = 64): number {
    const c = this.#counter(name);
    if (c.next > c.hwm) {
      this.#persist(name, c.hwm + block);
      // c.next stays: the values between it and the old high-water mark were never handed out.
    }
    return c.next++;
  }

  /** Persists that `value` has been used (e.g. the highest downlink counter acted on). Never lowers it. */
  raise(name: string, value: number): void {
    if (!(Number.isSafeInteger(value) && value >= 0)) throw new RangeError(`counter value ${value} must be a non-negative integer`);
    const c = this.#counter(name);
    if (value > c.hwm) this.#persist(name, value);
    if (c.next <= value) c.next = value + 1;
  }

  /** Erase counts of the two blocks. */
  wear(): number[] {
    return this.#erases.slice();
  }

  #counter(name: string): Counter {
    let c = this.#counters.get(name);
    if (c) return c;
    const bytes = utf8Encode(name);
    if (bytes.length === 0 || bytes.length > MAX_NAME) throw new RangeError(`counter name "${name}" must be 1 to ${MAX_NAME} bytes`);
    if (this.#counters.size >= this.#maxNames) throw new RangeError(`at most ${this.#maxNames} persistent counters fit; "${name}" is one too many`);
    c = { hwm: 0, next: 1 };
    this.#counters.set(name, c);
    return c;
  }

  #persist(name: string, hwm: number): void {
    if (hwm > MAX_SAFE) throw new RangeError(`counter "${name}" would pass 2^53-1`);
    const size = this.#encode(name, hwm, this.#gen);
    if (this.#active < 0 || this.#end + size > this.#bs) this.#compact(name, hwm);
    else {
      this.#flash.write(this.#active * this.#bs + this.#end, this.#out.buf.subarray(0, size));
      this.writes++;
      this.#end += size;
    }
    this.#counters.get(name)!.hwm = hwm;
  }

  #encode(name: string, value: number, gen: number): number {
    const out = this.#out;
    const bytes = utf8Encode(name);
    out.pos = 0;
    out.u8(TAG);
    out.uvarint(bytes.length);
    out.bytes(bytes);
    out.uvarint(value);
    out.seal(0, gen, this.#align);
    return out.pos;
  }

  /** Writes every counter (with `name` at `hwm`) into the other block, then commits it with its header. */
  #compact(name: string, hwm: number): void {
    const target = this.#active < 0 ? 0 : 1 - this.#active;
    const gen = this.#gen + 1;
    const base = target * this.#bs;
    this.#flash.eraseBlock(target);
    this.#erases[target]++;
    let end = this.#hdr;
    const snapshot = new Uint8Array(this.#bs - this.#hdr);
    let used = 0;
    this.#counters.forEach((c, n) => {
      const size = this.#encode(n, n === name ? hwm : c.hwm, gen);
      snapshot.set(this.#out.buf.subarray(0, size), used);
      used += size;
    });
    if (used > 0) {
      this.#flash.write(base + end, snapshot.subarray(0, used));
      this.writes++;
      end += used;
    }
    const header = new Uint8Array(this.#hdr);
    header[0] = 0x67;
    header[1] = 0x43;
    header[2] = 1;
    putU32(header, 4, gen);
    putU32(header, 8, this.#erases[target]);
    putU32(header, 12, crc32(header, 0, 12));
    this.#flash.write(base, header);
    this.writes++;
    this.#active = target;
    this.#gen = gen;
    this.#end = end;
  }

  #recover(): void {
    const gens = [0, 0];
    for (let b = 0; b < 2; b++) {
      const h = this.#flash.read(b * this.#bs, HEADER);
      if (h[0] === 0x67 && h[1] === 0x43 && h[2] === 1 && getU32(h, 12) === crc32(h, 0, 12)) {
        gens[b] = getU32(h, 4);
        this.#erases[b] = getU32(h, 8);
      }
    }
    if (gens[0] === 0 && gens[1] === 0) return;
    const active = gens[1] > gens[0] ? 1 : 0;
    // The other block's values are older but harmless to include; a cut compaction may have left it
    // with its previous contents.
    if (gens[1 - active] > 0) this.#scan(1 - active, gens[1 - active]);
    this.#end = this.#scan(active, gens[active]);
    this.#active = active;
    this.#gen = gens[active];
    const buf = this.#flash.read(active * this.#bs, this.#bs);
    let last = this.#bs - 1;
    while (last >= this.#end && buf[last] === 0xff) last--;
    const tornEnd = alignUp(last + 1, this.#align);
    if (tornEnd > this.#end) {
      // A torn record: zero it (NOR flash can always clear bits) and continue after it.
      this.#flash.write(active * this.#bs + this.#end, new Uint8Array(tornEnd - this.#end));
      this.writes++;
      this.#end = tornEnd;
    }
    this.#counters.forEach((c) => (c.next = c.hwm + 1));
  }

  /** Reads the valid records of a block into the counters; returns the end of the last one. */
  #scan(block: number, gen: number): number {
    const b = this.#flash.read(block * this.#bs, this.#bs);
    let pos = this.#hdr;
    while (pos < this.#bs) {
      if (b[pos] === 0) {
        pos += this.#align;
        continue;
      }
      if (b[pos] !== TAG) break;
      let p = pos + 1;
      const nameLen = b[p++];
      if (nameLen === 0 || nameLen > MAX_NAME || p + nameLen > this.#bs) break;
      const nameStart = p;
      p += nameLen;
      let value = 0;
      let mul = 1;
      let ok = false;
      for (let i = 0; i < 8 && p < this.#bs; i++) {
        const x = b[p++];
        value += (x & 127) * mul;
        mul *= 128;
        if (x < 128) {
          ok = value <= MAX_SAFE;
          break;
        }
      }
      if (!ok || p + 4 > this.#bs || getU32(b, p) !== crc32(b, pos, p, gen)) break;
      const name = utf8Decode(b, nameStart, nameStart + nameLen);
      if (name === undefined) break;
      let c = this.#counters.get(name);
      if (!c) {
        c = { hwm: 0, next: 1 };
        this.#counters.set(name, c);
      }
      if (value > c.hwm) c.hwm = value;
      pos += alignUp(p + 4 - pos, this.#align);
    }
    return pos;
  }
}

