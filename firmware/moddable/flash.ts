// The Flash port over ECMA-419 `embedded:storage/flash`: one partition of the partition table,
// given to the record log alone (manifests/partitions-*.csv names it `gridlog`).

import flash, { type FlashPartition } from 'embedded:storage/flash';
import type { Flash } from '../core/ports.js';

export class PartitionFlash implements Flash {
  readonly blockSize: number;
  readonly blocks: number;
  readonly writeAlign: number;
  readonly erasedValue = 0xff;
  #p: FlashPartition;

  /**
   * `writeAlign` 1 suits plain NOR flash (ESP32 partitions are byte-programmable); with ESP32 flash
   * encryption on, writes must be 16-byte aligned, so pass 16.
   */
  constructor(label: string, writeAlign = 1) {
    let p: FlashPartition;
    try {
      p = flash.open({ path: label });
    } catch {
      throw new Error(`no flash partition "${label}": flash with the partition table in manifests/ (docs/firmware.md)`);
    }
    const s = p.status();
    this.#p = p;
    this.blockSize = s.blockLength;
    this.blocks = s.blocks;
    this.writeAlign = writeAlign;
  }

  read(offset: number, length: number): Uint8Array {
    return new Uint8Array(this.#p.read(length, offset));
  }

  write(offset: number, bytes: Uint8Array): void {
    this.#p.write(bytes, offset);
  }

  eraseBlock(block: number): void {
    this.#p.eraseBlock(block);
  }

  close(): void {
    this.#p.close();
  }
}
