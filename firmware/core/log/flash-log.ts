// The store-and-forward record log on flash (WIRE.md "Records and acks"): every reading and event is
// appended durably with its seq, stays until an ack covers it, and survives a power cut at any byte.
// The byte format is in log-format.ts; this module is the policy.
//
// Blocks are used in a circle. The live blocks form a contiguous "chain" ending at the head (the block
// being written); the block after the head is always free, so opening the next block never has to
// wait. Seqs of a block's own records are implicit (header firstSeq + position), so readings cost no
// seq bytes; deltas restart at every block, so each block decodes on its own.
//
// Recovery (constructor): read every header; the valid header with the highest blockSeq is the head.
// Decode the head: its records give the next seq, the latest ack marker and reclaim marker, and the
// delta context to continue with. A torn last write leaves garbage after the last valid record: it is
// overwritten with zeros (NOR flash can always clear bits; so this needs plain NOR semantics, not
// ESP32 flash encryption) and writing continues after it. Then walk back from the head through
// blocks whose blockSeq and firstSeq follow on, while they still hold something unacked and have not
// been reclaimed: that is the chain. Nothing else is trusted, so a torn erase or a torn header only
// ever hits a block outside the chain. If the chain fills every block, a reclaim was cut short: it is
// redone, deterministically, rewriting a torn copy with the very same bytes. A cut during recovery is
// just another cut. Seqs: the next seq is the head's last valid record + 1, so it never goes below a
// seq any append returned (only an append that never returned, and was never read, can see its seq
// used again).
//
// Trimming: when an ack covers every record of the oldest chain block, it leaves the chain (it is erased
// only when reused). The ack itself is an ack marker in the head (or the next header's `acked`).
//
// Full: when opening a block leaves no free block, the oldest block is reclaimed: its unacked events
// are copied into the new head ("relocated", keeping their seqs), its readings are dropped and counted,
// and a reclaim marker commits it. read() reports the seqs below the oldest chain block that are
// neither acked nor relocated events as gap entries ("full"): dropped ranges need no records of their
// own. Only if one block's unacked events exceed the relocation budget (most of a block: events alone
// have filled the log) are its oldest events dropped too (droppedEvents).
//
// RAM: a few numbers per block and one block-sized buffer per read or recovery; no per-record index.

import type { Flash } from '../ports.js';
import { decode as cborDecode, encode as cborEncode, type CborValue } from '../cbor.js';
import { utf8Decode, utf8Encode } from '../bytes.js';
import type { BatchRecordLog, LogEntry, LogStats } from './record-log.js';
import {
  alignUp,
  BlockDecoder,
  type BlockHeader,
  decodeHeader,
  emptyHeader,
  encodeHeader,
  HEADER_BYTES,
  MAX_EVENT_NAME,
  MAX_GROUP,
  ReadingFlag,
  Sink,
  Step,
  Tag,
  uvarintSize,
} from './log-format.js';

/** Bytes the log wrote, by purpose, since it was opened (for benchmarks and the status report). */
export interface FlashLogIo {
  readings: number;
  events: number;
  /** Reading and event records written by appends (tag, body, CRC, padding). */
  recordBytes: number;
  /** The readings' share of recordBytes. */
  readingBytes: number;
  ackBytes: number;
  headerBytes: number;
  reclaimBytes: number;
  /** Event records copied forward out of reclaimed blocks. */
  relocatedBytes: number;
  /** Torn garbage neutralised with zeros at recovery. */
  zeroedBytes: number;
  erases: number;
}

export interface FlashLogWear {
  /** Erase count of every block, from the block headers (a block whose header was lost: the lowest known count). */
  eraseCounts: number[];
  min: number;
  max: number;
}

const EMPTY = new Uint8Array(0);
const MIN_BLOCK_SIZE = 512;

export class LogInvariantError extends Error {
  constructor(message: string) {
    super(`flash log invariant broken: ${message}`);
  }
}
// On a meter Error.prototype is frozen, so `this.name = …` in the constructor would throw there.
Object.defineProperty(LogInvariantError.prototype, 'name', { value: 'LogInvariantError' });

function invariant(ok: boolean, message: string): void {
  if (!ok) throw new LogInvariantError(message);
}

export class FlashLog implements BatchRecordLog {
  readonly #flash: Flash;
  readonly #n: number;
  readonly #bs: number;
  readonly #align: number;
  /** Header bytes, rounded up to writeAlign. */
  readonly #hdr: number;
  /** Largest record (bytes on flash); a quarter block, so relocation always leaves room for one. */
  readonly #maxRecord: number;
  /** Room kept for one reclaim marker. */
  readonly #markerMax: number;
  /** Event bytes a reclaim may copy into the new head. */
  readonly #relocBudget: number;
  /** End of torn garbage after the head's last record, found by recovery and not yet dealt with (0: none). */
  #tornEnd = 0;

