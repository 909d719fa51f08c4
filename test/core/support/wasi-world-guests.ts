// Hand-made modules for the WASI subset and for worlds (GUESTS.md "WASI", "Microworlds"), portable to
// XS like the rest of test/core/support: a module exercising every WASI function, a one-shot job that
// writes 1 MiB to stdout, a job that imports a WASI function gridlet does not provide, and a world of
// two members where one calls the other.

import { instrumentMetering } from '../../../guests/tools/instrument.js';
import { WASI_IMPORTS, WASI_MODULE } from '../../../firmware/core/guests/wasi.js';
import { encodeWorld, parseWorldManifest } from '../../../firmware/core/guests/world.js';
import { assemble, call, DROP, END, i32c, i64c, localGet, T } from './guests.js';

const WASI_ORDER = ['fd_write', 'clock_time_get', 'random_get', 'proc_exit', 'args_sizes_get', 'args_get', 'environ_sizes_get', 'environ_get'];

function wasiImport(name: string): [string, string, number[], number[]] {
  const t = WASI_IMPORTS[name];
  return [WASI_MODULE, name, t.params, t.results];
}

const store32 = (addr: number, value: number[]): number[] => [...i32c(addr), ...value, 0x36, 2, 0];

function text(s: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i));
  return out;
}

/** At 1024: two lines, the second 150 bytes long (cut at 120 in the log). */
export const WASI_PROBE_TEXT = `hello from a guest\n${'y'.repeat(150)}\nno newline at the end`;

/**
 * A ticked guest importing the whole subset, with exports that call each function: clock(id),
 * rand(len), args() (the four args/environ functions, errnos summed), write(fd, len) (len bytes of
 * WASI_PROBE_TEXT), bad_iov() (an iovec past memory_bytes 4096), exit(code), and peek(addr) to read
 * what they wrote (the clock at 64, random bytes at 128, args at 200–212, the count written at 24).
 */
export function wasiProbes(): Uint8Array {
  const fn = (name: string) => WASI_ORDER.indexOf(name);
  const plain = assemble({
    imports: WASI_ORDER.map(wasiImport),
    funcs: [
      { results: [T.i32], code: i32c(0) }, // init
      { results: [T.i32], code: i32c(0) }, // tick
      { params: [T.i32], results: [T.i32], code: [...localGet(0), ...i64c(1000), ...i32c(64), ...call(fn('clock_time_get'))] },
      { params: [T.i32], results: [T.i32], code: [...localGet(0), 0x28, 2, 0] }, // peek: i32.load
      { params: [T.i32], results: [T.i32], code: [...i32c(128), ...localGet(0), ...call(fn('random_get'))] },
      {
        results: [T.i32],
        code: [
          ...i32c(200), ...i32c(204), ...call(fn('args_sizes_get')),
          ...i32c(208), ...i32c(212), ...call(fn('environ_sizes_get')), 0x6a,
          ...i32c(0), ...i32c(0), ...call(fn('args_get')), 0x6a,
          ...i32c(0), ...i32c(0), ...call(fn('environ_get')), 0x6a,
        ],
      },
      {
        params: [T.i32, T.i32], results: [T.i32],
        code: [...store32(16, i32c(1024)), ...store32(20, localGet(1)), ...localGet(0), ...i32c(16), ...i32c(1), ...i32c(24), ...call(fn('fd_write'))],
      },
      {
        results: [T.i32],
        code: [...store32(16, i32c(4000)), ...store32(20, i32c(500)), ...i32c(1), ...i32c(16), ...i32c(1), ...i32c(24), ...call(fn('fd_write'))],
      },
      { params: [T.i32], code: [...localGet(0), ...call(fn('proc_exit'))] },
    ],
    exports: [
      ['memory', 2, 0], ['init', 0, 8], ['tick', 0, 9], ['clock', 0, 10], ['peek', 0, 11], ['rand', 0, 12],
      ['args', 0, 13], ['write', 0, 14], ['bad_iov', 0, 15], ['exit', 0, 16],
    ],
    data: [[1024, text(WASI_PROBE_TEXT)]],
  });
  return instrumentMetering(plain).wasm;
}

/** Bytes one fd_write of the flood writes, and how many writes: 1 MiB in all. */
export const FLOOD_CHUNK = 1024;
export const FLOOD_WRITES = 1024;

/** A one-shot job whose _start writes 1 MiB to stdout: 1024 writes of 1 KiB (16 lines of 63 "x"). */
export function wasiFlood(): Uint8Array {
  const chunk: number[] = [];
  for (let i = 0; i < FLOOD_CHUNK; i++) chunk.push(i % 64 === 63 ? 0x0a : 0x78);
  const plain = assemble({
    imports: [wasiImport('fd_write')],
    funcs: [{
      locals: [T.i32],
      code: [
        ...store32(16, i32c(1024)), ...store32(20, i32c(FLOOD_CHUNK)),
        0x03, 0x40,
        ...i32c(1), ...i32c(16), ...i32c(1), ...i32c(24), ...call(0), DROP,
        ...localGet(0), ...i32c(1), 0x6a, 0x22, 0, ...i32c(FLOOD_WRITES), 0x48, 0x0d, 0,
        END,
      ],
    }],
    exports: [['memory', 2, 0], ['_start', 0, 1]],
    data: [[1024, chunk]],
  });
  return instrumentMetering(plain).wasm;
}

