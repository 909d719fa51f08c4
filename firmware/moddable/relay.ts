// The Relay port over ECMA-419 `embedded:io/digital`: one output pin per relay. The interlocks
// (core/control/relays.ts) decide; this only drives the pin and remembers what it drove.

import Digital from 'embedded:io/digital';
import type { Relay } from '../core/ports.js';

export class DigitalRelay implements Relay {
  #io: Digital;
  #on = false;
  #activeLow: boolean;

  /** `activeLow`: the relay driver closes the contact on a low pin (common on relay boards). */
  constructor(readonly id: number, pin: number, activeLow = false) {
    this.#activeLow = activeLow;
    this.#io = new Digital({ pin, mode: Digital.Output });
    this.#io.write(activeLow ? 1 : 0); // open until the interlocks restore the saved state
  }

  get(): boolean {
    return this.#on;
  }

  set(on: boolean): void {
    this.#io.write(on !== this.#activeLow ? 1 : 0);
    this.#on = on;
  }
}
