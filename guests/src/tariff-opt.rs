//! tariff-opt (Rust): runs a deferrable load (relay 3: a water heater, a pool pump) in the cheapest
//! hours of the day. It learns the price of each local hour from the tariff signal (signal 1) as a
//! moving average kept in kv slots 0–23, so the profile survives restarts and adapts to seasons.
//! The load needs kv slot 24 hours a day (default 3); it runs in the cheapest hours of the profile
//! not yet past, with a deadline rule: when the hours left today are no more than the hours it still
//! needs, it runs regardless of price. Minutes run today are kept in slot 25 (slot 26 is the day).
//! Each decision that switches the relay is logged, and the price threshold it ran under is emitted
//! as kind 2.

#![no_std]

extern crate gridlet;

use gridlet::{kv_get, kv_or, kv_set, local_hour, relay, relay_result, signal, time};

const RELAY: i32 = 3;
const HOURS: usize = 24;
const SLOT_NEED: i32 = 24;
const SLOT_RUN_MIN: i32 = 25;
const SLOT_DAY: i32 = 26;
const DEFAULT_NEED_H: f64 = 3.0;
const PERIOD_MIN: f64 = 1.0;
/// Weight of a new price in an hour's average (about two weeks of memory at one sample a minute).
const ALPHA: f64 = 0.002;

static mut RUNNING: bool = false;

/// The learned price of each hour; an hour never seen is NaN.
fn profile(out: &mut [f64; HOURS]) {
    for (h, p) in out.iter_mut().enumerate() {
        *p = kv_get(h as i32);
    }
}

/// The price at or below which the load runs: the `need`-th cheapest of the hours from `from` to the
/// end of the day (unknown hours count as dear). Infinity when every remaining hour is needed.
fn threshold(prices: &[f64; HOURS], from: usize, need: usize) -> f64 {
    let mut left = [f64::INFINITY; HOURS];
    let mut n = 0;
    for h in from..HOURS {
        left[n] = if prices[h].is_nan() { f64::INFINITY } else { prices[h] };
        n += 1;
    }
    if need == 0 {
        return f64::NEG_INFINITY;
    }
    if need >= n {
        return f64::INFINITY;
    }
    // Selection by repeated minimum: n ≤ 24, need ≤ 24.
    let mut taken = [false; HOURS];
    let mut last = f64::NEG_INFINITY;
    for _ in 0..need {
        let mut best = usize::MAX;
        for i in 0..n {
            if !taken[i] && (best == usize::MAX || left[i] < left[best]) {
                best = i;
            }
        }
        taken[best] = true;
        last = left[best];
    }
    last
}

#[no_mangle]
pub extern "C" fn init() -> i32 {
    unsafe {
        RUNNING = gridlet::relay_state(RELAY) == 1;
    }
    0
}

#[no_mangle]
pub extern "C" fn tick() -> i32 {
    let hour = local_hour();
    let now = time();
    if hour < 0 || now.is_nan() {
        return 0; // no clock yet
    }
    let h = hour as usize;
    // Learn this hour's price.
    let price = signal(gridlet::signal::PRICE);
    if !price.is_nan() {
        let old = kv_get(hour);
        kv_set(hour, if old.is_nan() { price } else { old + ALPHA * (price - old) });
    }
    // A new day starts the tally afresh.
    let day = (now / 86_400.0) as i64 as f64;
    if kv_get(SLOT_DAY) != day {
        kv_set(SLOT_DAY, day);
        kv_set(SLOT_RUN_MIN, 0.0);
    }
    let need_min = kv_or(SLOT_NEED, DEFAULT_NEED_H) * 60.0;
    let mut run_min = kv_or(SLOT_RUN_MIN, 0.0);
    let running = unsafe { RUNNING };
    if running {
        run_min += PERIOD_MIN;
        kv_set(SLOT_RUN_MIN, run_min);
    }
    let still = need_min - run_min;
    let want = if still <= 0.0 {
        false
    } else {
        let mut prices = [0.0; HOURS];
        profile(&mut prices);
        let hours_needed = ((still + 59.0) / 60.0) as usize;
        let limit = threshold(&prices, h, hours_needed);
        let here = if prices[h].is_nan() { f64::INFINITY } else { prices[h] };
        let on = limit == f64::INFINITY || here <= limit;
        if on && !running {
            gridlet::emit(2, if limit.is_finite() { limit } else { -1.0 });
        }
        on
    };
    if want != running {
        let r = relay(RELAY, want);
        if r == relay_result::DONE {
            unsafe {
                RUNNING = want;
            }
            gridlet::log_value(if want { "run, minutes left" } else { "stop, minutes left" }, still as i64);
        }
    }
    0
}