  // Per block (index = physical block).
  readonly #seqOf: Float64Array; // blockSeq of a valid header, 0 if none
  readonly #eraseOf: Float64Array; // -1 when unknown (header lost)
  readonly #firstOf: Float64Array;
  readonly #endOf: Float64Array; // first byte after the last record
  readonly #relCount: Float64Array; // relocated events in the block
  readonly #relMin: Float64Array;
  readonly #relMax: Float64Array;
  readonly #relEnd: Float64Array; // offset after the last relocated event

  #tail = 0;
  #len = 0;
  #headSeq = 0;
  /** Erase count assumed for a block whose header is unknown (blank flash: 0; a lost header: the lowest known). */
  #eraseGuess = 0;
  #nextSeq = 1;
  #acked = 0;
  #reclaimed = 0;
  #dropped = 0;
  #droppedEvents = 0;
  /** Highest seq append ever returned from this instance (seqs only grow). */
  #lastReturned = 0;

  // Delta context of the head block (mirrors what BlockDecoder rebuilds).
  #prevT = 0;
  #prevDt = 0;
  readonly #last = new Map<number, number>();
  readonly #list: number[] = new Array(MAX_GROUP).fill(0);
  #listLen = 0;

  readonly #out: Sink;
  readonly #dec = new BlockDecoder();
  readonly #h: BlockHeader = emptyHeader();
  readonly #hdrBuf: Uint8Array;
  readonly #pair: [number, number][] = [[0, 0]];
  #relUnacked = -1;
  #relOldest = 0;

  readonly io: FlashLogIo = {
    readings: 0,
    events: 0,
    recordBytes: 0,
    readingBytes: 0,
    ackBytes: 0,
    headerBytes: 0,
    reclaimBytes: 0,
    relocatedBytes: 0,
    zeroedBytes: 0,
    erases: 0,
  };

  /** Opens the log on `flash`, recovering whatever a previous run (or a power cut) left there. */
  constructor(flash: Flash) {
    const { blocks, blockSize, writeAlign } = flash;
    if (flash.erasedValue !== 0xff) throw new RangeError('the flash log needs NOR flash that erases to 0xff');
    if (!(blocks >= 3)) throw new RangeError(`the flash log needs at least 3 blocks, the partition has ${blocks}`);
    if (!(writeAlign >= 1 && writeAlign <= 64 && (writeAlign & (writeAlign - 1)) === 0))
      throw new RangeError(`unsupported flash writeAlign ${writeAlign} (a power of two up to 64)`);
    if (!(blockSize >= MIN_BLOCK_SIZE) || blockSize % writeAlign !== 0)
      throw new RangeError(`the flash log needs blocks of at least ${MIN_BLOCK_SIZE} bytes, a multiple of writeAlign`);
    this.#flash = flash;
    this.#n = blocks;
    this.#bs = blockSize;
    this.#align = writeAlign;
    this.#hdr = alignUp(HEADER_BYTES, writeAlign);
    const cap = blockSize - this.#hdr;
    this.#markerMax = alignUp(1 + 5 + 8 + 8 + 4, writeAlign);
    this.#maxRecord = Math.floor((Math.min(Math.floor(cap / 4), 512) - this.#markerMax) / writeAlign) * writeAlign;
    this.#relocBudget = cap - this.#markerMax - this.#maxRecord;
    this.#out = new Sink(Math.max(blockSize, 1024) + 64);
    this.#hdrBuf = new Uint8Array(this.#hdr);
    this.#seqOf = new Float64Array(blocks);
    this.#eraseOf = new Float64Array(blocks);
    this.#firstOf = new Float64Array(blocks);
    this.#endOf = new Float64Array(blocks);
    this.#relCount = new Float64Array(blocks);
    this.#relMin = new Float64Array(blocks);
    this.#relMax = new Float64Array(blocks);
    this.#relEnd = new Float64Array(blocks);
    this.#recover();
  }

  /** Largest event or readings record, in bytes on flash. */
  get maxRecordBytes(): number {
    return this.#maxRecord;
  }

  /**
   * Bytes of unacked events one block may carry into a reclaim. Events are dropped only when the
   * oldest block's unacked events exceed this: when events alone have filled most of the log.
   */
  get relocationBudget(): number {
    return this.#relocBudget;
  }

