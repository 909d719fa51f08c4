// The guests every engine is compared on (v8 against wasm3 on the host: test/host/guests-wasm3.test.ts;
// against wasm3 in the firmware image on the lin simulator: test/firmware/wasm3-engine.test.ts):
// every shipped guest and world in guests/dist (AssemblyScript, C, Rust, the WASI job), every module
// of the hostile set (test/core/support/hostile-guests.ts), the engine probes, the WASI subset and a
// world's calls between members (test/core/support/wasi-world-guests.ts), and modules aimed at the
// places where wasm3 and V8 differ underneath.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIST_DIR, MANIFEST_DIR } from '../../../guests/build.js';
import { GRIDLET_IMPORTS } from '../../../firmware/core/guests/validate.js';
import { instrumentMetering } from '../../../guests/tools/instrument.js';
import { ExternKind, parseModule } from '../../../firmware/core/guests/wasm.js';
import { decodeWorld } from '../../../firmware/core/guests/world.js';
import { probeWorld, wasiFlood, wasiProbes } from '../../core/support/wasi-world-guests.js';
import type { ProbeCall, ProbeCase } from '../../core/support/guest-probe.js';
import { assemble, call, DROP, END, f64c, globalGet, globalSet, i32c, localGet, meteredGuest, str, T } from '../../core/support/guests.js';
import { engineProbes, hostileManifest, REFUSED, RUNTIME } from '../../core/support/hostile-guests.js';

export interface GuestCase {
  probe: ProbeCase;
  wasm: Uint8Array;
  /** Where the engines may differ, and why: only the trap kinds are compared there. */
  kindsOnly?: string;
}

function slug(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
}

function imports(names: string[]): [string, string, number[], number[]][] {
  return names.map((n) => ['gridlet', n, GRIDLET_IMPORTS[n].params, GRIDLET_IMPORTS[n].results]);
}

const repeat = (n: number, c: ProbeCall): ProbeCall[] => new Array(n).fill(c);

/** A shipped guest's run: init, then ticks with grid signals changing in between. */
function shippedCalls(fuel: number, onSignal: boolean): ProbeCall[] {
  const tick = { fn: 'tick', fuel };
  const signal = (id: number, value: number): ProbeCall[] => (onSignal ? [{ fn: 'on_signal', args: [id, value], fuel }] : []);
  return [
    { fn: 'init', fuel }, ...repeat(30, tick),
    ...signal(2, 2), ...repeat(20, tick),
    ...signal(3, 3000), ...repeat(20, tick),
    ...signal(2, 0), ...repeat(20, tick),
    // A budget too small for a tick: the same fuel trap at the same point on every engine.
    { fn: 'tick', fuel: 20 }, ...repeat(5, tick),
  ];
}

