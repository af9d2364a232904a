//! Status codes: the `FerryStatus` enum every exported function returns, its messages, and the
//! statuses each exported function can return ([`function_errors`]).
//!
//! The statuses themselves are listed once, in `status_table!` (`src/error.rs`); this file turns
//! that list into the C enum. cbindgen does not expand macros, so `tests/header.rs` hands it the
//! enum rendered from [`FerryStatus::ALL`] when it generates `ffi/ferry.h` (and writes the Go
//! constants, `golang/status_gen.go`, from the same list).

use std::os::raw::c_char;

use crate::error::{status_table, Error};

macro_rules! ferry_status {
    ($(($code:literal, $variant:ident, $name:ident, $msg:literal, $doc:literal)),* $(,)?) => {
        #[doc = status_enum_doc!()]
        #[repr(u32)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum FerryStatus {
            $(
                #[doc = $doc]
                $variant = $code,
            )*
        }

        impl FerryStatus {
            /// Every status, in value order (`ALL[v]` has value `v`).
            pub const ALL: &'static [FerryStatus] = &[$(FerryStatus::$variant),*];

            /// The enum's own documentation, as in the header.
            pub const DOC: &'static str = status_enum_doc!();

            /// The status for a raw value, or `None` if no status has that value.
            pub fn from_u32(v: u32) -> Option<FerryStatus> {
                FerryStatus::ALL.get(v as usize).copied()
            }

            /// A short, stable message (what `ferry_status_message` copies out).
            pub const fn message(self) -> &'static str {
                match self {
                    $(FerryStatus::$variant => $msg,)*
                }
            }

            /// The stable name: the C constant without its `FERRY_STATUS_` prefix, e.g.
            /// `"INVALID_HANDLE"`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(FerryStatus::$variant => stringify!($name),)*
                }
            }

            /// The one-line documentation of the status, as in the header.
            pub const fn doc(self) -> &'static str {
                match self {
                    $(FerryStatus::$variant => $doc,)*
                }
            }
        }
    };
}

macro_rules! status_enum_doc {
    () => {
        "The result of every ferry C call. Values are stable: they are never renumbered, and new \
         ones are only ever appended.\n\nEach function's `Errors:` line names every status it can \
         return besides OK and PANIC (which any function that returns a status may return)."
    };
}

status_table!(ferry_status);

// The values are consecutive from 0, so `from_u32` can index `ALL`.
const _: () = {
    let mut i = 0;
    while i < FerryStatus::ALL.len() {
        assert!(FerryStatus::ALL[i] as usize == i, "status values must be consecutive from 0");
        i += 1;
    }
};

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

