//! The one way into ferry from C: every exported function's body runs inside [`run`].
//!
//! `run` catches any panic (a panic must never unwind into Go or C, and since Rust 1.81 an unwind out
//! of an `extern "C"` function aborts the process) and turns the body's `Result` into a status code.
//! The table's locks are `parking_lot` locks, which do not poison, and no lock is held across code
//! that can panic, so ferry stays consistent and usable after a `FERRY_STATUS_PANIC`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::status::FerryStatus;

/// Runs an exported function's body, mapping `Ok` to `FERRY_STATUS_OK`, `Err(s)` to `s`, and a
/// panic to `FERRY_STATUS_PANIC`. `name` is the exported name, used by fault injection.
#[inline]
pub(crate) fn run(name: &'static str, body: impl FnOnce() -> Result<(), FerryStatus>) -> FerryStatus {
    let _ = name;
    match catch_unwind(AssertUnwindSafe(|| {
        #[cfg(feature = "fault-injection")]
        super::fault::maybe_panic(name);
        body()
    })) {
        Ok(Ok(())) => FerryStatus::Ok,
        Ok(Err(s)) => s,
        Err(_) => FerryStatus::Panic,
    }
}
