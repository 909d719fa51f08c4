// M-Bus long frames (EN 13757-2) as Austrian network operators' meters push DLMS on their customer
// interface: `68 | L | L | 68 | C | A | CI | data | CS | 16`, L counting C, A, CI and the data (3…255),
// CS the sum of those bytes modulo 256. Short frames and single-character acknowledgements are not
// sent by a pushing meter and are skipped as noise. Candidates whose `68 L L 68` header does not hold
// pass silently; a frame whose header held and that then fails (checksum, stop byte, input ended) is
// reported, numbered by the frames whose header held. Reassembly of a DLMS APDU split over several
// frames (the CI field's segment numbers) is the DLMS layer's (dlms.ts).

import { MeterError, hex2 } from './error.js';
import { ByteFramer, Step } from './framer.js';

const START = 0x68;
const STOP = 0x16;

const S_L1 = 0;
const S_L2 = 1;
const S_START2 = 2;
const S_BODY = 3;
const S_CHECKSUM = 4;
const S_STOP = 5;

export interface MbusFrame {
  /** The frame after its first 0x68; valid only during the callback. */
  bytes: Uint8Array;
  c: number;
  a: number;
  ci: number;
  /** The data after CI is bytes[dataStart, dataEnd). */
  dataStart: number;
  dataEnd: number;
  /** The frame's number among the frames with a good header since the framer started. */
  number: number;
}

export interface MbusFramerOptions {
  onFrame: (frame: MbusFrame) => void;
  onError?: (error: MeterError) => void;
}

export class MbusFramer extends ByteFramer {
  frames = 0;
  #state = S_L1;
  #length = 0;
  #sum = 0;
  readonly #onFrame: (frame: MbusFrame) => void;
  readonly #onError: ((error: MeterError) => void) | undefined;
  readonly #frame: MbusFrame;

  constructor(options: MbusFramerOptions) {
    super(START, 3 + 255 + 2);
    this.#onFrame = options.onFrame;
    this.#onError = options.onError;
    this.#frame = { bytes: this.buf, c: 0, a: 0, ci: 0, dataStart: 0, dataEnd: 0, number: 0 };
  }

  protected startFrame(): void {
    this.#state = S_L1;
  }

  protected step(b: number): number {
    const buf = this.buf;
    buf[this.len++] = b;
    switch (this.#state) {
      case S_L1:
        if (b < 3) return Step.failed;
        this.#length = b;
        this.#state = S_L2;
        return Step.more;
      case S_L2:
        if (b !== this.#length) return Step.failed;
        this.#state = S_START2;
        return Step.more;
      case S_START2:
        if (b !== START) return Step.failed;
        this.frames++;
        this.#sum = 0;
        this.#state = S_BODY;
        return Step.more;
      case S_BODY:
        this.#sum = (this.#sum + b) & 0xff;
        if (this.len === 3 + this.#length) this.#state = S_CHECKSUM;
        return Step.more;
      case S_CHECKSUM:
        if (b !== this.#sum) {
          this.#fail('checksum', `M-Bus checksum mismatch in frame ${this.frames}: frame says ${hex2(b)}, computed ${hex2(this.#sum)}`);
          return Step.failed;
        }
        this.#state = S_STOP;
        return Step.more;
      default: {
        if (b !== STOP) {
          this.#fail('stop', `M-Bus frame ${this.frames} does not end with the stop byte 0x16 but with ${hex2(b)}`);
          return Step.failed;
        }
        const f = this.#frame;
        f.c = buf[3];
        f.a = buf[4];
        f.ci = buf[5];
        f.dataStart = 6;
        f.dataEnd = 3 + this.#length;
        f.number = this.frames;
        this.#onFrame(f);
        return Step.done;
      }
    }
  }

  protected cutShort(): void {
    if (this.#state >= S_BODY) {
      this.#fail('truncated', `input ended inside M-Bus frame ${this.frames} (${this.len + 1} of its ${this.#length + 6} bytes)`);
    }
  }

  #fail(reason: string, message: string): void {
    this.#onError?.(new MeterError('mbus', reason, message, this.frames));
  }
}

/** The M-Bus checksum of bytes[start, end): their sum modulo 256. */
export function mbusChecksum(bytes: Uint8Array, start: number, end: number): number {
  let s = 0;
  for (let i = start; i < end; i++) s = (s + bytes[i]) & 0xff;
  return s;
}
