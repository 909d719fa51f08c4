// The KeyValue port on files: one file per key, replaced atomically (write, fsync, rename, fsync dir),
// so a crash leaves either the old value or the new one.

import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { KeyValue } from '../../firmware/core/ports.js';

export class FileKeyValue implements KeyValue {
  readonly #dir: string;
  constructor(dir: string) {
    this.#dir = dir;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  #path(key: string): string {
    return join(this.#dir, encodeURIComponent(key));
  }
  get(key: string): Uint8Array | undefined {
    try {
      return new Uint8Array(readFileSync(this.#path(key)));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }
  set(key: string, value: Uint8Array): void {
    const p = this.#path(key);
    const tmp = p + '.tmp';
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, value);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, p);
    this.#syncDir();
  }
  delete(key: string): void {
    try {
      unlinkSync(this.#path(key));
      this.#syncDir();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  #syncDir(): void {
    const fd = openSync(this.#dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}

export class MemoryKeyValue implements KeyValue {
  readonly map = new Map<string, Uint8Array>();
  get(key: string) {
    const v = this.map.get(key);
    return v ? v.slice() : undefined;
  }
  set(key: string, value: Uint8Array) {
    this.map.set(key, value.slice());
  }
  delete(key: string) {
    this.map.delete(key);
  }
}
