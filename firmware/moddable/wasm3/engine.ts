// The GuestEngine port on the meter: wasm3 linked into the firmware image (guest-engine.c over
// guest-core.c, module `gridlet/wasm3`), driven by wasm3-guests.ts, the JavaScript half the host's
// wasm3 engine shares (host/guests/wasm3-engine.ts).

import Wasm3Module from 'gridlet/wasm3';
import { Wasm3GuestEngine, type Wasm3Binding } from './wasm3-guests.js';

export { GuestTrap, TrapKind } from '../../core/ports.js';
export { IMPORT_SIGNATURES } from './wasm3-guests.js';

export class Wasm3Engine extends Wasm3GuestEngine {
  constructor() {
    super((wasm, memoryBytes, stackBytes) => new Wasm3Module(wasm, memoryBytes, stackBytes) as Wasm3Binding);
  }
}
