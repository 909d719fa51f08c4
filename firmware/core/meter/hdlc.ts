// HDLC frames as DLMS/COSEM meters push them on their customer port (IEC 62056-46; Norwegian and
// Swedish HAN, Danish Kamstrup and Landis+Gyr meters): `7E | format(2) | dst | src | control | HCS(2) |
// information | FCS(2) | 7E`.
//
// - Format: type 0xA in the high nibble, the segmentation bit S (0x08: more segments follow), and an
//   11-bit length counting every byte between the flags. There is no byte stuffing: the length, not
//   the flags, ends a frame, so 0x7E inside a frame is data (framer.ts resynchronises on it).
// - Addresses: 1, 2 or 4 bytes each, the last byte of each marked by bit 0.
// - HCS and FCS are CRC-16/X.25 (FCS-16) sent low byte first; a frame without information has only
//   the FCS. Both are checked as they arrive, by the CRC's residue, with no second pass.
// - The closing flag may also open the next frame.
// - Candidates whose header fails (a format byte that is not 0xA?, an impossible length, a bad HCS)
//   are line noise and pass silently; a frame whose header was good and that then fails (FCS, missing
//   closing flag, input ended) is reported, numbered by the frames whose header was good.

import { MeterError, hexBytes } from './error.js';
import { ByteFramer, Step } from './framer.js';

const FLAG = 0x7e;
/** CRC-16/X.25 register after a frame and its own FCS: the "good FCS" residue. */
const GOOD = 0xf0b8;

const FCS_TABLE = new Uint16Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x8408 : c >>> 1;
  FCS_TABLE[n] = c;
}

/** CRC-16/X.25 (HDLC FCS-16): FCS("123456789") = 0x906E. */
export function fcs16(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let crc = 0xffff;
  for (let i = start; i < end; i++) crc = (crc >>> 8) ^ FCS_TABLE[(crc ^ bytes[i]) & 0xff];
  return crc ^ 0xffff;
}

// States after the opening flag.
const S_FORMAT = 0; // first format byte (or more flags)
const S_LENGTH = 1; // second format byte
const S_HEADER = 2; // addresses, control, HCS
const S_BODY = 3; // information and FCS
const S_CLOSE = 4; // the closing flag

export interface HdlcFrame {
  /** The frame's bytes between the flags; valid only during the callback. */
  bytes: Uint8Array;
  /** The information field is bytes[infoStart, infoEnd). */
  infoStart: number;
  infoEnd: number;
  /** The segmentation bit: more segments of this message follow. */
  segmented: boolean;
  control: number;
  /** The frame's number among the frames with a good header since the framer started. */
  number: number;
}

export interface HdlcFramerOptions {
  onFrame: (frame: HdlcFrame) => void;
  onError?: (error: MeterError) => void;
  /** Most bytes between the flags; the format's 11-bit length allows 2047. */
  maxBytes?: number;
}

export class HdlcFramer extends ByteFramer {
  /** Frames whose header was good, delivered or not. */
  frames = 0;
  #state = S_FORMAT;
  #length = 0;
  #crc = 0xffff;
  /** Where the HCS starts once the addresses and control are known; -1 until then. */
  #headerEnd = -1;
  /** The CRC register before the FCS, for the message when it does not match. */
  #beforeFcs = 0;
  readonly #onFrame: (frame: HdlcFrame) => void;
  readonly #onError: ((error: MeterError) => void) | undefined;
  readonly #frame: HdlcFrame;

  constructor(options: HdlcFramerOptions) {
    const max = options.maxBytes ?? 2047;
    if (!(max >= 16 && max <= 2047)) throw new RangeError(`maxBytes ${max} is outside 16…2047`);
    super(FLAG, max);
    this.#onFrame = options.onFrame;
    this.#onError = options.onError;
    this.#frame = { bytes: this.buf, infoStart: 0, infoEnd: 0, segmented: false, control: 0, number: 0 };
  }

  protected startFrame(): void {
    this.#state = S_FORMAT;
  }

