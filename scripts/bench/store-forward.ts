// The store-and-forward simulation at bench scale: more power cuts and flaps than CI runs
// (GRIDLET_BENCH_SF_CUTS, default 30,000), real agent against real gateway.

import { runStoreForwardSim } from '../../host/sim/store-forward-sim.js';
import { simGateway } from '../../test/host/support/sim-gateway.js';

export async function run(): Promise<object> {
  const cuts = Number(process.env.GRIDLET_BENCH_SF_CUTS ?? 30_000);
  const r = await runStoreForwardSim({ startGateway: simGateway, seed: 20261122, cuts, flaps: Math.round(cuts / 10) });
  return { ...r, cutsPerSecond: Math.round(r.cuts / r.seconds), failures: r.failures.length };
}
