//! An example downstream crate: it makes frames of its own and lends them to Go through ferry,
//! without copying, and it is built as one staticlib that bundles ferry.
//!
//! A Go program links this staticlib *instead of* ferry's own (`go build -tags ferry_external`), so
//! the process holds exactly one copy of ferry and so one handle table: the ids this crate makes are
//! the ids the ferry Go package views and releases. Two copies of ferry's statics would split the
//! table, and the Go package would call every id made here unknown.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

use ferry::ffi::{FerryStatus, FerryView};

// Re-export the C ABI: every `ferry_*` symbol is already in this staticlib, because a staticlib
// bundles its dependencies; this use keeps the path visible to readers.
pub use ferry::ffi;

static FRAMES: AtomicU64 = AtomicU64::new(0);

/// Builds frame `seq` of `len` bytes: byte `i` is `(seq + i) % 251`, so a reader can check it.
pub fn render_frame(seq: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| ((seq as usize + i) % 251) as u8).collect()
}

/// Makes frame number `seq` of `len` bytes, lends it to ferry's process-wide table without a copy
/// (`ferry::lend`), and stores its id and view in `*view_out`.
///
/// The caller owns the id and must release it once (in Go: `ferry.Adopt`, then `Close`). ferry
/// drops the frame's `Vec` when the last id over it is released.
/// Errors: NULL_POINTER (`view_out`), TOO_LARGE, LIMIT_REACHED, TABLE_FULL, PANIC.
#[no_mangle]
pub extern "C" fn downstream_make_frame(seq: u64, len: usize, view_out: *mut FerryView) -> FerryStatus {
    if view_out.is_null() {
        return FerryStatus::NullPointer;
    }
    if len > ferry::MAX_LEN {
        return FerryStatus::TooLarge;
    }
    // A panic must never unwind into Go: catch it and report it as a status, as ferry does.
    match catch_unwind(AssertUnwindSafe(|| ferry::lend(render_frame(seq, len)))) {
        Ok(Ok(v)) => {
            FRAMES.fetch_add(1, Ordering::Relaxed);
            // SAFETY: checked non-null above; the caller promised a writable FerryView there.
            unsafe { view_out.write(FerryView { id: v.id, ptr: v.ptr, len: v.len }) };
            FerryStatus::Ok
        }
        Ok(Err(e)) => e.into(),
        Err(_) => FerryStatus::Panic,
    }
}

/// Returns how many frames this crate has lent since the process started.
#[no_mangle]
pub extern "C" fn downstream_frames_made() -> u64 {
    FRAMES.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_go_to_the_global_table_without_a_copy() {
        let before = ferry::Table::global().stats();
        let mut v = FerryView { id: 0, ptr: std::ptr::null_mut(), len: 0 };
        assert_eq!(downstream_make_frame(3, 1000, &mut v), FerryStatus::Ok);
        assert_eq!(v.len, 1000);
        // SAFETY: the id is live, so its 1000 bytes are valid until it is released below.
        let bytes = unsafe { std::slice::from_raw_parts(v.ptr, v.len) };
        assert_eq!(bytes, render_frame(3, 1000).as_slice());
        assert_eq!(ferry::Table::global().stats().live_ids, before.live_ids + 1);
        ferry::Table::global().release(v.id).unwrap();
        assert_eq!(downstream_make_frame(0, 1, std::ptr::null_mut()), FerryStatus::NullPointer);
    }
}
