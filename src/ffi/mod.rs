//! The C ABI: every `extern "C"` function and every raw pointer ferry accepts lives in this folder.
//!
//! Each exported function checks its arguments, calls the safe core, and maps the result to a
//! [`FerryStatus`] through `boundary::run`, which also turns a panic into `FERRY_STATUS_PANIC`.
//! Out-parameters come last and end in `_out`; each pointer to bytes is followed by its length.
//! A zero length never reads its pointer, so NULL is fine there.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

pub(crate) mod boundary;
pub mod buffer;
pub mod callback;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod region;
pub mod status;

pub use buffer::{FerryStats, FerryView};
pub use status::FerryStatus;

/// `p`, or `FERRY_STATUS_NULL_POINTER` if it is NULL.
pub(crate) fn nonnull_mut<T>(p: *mut T) -> Result<*mut T, FerryStatus> {
    if p.is_null() {
        Err(FerryStatus::NullPointer)
    } else {
        Ok(p)
    }
}

/// A slice over caller memory, or an error for a NULL pointer with a non-zero length or an oversize
/// length. A zero length never reads `p`.
///
/// # Safety
/// When `len > 0` and `p` is not NULL, `p` must point to `len` readable bytes that stay valid and
/// unwritten for `'a`.
pub(crate) unsafe fn caller_bytes<'a>(p: *const u8, len: usize) -> Result<&'a [u8], FerryStatus> {
    if len == 0 {
        return Ok(&[]);
    }
    if len > crate::MAX_LEN {
        return Err(FerryStatus::TooLarge);
    }
    if p.is_null() {
        return Err(FerryStatus::NullPointer);
    }
    // SAFETY: non-null, `len` in range, and the caller's contract covers validity for `'a`.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}
