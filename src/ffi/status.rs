//! Status codes returned by every exported function.

use std::os::raw::c_char;

use crate::error::Error;

/// The result of every ferry C call. Values are stable: they are never renumbered, and new ones are
/// only ever appended.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FerryStatus {
    /// Success.
    Ok = 0,
    /// The id is 0, unknown, forged or already released.
    InvalidHandle = 1,
    /// A required pointer argument is NULL.
    NullPointer = 2,
    /// An offset or length reaches outside the buffer.
    OutOfRange = 3,
    /// offset + length overflows.
    Overflow = 4,
    /// A size exceeds FERRY_MAX_LEN.
    TooLarge = 5,
    /// The live-byte limit (ferry_limit_set) refused the create.
    LimitReached = 6,
    /// A Rust panic was caught at the boundary; ferry's state is still consistent.
    Panic = 7,
    /// The allocator returned no memory.
    AllocFailed = 8,
    /// The handle table has no free slot.
    TableFull = 9,
    /// An argument has a value outside its documented domain.
    InvalidArgument = 10,
    /// A callback returned a failure status of its own.
    CallbackFailed = 11,
    /// A callback panicked (Go) or otherwise failed abnormally; it was recovered at the trampoline.
    CallbackPanic = 12,
    /// The operation was cancelled before it finished.
    Cancelled = 13,
    /// The service (worker pool, queue) is shut down.
    Closed = 14,
    /// A bounded queue is full; try again later.
    QueueFull = 15,
    /// The operation name or code is not known.
    Unsupported = 16,
    /// A region has no peer: none attached yet, or it closed the region or died.
    PeerGone = 17,
    /// A region's shared metadata failed a check (the peer wrote something impossible); the peer
    /// was disconnected and this process's own state is intact.
    Corrupt = 18,
    /// A region already has a peer, or a name is already taken by a live region.
    Busy = 19,
    /// No region has that name.
    NotFound = 20,
    /// The region's name exists but this user may not open it.
    PermissionDenied = 21,
    /// A system call failed (out of descriptors, of memory for a mapping, ...).
    SystemError = 22,
    /// A region's arena has no room (or no free slot) for the buffer; releases make room.
    RegionFull = 23,
}

impl FerryStatus {
    /// The status for a raw value, or `None` if no status has that value.
    pub fn from_u32(v: u32) -> Option<FerryStatus> {
        use FerryStatus::*;
        const ALL: [FerryStatus; 24] = [
            Ok,
            InvalidHandle,
            NullPointer,
            OutOfRange,
            Overflow,
            TooLarge,
            LimitReached,
            Panic,
            AllocFailed,
            TableFull,
            InvalidArgument,
            CallbackFailed,
            CallbackPanic,
            Cancelled,
            Closed,
            QueueFull,
            Unsupported,
            PeerGone,
            Corrupt,
            Busy,
            NotFound,
            PermissionDenied,
            SystemError,
            RegionFull,
        ];
        ALL.get(v as usize).copied()
    }

    /// A short, stable message.
    pub fn message(self) -> &'static str {
        match self {
            FerryStatus::Ok => "ok",
            FerryStatus::InvalidHandle => Error::InvalidHandle.message(),
            FerryStatus::NullPointer => "a required pointer argument is NULL",
            FerryStatus::OutOfRange => Error::OutOfRange.message(),
            FerryStatus::Overflow => Error::Overflow.message(),
            FerryStatus::TooLarge => Error::TooLarge.message(),
            FerryStatus::LimitReached => Error::LimitReached.message(),
            FerryStatus::Panic => "a panic was caught inside ferry",
            FerryStatus::AllocFailed => Error::AllocFailed.message(),
            FerryStatus::TableFull => Error::TableFull.message(),
            FerryStatus::InvalidArgument => "invalid argument",
            FerryStatus::CallbackFailed => "the callback reported a failure",
            FerryStatus::CallbackPanic => "the callback panicked",
            FerryStatus::Cancelled => "cancelled",
            FerryStatus::Closed => "closed",
            FerryStatus::QueueFull => "queue full",
            FerryStatus::Unsupported => "unsupported operation",
            FerryStatus::PeerGone => "the region's peer is gone",
            FerryStatus::Corrupt => "the region's shared metadata is corrupt",
            FerryStatus::Busy => "busy: the region already has a peer or the name is taken",
            FerryStatus::NotFound => "no region has that name",
            FerryStatus::PermissionDenied => "permission denied",
            FerryStatus::SystemError => "a system call failed",
            FerryStatus::RegionFull => "the region has no room for the buffer",
        }
    }
}

impl From<Error> for FerryStatus {
    fn from(e: Error) -> FerryStatus {
        match e {
            Error::InvalidHandle => FerryStatus::InvalidHandle,
            Error::OutOfRange => FerryStatus::OutOfRange,
            Error::Overflow => FerryStatus::Overflow,
            Error::TooLarge => FerryStatus::TooLarge,
            Error::LimitReached => FerryStatus::LimitReached,
            Error::AllocFailed => FerryStatus::AllocFailed,
            Error::TableFull => FerryStatus::TableFull,
        }
    }
}

/// Copies the message for `status` into `buf` as a NUL-terminated string, truncated to fit `len`
/// bytes (NUL included), and stores the full message length (without the NUL) in `*n_out`.
///
/// `buf` may be NULL only when `len` is 0 (to ask for the length alone). `n_out` may be NULL.
/// An unknown status value gets the message "unknown status" and returns FERRY_STATUS_INVALID_ARGUMENT.
#[no_mangle]
pub extern "C" fn ferry_status_message(
    status: u32,
    buf: *mut c_char,
    len: usize,
    n_out: *mut usize,
) -> FerryStatus {
    super::boundary::run("ferry_status_message", || {
        let (msg, result) = match FerryStatus::from_u32(status) {
            Some(s) => (s.message(), Ok(())),
            None => ("unknown status", Err(FerryStatus::InvalidArgument)),
        };
        if len > 0 {
            let buf = super::nonnull_mut(buf.cast::<u8>())?;
            let n = msg.len().min(len - 1);
            // SAFETY: the caller gave `len` writable bytes at `buf`; we write `n + 1 <= len` of them.
            unsafe {
                std::ptr::copy_nonoverlapping(msg.as_ptr(), buf, n);
                buf.add(n).write(0);
            }
        }
        if !n_out.is_null() {
            // SAFETY: non-null, and the caller promised a writable size_t there.
            unsafe { n_out.write(msg.len()) };
        }
        result
    })
}