/// The statuses each exported function can return besides OK and PANIC, by exported name: the one
/// list behind the `Errors:` line of every function in `ffi/ferry.h`.
///
/// PANIC is left out because every function that returns a status runs its body inside
/// `boundary::run`, which turns a panic into PANIC (tests/fault.rs proves it for each function).
/// The lists come from reading each function down to the core, rare paths included: every function
/// that issues an id (a buffer, callback or queue id) can return TABLE_FULL; every function that
/// allocates bytes or starts a thread can return ALLOC_FAILED. Every status the region functions
/// return comes from a [`crate::region::RegionError`] (mapped in `src/ffi/region.rs`), an argument
/// check of the C layer, or a full region-handle table.
///
/// Kept honest by tests: tests/header.rs fails when a function in the header has no entry here or
/// its `Errors:` line names other statuses; the model (tests/model.rs), fault-injection
/// (tests/fault.rs), sweep (tests/statuses.rs) and fuzz (fuzz/fuzz_targets/c_abi.rs) tests fail
/// when a call returns a status its entry does not list.
pub fn function_errors() -> &'static [(&'static str, &'static [FerryStatus])] {
    use FerryStatus::*;
    const TABLE: &[(&str, &[FerryStatus])] = &[
        ("ferry_buffer_new", &[NullPointer, TooLarge, LimitReached, AllocFailed, TableFull]),
        ("ferry_buffer_copy", &[NullPointer, TooLarge, LimitReached, AllocFailed, TableFull]),
        ("ferry_buffer_adopt", &[NullPointer, TooLarge, LimitReached, TableFull]),
        ("ferry_buffer_view", &[InvalidHandle, NullPointer]),
        ("ferry_buffer_claim", &[InvalidHandle, NullPointer]),
        ("ferry_buffer_disclaim", &[InvalidHandle]),
        ("ferry_buffer_share", &[InvalidHandle, NullPointer, TableFull]),
        ("ferry_buffer_slice", &[InvalidHandle, NullPointer, Overflow, OutOfRange, TableFull]),
        ("ferry_buffer_copy_out", &[InvalidHandle, NullPointer, TooLarge, Overflow, OutOfRange]),
        ("ferry_buffer_release", &[InvalidHandle]),
        ("ferry_buffer_release_many", &[InvalidHandle, NullPointer, TooLarge]),
        ("ferry_stats_get", &[NullPointer]),
        ("ferry_limit_set", &[]),
        ("ferry_peak_reset", &[]),
        ("ferry_guard_set", &[]),
        ("ferry_callback_register", &[NullPointer, TableFull]),
        ("ferry_callback_unregister", &[InvalidHandle]),
        ("ferry_callback_invoke", &[InvalidHandle, CallbackFailed, CallbackPanic, NestedTooDeep]),
        ("ferry_queue_new", &[NullPointer, TableFull]),
        ("ferry_queue_new_sink", &[NullPointer, InvalidArgument, TableFull, AllocFailed]),
        ("ferry_queue_close", &[InvalidHandle]),
        ("ferry_queue_wait", &[InvalidHandle, Closed, NullPointer, InvalidArgument, TooLarge]),
        ("ferry_queue_post", &[InvalidHandle, Closed, NullPointer, InvalidArgument, TooLarge]),
        (
            "ferry_async_submit",
            &[Unsupported, InvalidHandle, InvalidArgument, Closed, QueueFull, AllocFailed, WouldDeadlock],
        ),
        (
            "ferry_async_submit_batch",
            &[
                NullPointer,
                TooLarge,
                Unsupported,
                InvalidHandle,
                InvalidArgument,
                Closed,
                QueueFull,
                AllocFailed,
                WouldDeadlock,
            ],
        ),
        ("ferry_async_cancel", &[InvalidHandle]),
        ("ferry_pool_configure", &[InvalidArgument]),
        ("ferry_pool_shutdown", &[InvalidArgument]),
        ("ferry_thread_is_worker", &[NullPointer]),
        ("ferry_callback_abandon", &[]),
        ("ferry_callback_stats", &[NullPointer]),
        // Regions (src/ffi/region.rs). A region buffer id is a slot of the region's own arena, so
        // ferry_region_alloc meets REGION_FULL where other functions meet TABLE_FULL; the functions
        // that store a region handle issue an id of the region-handle table.
        ("ferry_region_create", &[NullPointer, InvalidArgument, SystemError, TableFull]),
        (
            "ferry_region_create_named",
            &[NullPointer, InvalidArgument, Busy, PermissionDenied, SystemError, TableFull],
        ),
        (
            "ferry_region_open",
            &[
                NullPointer,
                InvalidArgument,
                NotFound,
                PermissionDenied,
                Busy,
                PeerGone,
                Corrupt,
                SystemError,
                TableFull,
            ],
        ),
        ("ferry_region_share", &[InvalidHandle, InvalidArgument, Busy, SystemError]),
        (
            "ferry_region_from_socket",
            &[NullPointer, InvalidArgument, PeerGone, Corrupt, Busy, SystemError, TableFull],
        ),
        ("ferry_region_close", &[InvalidHandle]),
        ("ferry_region_fd", &[InvalidHandle, NullPointer]),
        ("ferry_region_set_spin", &[InvalidHandle, InvalidArgument]),
        ("ferry_region_alloc", &[InvalidHandle, NullPointer, RegionFull]),
        ("ferry_region_view", &[InvalidHandle, NullPointer]),
        ("ferry_region_release", &[InvalidHandle]),
        ("ferry_region_send", &[InvalidHandle, InvalidArgument, QueueFull, PeerGone, Corrupt]),
        ("ferry_region_recv", &[InvalidHandle, NullPointer, InvalidArgument, Corrupt, SystemError]),
        ("ferry_region_serve", &[InvalidHandle, InvalidArgument, PeerGone, QueueFull, Corrupt, SystemError]),
        ("ferry_region_stats", &[InvalidHandle, NullPointer]),
        ("ferry_region_count", &[NullPointer]),
        ("ferry_fault_panic_next", &[]),
        ("ferry_status_message", &[NullPointer, InvalidArgument]),
    ];
    TABLE
}

/// The statuses `function` (an exported name) can return besides OK and PANIC, or `None` when no
/// exported function of that name returns a status.
pub fn errors_of(function: &str) -> Option<&'static [FerryStatus]> {
    function_errors().iter().find(|(name, _)| *name == function).map(|&(_, list)| list)
}

/// Reports whether exported function `function` can return `status`: OK and PANIC for every
/// function, and whatever its entry in [`function_errors`] lists. False for an unknown name.
pub fn may_return(function: &str, status: FerryStatus) -> bool {
    errors_of(function)
        .is_some_and(|list| matches!(status, FerryStatus::Ok | FerryStatus::Panic) || list.contains(&status))
}

