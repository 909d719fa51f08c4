// A Flash backed by a file of blocks × blockSize bytes, created erased (0xff), for the host agent.
// NOR semantics are enforced like on the meter: a write that would turn a 0 bit back into 1 throws,
// which catches log bugs that real flash would silently turn into corrupt data.

import { closeSync, fstatSync, fsyncSync, openSync, readSync, writeSync } from 'node:fs';
import type { Flash } from '../../firmware/core/ports.js';

export interface FileFlashOptions {
  blocks: number;
  blockSize: number;
  writeAlign?: number;
  /** fsync after every write and erase so that "durable" means durable (default true). */
  sync?: boolean;
}

export class FileFlash implements Flash {
  readonly blocks: number;
  readonly blockSize: number;
  readonly writeAlign: number;
  readonly erasedValue = 0xff;
  readonly path: string;
  #fd: number;
  readonly #sync: boolean;

  constructor(path: string, options: FileFlashOptions) {
    this.path = path;
    this.blocks = options.blocks;
    this.blockSize = options.blockSize;
    this.writeAlign = options.writeAlign ?? 1;
    this.#sync = options.sync ?? true;
    const size = this.blocks * this.blockSize;
    let fd: number;
    try {
      fd = openSync(path, 'r+');
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw err;
      fd = openSync(path, 'w+');
      const erased = new Uint8Array(this.blockSize).fill(0xff);
      for (let b = 0; b < this.blocks; b++) writeSync(fd, erased, 0, erased.length, b * this.blockSize);
      fsyncSync(fd);
    }
    const actual = fstatSync(fd).size;
    if (actual !== size) {
      closeSync(fd);
      throw new Error(
        `flash file ${path} holds ${actual} bytes but ${this.blocks} blocks of ${this.blockSize} need ${size}; ` +
          'use the geometry it was created with, or move the file away to start a new log',
      );
    }
    this.#fd = fd;
  }

  read(offset: number, length: number): Uint8Array {
    this.#check(offset, length, 'read');
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.#fd, out, done, length - done, offset + done);
      if (n <= 0) throw new Error(`flash file ${this.path} ended at byte ${offset + done}`);
      done += n;
    }
    return out;
  }

  write(offset: number, bytes: Uint8Array): void {
    this.#check(offset, bytes.length, 'write');
    if (offset % this.writeAlign !== 0 || bytes.length % this.writeAlign !== 0)
      throw new RangeError(`flash write of ${bytes.length} bytes at ${offset} is not aligned to ${this.writeAlign}`);
    const old = this.read(offset, bytes.length);
    for (let i = 0; i < bytes.length; i++) {
      if ((bytes[i] & ~old[i] & 0xff) !== 0)
        throw new Error(
          `flash write at byte ${offset + i} of ${this.path} would set bits (0x${old[i].toString(16)} → 0x${bytes[i].toString(16)}); ` +
            'NOR flash can only clear bits: erase the block first',
        );
    }
    this.#put(bytes, offset);
  }

  eraseBlock(block: number): void {
    if (!Number.isInteger(block) || block < 0 || block >= this.blocks)
      throw new RangeError(`flash block ${block} is outside the partition (0..${this.blocks - 1})`);
    this.#put(new Uint8Array(this.blockSize).fill(0xff), block * this.blockSize);
  }

  close(): void {
    if (this.#fd >= 0) closeSync(this.#fd);
    this.#fd = -1;
  }

  #put(bytes: Uint8Array, offset: number): void {
    let done = 0;
    while (done < bytes.length) done += writeSync(this.#fd, bytes, done, bytes.length - done, offset + done);
    if (this.#sync) fsyncSync(this.#fd);
  }

  #check(offset: number, length: number, what: string): void {
    if (this.#fd < 0) throw new Error(`flash file ${this.path} is closed`);
    const size = this.blocks * this.blockSize;
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > size)
      throw new RangeError(`flash ${what} of ${length} bytes at ${offset} is outside the ${size}-byte partition`);
  }
}
