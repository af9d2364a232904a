//! The core's error type, and the one list of statuses that every error and every C status code
//! comes from (`status_table!`). The C layer maps each variant to one status code.

use std::fmt;

/// The one list of ferry's statuses. Everything that names or describes a status comes from it:
///
/// - the C ABI's `FerryStatus` enum, its doc lines, [`FerryStatus::message`], `from_u32` and
///   `ferry_status_message` (`src/ffi/status.rs`), and so `ffi/ferry.h`;
/// - the Go package's `Status*` constants, names, messages and `Err*` sentinels
///   (`golang/status_gen.go`);
/// - the messages of [`Error`] and [`crate::callback::CallError`] (through `msg`).
///
/// One line per status: `(value, RustVariant, NAME, "message", "doc line")`. The C name is
/// `FERRY_STATUS_` + NAME (cbindgen derives it from the variant; `tests/header.rs` checks the two
/// agree); Go's constant is `Status` + NAME in Go's casing (`StatusInvalidHandle`, `StatusOK`).
/// The message is what `ferry_status_message`, Go's `Status.Message` and Rust's `Display` say; the
/// doc line documents the status in the header and in Go.
///
/// Values are stable: a line is never renumbered, reordered or removed, and values stay consecutive
/// from 0 (a compile-time check in `src/ffi/status.rs`). **To add a status**, append one line with
/// the next value here and run `make header`, which rewrites `ffi/ferry.h` and
/// `golang/status_gen.go` (`cargo test --test header` fails until both are current). Then name the
/// new status in the `Errors:` line and in the entry of [`crate::ffi::status::function_errors`] of
/// each function that returns it (`tests/header.rs` checks the two agree). If a core error stands
/// for it, give [`Error`] or [`crate::callback::CallError`] a variant whose message is `msg::Variant`
/// and map it in the C layer (the compiler points at each `From` impl that must learn it).
///
/// [`FerryStatus::message`]: crate::ffi::FerryStatus::message
macro_rules! status_table {
    ($emit:ident) => {
        $emit! {
            (0, Ok, OK, "ok", "Success."),
            (1, InvalidHandle, INVALID_HANDLE, "invalid handle: the id is unknown, forged or already released", "The id is 0, unknown, forged or already released."),
            (2, NullPointer, NULL_POINTER, "a required pointer argument is NULL", "A required pointer argument is NULL."),
            (3, OutOfRange, OUT_OF_RANGE, "offset or length out of range for the buffer", "An offset or length reaches outside the buffer."),
            (4, Overflow, OVERFLOW, "offset + length overflows", "offset + length overflows."),
            (5, TooLarge, TOO_LARGE, "size exceeds the maximum buffer length", "A size exceeds FERRY_MAX_LEN."),
            (6, LimitReached, LIMIT_REACHED, "live-byte limit reached", "The live-byte limit (ferry_limit_set) refused the create."),
            (7, Panic, PANIC, "a panic was caught inside ferry", "A Rust panic was caught at the boundary; ferry's state is still consistent. Any function that returns a status may return it."),
            (8, AllocFailed, ALLOC_FAILED, "memory allocation failed", "The allocator returned no memory, or no thread could be started."),
            (9, TableFull, TABLE_FULL, "handle table is full", "The handle table has no free slot."),
            (10, InvalidArgument, INVALID_ARGUMENT, "invalid argument", "An argument has a value outside its documented domain."),
            (11, CallbackFailed, CALLBACK_FAILED, "the callback reported a failure", "A callback returned a failure status of its own."),
            (12, CallbackPanic, CALLBACK_PANIC, "the callback panicked", "A callback panicked (Go) or otherwise failed abnormally; it was recovered at the trampoline."),
            (13, Cancelled, CANCELLED, "cancelled", "The operation was cancelled before it finished."),
            (14, Closed, CLOSED, "closed", "The service (worker pool, queue) is shut down."),
            (15, QueueFull, QUEUE_FULL, "queue full", "A bounded queue is full; try again later."),
            (16, Unsupported, UNSUPPORTED, "unsupported operation", "The operation name or code is not known."),
            (17, WouldDeadlock, WOULD_DEADLOCK, "every worker is busy with work that may wait on the pool, and no more may start", "Work submitted from a worker thread found every worker busy and the pool at its most workers: queued, it might never run while its submitter waits for it."),
            (18, NestedTooDeep, NESTED_TOO_DEEP, "callbacks are nested too deeply for this thread's stack", "A callback was invoked with too little stack left on its thread (callbacks nested too deeply); refused instead of overflowing the stack."),
        }
    };
}
#[cfg_attr(loom, allow(unused_imports))]
pub(crate) use status_table;

macro_rules! status_messages {
    ($(($code:literal, $variant:ident, $name:ident, $msg:literal, $doc:literal)),* $(,)?) => {
        /// The message of each status in `status_table!`, by its Rust variant name: the only
        /// place the core's error messages come from.
        #[allow(non_upper_case_globals, dead_code)]
        pub(crate) mod msg {
            $(
                #[doc = $doc]
                pub(crate) const $variant: &str = $msg;
            )*
        }
    };
}
status_table!(status_messages);

/// Why a ferry operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// The id is 0, was never issued, or was already released (its generation no longer matches).
    InvalidHandle,
    /// An offset or length reaches outside the buffer.
    OutOfRange,
    /// `offset + len` does not fit in a `usize`.
    Overflow,
    /// A size is larger than [`crate::MAX_LEN`].
    TooLarge,
    /// The create would take live bytes past the limit set with [`crate::Table::set_limit`].
    LimitReached,
    /// The allocator (or `mmap` in guard mode) returned no memory.
    AllocFailed,
    /// The table has no free slot left (2^28 live ids per shard).
    TableFull,
}

impl Error {
    /// A short, stable, human-readable description.
    pub fn message(self) -> &'static str {
        match self {
            Error::InvalidHandle => msg::InvalidHandle,
            Error::OutOfRange => msg::OutOfRange,
            Error::Overflow => msg::Overflow,
            Error::TooLarge => msg::TooLarge,
            Error::LimitReached => msg::LimitReached,
            Error::AllocFailed => msg::AllocFailed,
            Error::TableFull => msg::TableFull,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for Error {}
