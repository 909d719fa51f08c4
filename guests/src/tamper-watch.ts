// tamper-watch: flags what a meter being tampered with looks like.
//   1 reverse flow without export: the meter sees power flowing out (channel 4 over 100 W for three
//     ticks in a row) at a site that has no export (kv slot 0 is not 1: set it to 1 where there is
//     generation). Value: exported W.
//   2 sudden zero: the import drops from at least 1000 W to exactly 0 while the voltage is still there
//     and nothing flows out (a bypass, not a power cut). Value: the import before, W.
//   3 voltage sag: L1 under 207 V (230 V − 10 %, EN 50160) for two ticks; re-armed above 216 V.
//     Value: the voltage, V.
// Each raises guest.tamper-watch.<n> once per episode (and the host allows at most one a minute).

import { Channel, channel, emit, kvGet, isNaNf } from "../sdk/gridlet";

const KV_SITE_EXPORTS: i32 = 0;
const REVERSE_W: f64 = 100;
const REVERSE_TICKS: i32 = 3;
const ZERO_FROM_W: f64 = 1000;
const LIVE_MV: f64 = 100000;
const SAG_MV: f64 = 207000;
const SAG_CLEAR_MV: f64 = 216000;
const SAG_TICKS: i32 = 2;

let reverseTicks: i32 = 0;
let reverseRaised = false;
let lastImport: f64 = NaN;
let sagTicks: i32 = 0;
let sagRaised = false;

export function init(): i32 {
  return 0;
}

export function tick(): i32 {
  const p = channel(Channel.PowerImported);
  const px = channel(Channel.PowerExported);
  const v = channel(Channel.VoltageL1);

  // 1: reverse flow where nothing should be exported.
  const siteExports = kvGet(KV_SITE_EXPORTS) == 1;
  if (!siteExports && !isNaNf(px) && px > REVERSE_W) {
    reverseTicks++;
    if (reverseTicks >= REVERSE_TICKS && !reverseRaised) {
      reverseRaised = emit(1, px) == 0;
    }
  } else {
    reverseTicks = 0;
    reverseRaised = false;
  }

  // 2: a load that vanishes to exactly zero while the line is live.
  // (Import falling to zero because power now flows out is reverse flow, rule 1, not this.)
  const exporting = !isNaNf(px) && px > 0;
  if (!isNaNf(p) && !isNaNf(lastImport) && lastImport >= ZERO_FROM_W && p == 0 && !exporting && !isNaNf(v) && v > LIVE_MV) {
    emit(2, lastImport);
  }
  if (!isNaNf(p)) lastImport = p;

  // 3: voltage sag, with hysteresis.
  if (!isNaNf(v)) {
    if (v < SAG_MV) {
      sagTicks++;
      if (sagTicks >= SAG_TICKS && !sagRaised) sagRaised = emit(3, v / 1000) == 0;
    } else if (v >= SAG_CLEAR_MV) {
      sagTicks = 0;
      sagRaised = false;
    }
  }
  return 0;
}