  // ------------------------------------------------------------------ appends

  appendReading(t: number, channel: number, value: number): number {
    this.#pair[0][0] = channel;
    this.#pair[0][1] = value;
    return this.appendReadings(t, this.#pair);
  }

  appendReadings(t: number, readings: ReadonlyArray<readonly [number, number]>): number {
    checkTime(t);
    const total = readings.length;
    if (total === 0) throw new RangeError('appendReadings needs at least one [channel, value] reading');
    for (let i = 0; i < total; i++) {
      const [channel, value] = readings[i];
      if (!Number.isSafeInteger(channel) || channel < 0)
        throw new RangeError(`reading channel ${channel} is not a non-negative integer`);
      if (!Number.isSafeInteger(value))
        throw new RangeError(`reading value ${value} on channel ${channel} is not an integer within ±(2^53-1) (use fixed units)`);
    }
    const first = this.#nextSeq;
    let i = 0;
    while (i < total) {
      // A record takes up to MAX_GROUP readings and never repeats a channel.
      let n = 1;
      while (i + n < total && n < MAX_GROUP && !repeats(readings, i, n)) n++;
      i += this.#appendGroup(t, readings, i, n);
    }
    this.#returned(first + total - 1);
    return first;
  }

  appendEvent(t: number, event: string, data?: { [key: string]: CborValue }): number {
    checkTime(t);
    const name = utf8Encode(event);
    if (name.length === 0 || name.length > MAX_EVENT_NAME)
      throw new RangeError(`event name "${event}" must be 1 to ${MAX_EVENT_NAME} bytes of UTF-8`);
    const body = data === undefined ? EMPTY : cborEncode(data, 1 << 16);
    const seq = this.#nextSeq;
    const size = alignUp(
      1 + uvarintSize(seq) + uvarintSize(t) + uvarintSize(name.length) + name.length + uvarintSize(body.length) + body.length + 4,
      this.#align,
    );
    if (size > this.#maxRecord)
      throw new RangeError(`event "${event}" takes ${size} bytes on flash; at most ${this.#maxRecord} fit in a record (shorten its data)`);
    this.#room(size);
    const out = this.#out;
    out.pos = 0;
    out.u8(Tag.event);
    out.uvarint(seq);
    out.uvarint(t);
    out.uvarint(name.length);
    out.bytes(name);
    out.uvarint(body.length);
    out.bytes(body);
    out.seal(0, this.#headSeq, this.#align);
    invariant(out.pos === size, 'event size estimate');
    this.#writeHead(out.pos);
    this.io.events++;
    this.io.recordBytes += size;
    this.#nextSeq = seq + 1;
    this.#returned(seq);
    return seq;
  }

  /** Writes readings[i..i+n) as one record (fewer if they do not fit in one); returns how many. */
  #appendGroup(t: number, readings: ReadonlyArray<readonly [number, number]>, i: number, n: number): number {
    if (this.#len === 0) this.#openBlock();
    for (let attempt = 0; ; attempt++) {
      let size = this.#encodeReadings(t, readings, i, n);
      while (size > this.#maxRecord && n > 1) {
        n = Math.ceil(n / 2);
        size = this.#encodeReadings(t, readings, i, n);
      }
      invariant(size <= this.#maxRecord, 'a single reading exceeds the largest record');
      if (this.#endOf[this.#head()] + size <= this.#bs) break;
      invariant(attempt < this.#n, 'no block has room for a record');
      this.#openBlock(); // deltas restart in the new block: encode again
    }
    const out = this.#out;
    this.#writeHead(out.pos);
    this.io.readings += n;
    this.io.recordBytes += out.pos;
    this.io.readingBytes += out.pos;
    const last = this.#last;
    for (let k = 0; k < n; k++) last.set(readings[i + k][0], readings[i + k][1]);
    if (n > 1) {
      for (let k = 0; k < n; k++) this.#list[k] = readings[i + k][0];
      this.#listLen = n;
    }
    if (t !== this.#prevT) this.#prevDt = t - this.#prevT;
    this.#prevT = t;
    this.#nextSeq += n;
    return n;
  }

  #encodeReadings(t: number, readings: ReadonlyArray<readonly [number, number]>, i: number, n: number): number {
    const last = this.#last;
    let absolute = !Number.isSafeInteger(t - this.#prevT);
    for (let k = 0; k < n && !absolute; k++) {
      const r = readings[i + k];
      if (!Number.isSafeInteger(r[1] - (last.get(r[0]) ?? 0))) absolute = true;
    }
    const sameT = t === this.#prevT;
    const periodic = !sameT && this.#prevDt !== 0 && t - this.#prevT === this.#prevDt;
    const single = n === 1;
    let sameList = !single && n === this.#listLen;
    for (let k = 0; k < n && sameList; k++) if (this.#list[k] !== readings[i + k][0]) sameList = false;
    const out = this.#out;
    out.pos = 0;
    out.u8(
      (periodic ? Tag.periodic : Tag.readings) |
        (sameList ? ReadingFlag.sameList : 0) |
        (absolute ? ReadingFlag.absolute : 0) |
        (sameT ? ReadingFlag.sameT : 0) |
        (single ? ReadingFlag.single : 0),
    );
    if (!sameT && !periodic) {
      if (absolute) out.uvarint(t);
      else out.svarint(t - this.#prevT);
    }
    if (single) out.uvarint(readings[i][0]);
    else if (!sameList) {
      out.uvarint(n);
      for (let k = 0; k < n; k++) out.uvarint(readings[i + k][0]);
    }
    for (let k = 0; k < n; k++) {
      const r = readings[i + k];
      out.svarint(absolute ? r[1] : r[1] - (last.get(r[0]) ?? 0));
    }
    out.seal(0, this.#headSeq, this.#align);
    return out.pos;
  }

  #returned(seq: number): void {
    invariant(seq > this.#lastReturned, `seq ${seq} handed out again (last was ${this.#lastReturned})`);
    this.#lastReturned = seq;
  }

  // ------------------------------------------------------------------ acks

  ack(seq: number): void {
    if (!Number.isSafeInteger(seq)) throw new RangeError(`ack seq ${seq} is not an integer`);
    if (seq > this.#nextSeq - 1) seq = this.#nextSeq - 1;
    if (seq <= this.#acked) return;
    const out = this.#out;
    out.pos = 0;
    out.u8(Tag.ack);
    out.uvarint(this.#nextSeq - 1 - seq);
    out.seal(0, this.#headSeq, this.#align);
    const head = this.#head();
    if (this.#endOf[head] + out.pos <= this.#bs) {
      this.#writeHead(out.pos);
      this.io.ackBytes += out.pos;
      this.#acked = seq;
    } else {
      // The new block's header carries the ack.
      this.#acked = seq;
      this.#openBlock();
    }
    this.#trim();
    this.#relUnacked = -1;
  }

  // ------------------------------------------------------------------ reads

  /** As RecordLog.read; records an ack already covers are gone, so `after` below ackedSeq reads from ackedSeq. */
  read(after: number, max: number): LogEntry[] {
    const out: LogEntry[] = [];
    if (!(max >= 1) || this.#len === 0) return out;
    let s = Math.max(Number.isFinite(after) ? Math.floor(after) : 0, this.#acked) + 1;
    const keepFrom = this.#keepFrom();
    if (s < keepFrom) s = this.#readBelow(s, keepFrom, max, out);
    if (out.length < max && s < this.#nextSeq) this.#readChain(s, max, out);
    return out;
  }

  /** Seqs from `s` below `keepFrom`: relocated events, and gaps for everything dropped. */
  #readBelow(s: number, keepFrom: number, max: number, out: LogEntry[]): number {
    const events: LogEntry[] = [];
    const dec = this.#dec;
    for (let i = 0; i < this.#len; i++) {
      const b = this.#blockAt(i);
      if (this.#relCount[b] === 0 || this.#relMax[b] < s) continue;
      const buf = this.#flash.read(b * this.#bs, this.#relEnd[b]);
      this.#begin(b, buf, this.#relEnd[b]);
      let taken = 0;
      for (let k = dec.step(); k !== Step.end && k !== Step.garbage && taken < max; k = dec.step()) {
        if (k === Step.event && dec.relocated && dec.seq >= s && dec.seq < keepFrom) {
          events.push(this.#eventEntry(buf));
          taken++;
        }
      }
    }
    events.sort(bySeq);
    for (let i = 0; i < events.length && out.length < max; i++) {
      const e = events[i];
      if (e.seq < s) continue; // a duplicate
      if (e.seq > s) {
        out.push({ kind: 7, seq: s, last: e.seq - 1, reason: 'full' });
        if (out.length >= max) return e.seq;
      }
      out.push(e);
      s = e.seq + 1;
    }
    if (out.length < max && s < keepFrom) {
      out.push({ kind: 7, seq: s, last: keepFrom - 1, reason: 'full' });
      s = keepFrom;
    }
    return s;
  }

  /** The chain's own records from seq `s` on. */
  #readChain(s: number, max: number, out: LogEntry[]): void {
    let i = this.#len - 1;
    while (i > 0 && this.#firstOf[this.#blockAt(i)] > s) i--;
    const dec = this.#dec;
    for (; i < this.#len && out.length < max; i++) {
      const b = this.#blockAt(i);
      const buf = this.#flash.read(b * this.#bs, this.#endOf[b]);
      this.#begin(b, buf, this.#endOf[b]);
      for (let k = dec.step(); k !== Step.end && k !== Step.garbage; k = dec.step()) {
        if (k === Step.readings) {
          if (dec.seq + dec.count <= s) continue;
          for (let j = 0; j < dec.count; j++) {
            const seq = dec.seq + j;
            if (seq < s) continue;
            out.push({ kind: 1, seq, t: dec.t, channel: dec.channels[j], value: dec.values[j] });
            if (out.length >= max) return;
          }
        } else if (k === Step.event && !dec.relocated && dec.seq >= s) {
          out.push(this.#eventEntry(buf));
          if (out.length >= max) return;
        }
      }
    }
  }

  #eventEntry(buf: Uint8Array): LogEntry {
    const dec = this.#dec;
    const event = utf8Decode(buf, dec.nameStart, dec.nameStart + dec.nameLen) ?? '';
    if (dec.dataLen === 0) return { kind: 2, seq: dec.seq, t: dec.t, event };
    const data = cborDecode(buf.subarray(dec.dataStart, dec.dataStart + dec.dataLen)) as { [key: string]: CborValue };
    return { kind: 2, seq: dec.seq, t: dec.t, event, data };
  }

  // ------------------------------------------------------------------ stats

  stats(): LogStats {
    const keepFrom = this.#keepFrom();
    const ownFrom = Math.max(keepFrom, this.#acked + 1);
    const own = Math.max(0, this.#nextSeq - ownFrom);
    const relocated = this.#relocatedUnacked();
    let used = 0;
    for (let i = 0; i < this.#len; i++) used += this.#endOf[this.#blockAt(i)] - this.#hdr;
    return {
      capacityBytes: (this.#n - 1) * (this.#bs - this.#hdr),
      usedBytes: used,
      buffered: own + relocated,
      oldestSeq: relocated > 0 ? this.#relOldest : own > 0 ? ownFrom : 0,
      newestSeq: this.#nextSeq - 1,
      ackedSeq: this.#acked,
      dropped: this.#dropped,
      droppedEvents: this.#droppedEvents,
    };
  }

  /** Erase counts per block, as recorded in the block headers (a lost header is estimated). */
  wear(): FlashLogWear {
    const eraseCounts: number[] = [];
    let min = Infinity;
    let max = 0;
    for (let b = 0; b < this.#n; b++) {
      const c = this.#eraseOf[b] >= 0 ? this.#eraseOf[b] : this.#eraseGuess;
      eraseCounts.push(c);
      if (c < min) min = c;
      if (c > max) max = c;
    }
    return { eraseCounts, min, max };
  }

  #relocatedUnacked(): number {
    if (this.#relUnacked >= 0) return this.#relUnacked;
    let count = 0;
    let oldest = Infinity;
    const acked = this.#acked;
    const dec = this.#dec;
    for (let i = 0; i < this.#len; i++) {
      const b = this.#blockAt(i);
      if (this.#relCount[b] === 0 || this.#relMax[b] <= acked) continue;
      if (this.#relMin[b] > acked) {
        count += this.#relCount[b];
        if (this.#relMin[b] < oldest) oldest = this.#relMin[b];
        continue;
      }
      const buf = this.#flash.read(b * this.#bs, this.#relEnd[b]);
      this.#begin(b, buf, this.#relEnd[b]);
      for (let k = dec.step(); k !== Step.end && k !== Step.garbage; k = dec.step()) {
        if (k === Step.event && dec.relocated && dec.seq > acked) {
          count++;
          if (dec.seq < oldest) oldest = dec.seq;
        }
      }
    }
    this.#relUnacked = count;
    this.#relOldest = count > 0 ? oldest : 0;
    return count;
  }

  // ------------------------------------------------------------------ blocks

  #head(): number {
    return (this.#tail + this.#len - 1) % this.#n;
  }

  #blockAt(i: number): number {
    return (this.#tail + i) % this.#n;
  }

  /** First seq of the chain's own records; below it only relocated events and gaps remain. */
  #keepFrom(): number {
    return this.#len === 0 ? this.#nextSeq : this.#firstOf[this.#tail];
  }

  #begin(b: number, buf: Uint8Array, limit: number): void {
    this.#h.blockSeq = this.#seqOf[b];
    this.#h.firstSeq = this.#firstOf[b];
    this.#dec.begin(buf, limit, this.#hdr, this.#h, this.#align);
  }

  /**
   * Writes the record in the scratch buffer at the head's end. Returns false only during recovery, when
   * torn garbage had to be zeroed and the record no longer fits.
   */
  #writeHead(length: number): boolean {
    const head = this.#head();
    const base = head * this.#bs;
    const want = this.#out.buf;
    let at = this.#endOf[head];
    if (this.#tornEnd > at) {
      // Recovery redoing an interrupted reclaim writes the very bytes the cut tore: those only clear
      // bits on what is there, so write them over it instead of wasting the space.
      const old = this.#flash.read(base + at, length);
      let fits = true;
      for (let i = 0; i < length && fits; i++) if ((old[i] & want[i]) !== want[i]) fits = false;
      if (fits) {
        if (at + length >= this.#tornEnd) this.#tornEnd = 0;
      } else {
        this.#neutralise();
        at = this.#endOf[head];
        if (at + length > this.#bs) return false;
      }
    }
    invariant(at + length <= this.#bs && at % this.#align === 0, 'record write outside the head block');
    this.#flash.write(base + at, want.subarray(0, length));
    this.#endOf[head] = at + length;
    return true;
  }

  /** Zeroes torn garbage after the head's last record (NOR flash always allows clearing bits). */
  #neutralise(): void {
    if (this.#tornEnd === 0) return;
    const head = this.#head();
    const at = this.#endOf[head];
    if (this.#tornEnd > at) {
      this.#flash.write(head * this.#bs + at, new Uint8Array(this.#tornEnd - at));
      this.io.zeroedBytes += this.#tornEnd - at;
      this.#endOf[head] = this.#tornEnd;
    }
    this.#tornEnd = 0;
  }

  /** Makes sure the head has `size` bytes free, opening blocks as needed. */
  #room(size: number): void {
    for (let attempt = 0; this.#len === 0 || this.#endOf[this.#head()] + size > this.#bs; attempt++) {
      invariant(attempt <= this.#n, 'no block has room for a record');
      this.#openBlock();
    }
  }

  /** Erases the block after the head and makes it the head; reclaims the oldest block if none is left free. */
  #openBlock(): void {
    const n = this.#n;
    invariant(this.#len < n, 'no free block to open');
    const b = this.#len === 0 ? 0 : (this.#head() + 1) % n;
    if (this.#len > 0) this.#endOf[this.#head()] = this.#bs; // closed: as recovery will see it
    const eraseCount = (this.#eraseOf[b] >= 0 ? this.#eraseOf[b] : this.#eraseGuess) + 1;
    this.#flash.eraseBlock(b);
    this.io.erases++;
    this.#seqOf[b] = 0;
    this.#eraseOf[b] = eraseCount;
    const blockSeq = this.#headSeq + 1;
    encodeHeader(
      {
        blockSeq,
        eraseCount,
        firstSeq: this.#nextSeq,
        acked: this.#acked,
        reclaimed: this.#reclaimed,
        dropped: this.#dropped,
        droppedEvents: this.#droppedEvents,
      },
      this.#hdrBuf,
    );
    this.#flash.write(b * this.#bs, this.#hdrBuf);
    this.io.headerBytes += this.#hdr;
    this.#seqOf[b] = blockSeq;
    this.#firstOf[b] = this.#nextSeq;
    this.#endOf[b] = this.#hdr;
    this.#relCount[b] = 0;
    this.#relEnd[b] = this.#hdr;
    this.#headSeq = blockSeq;
    if (this.#len === 0) {
      this.#tail = b;
      this.#len = 1;
    } else this.#len++;
    this.#prevT = 0;
    this.#prevDt = 0;
    this.#last.clear();
    this.#listLen = 0;
    this.#trim();
    if (this.#len === n) this.#reclaimTail();
  }

  /** Drops fully acked blocks off the tail of the chain (they are erased when reused). */
  #trim(): void {
    while (this.#len > 1 && this.#firstOf[this.#blockAt(1)] - 1 <= this.#acked) {
      this.#tail = (this.#tail + 1) % this.#n;
      this.#len--;
    }
    this.#relUnacked = -1;
  }

  /**
   * Empties the oldest block for space: copies its unacked events into the head, drops its unacked
   * readings, and commits with a reclaim marker. Deterministic given the block and the ack position,
   * so recovery can redo a reclaim a power cut interrupted (events already copied are not copied again).
   */
  #reclaimTail(): void {
    const bs = this.#bs;
    const t = this.#tail;
    const head = this.#head();
    invariant(t !== head, 'reclaiming the head');
    const dec = this.#dec;
    const acked = this.#acked;

    // What the head already holds from an interrupted attempt.
    const have = new Set<number>();
    if (this.#relCount[head] > 0) {
      const hb = this.#flash.read(head * bs, this.#relEnd[head]);
      this.#begin(head, hb, this.#relEnd[head]);
      for (let k = dec.step(); k !== Step.end && k !== Step.garbage; k = dec.step())
        if (k === Step.event && dec.relocated) have.add(dec.seq);
    }

    // The oldest block's unacked events (in seq order: relocated ones first) and unacked readings.
    const buf = this.#flash.read(t * bs, this.#endOf[t]);
    this.#begin(t, buf, this.#endOf[t]);
    const starts: number[] = [];
    const ends: number[] = [];
    const seqs: number[] = [];
    let readings = 0;
    for (let k = dec.step(); k !== Step.end && k !== Step.garbage; k = dec.step()) {
      if (k === Step.readings) {
        const from = Math.max(dec.seq, acked + 1);
        if (dec.seq + dec.count > from) readings += dec.seq + dec.count - from;
      } else if (k === Step.event && dec.seq > acked) {
        starts.push(dec.start);
        ends.push(dec.bodyEnd - 4);
        seqs.push(dec.seq);
      }
    }
    const events = seqs.length;
    const sizeOf = (i: number): number => alignUp(ends[i] - starts[i] + 4, this.#align);

    // Keep the newest events within the budget: the same choice on every attempt.
    let budget = this.#relocBudget;
    let keep = events;
    while (keep > 0 && sizeOf(keep - 1) <= budget) budget -= sizeOf(--keep);
    // Of those still to copy, the newest that fit beside one reclaim marker (less only after repeated cuts).
    let room = bs - this.#endOf[head] - this.#markerMax;
    let copyFrom = events;
    for (let i = events - 1; i >= keep; i--) {
      if (have.has(seqs[i])) continue;
      if (sizeOf(i) > room) break;
      room -= sizeOf(i);
      copyFrom = i;
    }
    let kept = 0;
    let full = false;
    const out = this.#out;
    for (let i = 0; i < events; i++) {
      if (have.has(seqs[i])) {
        kept++;
        continue;
      }
      if (i < keep || i < copyFrom || full) continue;
      out.pos = 0;
      out.bytes(buf, starts[i], ends[i]);
      out.seal(0, this.#headSeq, this.#align);
      if (!this.#writeHead(out.pos)) {
        full = true;
        continue;
      }
      this.io.relocatedBytes += out.pos;
      const seq = seqs[i];
      if (this.#relCount[head] === 0 || seq < this.#relMin[head]) this.#relMin[head] = seq;
      if (this.#relCount[head] === 0 || seq > this.#relMax[head]) this.#relMax[head] = seq;
      this.#relCount[head]++;
      this.#relEnd[head] = this.#endOf[head];
      kept++;
    }

    this.#dropped += readings;
    this.#droppedEvents += events - kept;
    out.pos = 0;
    out.u8(Tag.reclaim);
    out.uvarint(this.#headSeq - this.#seqOf[t]);
    out.uvarint(this.#dropped);
    out.uvarint(this.#droppedEvents);
    out.seal(0, this.#headSeq, this.#align);
    // Without room for the marker (only after repeated cuts), the next block's header commits instead.
    if (this.#endOf[head] + out.pos <= bs && this.#writeHead(out.pos)) this.io.reclaimBytes += out.pos;
    this.#reclaimed = this.#seqOf[t];
    this.#tail = (t + 1) % this.#n;
    this.#len--;
    this.#relUnacked = -1;
  }

  // ------------------------------------------------------------------ recovery

  #recover(): void {
    const n = this.#n;
    const h = this.#h;
    let head = -1;
    for (let b = 0; b < n; b++) {
      if (decodeHeader(this.#flash.read(b * this.#bs, HEADER_BYTES), h)) {
        this.#seqOf[b] = h.blockSeq;
        this.#eraseOf[b] = h.eraseCount;
        this.#firstOf[b] = h.firstSeq;
        if (head < 0 || h.eraseCount < this.#eraseGuess) this.#eraseGuess = h.eraseCount;
        if (head < 0 || h.blockSeq > this.#seqOf[head]) head = b;
      } else {
        this.#seqOf[b] = 0;
        this.#eraseOf[b] = -1;
      }
    }
    if (head < 0) return; // a blank (or foreign) partition: the first append opens block 0

    decodeHeader(this.#flash.read(head * this.#bs, HEADER_BYTES), h);
    this.#headSeq = h.blockSeq;
    this.#acked = h.acked;
    this.#reclaimed = h.reclaimed;
    this.#dropped = h.dropped;
    this.#droppedEvents = h.droppedEvents;
    this.#tail = head;
    this.#len = 1;
    this.#scan(head, true);

    // Walk back while the blocks follow on and still hold something unacked and unreclaimed.
    while (this.#len < n) {
      const next = this.#tail;
      const p = (next - 1 + n) % n;
      if (this.#seqOf[p] !== this.#seqOf[next] - 1 || this.#firstOf[p] > this.#firstOf[next]) break;
      if (this.#seqOf[p] <= this.#reclaimed || this.#firstOf[next] - 1 <= this.#acked) break;
      this.#tail = p;
      this.#len++;
    }
    for (let i = 0; i < this.#len - 1; i++) this.#scan(this.#blockAt(i), false);
    this.#lastReturned = this.#nextSeq - 1;
    invariant(this.#acked <= this.#nextSeq - 1, `ack ${this.#acked} beyond the newest seq ${this.#nextSeq - 1}`);
    if (this.#len === n) this.#reclaimTail(); // an interrupted reclaim
    this.#neutralise();
  }

  /**
   * Summarises one block: where its records end and its run of relocated events. The head is decoded
   * whole (its context, markers and a torn tail); other blocks only as far as their relocated events,
   * so a boot costs about one block of decoding however full the log is.
   */
  #scan(b: number, isHead: boolean): void {
    const bs = this.#bs;
    const buf = this.#flash.read(b * bs, bs);
    const dec = this.#dec;
    this.#begin(b, buf, bs);
    let relCount = 0;
    let relMin = 0;
    let relMax = 0;
    let relEnd = this.#hdr;
    let k: number;
    for (k = dec.step(); k !== Step.end && k !== Step.garbage; k = dec.step()) {
      if (k === Step.event && dec.relocated) {
        if (relCount++ === 0) relMin = dec.seq;
        relMax = dec.seq;
        relEnd = dec.pos;
        continue;
      }
      // Relocated events come first in a block; of the other blocks nothing more is needed at boot.
      if (!isHead) break;
      if (k === Step.ack) {
        if (dec.ackSeq > this.#acked) this.#acked = dec.ackSeq;
      } else if (k === Step.reclaim) {
        if (dec.reclaimed > this.#reclaimed) this.#reclaimed = dec.reclaimed;
        if (dec.dropped > this.#dropped) this.#dropped = dec.dropped;
        if (dec.droppedEvents > this.#droppedEvents) this.#droppedEvents = dec.droppedEvents;
      }
    }
    if (!isHead) {
      // A closed block: the decoder finds where its records end (a backward scan for the last
      // programmed byte would not: a CRC may end in 0xff).
      this.#endOf[b] = bs;
      this.#relCount[b] = relCount;
      this.#relMin[b] = relMin;
      this.#relMax[b] = relMax;
      this.#relEnd[b] = relEnd;
      return;
    }
    const end = dec.pos;
    if (k === Step.garbage) {
      // A torn write: garbage from the last valid record to the last programmed byte. It is zeroed
      // before anything else is written (or overwritten by the same bytes, see #writeHead).
      let last = bs - 1;
      while (last >= end && buf[last] === 0xff) last--;
      this.#tornEnd = alignUp(last + 1, this.#align);
    }
    this.#endOf[b] = end;
    this.#relCount[b] = relCount;
    this.#relMin[b] = relMin;
    this.#relMax[b] = relMax;
    this.#relEnd[b] = relEnd;
    this.#nextSeq = dec.running;
    this.#prevT = dec.prevT;
    this.#prevDt = dec.prevDt;
    this.#last.clear();
    dec.last.forEach((v, ch) => this.#last.set(ch, v));
    this.#listLen = dec.listLen;
    for (let i = 0; i < dec.listLen; i++) this.#list[i] = dec.list[i];
  }
}

function checkTime(t: number): void {
  if (!Number.isSafeInteger(t) || t < 0) throw new RangeError(`record time ${t} is not unix seconds (use 0 when there is no clock)`);
}

function repeats(readings: ReadonlyArray<readonly [number, number]>, i: number, n: number): boolean {
  const ch = readings[i + n][0];
  for (let k = 0; k < n; k++) if (readings[i + k][0] === ch) return true;
  return false;
}

function bySeq(a: LogEntry, b: LogEntry): number {
  return a.seq - b.seq;
}
