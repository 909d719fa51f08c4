// A Flash that loses power: wraps another Flash (memory or file) and, on a seeded schedule, cuts the
// power at a write or an erase — before it, in the middle of it, or right after it. In the middle of a
// write only a prefix of the bytes is programmed and the last of them only partly (some of the bits it
// should clear are cleared); an erase cut in the middle leaves the block garbled (some bytes erased,
// some unchanged, some with random bits set). After a cut every call throws PowerCut until reboot(),
// and the test opens a new log over the same flash, as the meter would on its next boot.

import type { Flash } from '../../firmware/core/ports.js';
import type { Prng } from '../../firmware/core/prng.js';

export class PowerCut extends Error {
  constructor(readonly point: CutPoint) {
    super(`power cut (${point})`);
    this.name = 'PowerCut';
  }
}

export const CUT_POINTS = ['write-before', 'write-during', 'write-after', 'erase-before', 'erase-during', 'erase-after'] as const;
export type CutPoint = (typeof CUT_POINTS)[number];

export interface FaultyFlashOptions {
  /** Mean number of writes and erases between cuts (geometric); 0 = cut only when armed by hand. */
  meanOpsBetweenCuts?: number;
  /** Extra chance that any one erase is cut (erases are rare, so a schedule alone seldom hits them). */
  eraseCutChance?: number;
  /**
   * Called when this flash cuts the power, before PowerCut is thrown: a device with more than one store
   * loses power in all of them at once (the firmware may catch the error; the power stays off).
   */
  onCut?: () => void;
}

export class FaultyFlash implements Flash {
  readonly blockSize: number;
  readonly blocks: number;
  readonly writeAlign: number;
  readonly erasedValue: number;
  /** Writes and erases performed (or attempted) since construction. */
  ops = 0;
  cuts = 0;
  readonly cutsAt: Record<CutPoint, number> = {
    'write-before': 0,
    'write-during': 0,
    'write-after': 0,
    'erase-before': 0,
    'erase-during': 0,
    'erase-after': 0,
  };
  #down = false;
  #countdown = 0;
  readonly #mean: number;
  readonly #eraseChance: number;
  readonly #onCut: (() => void) | undefined;

  constructor(readonly inner: Flash, readonly rng: Prng, options: FaultyFlashOptions = {}) {
    this.blockSize = inner.blockSize;
    this.blocks = inner.blocks;
    this.writeAlign = inner.writeAlign;
    this.erasedValue = inner.erasedValue;
    this.#mean = options.meanOpsBetweenCuts ?? 0;
    this.#eraseChance = options.eraseCutChance ?? 0;
    this.#onCut = options.onCut;
    this.#schedule();
  }

  get down(): boolean {
    return this.#down;
  }

  /** Cuts the power at the `ops`-th write or erase from now (1 = the next one). */
  armIn(ops: number): void {
    this.#countdown = ops;
  }

  /** No more cuts until armIn() (or reboot() with a mean set). */
  disarm(): void {
    this.#countdown = 0;
  }

  /** The power went off elsewhere in the device: every call throws PowerCut until reboot(). */
  powerOff(): void {
    this.#down = true;
  }

  /** Power comes back: calls work again, and the next cut is scheduled. */
  reboot(): void {
    this.#down = false;
    this.#schedule();
  }

  read(offset: number, length: number): Uint8Array {
    this.#alive();
    return this.inner.read(offset, length);
  }

  write(offset: number, bytes: Uint8Array): void {
    this.#alive();
    this.ops++;
    if (!this.#due()) {
      this.inner.write(offset, bytes);
      return;
    }
    const how = bytes.length === 0 ? 0 : this.rng.int(3);
    if (how === 0) this.#cut('write-before');
    if (how === 2) {
      this.inner.write(offset, bytes);
      this.#cut('write-after');
    }
    // A prefix is programmed, the byte after it partly, the rest not at all. Done as one aligned write
    // of the resulting bytes, which only clears bits, so any inner Flash accepts it.
    const old = this.inner.read(offset, bytes.length);
    const k = this.rng.int(bytes.length);
    const torn = old.slice();
    for (let i = 0; i < k; i++) torn[i] = bytes[i];
    const toClear = old[k] & ~bytes[k] & 0xff;
    torn[k] = old[k] & ~(toClear & this.rng.next()) & 0xff;
    this.inner.write(offset, torn);
    this.#cut('write-during');
  }

  eraseBlock(block: number): void {
    this.#alive();
    this.ops++;
    const due = this.#due();
    if (!due && !(this.#eraseChance > 0 && this.rng.chance(this.#eraseChance))) {
      this.inner.eraseBlock(block);
      return;
    }
    const how = this.rng.int(3);
    if (how === 0) this.#cut('erase-before');
    if (how === 2) {
      this.inner.eraseBlock(block);
      this.#cut('erase-after');
    }
    const bs = this.blockSize;
    const old = this.inner.read(block * bs, bs);
    this.inner.eraseBlock(block);
    const garbled = new Uint8Array(bs);
    // Erasure is not uniform: a random stretch is done, the rest ranges from untouched to half-erased.
    const from = this.rng.int(bs);
    const to = from + this.rng.int(bs - from + 1);
    const style = this.rng.int(3);
    for (let i = 0; i < bs; i++) {
      if (i >= from && i < to) garbled[i] = 0xff;
      else if (style === 0) garbled[i] = old[i];
      else if (style === 1) garbled[i] = old[i] | (this.rng.next() & 0xff);
      else garbled[i] = this.rng.chance(0.5) ? 0xff : old[i] | (this.rng.next() & this.rng.next() & 0xff);
    }
    this.inner.write(block * bs, garbled);
    this.#cut('erase-during');
  }

  #alive(): void {
    if (this.#down) throw new PowerCut('write-before');
  }

  #due(): boolean {
    if (this.#countdown <= 0) return false;
    return --this.#countdown === 0;
  }

  #schedule(): void {
    if (this.#mean > 0) this.#countdown = this.rng.geometric(this.#mean);
  }

  #cut(point: CutPoint): never {
    this.#down = true;
    this.cuts++;
    this.cutsAt[point]++;
    this.#onCut?.();
    throw new PowerCut(point);
  }
}
