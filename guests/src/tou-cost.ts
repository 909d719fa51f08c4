// tou-cost: a time-of-use cost tally kept in kv slots, so it survives restarts and upgrades.
// Every tick it takes the energy imported since the last tick (channel 1, Wh) at the price of the
// moment: grid signal 1 (price per kWh, from the tariff body) when there is one, otherwise this
// default tariff by local time: peak 17–21 h on weekdays 0.32, night 23–7 h 0.14, otherwise 0.22.
// kv slots: 0 total cost, 1 total kWh, 2 peak kWh, 3 night kWh, 4 last energy reading (Wh),
// 5 today's cost, 6 yesterday's cost. At local midnight it emits guest.tou-cost.1 = yesterday's cost.

import { Channel, Signal, channel, signal, localHour, weekday, emit, kvGet, kvSet, isNaNf } from "../sdk/gridlet";

const KV_COST: i32 = 0;
const KV_KWH: i32 = 1;
const KV_PEAK_KWH: i32 = 2;
const KV_NIGHT_KWH: i32 = 3;
const KV_LAST_WH: i32 = 4;
const KV_TODAY: i32 = 5;
const KV_YESTERDAY: i32 = 6;

const PEAK: f64 = 0.32;
const DAY: f64 = 0.22;
const NIGHT: f64 = 0.14;

let lastHour: i32 = -1;

function get(slot: i32): f64 {
  const v = kvGet(slot);
  return isNaNf(v) ? 0 : v;
}

function add(slot: i32, x: f64): void {
  kvSet(slot, get(slot) + x);
}

function isNight(h: i32): bool {
  return h >= 23 || h < 7;
}

function isPeak(h: i32): bool {
  return h >= 17 && h < 21 && weekday() < 5;
}

export function init(): i32 {
  lastHour = localHour();
  return 0;
}

export function tick(): i32 {
  const h = localHour();
  // Local midnight: close the day.
  if (h >= 0 && lastHour >= 0 && h < lastHour) {
    const today = get(KV_TODAY);
    kvSet(KV_YESTERDAY, today);
    kvSet(KV_TODAY, 0);
    emit(1, today);
  }
  lastHour = h;

  const e = channel(Channel.EnergyImported);
  if (isNaNf(e)) return 0;
  const last = kvGet(KV_LAST_WH);
  if (isNaNf(last) || e < last) {
    // First reading, or the meter's register went back (replaced meter): start from here.
    kvSet(KV_LAST_WH, e);
    return 0;
  }
  const wh = e - last;
  if (wh == 0) return 0;
  kvSet(KV_LAST_WH, e);
  const kwh = wh / 1000;
  let price = signal(Signal.Price);
  if (isNaNf(price) || price < 0) price = isPeak(h) ? PEAK : isNight(h) ? NIGHT : DAY;
  const cost = kwh * price;
  add(KV_COST, cost);
  add(KV_KWH, kwh);
  add(KV_TODAY, cost);
  if (isPeak(h)) add(KV_PEAK_KWH, kwh);
  else if (isNight(h)) add(KV_NIGHT_KWH, kwh);
  return 0;
}
