// The gridlet guest SDK (AssemblyScript): typed wrappers over the `gridlet` imports of GUESTS.md, ABI
// version 1. A guest imports what it needs from here; only the imports it calls end up in its .wasm.
// No allocation anywhere: guests run with `--runtime stub` in a few KiB of memory.

@external("gridlet", "time") declare function gl_time(): f64;
@external("gridlet", "local_hour") declare function gl_local_hour(): i32;
@external("gridlet", "weekday") declare function gl_weekday(): i32;
@external("gridlet", "channel") declare function gl_channel(ch: i32): f64;
@external("gridlet", "signal") declare function gl_signal(id: i32): f64;
@external("gridlet", "relay") declare function gl_relay(id: i32, on: i32): i32;
@external("gridlet", "relay_state") declare function gl_relay_state(id: i32): i32;
@external("gridlet", "emit") declare function gl_emit(kind: i32, value: f64): i32;
@external("gridlet", "log") declare function gl_log(ptr: usize, len: i32): void;
@external("gridlet", "kv_get") declare function gl_kv_get(slot: i32): f64;
@external("gridlet", "kv_set") declare function gl_kv_set(slot: i32, value: f64): i32;

/** Meter channels (WIRE.md "Channels"), integer units. */
export namespace Channel {
  export const EnergyImported: i32 = 1; // Wh, total
  export const EnergyExported: i32 = 2; // Wh, total
  export const PowerImported: i32 = 3; // W
  export const PowerExported: i32 = 4; // W
  export const VoltageL1: i32 = 5; // mV
  export const VoltageL2: i32 = 6;
  export const VoltageL3: i32 = 7;
  export const CurrentL1: i32 = 8; // mA
  export const CurrentL2: i32 = 9;
  export const CurrentL3: i32 = 10;
  export const Gas: i32 = 11; // dm³, total
  export const Tariff: i32 = 12;
  export const ReactiveEnergyImported: i32 = 13; // varh, total
  export const ReactiveEnergyExported: i32 = 14; // varh, total
  export const ReactivePowerImported: i32 = 15; // var
  export const ReactivePowerExported: i32 = 16; // var
  export const PowerImportedL1: i32 = 17; // W
  export const PowerImportedL2: i32 = 18;
  export const PowerImportedL3: i32 = 19;
  export const PowerExportedL1: i32 = 20; // W
  export const PowerExportedL2: i32 = 21;
  export const PowerExportedL3: i32 = 22;
}

/** Grid signals (GUESTS.md `signal`). */
export namespace Signal {
  export const Price: i32 = 1; // per kWh, currency units
  export const DrLevel: i32 = 2; // 0–3
  export const ImportLimit: i32 = 3; // W
}

/** What `relay` answers. */
export namespace RelayResult {
  export const Done: i32 = 0;
  export const NoCapability: i32 = -1;
  export const Refused: i32 = -2; // an interlock: dwell, toggles per hour, critical circuit, technician lock
}

/** Unix seconds (NaN before the meter has a clock). */
export function now(): f64 { return gl_time(); }
/** Local hour 0–23 (-1 without a clock). */
export function localHour(): i32 { return gl_local_hour(); }
/** Local weekday, 0 Monday … 6 Sunday (-1 without a clock). */
export function weekday(): i32 { return gl_weekday(); }
/** Latest value of a channel, NaN when unknown or not granted. */
export function channel(ch: i32): f64 { return gl_channel(ch); }
/** A grid signal, NaN when none or not granted. */
export function signal(id: i32): f64 { return gl_signal(id); }
/** Asks for a relay state; RelayResult.Done, NoCapability or Refused. */
export function relay(id: i32, on: bool): i32 { return gl_relay(id, on ? 1 : 0); }
/** 1 on, 0 off, -1 no such relay. */
export function relayState(id: i32): i32 { return gl_relay_state(id); }
/** Sends `guest.<name>.<kind>` upstream (kind 0–99); 0 sent, -3 rate-limited (1 a minute per kind). */
export function emit(kind: i32, value: f64): i32 { return gl_emit(kind, value); }
/** A persistent slot, NaN when unset. */
export function kvGet(slot: i32): f64 { return gl_kv_get(slot); }
/** Stores a persistent slot; 0 ok, -1 outside the manifest's quota. */
export function kvSet(slot: i32, value: f64): i32 { return gl_kv_set(slot, value); }

/** NaN test without the stdlib. */
// @ts-ignore: decorator
@inline export function isNaNf(x: f64): bool { return x != x; }

const LOG_MAX: i32 = 120;
const logBuffer = memory.data(LOG_MAX);

/** Logs a line (ASCII; other characters become "?"), optionally followed by an integer. */
export function log(text: string, value: i64 = i64.MIN_VALUE): void {
  let n: i32 = 0;
  const len = text.length;
  for (let i = 0; i < len && n < LOG_MAX; i++) {
    const c = text.charCodeAt(i);
    store<u8>(logBuffer + n++, c < 128 ? c : 63);
  }
  if (value != i64.MIN_VALUE && n < LOG_MAX - 21) {
    store<u8>(logBuffer + n++, 32);
    let v = value;
    if (v < 0) { store<u8>(logBuffer + n++, 45); v = -v; }
    // Digits backwards into the end of the buffer, then forwards.
    let k = LOG_MAX;
    do { store<u8>(logBuffer + --k, <u8>(48 + v % 10)); v /= 10; } while (v > 0 && k > n);
    while (k < LOG_MAX) store<u8>(logBuffer + n++, load<u8>(logBuffer + k++));
  }
  gl_log(logBuffer, n);
}