/** Modules aimed at what wasm3 and V8 do differently underneath (the wasm3 binding's findings). */
function edgeModules(): { name: string; wasm: Uint8Array; calls: ProbeCall[]; memoryBytes?: number; startFuel?: number; kindsOnly?: string }[] {
  const f = 10_000;
  return [
    {
      // AssemblyScript emits a start function: it must run, once, with imports, on its own budget.
      name: 'start calls imports',
      wasm: instrumentMetering(assemble({
        imports: imports(['time', 'kv_set']),
        globals: [[T.f64, true, f64c(0)]],
        funcs: [
          { results: [T.i32], code: i32c(0) },
          { results: [T.i32], code: [...globalGet(0), 0xaa] }, // tick: i32.trunc_f64_s(g)
          { code: [...call(0), ...globalSet(0), ...i32c(0), ...globalGet(0), ...call(1), DROP] }, // start: g = time(); kv_set(0, g)
        ],
        exports: [['memory', 2, 0], ['init', 0, 2], ['tick', 0, 3]],
        start: 4,
      })).wasm,
      calls: [{ fn: 'tick', fuel: f }, { fn: 'init', fuel: f }],
    },
    {
      name: 'start spends its budget',
      wasm: instrumentMetering(assemble({
        funcs: [{ results: [T.i32], code: i32c(0) }, { code: [0x03, 0x40, 0x0c, 0, END] }],
        exports: [['memory', 2, 0], ['init', 0, 0], ['tick', 0, 0]],
        start: 1,
      })).wasm,
      startFuel: 5000,
      calls: [{ fn: 'tick', fuel: f }],
    },
    {
      name: 'start traps',
      wasm: instrumentMetering(assemble({
        funcs: [{ results: [T.i32], code: i32c(0) }, { code: [...i32c(1), ...i32c(0), 0x6d, DROP] }],
        exports: [['memory', 2, 0], ['init', 0, 0], ['tick', 0, 0]],
        start: 1,
      })).wasm,
      calls: [{ fn: 'tick', fuel: f }],
    },
    {
      // No memory (the validator requires one; an engine must still bound the start function).
      name: 'start without memory',
      wasm: instrumentMetering(assemble({
        memory: null,
        globals: [[T.i32, true, i32c(0)]],
        funcs: [{ results: [T.i32], code: [...globalGet(0)] }, { code: [...i32c(42), ...globalSet(0)] }],
        exports: [['init', 0, 0], ['tick', 0, 0]],
        start: 1,
      })).wasm,
      calls: [{ fn: 'tick', fuel: f }],
    },
    {
      // A "name" section naming an unexported function "tick": wasm3 matched names, not exports.
      name: 'name section alias',
      wasm: (() => {
        const m = instrumentMetering(assemble({
          funcs: [
            { results: [T.i32], code: i32c(0) },
            { results: [T.i32], code: i32c(99) }, // not exported
            { results: [T.i32], code: i32c(1) }, // the exported tick
          ],
          exports: [['memory', 2, 0], ['init', 0, 0], ['tick', 0, 2]],
        })).wasm;
        // name section: function names subsection (1) naming function 2 (index with usegas import) "tick".
        const names = [1, ...leb7([1, 2, ...str('tick')])];
        const custom = [...str('name'), ...names];
        return new Uint8Array([...m, 0, custom.length, ...custom]);
      })(),
      calls: [{ fn: 'init', fuel: f }, { fn: 'tick', fuel: f }],
    },
    {
      // memory.grow by 2^32 - 1 pages: wasm3 adds it to the page count in 32 bits (and would shrink the memory).
      name: 'grow wraps',
      wasm: engineProbes(),
      memoryBytes: 4096,
      calls: [{ fn: 'poke', args: [8], fuel: f }, { fn: 'grow', args: [-1], fuel: f }, { fn: 'peek8', args: [8], fuel: f }, { fn: 'grow', args: [0], fuel: f }],
    },
    {
      // A declared maximum of 0 pages: wasm3 reads 0 as "no maximum".
      name: 'grow past a maximum of 0',
      wasm: instrumentMetering(assemble({
        memory: { min: 0, max: 0 },
        funcs: [
          { results: [T.i32], code: i32c(0) },
          { params: [T.i32], results: [T.i32], code: [...localGet(0), 0x40, 0] },
          { results: [T.i32], code: [0x3f, 0] },
        ],
        exports: [['memory', 2, 0], ['init', 0, 0], ['tick', 0, 0], ['grow', 0, 1], ['size', 0, 2]],
      })).wasm,
      calls: [{ fn: 'grow', args: [1], fuel: f }, { fn: 'size', fuel: f }, { fn: 'grow', args: [0], fuel: f }],
    },
    {
      // An i32 import answering a non-integer, NaN and 2^32 + 5.75: converted by ToInt32.
      name: 'import results converted',
      wasm: instrumentMetering(assemble({
        imports: imports(['relay_state']),
        funcs: [
          { results: [T.i32], code: i32c(0) },
          { results: [T.i32], code: [...i32c(99), ...call(0)] },
          { results: [T.i32], code: [...i32c(98), ...call(0)] },
          { results: [T.i32], code: [...i32c(97), ...call(0)] },
        ],
        exports: [['memory', 2, 0], ['init', 0, 1], ['tick', 0, 2], ['nan', 0, 3], ['neg', 0, 4]],
      })).wasm,
      calls: [{ fn: 'tick', fuel: f }, { fn: 'nan', fuel: f }, { fn: 'neg', fuel: f }],
    },
    {
      // log from outside memory_bytes: readMemory throws a memory GuestTrap inside the import.
      name: 'log outside the cap',
      wasm: meteredGuest({ imports: ['log'], tick: [...i32c(4090), ...i32c(10), ...call(0), ...i32c(0)], init: [...i32c(0), ...i32c(6), ...call(0), ...i32c(0)] }),
      calls: [{ fn: 'init', fuel: f }, { fn: 'tick', fuel: f }, { fn: 'init', fuel: f }],
    },
    {
      // Data past memory_bytes (the validator refuses it; an engine must not load it either).
      name: 'data past memory_bytes',
      wasm: meteredGuest({ data: [[5000, [1, 2, 3]]] }),
      calls: [{ fn: 'init', fuel: f }],
    },
    {
      // Endless recursion on a small budget: fuel stops it first, at the same depth everywhere.
      name: 'recursion on a budget',
      wasm: engineProbes(),
      memoryBytes: 4096,
      calls: [{ fn: 'deep', fuel: 600 }, { fn: 'tick', fuel: f }],
    },
    {
      // Endless recursion on a large budget: the engine's stack stops it, at a depth each engine sets.
      name: 'recursion to the stack limit',
      wasm: engineProbes(),
      memoryBytes: 4096,
      calls: [{ fn: 'deep', fuel: 10_000_000 }, { fn: 'tick', fuel: f }],
      kindsOnly: 'V8 and wasm3 have different stack depths (wasm3: its 8 KiB value stack), so the fuel spent before the stack overflow differs',
    },
  ];
}

