// How gridlet's data partition is divided: the record log, then the persistent counters.
//
// Default: 64 erase blocks of 4096 bytes (256 KiB). Why that size:
//   - it fits beside two OTA app slots on the smallest common module, a 4 MB ESP32 (2 × 1.5 MB apps +
//     NVS + PHY data leave about 900 KiB), so one firmware image and one layout serve every meter;
//   - the log gets 62 blocks (61 hold records, one is always kept free): 246,928 bytes of records. At
//     the compact encoding (2.3 bytes per reading for 4 channels every 10 s, measured by
//     scripts/bench/flash-log.ts) that is about 3 days with the gateway unreachable before the oldest
//     readings are dropped (and events are kept even then): a weekend outage of the uplink or the
//     gateway loses nothing. Days scale with size: on 8 MB modules a 1 MiB partition gives ~12 days;
//   - wear: online, each block is erased about every 2 days (0.53 erases a day, bench), ≈ 200 erase
//     cycles a year against the ≥ 100,000 NOR flash is rated for.
// The last 2 blocks hold the counters (counters.ts): they alternate, so one is always intact.

import type { Flash } from '../ports.js';

export const DEFAULT_PARTITION = { blocks: 64, blockSize: 4096, counterBlocks: 2 } as const;

/** A run of whole blocks of another Flash, seen as a Flash of its own. */
export class FlashSlice implements Flash {
  readonly blockSize: number;
  readonly writeAlign: number;
  readonly erasedValue: number;
  readonly #base: number;

  constructor(readonly flash: Flash, readonly firstBlock: number, readonly blocks: number) {
    if (!(firstBlock >= 0 && blocks >= 1 && firstBlock + blocks <= flash.blocks))
      throw new RangeError(`blocks ${firstBlock}..${firstBlock + blocks - 1} are outside the ${flash.blocks}-block partition`);
    this.blockSize = flash.blockSize;
    this.writeAlign = flash.writeAlign;
    this.erasedValue = flash.erasedValue;
    this.#base = firstBlock * flash.blockSize;
  }

  read(offset: number, length: number): Uint8Array {
    this.#check(offset, length);
    return this.flash.read(this.#base + offset, length);
  }

  write(offset: number, bytes: Uint8Array): void {
    this.#check(offset, bytes.length);
    this.flash.write(this.#base + offset, bytes);
  }

  eraseBlock(block: number): void {
    if (!(Number.isInteger(block) && block >= 0 && block < this.blocks))
      throw new RangeError(`block ${block} is outside the ${this.blocks}-block slice`);
    this.flash.eraseBlock(this.firstBlock + block);
  }

  #check(offset: number, length: number): void {
    if (!(offset >= 0 && length >= 0 && offset + length <= this.blocks * this.blockSize))
      throw new RangeError(`${length} bytes at ${offset} are outside the ${this.blocks * this.blockSize}-byte slice`);
  }
}

/** Splits the data partition: the record log first, the counters in the last `counterBlocks` blocks. */
export function splitPartition(flash: Flash, counterBlocks: number = DEFAULT_PARTITION.counterBlocks): { log: Flash; counters: Flash } {
  return {
    log: new FlashSlice(flash, 0, flash.blocks - counterBlocks),
    counters: new FlashSlice(flash, flash.blocks - counterBlocks, counterBlocks),
  };
}
