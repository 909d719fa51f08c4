//! The gridlet guest SDK for Rust (GUESTS.md, ABI version 1): the `gridlet` imports as ordinary
//! functions, the channel and signal numbers, an allocation-free log, and the panic handler a
//! `no_std` guest needs. One crate, `gridlet`, with no dependencies: `gridlet guest build` compiles it
//! with rustc for wasm32-unknown-unknown (`--crate-type rlib`) and a guests/src/<name>.rs against it
//! (`--extern gridlet=…`, `--crate-type cdylib`, `-C panic=abort`, LTO, optimised for size); no cargo,
//! no crates from the network.
//!
//! A guest is `#![no_std]` and exports `init` and `tick` (and optionally `on_signal`) as
//! `#[no_mangle] pub extern "C" fn`. A world member offers a function to the others the same way, and
//! calls another's through [`peer!`] (GUESTS.md "Microworlds").

#![no_std]

mod sys {
    #[link(wasm_import_module = "gridlet")]
    extern "C" {
        pub fn time() -> f64;
        pub fn local_hour() -> i32;
        pub fn weekday() -> i32;
        pub fn channel(ch: i32) -> f64;
        pub fn signal(id: i32) -> f64;
        pub fn relay(id: i32, on: i32) -> i32;
        pub fn relay_state(id: i32) -> i32;
        pub fn emit(kind: i32, value: f64) -> i32;
        pub fn log(ptr: *const u8, len: i32);
        pub fn kv_get(slot: i32) -> f64;
        pub fn kv_set(slot: i32, value: f64) -> i32;
    }
}

/// Meter channels (WIRE.md "Channels"), integer units.
pub mod channel {
    pub const ENERGY_IMPORTED: i32 = 1; // Wh, total
    pub const ENERGY_EXPORTED: i32 = 2; // Wh, total
    pub const POWER_IMPORTED: i32 = 3; // W
    pub const POWER_EXPORTED: i32 = 4; // W
    pub const VOLTAGE_L1: i32 = 5; // mV
    pub const VOLTAGE_L2: i32 = 6;
    pub const VOLTAGE_L3: i32 = 7;
    pub const CURRENT_L1: i32 = 8; // mA
    pub const CURRENT_L2: i32 = 9;
    pub const CURRENT_L3: i32 = 10;
    pub const GAS: i32 = 11; // dm³, total
    pub const TARIFF: i32 = 12;
}

/// Grid signals (GUESTS.md `signal`).
pub mod signal {
    pub const PRICE: i32 = 1; // per kWh, currency units
    pub const DR_LEVEL: i32 = 2; // 0–3
    pub const IMPORT_LIMIT: i32 = 3; // W
}

/// What [`relay`] answers.
pub mod relay_result {
    pub const DONE: i32 = 0;
    pub const NO_CAPABILITY: i32 = -1;
    /// Dwell, toggles per hour, critical circuit, technician lock.
    pub const REFUSED: i32 = -2;
}

/// Unix seconds (NaN before the meter has a clock).
pub fn time() -> f64 {
    unsafe { sys::time() }
}
/// Local hour 0–23 (-1 without a clock).
pub fn local_hour() -> i32 {
    unsafe { sys::local_hour() }
}
/// Local weekday, 0 Monday … 6 Sunday (-1 without a clock).
pub fn weekday() -> i32 {
    unsafe { sys::weekday() }
}
/// Latest value of a channel, NaN when unknown or not granted.
pub fn channel(ch: i32) -> f64 {
    unsafe { sys::channel(ch) }
}
/// A grid signal, NaN when none or not granted.
pub fn signal(id: i32) -> f64 {
    unsafe { sys::signal(id) }
}
/// Asks for a relay state; a [`relay_result`] code.
pub fn relay(id: i32, on: bool) -> i32 {
    unsafe { sys::relay(id, on as i32) }
}
/// 1 on, 0 off, -1 no such relay.
pub fn relay_state(id: i32) -> i32 {
    unsafe { sys::relay_state(id) }
}
/// Sends `guest.<name>.<kind>` upstream (kind 0–99); 0 sent, -3 rate-limited (1 a minute per kind).
pub fn emit(kind: i32, value: f64) -> i32 {
    unsafe { sys::emit(kind, value) }
}
/// A persistent slot, NaN when unset.
pub fn kv_get(slot: i32) -> f64 {
    unsafe { sys::kv_get(slot) }
}
/// Stores a persistent slot; 0 ok, -1 outside the manifest's quota.
pub fn kv_set(slot: i32, value: f64) -> i32 {
    unsafe { sys::kv_set(slot, value) }
}
/// A persistent slot, or `default` when it is unset.
pub fn kv_or(slot: i32, default: f64) -> f64 {
    let v = kv_get(slot);
    if v.is_nan() { default } else { v }
}

/// Logs a line (cut at 120 bytes; 4 lines per call).
pub fn log(text: &str) {
    unsafe { sys::log(text.as_ptr(), text.len() as i32) }
}

/// Logs `text` followed by an integer: "cheapest hour 3".
pub fn log_value(text: &str, value: i64) {
    let mut line = [0u8; 120];
    let t = text.as_bytes();
    let mut n = if t.len() < 96 { t.len() } else { 96 };
    line[..n].copy_from_slice(&t[..n]);
    line[n] = b' ';
    n += 1;
    let mut v = value;
    if v < 0 {
        line[n] = b'-';
        n += 1;
        v = -v;
    }
    let mut digits = [0u8; 20];
    let mut k = 0;
    loop {
        digits[k] = b'0' + (v % 10) as u8;
        k += 1;
        v /= 10;
        if v == 0 || k == digits.len() {
            break;
        }
    }
    while k > 0 {
        k -= 1;
        line[n] = digits[k];
        n += 1;
    }
    unsafe { sys::log(line.as_ptr(), n as i32) }
}

/// Declares a function another world member offers (its manifest's "exports"), called through the
/// agent with the callee's fuel charged to the caller:
/// `gridlet::peer!("setpoint", fn limit() -> f64);`
#[macro_export]
macro_rules! peer {
    ($member:literal, fn $name:ident($($arg:ident: $t:ty),*) $(-> $r:ty)?) => {
        // A module and a function may share a name (they live in different namespaces).
        #[allow(non_snake_case)]
        mod $name {
            #[link(wasm_import_module = $member)]
            extern "C" {
                pub fn $name($($arg: $t),*) $(-> $r)?;
            }
        }
        pub fn $name($($arg: $t),*) $(-> $r)? {
            unsafe { $name::$name($($arg),*) }
        }
    };
}

/// A panic in a guest is a trap: the supervisor counts it as a fault (GUESTS.md "Supervision").
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