/** LEB128 length prefix for a small subsection (< 128 bytes). */
function leb7(content: number[]): number[] {
  if (content.length > 127) throw new Error('subsection too long');
  return [content.length, ...content];
}

/** A one-shot job's run, then one on a budget too small for it. */
function jobCalls(fuel: number): ProbeCall[] {
  return [{ fn: '_start', fuel }, { fn: '_start', fuel: 50 }];
}

/** A world's run: every member's init, then 5-second rounds ticking each member on its period, signals between. */
function worldCalls(bundle: Uint8Array): ProbeCall[] {
  const d = decodeWorld(bundle);
  if (!d.ok) throw new Error(d.reason);
  const members = d.world.members;
  const calls: ProbeCall[] = members.map((m) => ({ fn: `${m.name}.init`, fuel: m.manifest.fuel_per_call }));
  const signals = members.filter((_, i) => exportsOf(d.modules[i]).includes('on_signal'));
  for (let round = 0; round < 90; round++) {
    for (const m of members) {
      if ((round * 5) % m.manifest.period_s === 0) calls.push({ fn: `${m.name}.tick`, fuel: m.manifest.fuel_per_call });
    }
    if (round === 30 || round === 60) {
      for (const m of signals) calls.push({ fn: `${m.name}.on_signal`, args: [2, round / 30], fuel: m.manifest.fuel_per_call });
    }
  }
  const last = members[members.length - 1];
  calls.push({ fn: `${last.name}.tick`, fuel: 20 });
  return calls;
}

function exportsOf(wasm: Uint8Array): string[] {
  return parseModule(wasm).exports.filter((e) => e.kind === ExternKind.func).map((e) => e.name);
}

