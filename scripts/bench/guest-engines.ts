// The host's two guest engines per call: V8 (host/guests/wasm-engine.ts, fuel inline, memory guard)
// against wasm3 compiled to WebAssembly (host/guests/wasm3-engine.ts, the meter's C), on the shipped
// guests fed by the household day, a hot loop, and instantiation. Medians of 3 rounds.
//   npm run bench -- guest-engines      (or: node --import tsx scripts/bench/guest-engines.ts)

import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DIST_DIR, MANIFEST_DIR } from '../../guests/build.js';
import type { GuestEngine } from '../../firmware/core/ports.js';
import { NodeGuestEngine } from '../../host/guests/wasm-engine.js';
import { Wasm3HostEngine, WASM3_ARTIFACT } from '../../host/guests/wasm3-engine.js';
import { engineProbes } from '../../test/core/support/hostile-guests.js';
import { meterImports, timeTicks } from './guests.js';

const TICKS = Number(process.env.GRIDLET_ENGINE_BENCH_TICKS ?? 20_000);
const ROUNDS = 3;
const GUESTS = ['dr-responder', 'peak-guard', 'tamper-watch', 'tou-cost'];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export async function run(): Promise<object> {
  const engines: Record<string, GuestEngine> = { v8: new NodeGuestEngine(), wasm3: new Wasm3HostEngine() };
  const guests: Record<string, object> = {};
  for (const name of GUESTS) {
    const wasm = new Uint8Array(readFileSync(join(DIST_DIR, `${name}.wasm`)));
    const manifest = JSON.parse(readFileSync(join(MANIFEST_DIR, `${name}.json`), 'utf8'));
    const fuel = manifest.fuel_per_call;
    const limits = { memoryBytes: manifest.memory_bytes, fuel };
    const ns: Record<string, number[]> = { v8: [], wasm3: [] };
    const loadUs: Record<string, number[]> = { v8: [], wasm3: [] };
    const fuelPerTick: Record<string, number> = {};
    for (let r = 0; r < ROUNDS; r++) {
      for (const [e, engine] of Object.entries(engines)) {
        const world = meterImports();
        const t0 = process.hrtime.bigint();
        const g = engine.instantiate(wasm, world.imports, limits);
        if (g.call('init', [], fuel) !== 0) throw new Error(`${name}: init refused on ${e}`);
        loadUs[e].push(Number(process.hrtime.bigint() - t0) / 1000);
        timeTicks(g, world.advance, 2000, fuel); // warm up
        const m = timeTicks(g, world.advance, TICKS, fuel);
        ns[e].push(m.ns);
        fuelPerTick[e] = Math.round(m.fuelSum / TICKS);
        g.dispose();
      }
    }
    if (fuelPerTick.v8 !== fuelPerTick.wasm3) throw new Error(`${name}: fuel per tick differs: ${JSON.stringify(fuelPerTick)}`);
    guests[name] = {
      fuelPerTick: fuelPerTick.v8,
      nsPerTick: { v8: Math.round(median(ns.v8)), wasm3: Math.round(median(ns.wasm3)) },
      wasm3OverV8: Number((median(ns.wasm3) / median(ns.v8)).toFixed(2)),
      // V8 compiles a module once per engine (cached); wasm3 parses and compiles at every instantiate.
      instantiateAndInitUs: { v8: Math.round(median(loadUs.v8)), wasm3: Math.round(median(loadUs.wasm3)) },
    };
  }
  // A hot loop: spin(n) runs n passes of 5 instructions plus one metering point each.
  const N = 200_000;
  const loop: Record<string, number[]> = { v8: [], wasm3: [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const [e, engine] of Object.entries(engines)) {
      const g = engine.instantiate(engineProbes(), {}, { memoryBytes: 4096 });
      g.call('spin', [1000], 10_000_000);
      const t0 = process.hrtime.bigint();
      g.call('spin', [N], 10_000_000);
      loop[e].push(Number(process.hrtime.bigint() - t0) / N);
      g.dispose();
    }
  }
  return {
    what: 'per-call cost of the host guest engines on the shipped guests (household day imports) and a hot loop',
    engines: {
      v8: `node ${process.version} WebAssembly, fuel inline, memory guard`,
      wasm3: `wasm3 0.5.0 + guest-core.c compiled to WebAssembly (${statSync(WASM3_ARTIFACT).size} bytes), run by node ${process.version}`,
    },
    ticksPerRound: TICKS,
    rounds: ROUNDS,
    statistic: 'median of the rounds',
    guests,
    hotLoopNsPerIteration: { v8: Number(median(loop.v8).toFixed(2)), wasm3: Number(median(loop.wasm3).toFixed(2)) },
  };
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  console.log(JSON.stringify(await run(), null, 2));
}
