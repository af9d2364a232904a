//! The core's error type. The C layer maps each variant to one status code.

use std::fmt;

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
            Error::InvalidHandle => "invalid handle: the id is unknown, forged or already released",
            Error::OutOfRange => "offset or length out of range for the buffer",
            Error::Overflow => "offset + length overflows",
            Error::TooLarge => "size exceeds the maximum buffer length",
            Error::LimitReached => "live-byte limit reached",
            Error::AllocFailed => "memory allocation failed",
            Error::TableFull => "handle table is full",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for Error {}
