// What the binary framers (HDLC, M-Bus, the bare ciphered envelope) share: one fixed buffer, a byte
// that may start a frame, and resynchronisation.
//
// A frame is found by its start byte, but the same byte also occurs inside frames (DLMS HDLC has no
// byte stuffing), so a candidate can start in the middle of a real frame, and a real frame that lost
// a byte on the line runs on into the next one. When a candidate fails, every later start byte inside
// it is tried again, with the bytes after it replayed from the buffer in place: a damaged frame costs
// that frame, never the one after it. Replays never write past what they read, so nothing is copied
// aside and nothing is allocated.

/** What step() says about the byte it was given. */
export const Step = { more: 0, done: 1, failed: 2, doneAndStart: 3 } as const;

export abstract class ByteFramer {
  /** Most bytes one frame may hold after its start byte; `buffered` never exceeds it. */
  readonly capacity: number;
  /** The frame in progress, after its start byte (one spare byte holds the byte that broke a frame). */
  protected readonly buf: Uint8Array;
  protected len = 0;
  #hunting = true;
  readonly #startByte: number;

  constructor(startByte: number, capacity: number) {
    this.#startByte = startByte;
    this.capacity = capacity;
    this.buf = new Uint8Array(capacity + 1);
  }

  /** Bytes of the unfinished frame held in the buffer. */
  get buffered(): number {
    return this.#hunting ? 0 : this.len;
  }

  /** Feeds bytes as they arrive; frames and errors go to the subclass's callbacks, in stream order. */
  push(bytes: Uint8Array | ArrayBuffer): void {
    const data = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
    const start = this.#startByte;
    const n = data.length;
    for (let i = 0; i < n; i++) {
      const b = data[i];
      if (this.#hunting) {
        if (b === start) this.#begin();
        continue;
      }
      this.#byte(b);
    }
  }

  /** One byte, as push() takes it (for feeding several framers in step). */
  pushByte(b: number): void {
    if (this.#hunting) {
      if (b === this.#startByte) this.#begin();
      return;
    }
    this.#byte(b);
  }

  #byte(b: number): void {
    const r = this.step(b);
    if (r === Step.done) this.#hunting = true;
    else if (r === Step.doneAndStart) this.#begin();
    else if (r === Step.failed) this.#recover();
  }

  /** The input has ended (a file, a closed port): a frame still open is reported by `cutShort`. */
  end(): void {
    if (!this.#hunting) {
      this.#hunting = true;
      this.cutShort();
    }
    this.len = 0;
  }

  /** Forgets the frame in progress and anything learned about the stream. */
  reset(): void {
    this.#hunting = true;
    this.len = 0;
  }

  /** A start byte was seen: the next byte is the frame's first. */
  protected abstract startFrame(): void;

  /**
   * One byte of the frame in progress: store it at buf[len] (and len++) when it belongs to the frame,
   * report the frame or the failure, and say which (`doneAndStart`: the byte that ended the frame also
   * starts the next, as an HDLC flag may). A failure must leave the bytes it looked at in
   * buf[0, len), the breaking byte included, so that they can be searched for another start.
   */
  protected abstract step(b: number): number;

  /** The input ended inside a frame. */
  protected abstract cutShort(): void;

  #begin(): void {
    this.#hunting = false;
    this.len = 0;
    this.startFrame();
  }

  /** Tries every start byte inside the failed candidate buf[0, len), replaying what follows it. */
  #recover(): void {
    const buf = this.buf;
    const start = this.#startByte;
    let n = this.len;
    for (;;) {
      let j = 0;
      while (j < n && buf[j] !== start) j++;
      if (j >= n) {
        this.#hunting = true;
        this.len = 0;
        return;
      }
      buf.copyWithin(0, j + 1, n);
      n -= j + 1;
      this.#begin();
      let r = 0;
      let failed = false;
      while (r < n) {
        const b = buf[r++];
        if (this.#hunting) {
          if (b === start) this.#begin();
          continue;
        }
        // step() writes at buf[len] with len < r: bytes not yet replayed are never overwritten.
        const s = this.step(b);
        if (s === Step.done) this.#hunting = true;
        else if (s === Step.doneAndStart) this.#begin();
        else if (s === Step.failed) {
          // The new candidate buf[0, len) followed by the bytes not yet replayed is what remains.
          buf.copyWithin(this.len, r, n);
          n = this.len + (n - r);
          failed = true;
          break;
        }
      }
      if (!failed) return;
    }
  }
}
