// The Random port over the hardware RNG (native/random.c).

import { fill } from 'gridlet/random';
import type { Random } from '../core/ports.js';

export class HardwareRandom implements Random {
  fill(bytes: Uint8Array): void {
    fill(bytes);
  }
}
