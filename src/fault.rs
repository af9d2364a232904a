//! Test-only fault injection (cargo feature `fault-injection`, never in a release library): one-shot
//! panics armed by name, at the entry of every exported function (`ferry_fault_panic_next`, see
//! `ffi/fault.rs`) and at named points along the callback paths ([`fault_point!`]), to prove that a
//! panic anywhere there is caught and leaves ferry consistent (tests/fault.rs).

use parking_lot::Mutex;

static ARMED: Mutex<Option<String>> = Mutex::new(None);

/// Arms a one-shot panic at the next pass through `name` (None disarms).
pub(crate) fn arm(name: Option<String>) {
    *ARMED.lock() = name;
}

/// Called first thing inside every exported function's boundary: panics once if `name` is armed,
/// or if "*" is (the next exported function called, whichever it is).
pub(crate) fn maybe_panic(name: &str) {
    fire(name, true);
}

/// A named point inside the callback machinery: panics once if exactly `name` is armed.
pub(crate) fn point(name: &str) {
    fire(name, false);
}

fn fire(name: &str, any: bool) {
    let mut armed = ARMED.lock();
    if armed.as_deref() == Some(name) || (any && armed.as_deref() == Some("*")) {
        *armed = None;
        drop(armed);
        panic!("ferry fault injection: {name}");
    }
}

/// The callback-path points, each where a panic can meet ferry in the middle of its work.
pub const POINTS: &[&str] = &[
    "invoke.protected",
    "invoke.held",
    "callback.drop",
    "op.call.lent",
    "job.run",
    "job.complete",
    "job.close",
    "sink.deliver",
];
