// dr-responder: sheds loads according to the demand-response level (grid signal 2) and restores them
// when the event is over.
//   level 0: relays 2 and 3 on;  level 1: relay 2 off;  level 2 and 3: relays 2 and 3 off.
// It acts at once on a level change (on_signal) and retries every tick while an interlock refuses.
// Loads come back one relay per tick, so that restoring does not switch everything at the same moment.
// Events: guest.dr-responder.1 = level changed (value: the new level). kv slot 0 keeps the last level.

import { Signal, RelayResult, signal, relay, relayState, emit, kvGet, kvSet, log, isNaNf } from "../sdk/gridlet";

const FIRST: i32 = 2; // relay shed from level 1
const SECOND: i32 = 3; // relay shed from level 2
const KV_LEVEL: i32 = 0;

let level: i32 = 0;

function currentLevel(): i32 {
  const s = signal(Signal.DrLevel);
  if (isNaNf(s) || s < 0) return 0;
  if (s > 3) return 3;
  return <i32>s;
}

/** Moves one relay toward what the level asks; true when it is already there or just switched. */
function drive(id: i32, on: bool): bool {
  const state = relayState(id);
  if (state < 0) return false;
  if ((state == 1) == on) return true;
  return relay(id, on) == RelayResult.Done;
}

function apply(): void {
  const l = currentLevel();
  if (l != level) {
    level = l;
    kvSet(KV_LEVEL, <f64>l);
    emit(1, <f64>l);
  }
  // Shedding: both at once. Restoring: the later-shed relay first, one per tick.
  const wantFirst = level < 1;
  const wantSecond = level < 2;
  if (!wantFirst || !wantSecond) {
    drive(FIRST, wantFirst);
    drive(SECOND, wantSecond);
    return;
  }
  if (relayState(SECOND) == 0) {
    drive(SECOND, true);
    return;
  }
  drive(FIRST, true);
}

export function init(): i32 {
  if (relayState(FIRST) < 0 || relayState(SECOND) < 0) {
    log("dr-responder: needs relays 2 and 3");
    return 1;
  }
  const k = kvGet(KV_LEVEL);
  if (!isNaNf(k)) level = <i32>k;
  return 0;
}

export function tick(): i32 {
  apply();
  return 0;
}

export function on_signal(id: i32, value: f64): void {
  if (id == Signal.DrLevel) apply();
}
