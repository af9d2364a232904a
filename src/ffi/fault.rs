//! Test-only fault injection (cargo feature `fault-injection`): makes a named exported function
//! panic inside its boundary, to prove every entry point turns a panic into `FERRY_STATUS_PANIC`;
//! the same arming reaches the named points on the callback paths (`crate::fault::POINTS`).

use std::os::raw::c_char;

use super::status::FerryStatus;

/// Called first thing inside every boundary: panics once if `name` (or "*") is armed.
pub(crate) fn maybe_panic(name: &str) {
    crate::fault::maybe_panic(name);
}

/// Arms a one-shot panic in the next call of the exported function called `name` ("*" for the
/// next call of any function), or at the next pass through the callback-path point of that name.
/// NULL disarms. Present only in builds with the `fault-injection` feature; never in a release
/// library.
#[no_mangle]
pub extern "C" fn ferry_fault_panic_next(name: *const c_char) -> FerryStatus {
    let armed = if name.is_null() {
        None
    } else {
        // SAFETY: the caller passes a NUL-terminated string (test code only).
        Some(unsafe { std::ffi::CStr::from_ptr(name) }.to_string_lossy().into_owned())
    };
    crate::fault::arm(armed);
    FerryStatus::Ok
}
