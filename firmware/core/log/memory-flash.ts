// A Flash in RAM with NOR semantics enforced: a write may only clear bits, so a log bug that writes
// over programmed bytes throws here instead of silently corrupting data on a real meter. Used by the
// core's own tests (which also run under XS) and by the host simulation.

import type { Flash } from '../ports.js';

export interface MemoryFlashOptions {
  blocks: number;
  blockSize: number;
  /** Default 1 (byte-programmable, like ESP32 SPI NOR flash without encryption). */
  writeAlign?: number;
}

export class MemoryFlash implements Flash {
  readonly blocks: number;
  readonly blockSize: number;
  readonly writeAlign: number;
  readonly erasedValue = 0xff;
  /** The whole partition; tests may inspect (or deliberately damage) it. */
  readonly bytes: Uint8Array;
  /** Erases per block, counted here (the ground truth for wear figures). */
  readonly eraseCounts: Uint32Array;
  writes = 0;
  bytesWritten = 0;
  erases = 0;

  constructor(options: MemoryFlashOptions) {
    this.blocks = options.blocks;
    this.blockSize = options.blockSize;
    this.writeAlign = options.writeAlign ?? 1;
    this.bytes = new Uint8Array(this.blocks * this.blockSize).fill(0xff);
    this.eraseCounts = new Uint32Array(this.blocks);
  }

  read(offset: number, length: number): Uint8Array {
    this.#check(offset, length, 'read');
    return this.bytes.slice(offset, offset + length);
  }

  write(offset: number, bytes: Uint8Array): void {
    this.#check(offset, bytes.length, 'write');
    if (offset % this.writeAlign !== 0 || bytes.length % this.writeAlign !== 0)
      throw new RangeError(`flash write of ${bytes.length} bytes at ${offset} is not aligned to ${this.writeAlign}`);
    const mem = this.bytes;
    for (let i = 0; i < bytes.length; i++) {
      const old = mem[offset + i];
      if ((bytes[i] & ~old & 0xff) !== 0)
        throw new Error(
          `flash write at byte ${offset + i} would set bits (0x${old.toString(16)} → 0x${bytes[i].toString(16)}); ` +
            'NOR flash can only clear bits: erase the block first',
        );
    }
    mem.set(bytes, offset);
    this.writes++;
    this.bytesWritten += bytes.length;
  }

  eraseBlock(block: number): void {
    if (!Number.isInteger(block) || block < 0 || block >= this.blocks)
      throw new RangeError(`flash block ${block} is outside the partition (0..${this.blocks - 1})`);
    this.bytes.fill(0xff, block * this.blockSize, (block + 1) * this.blockSize);
    this.eraseCounts[block]++;
    this.erases++;
  }

  #check(offset: number, length: number, what: string): void {
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > this.bytes.length)
      throw new RangeError(`flash ${what} of ${length} bytes at ${offset} is outside the ${this.bytes.length}-byte partition`);
  }
}