/// Copies the message for `status` into `buf` as a NUL-terminated string, truncated to fit `len`
/// bytes (NUL included), and stores the full message length (without the NUL) in `*n_out`.
///
/// `buf` may be NULL only when `len` is 0 (to ask for the length alone). `n_out` may be NULL.
/// An unknown status value gets the message "unknown status".
/// Errors: NULL_POINTER (`buf` with `len` > 0), INVALID_ARGUMENT (an unknown status value).
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The statuses of ferry 0.1, pinned: a status may be appended, but none of these may change
    /// its value or its name.
    const PINNED: [(u32, &str); 17] = [
        (0, "OK"),
        (1, "INVALID_HANDLE"),
        (2, "NULL_POINTER"),
        (3, "OUT_OF_RANGE"),
        (4, "OVERFLOW"),
        (5, "TOO_LARGE"),
        (6, "LIMIT_REACHED"),
        (7, "PANIC"),
        (8, "ALLOC_FAILED"),
        (9, "TABLE_FULL"),
        (10, "INVALID_ARGUMENT"),
        (11, "CALLBACK_FAILED"),
        (12, "CALLBACK_PANIC"),
        (13, "CANCELLED"),
        (14, "CLOSED"),
        (15, "QUEUE_FULL"),
        (16, "UNSUPPORTED"),
    ];

    #[test]
    fn values_are_never_renumbered() {
        assert!(FerryStatus::ALL.len() >= PINNED.len());
        for (v, name) in PINNED {
            assert_eq!(FerryStatus::from_u32(v).map(FerryStatus::name), Some(name), "value {v}");
        }
    }

    #[test]
    fn the_table_round_trips_and_its_texts_are_distinct() {
        let mut msgs = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        for (i, &s) in FerryStatus::ALL.iter().enumerate() {
            assert_eq!(s as usize, i);
            assert_eq!(FerryStatus::from_u32(i as u32), Some(s));
            assert!(!s.message().is_empty() && !s.doc().is_empty(), "{s:?}");
            assert!(s.name().bytes().all(|b| b.is_ascii_uppercase() || b == b'_'), "{s:?}: {}", s.name());
            assert!(msgs.insert(s.message()), "{s:?}: a second status has the message {:?}", s.message());
            assert!(names.insert(s.name()), "{s:?}: name used twice");
        }
        assert_eq!(FerryStatus::from_u32(FerryStatus::ALL.len() as u32), None);
        assert_eq!(FerryStatus::from_u32(u32::MAX), None);
    }

    #[test]
    fn core_errors_share_the_tables_messages() {
        for e in [
            Error::InvalidHandle,
            Error::OutOfRange,
            Error::Overflow,
            Error::TooLarge,
            Error::LimitReached,
            Error::AllocFailed,
            Error::TableFull,
        ] {
            assert_eq!(e.message(), FerryStatus::from(e).message(), "{e:?}");
        }
    }

    #[test]
    fn function_lists_are_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for &(name, list) in function_errors() {
            assert!(name.starts_with("ferry_") && seen.insert(name), "{name}: listed twice or misnamed");
            for (i, s) in list.iter().enumerate() {
                assert!(!matches!(s, FerryStatus::Ok | FerryStatus::Panic), "{name}: {s:?} is implied");
                assert!(!list[..i].contains(s), "{name}: {s:?} twice");
            }
            assert!(may_return(name, FerryStatus::Ok) && may_return(name, FerryStatus::Panic));
        }
        assert!(!may_return("ferry_no_such_function", FerryStatus::Ok));
        assert!(may_return("ferry_buffer_slice", FerryStatus::TableFull));
        assert!(!may_return("ferry_buffer_view", FerryStatus::TableFull));
    }

    #[test]
    fn status_message_copies_and_truncates() {
        let mut buf = [0x7f as c_char; 8];
        let mut n = 0;
        let st = ferry_status_message(FerryStatus::QueueFull as u32, buf.as_mut_ptr(), buf.len(), &mut n);
        assert_eq!((st, n), (FerryStatus::Ok, "queue full".len()));
        let got: Vec<u8> = buf.iter().map(|&c| c as u8).collect();
        assert_eq!(&got, b"queue f\0");
        let past = FerryStatus::ALL.len() as u32;
        let st = ferry_status_message(past, buf.as_mut_ptr(), buf.len(), &mut n);
        assert_eq!((st, n), (FerryStatus::InvalidArgument, "unknown status".len()));
        let st = ferry_status_message(0, std::ptr::null_mut(), 4, &mut n);
        assert_eq!(st, FerryStatus::NullPointer);
    }
}
