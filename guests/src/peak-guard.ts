// peak-guard: holds the import under a limit by shedding relay 1 (a deferrable load such as a water
// heater), with hysteresis so that it does not flap.
//   - limit: grid signal 3 (import limit W); without one, kv slot 0, else 5000 W.
//   - shed: when the import exceeds the limit, switch relay 1 off (retried each tick while an
//     interlock refuses, e.g. during the relay's minimum dwell).
//   - estimate: the import drop right after shedding is the shed load (kept in kv slot 1).
//   - restore: only when import + estimate stays under 90 % of the limit for a whole minute.
// Events: guest.peak-guard.1 = shed (value: import W), .2 = restored (import W). kv slot 2 counts sheds.

import { Channel, Signal, RelayResult, channel, signal, relay, relayState, emit, kvGet, kvSet, log, isNaNf } from "../sdk/gridlet";

const RELAY: i32 = 1;
const DEFAULT_LIMIT: f64 = 5000;
const DEFAULT_ESTIMATE: f64 = 2000;
const RESTORE_BAND: f64 = 0.9;
const PERIOD_S: i32 = 5;
const RESTORE_AFTER_TICKS: i32 = 60 / PERIOD_S;

const KV_LIMIT: i32 = 0;
const KV_ESTIMATE: i32 = 1;
const KV_SHEDS: i32 = 2;

let shed = false;
let measureNext = false;
let importBefore: f64 = 0;
let estimate: f64 = DEFAULT_ESTIMATE;
let calmTicks: i32 = 0;

function limit(): f64 {
  const s = signal(Signal.ImportLimit);
  if (!isNaNf(s) && s > 0) return s;
  const k = kvGet(KV_LIMIT);
  if (!isNaNf(k) && k > 0) return k;
  return DEFAULT_LIMIT;
}

function evaluate(): void {
  const p = channel(Channel.PowerImported);
  if (isNaNf(p)) return;
  const lim = limit();
  if (!shed) {
    if (p > lim && relay(RELAY, false) == RelayResult.Done) {
      shed = true;
      measureNext = true;
      importBefore = p;
      calmTicks = 0;
      emit(1, p);
      const n = kvGet(KV_SHEDS);
      kvSet(KV_SHEDS, isNaNf(n) ? 1 : n + 1);
    }
    return;
  }
  if (measureNext) {
    measureNext = false;
    const drop = importBefore - p;
    // A drop too small to be the load (it was idle, or the house rose at the same time): keep the last estimate.
    if (drop > 100) {
      estimate = drop;
      kvSet(KV_ESTIMATE, estimate);
    }
  }
  if (p + estimate <= lim * RESTORE_BAND) {
    calmTicks++;
    if (calmTicks >= RESTORE_AFTER_TICKS && relay(RELAY, true) == RelayResult.Done) {
      shed = false;
      calmTicks = 0;
      emit(2, p);
    }
  } else {
    calmTicks = 0;
  }
}

export function init(): i32 {
  const e = kvGet(KV_ESTIMATE);
  if (!isNaNf(e) && e > 0) estimate = e;
  // After power returns the relay may already be off (shed before, or its safe state): treat it as shed.
  const state = relayState(RELAY);
  if (state < 0) {
    log("peak-guard: no relay 1");
    return 1;
  }
  shed = state == 0;
  log("peak-guard ready, limit W", <i64>limit());
  return 0;
}

export function tick(): i32 {
  evaluate();
  return 0;
}

export function on_signal(id: i32, value: f64): void {
  if (id == Signal.ImportLimit) evaluate();
}
