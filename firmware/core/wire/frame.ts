// WIRE.md "Frames": [1, counter, salt, box], box = secretbox(body, nonce, Ks).

import { CborError, decode, encode } from '../cbor.js';
import { writeU64BE } from '../bytes.js';
import { secretbox, secretboxOpen } from '../crypto.js';

export const Direction = { up: 0x11, down: 0x12 } as const;
export type DirectionValue = (typeof Direction)[keyof typeof Direction];

export const MAX_FRAME_BYTES = 2048;
export const MAX_COUNTER = Number.MAX_SAFE_INTEGER;

export function frameNonce(direction: DirectionValue, counter: number, salt: Uint8Array): Uint8Array {
  const nonce = new Uint8Array(24);
  nonce[0] = direction;
  writeU64BE(nonce, 1, counter);
  nonce.set(salt, 9);
  return nonce;
}

/** Seals an encoded body into a frame. `salt` must be 8 fresh random bytes. */
export function sealFrame(body: Uint8Array, counter: number, salt: Uint8Array, key: Uint8Array, direction: DirectionValue): Uint8Array {
  if (!Number.isSafeInteger(counter) || counter < 1) throw new RangeError(`frame counter ${counter} is out of range`);
  if (salt.length !== 8) throw new RangeError('frame salt must be 8 bytes');
  const box = secretbox(body, frameNonce(direction, counter, salt), key);
  const frame = encode([1, counter, salt, box], MAX_FRAME_BYTES + 64);
  if (frame.length > MAX_FRAME_BYTES) throw new RangeError(`frame of ${frame.length} bytes exceeds ${MAX_FRAME_BYTES}`);
  return frame;
}

/** Why a frame was dropped; the names are the gateway's metric labels. */
export const FrameDrop = {
  malformed: 'malformed',
  oversized: 'oversized',
  replay: 'replay',
  forged: 'forged',
} as const;
export type FrameDropReason = (typeof FrameDrop)[keyof typeof FrameDrop];

export interface ParsedFrame {
  counter: number;
  salt: Uint8Array;
  box: Uint8Array;
}

/** Parses the outer array without opening the box. Returns a drop reason on failure. */
export function parseFrame(bytes: Uint8Array): ParsedFrame | FrameDropReason {
  if (bytes.length > MAX_FRAME_BYTES) return FrameDrop.oversized;
  let v;
  try {
    v = decode(bytes, { maxDepth: 2 });
  } catch (e) {
    if (e instanceof CborError) return FrameDrop.malformed;
    throw e;
  }
  if (!Array.isArray(v) || v.length !== 4 || v[0] !== 1) return FrameDrop.malformed;
  const [, counter, salt, box] = v;
  if (typeof counter !== 'number' || !Number.isSafeInteger(counter) || counter < 1) return FrameDrop.malformed;
  if (!(salt instanceof Uint8Array) || salt.length !== 8) return FrameDrop.malformed;
  if (!(box instanceof Uint8Array) || box.length < 16) return FrameDrop.malformed;
  return { counter, salt, box };
}

/** Opens a parsed frame's box; undefined when it does not authenticate under `key`. */
export function openBox(frame: ParsedFrame, key: Uint8Array, direction: DirectionValue): Uint8Array | undefined {
  return secretboxOpen(frame.box, frameNonce(direction, frame.counter, frame.salt), key);
}

/**
 * The receiver's anti-replay state: the highest counter accepted and a 64-wide window below it.
 * Kept as two 32-bit words so it persists in 16 bytes and needs no BigInt on the device.
 */
export class ReplayWindow {
  highest = 0;
  #lo = 0; // bits 0..31: counters highest-1 .. highest-32 (bit 0 = highest-1)
  #hi = 0; // bits 0..31: counters highest-33 .. highest-64

  static from(highest: number, bits: number[]): ReplayWindow {
    const w = new ReplayWindow();
    w.highest = highest;
    w.#lo = bits[0] >>> 0;
    w.#hi = bits[1] >>> 0;
    return w;
  }

  get bits(): [number, number] {
    return [this.#lo, this.#hi];
  }

  /** True when a frame with this counter may be accepted (not seen, not below the window). */
  check(counter: number): boolean {
    if (counter > this.highest) return true;
    if (counter === this.highest) return false;
    const d = this.highest - counter; // 1..
    if (d > 64) return false;
    if (d <= 32) return ((this.#lo >>> (d - 1)) & 1) === 0;
    return ((this.#hi >>> (d - 33)) & 1) === 0;
  }

  /** Marks a counter as accepted; call only after the frame opened and decoded. */
  accept(counter: number): void {
    if (counter > this.highest) {
      let shift = counter - this.highest;
      // The old highest becomes a window bit at distance `shift`.
      let lo = this.#lo;
      let hi = this.#hi;
      if (this.highest === 0) {
        lo = 0;
        hi = 0;
        shift = 0;
      }
      if (shift >= 64) {
        lo = 0;
        hi = 0;
      } else if (shift > 0) {
        // 64-bit value (hi:lo) << shift.
        if (shift >= 32) {
          hi = shift === 32 ? lo : lo << (shift - 32);
          lo = 0;
        } else {
          hi = (hi << shift) | (lo >>> (32 - shift));
          lo = lo << shift;
        }
      }
      if (shift > 0 && shift <= 64) {
        // The previous highest is now at distance `shift`.
        const b = shift - 1;
        if (b < 32) lo |= 1 << b;
        else hi |= 1 << (b - 32);
      }
      this.#lo = lo >>> 0;
      this.#hi = hi >>> 0;
      this.highest = counter;
      return;
    }
    const d = this.highest - counter;
    if (d < 1 || d > 64) return;
    if (d <= 32) this.#lo = (this.#lo | (1 << (d - 1))) >>> 0;
    else this.#hi = (this.#hi | (1 << (d - 33))) >>> 0;
  }
}
