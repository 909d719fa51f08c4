// DLMS/COSEM, M-Bus and Smarty meter parsing on Node: messages per second for each kind of capture,
// whole and byte at a time, and the large fuzz run (≥ 1M mutated captures; the cost on XS, per frame,
// is in scripts/bench/xs.ts).

import { dlmsParseRate, fuzzDlms } from '../../test/host/dlms-fuzz.js';

export async function run(): Promise<object> {
  const iterations = Number(process.env.GRIDLET_DLMS_FUZZ ?? 1_000_000);
  const rate = dlmsParseRate({ seconds: 2 });
  const t0 = Date.now();
  const fuzz = fuzzDlms({ iterations, seed: 20260312 });
  return { what: 'messages per second through MeterParser (parser locked on its framing, keys loaded)', parseRate: rate, fuzz: { ...fuzz, iterations, seconds: (Date.now() - t0) / 1000 } };
}
