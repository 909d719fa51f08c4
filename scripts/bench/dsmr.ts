// DSMR P1 parser: parse rate and the large fuzz run (≥ 1M random and mutated telegrams).

import { fuzzDsmr, parseRate } from '../../test/host/dsmr-fuzz.js';

export async function run(): Promise<object> {
  const iterations = Number(process.env.GRIDLET_DSMR_FUZZ ?? 1_000_000);
  const rate = await parseRate({ seconds: 3 });
  const t0 = Date.now();
  const fuzz = await fuzzDsmr({ iterations, seed: 20240601 });
  return { parseRate: rate, fuzz: { ...fuzz, iterations, seconds: (Date.now() - t0) / 1000 } };
}
