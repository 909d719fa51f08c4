// The Random port over the hardware RNG (native/random.c). An ESP32's RNG is true random only while
// the radio runs; before that — at boot, when the meter makes its identity, pair secret, factory PIN
// and boot nonce — `strong` switches the bootloader's entropy source on around the core's draw. Once
// Wi-Fi is about to start (radioStarting) that source must stay off: the radio is then the entropy.

import { entropy, fill } from 'gridlet/random';
import type { Random } from '../core/ports.js';

export class HardwareRandom implements Random {
  #radio = false;
  #depth = 0;

  fill(bytes: Uint8Array): void {
    fill(bytes);
  }

  strong(f: () => void): void {
    // Nested calls share the outer one's switch; after the radio starts, fill is strong by itself.
    if (this.#radio || this.#depth > 0) return void this.#run(f);
    entropy(true);
    try {
      this.#run(f);
    } finally {
      entropy(false);
    }
  }

  /** Call before Wi-Fi (or Bluetooth) starts: the bootloader's entropy source is never switched on after. */
  radioStarting(): void {
    this.#radio = true;
  }

  #run(f: () => void): void {
    this.#depth++;
    try {
      f();
    } finally {
      this.#depth--;
    }
  }
}
