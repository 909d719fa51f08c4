// A-XDR (IEC 61334-6) as DLMS encodes COSEM data: one tag byte per item, then its value. A cursor over
// a buffer that reads one item at a time and allocates nothing: numbers come out in `value`, strings
// and other byte values as a span [start, start + length) of the buffer, arrays and structures as a
// count of the items that follow.

/** DLMS data types (IEC 62056-6-2, "Data"), by tag. */
export const DataType = {
  null: 0,
  array: 1,
  structure: 2,
  boolean: 3,
  bitString: 4,
  doubleLong: 5,
  doubleLongUnsigned: 6,
  octetString: 9,
  visibleString: 10,
  utf8String: 12,
  bcd: 13,
  integer: 15,
  long: 16,
  unsigned: 17,
  longUnsigned: 18,
  compactArray: 19,
  long64: 20,
  long64Unsigned: 21,
  enum: 22,
  float32: 23,
  float64: 24,
  dateTime: 25,
  date: 26,
  time: 27,
} as const;

const NAMES: { [tag: number]: string } = {};
for (const k of Object.keys(DataType)) NAMES[(DataType as { [k: string]: number })[k]] = k;

/** The type's name as the standard spells it in code (`doubleLongUnsigned`), or `tag 0xNN`. */
export function dataTypeName(tag: number): string {
  return NAMES[tag] ?? `tag 0x${(tag < 16 ? '0' : '') + tag.toString(16)}`;
}

export class AxdrReader {
  /** For floats. Per reader: on a meter this module is preloaded into flash, where a module-level buffer cannot be written. */
  #scratch: DataView | undefined;
  bytes: Uint8Array = new Uint8Array(0);
  pos = 0;
  end = 0;
  /** The item just read: its tag … */
  type = 0;
  /** … array and structure: how many items follow as its elements … */
  count = 0;
  /** … numbers, booleans, enums, BCD: the value (NaN for a 64-bit integer beyond 2^53) … */
  value = 0;
  /** … strings, bit strings, date-time, date, time: where its bytes are, and how many. */
  start = 0;
  length = 0;
  /** Why next() returned false. */
  error = '';

  reset(bytes: Uint8Array, start: number, end: number): void {
    this.bytes = bytes;
    this.pos = start;
    this.end = end;
    this.error = '';
  }

  /** Reads one length (one byte below 0x80, else 0x8N and N big-endian bytes); -1 when malformed. */
  readLength(): number {
    const b = this.bytes;
    if (this.pos >= this.end) return -1;
    const first = b[this.pos++];
    if (first < 0x80) return first;
    const n = first & 0x7f;
    if (n === 0 || n > 3 || this.pos + n > this.end) return -1;
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 256 + b[this.pos++];
    return v;
  }

  /** Reads the next item's tag and value; false when the data is malformed or runs past the end. */
  next(): boolean {
    const b = this.bytes;
    if (this.pos >= this.end) return this.#fail('the data ends where an item was expected');
    const at = this.pos;
    const t = b[this.pos++];
    this.type = t;
    switch (t) {
      case DataType.null:
        return true;
      case DataType.array:
      case DataType.structure: {
        const n = this.readLength();
        if (n < 0) return this.#fail(`bad element count of the ${dataTypeName(t)} at byte ${at}`);
        this.count = n;
        return true;
      }
      case DataType.boolean:
      case DataType.unsigned:
      case DataType.enum:
      case DataType.bcd:
        return this.#fixed(1) && ((this.value = b[this.start]), true);
      case DataType.integer:
        return this.#fixed(1) && ((this.value = (b[this.start] << 24) >> 24), true);
      case DataType.long:
        return this.#fixed(2) && ((this.value = (((b[this.start] << 8) | b[this.start + 1]) << 16) >> 16), true);
      case DataType.longUnsigned:
        return this.#fixed(2) && ((this.value = (b[this.start] << 8) | b[this.start + 1]), true);
      case DataType.doubleLong:
        return this.#fixed(4) && ((this.value = u32(b, this.start) | 0), true);
      case DataType.doubleLongUnsigned:
        return this.#fixed(4) && ((this.value = u32(b, this.start)), true);
      case DataType.long64:
      case DataType.long64Unsigned: {
        if (!this.#fixed(8)) return false;
        const hi = u32(b, this.start);
        const lo = u32(b, this.start + 4);
        let v: number;
        if (t === DataType.long64 && hi >= 0x80000000) v = -((0xffffffff - hi) * 0x100000000 + (0x100000000 - lo));
        else v = hi * 0x100000000 + lo;
        this.value = Number.isSafeInteger(v) ? v : NaN;
        return true;
      }
      case DataType.float32:
      case DataType.float64: {
        const n = t === DataType.float32 ? 4 : 8;
        if (!this.#fixed(n)) return false;
        const scratch = (this.#scratch ??= new DataView(new ArrayBuffer(8)));
        for (let i = 0; i < n; i++) scratch.setUint8(i, b[this.start + i]);
        this.value = n === 4 ? scratch.getFloat32(0) : scratch.getFloat64(0);
        return true;
      }
      case DataType.dateTime:
        return this.#fixed(12);
      case DataType.date:
        return this.#fixed(5);
      case DataType.time:
        return this.#fixed(4);
      case DataType.octetString:
      case DataType.visibleString:
      case DataType.utf8String: {
        const n = this.readLength();
        if (n < 0 || this.pos + n > this.end) return this.#fail(`the ${dataTypeName(t)} at byte ${at} runs past the end of the data`);
        this.start = this.pos;
        this.length = n;
        this.pos += n;
        return true;
      }
      case DataType.bitString: {
        const bits = this.readLength();
        const n = (bits + 7) >> 3;
        if (bits < 0 || this.pos + n > this.end) return this.#fail(`the bit string at byte ${at} runs past the end of the data`);
        this.start = this.pos;
        this.length = n;
        this.pos += n;
        return true;
      }
      default:
        return this.#fail(`${dataTypeName(t)} at byte ${at} is not a data type a meter pushes here`);
    }
  }

  #fixed(n: number): boolean {
    if (this.pos + n > this.end) return this.#fail(`the ${dataTypeName(this.type)} at byte ${this.pos - 1} runs past the end of the data`);
    this.start = this.pos;
    this.length = n;
    this.pos += n;
    return true;
  }

  #fail(why: string): boolean {
    this.error = why;
    return false;
  }
}

function u32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}