/** Every case, with its module's bytes. */
export function guestCases(): GuestCase[] {
  const out: GuestCase[] = [];
  for (const file of readdirSync(DIST_DIR).filter((f) => f.endsWith('.wasm')).sort()) {
    const name = file.slice(0, -5);
    const manifest = JSON.parse(readFileSync(join(MANIFEST_DIR, `${name}.json`), 'utf8'));
    const wasm = new Uint8Array(readFileSync(join(DIST_DIR, file)));
    const exported = exportsOf(wasm);
    const calls = exported.includes('_start') ? jobCalls(manifest.fuel_per_call) : shippedCalls(manifest.fuel_per_call, exported.includes('on_signal'));
    out.push({ wasm, probe: { name, file, memoryBytes: manifest.memory_bytes, startFuel: manifest.fuel_per_call, calls } });
  }
  for (const file of readdirSync(DIST_DIR).filter((f) => f.endsWith('.world')).sort()) {
    const bundle = new Uint8Array(readFileSync(join(DIST_DIR, file)));
    out.push({ wasm: bundle, probe: { name: file.slice(0, -6), file, world: true, memoryBytes: 0, calls: worldCalls(bundle) } });
  }
  const m = hostileManifest('hostile');
  const hostileCalls = (n: number): ProbeCall[] => [{ fn: 'init', fuel: m.fuel_per_call }, ...repeat(n, { fn: 'tick', fuel: m.fuel_per_call })];
  for (const [what, make] of REFUSED) {
    const name = `refused: ${what}`;
    out.push({ wasm: make(), probe: { name, file: `${slug(name)}.wasm`, memoryBytes: m.memory_bytes, startFuel: m.fuel_per_call, calls: hostileCalls(2) } });
  }
  for (const [what, make] of Object.entries(RUNTIME)) {
    const name = `runtime: ${what}`;
    out.push({ wasm: make(), probe: { name, file: `${slug(name)}.wasm`, memoryBytes: m.memory_bytes, startFuel: m.fuel_per_call, calls: hostileCalls(6) } });
  }
  const f = 10_000;
  out.push({
    wasm: engineProbes(),
    probe: {
      name: 'engine probes', file: 'engine-probes.wasm', memoryBytes: 4096, startFuel: f,
      calls: [
        { fn: 'poke', args: [4092], fuel: f }, { fn: 'peek8', args: [4092], fuel: f }, { fn: 'peek8', args: [4095], fuel: f },
        { fn: 'poke', args: [4093], fuel: f }, { fn: 'peek8', args: [4096], fuel: f }, { fn: 'peek8', args: [60_000], fuel: f },
        { fn: 'poke100', args: [3992], fuel: f }, { fn: 'poke100', args: [3993], fuel: f }, { fn: 'poke100', args: [-4], fuel: f },
        { fn: 'grow', args: [0], fuel: f }, { fn: 'grow', args: [1], fuel: f },
        { fn: 'spin', args: [10], fuel: f }, { fn: 'spin', args: [1000], fuel: 6002 }, { fn: 'spin', args: [1001], fuel: 6002 },
        { fn: 'spin', args: [0], fuel: 200_000 }, { fn: 'spin', args: [3], fuel: f },
        { fn: 'div0', fuel: f }, { fn: 'boom', fuel: f }, { fn: 'nope', fuel: f }, { fn: 'tick', fuel: f },
      ],
    },
  });
  out.push({
    wasm: wasiProbes(),
    probe: {
      name: 'wasi subset', file: 'wasi-subset.wasm', memoryBytes: 4096, startFuel: f,
      calls: [
        { fn: 'clock', args: [0], fuel: f }, { fn: 'peek', args: [64], fuel: f }, { fn: 'peek', args: [68], fuel: f },
        { fn: 'clock', args: [1], fuel: f }, { fn: 'peek', args: [64], fuel: f }, { fn: 'clock', args: [2], fuel: f },
        { fn: 'rand', args: [16], fuel: f }, { fn: 'peek', args: [128], fuel: f }, { fn: 'rand', args: [300], fuel: f },
        { fn: 'args', fuel: f }, { fn: 'peek', args: [200], fuel: f },
        { fn: 'write', args: [1, 40], fuel: f }, { fn: 'peek', args: [24], fuel: f }, { fn: 'write', args: [1, 200], fuel: f },
        { fn: 'write', args: [2, 10], fuel: f }, { fn: 'write', args: [3, 5], fuel: f },
        { fn: 'bad_iov', fuel: f }, { fn: 'exit', args: [3], fuel: f }, { fn: 'tick', fuel: f },
      ],
    },
  });
  out.push({ wasm: wasiFlood(), probe: { name: 'wasi 1 MiB to stdout', file: 'wasi-flood.wasm', memoryBytes: 4096, startFuel: f, calls: [{ fn: '_start', fuel: 100_000 }] } });
  out.push({
    wasm: probeWorld(),
    probe: {
      name: 'world calls between members', file: 'probe.world', world: true, memoryBytes: 0,
      calls: [
        { fn: 'lib.init', fuel: f }, { fn: 'app.init', fuel: f }, { fn: 'lib.spin', args: [10], fuel: f }, { fn: 'app.tick', fuel: f },
        { fn: 'app.big', fuel: 5000 }, { fn: 'app.crash', fuel: f }, { fn: 'app.tick', fuel: f }, { fn: 'app.tick', fuel: 40 },
      ],
    },
  });
  for (const e of edgeModules()) {
    out.push({
      wasm: e.wasm,
      kindsOnly: e.kindsOnly,
      probe: { name: e.name, file: `${slug(e.name)}.wasm`, memoryBytes: e.memoryBytes ?? 4096, startFuel: e.startFuel ?? f, calls: e.calls },
    });
  }
  return out;
}
