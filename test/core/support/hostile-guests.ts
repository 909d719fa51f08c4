// The hostile and broken guests every engine must contain (test/host/guests-hostile.test.ts runs them
// against a meter; the engine comparisons, v8 against wasm3 on the host and on the lin simulator, run
// them on the engines directly), and the probe module the engine tests poke memory, fuel and traps with.

import { instrumentMetering } from '../../../guests/tools/instrument.js';
import { assemble, call, DROP, END, guest, i32c, i64c, localGet, meteredGuest, T } from './guests.js';

/** The manifest hostile guests are deployed with (extra capabilities per module). */
export function hostileManifest(name: string, capabilities: string[] = [], extra: Record<string, unknown> = {}) {
  return { name, version: '1.0.0', period_s: 5, fuel_per_call: 50_000, memory_bytes: 4096, capabilities, ...extra };
}

/** A metered module whose tick runs `code` (usegas import last). */
function instrumentLike(code: number[], memory?: { min: number; max?: number; flags?: number }): Uint8Array {
  return assemble({
    imports: [['metering', 'usegas', [T.i64], []]],
    memory,
    funcs: [
      { results: [T.i32], code: [...i64c(2), ...call(0), ...i32c(0)] },
      { results: [T.i32], code: [...i64c(100), ...call(0), ...code, ...i32c(0)] },
    ],
    exports: [['memory', 2, 0], ['init', 0, 1], ['tick', 0, 2]],
  });
}

/** Modules refused at deployment: [what, make, the reason the guest-ack carries, capabilities]. */
export const REFUSED: [string, () => Uint8Array, RegExp, string[]?][] = [
  ['an unknown import', () => meteredGuest({ otherImports: [['gridlet', 'reboot', [], []]] }), /gridlet\.reboot is not in the gridlet import table/],
  ['an import from another module', () => meteredGuest({ otherImports: [['env', 'abort', [T.i32, T.i32, T.i32, T.i32], []]] }), /env\.abort is from module "env"/],
  ['a WASI function outside the subset', () => meteredGuest({ otherImports: [['wasi_snapshot_preview1', 'path_open', [T.i32, T.i32, T.i32, T.i32, T.i32, T.i64, T.i64, T.i32, T.i32], [T.i32]]] }), /wasi_snapshot_preview1\.path_open is a WASI function gridlet does not provide/],
  ['no metering', () => guest({ tick: [...i32c(0)] }), /not metered: it does not import metering\.usegas/],
  ['usegas imported but never called', () => assemble({
    imports: [['metering', 'usegas', [T.i64], []]],
    funcs: [{ results: [T.i32], code: i32c(0) }],
    exports: [['memory', 2, 0], ['init', 0, 1], ['tick', 0, 1]],
  }), /metering does not cover function 1 \(export "init"\)/],
  ['SIMD', () => instrumentLike([0xfd, 12, ...new Array(16).fill(0), DROP]), /SIMD \(0xfd prefix\)/],
  ['threads (atomics)', () => instrumentLike([...i32c(0), 0xfe, 0x10, 2, 0, DROP]), /threads\/atomics \(0xfe prefix\)/],
  ['threads (shared memory)', () => instrumentLike([], { min: 1, max: 1, flags: 3 }), /shared \(threads\)/],
  ['bad magic', () => { const b = meteredGuest(); b[1] = 0x62; return b; }, /bad magic/],
  ['truncated sections', () => { const b = meteredGuest(); return b.slice(0, b.length - 5); }, /truncated: code section at byte \d+ declares \d+ bytes but only \d+ remain/],
  ['a 1 MiB module', () => { const b = new Uint8Array(1 << 20); b.set(meteredGuest()); return b; }, /module size 1048576 bytes is outside 8–4096/],
  ['an init that fails', () => meteredGuest({ init: i32c(7) }), /init returned 7: the guest refused to start/],
  ['an init that traps', () => meteredGuest({ init: [0x00] }), /init: trap: init: unreachable/],
  ['a relay another guest holds', () => meteredGuest(), /relay 1 is held by running guest peak-guard/, ['relay:1']],
  ['memory over one page', () => meteredGuest({ memory: { min: 2, max: 2 } }), /2 pages initially/],
];

/** Modules that load and then misbehave at run time, contained by the engine and the supervisor. */
export const RUNTIME = {
  /** tick loops forever. */
  spinner: () => meteredGuest({ tick: [0x03, 0x40, 0x0c, 0, END, ...i32c(0)] }),
  /** tick grows memory by a page (past any memory_bytes). */
  grower: () => meteredGuest({ tick: [...i32c(1), 0x40, 0, DROP, ...i32c(0)] }),
  /** tick stores at byte 60 000 (inside the page, past memory_bytes 4096). */
  scribbler: () => meteredGuest({ tick: [...i32c(60_000), ...i32c(-1), 0x36, 2, 0, ...i32c(0)] }),
  /** tick asks for relay 2, which it was not granted, and returns the answer + 1. */
  sneaky: () => meteredGuest({ imports: ['relay'], tick: [...i32c(2), ...i32c(1), ...call(0), ...i32c(1), 0x6a] }),
  /** Traps on its fourth tick after each (re)start (a global counter; a restart is a fresh instance). */
  hiccup: () => meteredGuest({
    globals: [[T.i32, true, i32c(0)]],
    tick: [
      0x23, 0, ...i32c(1), 0x6a, 0x24, 0, // g += 1
      0x23, 0, ...i32c(4), 0x46, 0x04, 0x40, 0x00, END, // if g == 4: unreachable
      ...i32c(0),
    ],
  }),
};

/**
 * Probe exports over one page of memory, instrumented: poke (i32.store), poke100 (offset 100), peek8,
 * grow, spin(n) (n loop passes), deep (endless recursion), div0, boom (unreachable).
 */
export function engineProbes(): Uint8Array {
  const plain = assemble({
    memory: { min: 1, max: 1 },
    funcs: [
      { results: [T.i32], code: i32c(0) }, // init
      { results: [T.i32], code: i32c(0) }, // tick
      { params: [T.i32], code: [...localGet(0), ...i32c(7), 0x36, 2, 0] }, // poke: i32.store
      { params: [T.i32], code: [...localGet(0), ...i32c(7), 0x36, 2, 100] }, // poke100: i32.store offset=100
      { params: [T.i32], results: [T.i32], code: [...localGet(0), 0x2d, 0, 0] }, // peek8: i32.load8_u
      { params: [T.i32], results: [T.i32], code: [...localGet(0), 0x40, 0] }, // grow
      // spin(n): loop { n -= 1; br_if n != 0 }
      { params: [T.i32], code: [0x03, 0x40, ...localGet(0), ...i32c(1), 0x6b, 0x22, 0, 0x0d, 0, END] },
      { code: [...call(7)] }, // deep: infinite recursion
      { results: [T.i32], code: [...i32c(1), ...i32c(0), 0x6d] }, // div0: i32.div_s 1 / 0
      { code: [0x00] }, // boom: unreachable
    ],
    exports: [
      ['memory', 2, 0], ['init', 0, 0], ['tick', 0, 1], ['poke', 0, 2], ['poke100', 0, 3], ['peek8', 0, 4],
      ['grow', 0, 5], ['spin', 0, 6], ['deep', 0, 7], ['div0', 0, 8], ['boom', 0, 9],
    ],
  });
  return instrumentMetering(plain).wasm;
}