  protected step(b: number): number {
    const buf = this.buf;
    switch (this.#state) {
      case S_FORMAT:
        if (b === FLAG) return Step.more; // flags between frames
        buf[this.len++] = b;
        if ((b & 0xf0) !== 0xa0) return Step.failed;
        this.#state = S_LENGTH;
        this.#crc = (0xffff >>> 8) ^ FCS_TABLE[(0xffff ^ b) & 0xff];
        return Step.more;
      case S_LENGTH: {
        buf[this.len++] = b;
        const length = ((buf[0] & 0x07) << 8) | b;
        // Format, two one-byte addresses, control and FCS at the least.
        if (length < 7 || length > this.capacity) return Step.failed;
        this.#length = length;
        this.#headerEnd = -1;
        this.#crc = (this.#crc >>> 8) ^ FCS_TABLE[(this.#crc ^ b) & 0xff];
        this.#state = S_HEADER;
        return Step.more;
      }
      case S_HEADER: {
        buf[this.len++] = b;
        this.#crc = (this.#crc >>> 8) ^ FCS_TABLE[(this.#crc ^ b) & 0xff];
        const len = this.len;
        if (this.#headerEnd < 0) {
          const h = headerEnd(buf, len);
          if (h === -2 || h + 2 > this.#length) return Step.failed;
          this.#headerEnd = h;
        }
        if (this.#headerEnd < 0 || len < this.#headerEnd + 2) return Step.more;
        if (this.#length === this.#headerEnd + 2) {
          // No information field: the two bytes were the FCS.
          this.#beforeFcs = GOOD;
          if (this.#crc !== GOOD) return Step.failed;
          this.frames++;
          this.#state = S_CLOSE;
          return Step.more;
        }
        if (this.#crc !== GOOD) return Step.failed; // HCS: a bad header is noise
        this.frames++;
        this.#state = S_BODY;
        return Step.more;
      }
      case S_BODY: {
        if (this.len === this.#length - 2) this.#beforeFcs = this.#crc;
        buf[this.len++] = b;
        this.#crc = (this.#crc >>> 8) ^ FCS_TABLE[(this.#crc ^ b) & 0xff];
        if (this.len === this.#length) this.#state = S_CLOSE;
        return Step.more;
      }
      default: {
        // S_CLOSE
        const n = this.frames;
        if (b !== FLAG) {
          buf[this.len++] = b;
          this.#fail('flag', `HDLC frame ${n} of ${this.#length} bytes is not followed by a closing flag (0x7E) but by 0x${hex(b)}: its length field or the line is damaged`);
          return Step.failed;
        }
        if (this.#crc !== GOOD) {
          const L = this.#length;
          const computed = this.#beforeFcs ^ 0xffff;
          this.#fail('fcs', `HDLC FCS mismatch in frame ${n}: frame says ${hexBytes(buf, L - 2, L)}, computed ${hex(computed & 0xff)} ${hex(computed >>> 8)}`);
          return Step.failed;
        }
        if (this.#length > this.#headerEnd + 2) {
          const f = this.#frame;
          f.infoStart = this.#headerEnd + 2;
          f.infoEnd = this.#length - 2;
          f.segmented = (buf[0] & 0x08) !== 0;
          f.control = buf[this.#headerEnd - 1];
          f.number = n;
          this.#onFrame(f);
        }
        return Step.doneAndStart;
      }
    }
  }

  protected cutShort(): void {
    if (this.#state === S_BODY || this.#state === S_CLOSE) {
      this.#fail('truncated', `input ended inside HDLC frame ${this.frames} (${this.len} of its ${this.#length} bytes)`);
    }
  }

  #fail(reason: string, message: string): void {
    this.#onError?.(new MeterError('hdlc', reason, message, this.frames));
  }
}

/** Index after the control byte when the addresses are complete in buf[0, len); -1: not yet; -2: invalid. */
function headerEnd(buf: Uint8Array, len: number): number {
  let i = 2;
  for (let a = 0; a < 2; a++) {
    const from = i;
    while (i < len && (buf[i] & 1) === 0) i++;
    if (i >= len) return i - from >= 4 ? -2 : -1;
    const n = i - from + 1;
    if (n !== 1 && n !== 2 && n !== 4) return -2;
    i++;
  }
  return i < len ? i + 1 : -1;
}

function hex(n: number): string {
  return (n < 16 ? '0' : '') + n.toString(16).toUpperCase();
}
