//! shed-world / setpoint (Rust): computes the import limit the shedder holds, and offers it to the
//! other members as `limit() -> f64` (W). The limit starts from the contracted one (kv slot 0,
//! default 5 kW, or the grid's import limit, signal 3, when lower), is cut by a quarter per
//! demand-response level (signal 2), and by a fifth more while the price (signal 1) is above its own
//! moving average (kv slot 1, learned here every minute). Each tick logs a new limit when it moves by
//! more than 100 W.

#![no_std]

extern crate gridlet;

use gridlet::{kv_get, kv_or, kv_set, signal};

const DEFAULT_LIMIT_W: f64 = 5000.0;
const SLOT_CONTRACT: i32 = 0;
const SLOT_PRICE_AVG: i32 = 1;
/// Weight of a new price in the average (about a day of memory at one sample a minute).
const ALPHA: f64 = 0.001;

static mut LIMIT: f64 = DEFAULT_LIMIT_W;
static mut LOGGED: f64 = 0.0;

fn compute() -> f64 {
    let mut limit = kv_or(SLOT_CONTRACT, DEFAULT_LIMIT_W);
    let grid = signal(gridlet::signal::IMPORT_LIMIT);
    if !grid.is_nan() && grid > 0.0 && grid < limit {
        limit = grid;
    }
    let level = signal(gridlet::signal::DR_LEVEL);
    if !level.is_nan() && level > 0.0 {
        let l = if level > 3.0 { 3.0 } else { level };
        limit *= 1.0 - 0.25 * l;
    }
    let price = signal(gridlet::signal::PRICE);
    let avg = kv_get(SLOT_PRICE_AVG);
    if !price.is_nan() && !avg.is_nan() && price > avg * 1.05 {
        limit *= 0.8;
    }
    if limit < 500.0 { 500.0 } else { limit }
}

#[no_mangle]
pub extern "C" fn init() -> i32 {
    unsafe {
        LIMIT = compute();
    }
    0
}

#[no_mangle]
pub extern "C" fn tick() -> i32 {
    let price = signal(gridlet::signal::PRICE);
    if !price.is_nan() {
        let avg = kv_get(SLOT_PRICE_AVG);
        kv_set(SLOT_PRICE_AVG, if avg.is_nan() { price } else { avg + ALPHA * (price - avg) });
    }
    let limit = compute();
    unsafe {
        LIMIT = limit;
        let moved = limit - LOGGED;
        if moved > 100.0 || moved < -100.0 {
            LOGGED = limit;
            gridlet::log_value("limit W", limit as i64);
        }
    }
    0
}

/// A grid signal changed: the limit follows at once (the shedder may call before the next tick).
#[no_mangle]
pub extern "C" fn on_signal(_id: i32, _value: f64) {
    unsafe {
        LIMIT = compute();
    }
}

/// Offered to the other members (the world manifest's "exports"): the import limit now, W.
#[no_mangle]
pub extern "C" fn limit() -> f64 {
    unsafe { LIMIT }
}