/** A one-shot job importing `name` from WASI (one gridlet does not provide). */
export function wasiUnlisted(name: string, params: number[] = [T.i32, T.i32, T.i32, T.i32], results: number[] = [T.i32]): Uint8Array {
  const plain = assemble({
    imports: [[WASI_MODULE, name, params, results]],
    funcs: [{ code: [] }],
    exports: [['memory', 2, 0], ['_start', 0, 1]],
  });
  return instrumentMetering(plain).wasm;
}

/** The manifest of the probe world: `lib` offers spin and boom, `app` calls them. */
export const PROBE_WORLD_MANIFEST = {
  name: 'probe-world',
  version: '1.0.0',
  modules: [
    { name: 'lib', period_s: 5, fuel_per_call: 50_000, memory_bytes: 1024, capabilities: [], exports: ['spin', 'boom'] },
    { name: 'app', period_s: 5, fuel_per_call: 50_000, memory_bytes: 1024, capabilities: ['emit'] },
  ],
};

/** lib: spin(n) loops n times and returns 7; boom() traps. */
export function probeWorldLib(): Uint8Array {
  return instrumentMetering(assemble({
    funcs: [
      { results: [T.i32], code: i32c(0) },
      { results: [T.i32], code: i32c(0) },
      { params: [T.i32], results: [T.i32], code: [0x03, 0x40, ...localGet(0), ...i32c(1), 0x6b, 0x22, 0, 0x0d, 0, END, ...i32c(7)] },
      { results: [T.i32], code: [0x00] },
    ],
    exports: [['memory', 2, 0], ['init', 0, 0], ['tick', 0, 1], ['spin', 0, 2], ['boom', 0, 3]],
  })).wasm;
}

/** app: tick returns lib.spin(10) - 7 (0); big calls lib.spin(100 000); crash returns lib.boom(). */
export function probeWorldApp(): Uint8Array {
  return instrumentMetering(assemble({
    imports: [['lib', 'spin', [T.i32], [T.i32]], ['lib', 'boom', [], [T.i32]]],
    funcs: [
      { results: [T.i32], code: i32c(0) },
      { results: [T.i32], code: [...i32c(10), ...call(0), ...i32c(7), 0x6b] },
      { results: [T.i32], code: [...i32c(100_000), ...call(0), DROP, ...i32c(0)] },
      { results: [T.i32], code: [...call(1)] },
    ],
    exports: [['memory', 2, 0], ['init', 0, 2], ['tick', 0, 3], ['big', 0, 4], ['crash', 0, 5]],
  })).wasm;
}

/** The probe world's bundle (manifest changes, e.g. another version, make another CID). */
export function probeWorld(manifest: unknown = PROBE_WORLD_MANIFEST, modules = [probeWorldLib(), probeWorldApp()]): Uint8Array {
  const r = parseWorldManifest(manifest);
  if (!r.ok) throw new Error(r.reason);
  return encodeWorld(r.world, modules);
}

/** The relay world: `lib` offers spin, `app` holds relay 1 (switching it off in init) and calls spin each tick. */
export const RELAY_WORLD_MANIFEST = {
  name: 'relay-world',
  version: '1.0.0',
  modules: [
    { name: 'lib', period_s: 5, fuel_per_call: 50_000, memory_bytes: 1024, capabilities: [], exports: ['spin'] },
    { name: 'app', period_s: 5, fuel_per_call: 50_000, memory_bytes: 1024, capabilities: ['relay:1'] },
  ],
};

/**
 * The relay world's bundle; `faulty` names the member whose tick traps (`version` makes another CID).
 * `badInit` makes app's init refuse (a new version that cannot start).
 */
export function relayWorld(faulty: 'lib' | 'app' | 'none', version = '1.0.0', badInit = false): Uint8Array {
  const lib = instrumentMetering(assemble({
    funcs: [
      { results: [T.i32], code: i32c(0) },
      { results: [T.i32], code: faulty === 'lib' ? [0x00] : i32c(0) },
      { params: [T.i32], results: [T.i32], code: [0x03, 0x40, ...localGet(0), ...i32c(1), 0x6b, 0x22, 0, 0x0d, 0, END, ...i32c(7)] },
    ],
    exports: [['memory', 2, 0], ['init', 0, 0], ['tick', 0, 1], ['spin', 0, 2]],
  })).wasm;
  const app = instrumentMetering(assemble({
    imports: [['gridlet', 'relay', [T.i32, T.i32], [T.i32]], ['lib', 'spin', [T.i32], [T.i32]]],
    funcs: [
      { results: [T.i32], code: [...i32c(1), ...i32c(0), ...call(0), DROP, ...i32c(badInit ? 9 : 0)] },
      { results: [T.i32], code: [...i32c(3), ...call(1), DROP, ...(faulty === 'app' ? [0x00] : []), ...i32c(0)] },
    ],
    exports: [['memory', 2, 0], ['init', 0, 2], ['tick', 0, 3]],
  })).wasm;
  return probeWorld({ ...RELAY_WORLD_MANIFEST, version }, [lib, app]);
}
