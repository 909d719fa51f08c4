// The KeyValue port over Moddable's `preference` (NVS on the ESP32: durable when set returns).
// NVS keys are at most 15 characters, so longer keys are stored under a hash of themselves.

import Preference from 'preference';
import { base32 } from '../core/bytes.js';
import { sha256, text } from '../core/crypto.js';
import type { KeyValue } from '../core/ports.js';

const MAX_KEY = 15;

export class PreferenceStore implements KeyValue {
  constructor(readonly domain = 'gridlet') {}

  #key(key: string): string {
    return key.length <= MAX_KEY ? key : '#' + base32(sha256(text(key))).slice(0, MAX_KEY - 1);
  }

  get(key: string): Uint8Array | undefined {
    const v = Preference.get(this.domain, this.#key(key));
    return v instanceof ArrayBuffer ? new Uint8Array(v) : undefined;
  }

  set(key: string, value: Uint8Array): void {
    Preference.set(this.domain, this.#key(key), value.slice().buffer);
  }

  delete(key: string): void {
    Preference.delete(this.domain, this.#key(key));
  }
}
