// A ciphered DLMS APDU sent bare on the line, with no HDLC or M-Bus frame around it: Luxembourg's
// Smarty P1 port wraps its DSMR telegram in one. General global ciphering (`DB | 08 | system title(8) |
// length | SC | frame counter(4) | ciphertext | tag`), the length in BER form (one byte below 0x80,
// else 0x81 or 0x82 and one or two bytes). The line has no checksum: the GCM tag is the integrity check,
// so the receiver says whether a frame held (framer.ts resynchronises when it did not).

import { MeterError } from './error.js';
import { ByteFramer, Step } from './framer.js';

const TAG = 0xdb;

const S_TITLE_LENGTH = 0;
const S_TITLE = 1;
const S_LENGTH = 2;
const S_LENGTH_MORE = 3;
const S_SECURITY = 4;
const S_BODY = 5;

export interface EnvelopeFrame {
  /** The APDU after its 0xDB tag (system title length first); valid only during the callback. */
  bytes: Uint8Array;
  end: number;
  number: number;
}

export interface EnvelopeFramerOptions {
  /** Returns false when the frame failed its integrity check (the tag), so that its bytes are searched again. */
  onFrame: (frame: EnvelopeFrame) => boolean;
  onError?: (error: MeterError) => void;
  /** Most bytes after the 0xDB tag. */
  maxBytes?: number;
}

export class EnvelopeFramer extends ByteFramer {
  frames = 0;
  #state = S_TITLE_LENGTH;
  #need = 0;
  #length = 0;
  readonly #onFrame: (frame: EnvelopeFrame) => boolean;
  readonly #onError: ((error: MeterError) => void) | undefined;
  readonly #frame: EnvelopeFrame;

  constructor(options: EnvelopeFramerOptions) {
    const max = options.maxBytes ?? 2048;
    if (!(max >= 32 && max <= 65535)) throw new RangeError(`maxBytes ${max} is outside 32…65535`);
    super(TAG, max);
    this.#onFrame = options.onFrame;
    this.#onError = options.onError;
    this.#frame = { bytes: this.buf, end: 0, number: 0 };
  }

  protected startFrame(): void {
    this.#state = S_TITLE_LENGTH;
  }

  protected step(b: number): number {
    this.buf[this.len++] = b;
    switch (this.#state) {
      case S_TITLE_LENGTH:
        if (b !== 8) return Step.failed;
        this.#need = 8;
        this.#state = S_TITLE;
        return Step.more;
      case S_TITLE:
        if (--this.#need === 0) this.#state = S_LENGTH;
        return Step.more;
      case S_LENGTH:
        if (b < 0x80) return this.#lengthKnown(b);
        if (b !== 0x81 && b !== 0x82) return Step.failed;
        this.#need = b & 0x7f;
        this.#length = 0;
        this.#state = S_LENGTH_MORE;
        return Step.more;
      case S_LENGTH_MORE:
        this.#length = this.#length * 256 + b;
        if (--this.#need > 0) return Step.more;
        return this.#lengthKnown(this.#length);
      case S_SECURITY:
        // Suite 0 (AES-GCM-128), authenticated and/or encrypted, unicast or broadcast key.
        if ((b & 0x8f) !== 0 || (b & 0x30) === 0) return Step.failed;
        this.frames++;
        this.#state = S_BODY;
        return this.#need === this.len ? this.#deliver() : Step.more;
      default:
        return this.#need === this.len ? this.#deliver() : Step.more;
    }
  }

  #lengthKnown(length: number): number {
    // Security control and frame counter at the least; all of it in the buffer.
    if (length < 5 || this.len + length > this.capacity) return Step.failed;
    this.#need = this.len + length;
    this.#state = S_SECURITY;
    return Step.more;
  }

  #deliver(): number {
    const f = this.#frame;
    f.end = this.len;
    f.number = this.frames;
    return this.#onFrame(f) ? Step.done : Step.failed;
  }

  protected cutShort(): void {
    if (this.#state === S_BODY) {
      this.#onError?.(new MeterError('envelope', 'truncated', `input ended inside ciphered frame ${this.frames} (${this.len + 1} of its ${this.#need + 1} bytes)`, this.frames));
    }
  }
}
