// The host's guest engines by name, for `--guest-engine`: v8 (Node's WebAssembly with the memory
// guard: host/guests/wasm-engine.ts, the default) and wasm3 (the meter's engine compiled to
// WebAssembly: host/guests/wasm3-engine.ts). Both run the same bytes under the same limits with the
// same results, fuel and traps (test/host/guests-wasm3.test.ts).

import type { GuestEngine } from '../../firmware/core/ports.js';
import { NodeGuestEngine } from './wasm-engine.js';
import { Wasm3HostEngine } from './wasm3-engine.js';

export const GUEST_ENGINES = ['v8', 'wasm3'] as const;
export type GuestEngineName = (typeof GUEST_ENGINES)[number];

/** The engine named `name` (v8 when absent); throws naming the choices for anything else. */
export function guestEngine(name: string | undefined = 'v8'): GuestEngine {
  switch (name) {
    case 'v8': return new NodeGuestEngine();
    case 'wasm3': return new Wasm3HostEngine();
    default: throw new RangeError(`--guest-engine ${name}: expected ${GUEST_ENGINES.join(' or ')}`);
  }
}

/** Checks a `--guest-engine` value. */
export function isGuestEngineName(name: unknown): name is GuestEngineName {
  return (GUEST_ENGINES as readonly unknown[]).includes(name);
}
