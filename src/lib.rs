//! ferry lends Rust-owned memory to Go and C by integer id, without copying and without leaking.
//!
//! The safe core is a [`Table`] of generational `u64` ids over reference-counted [`buffer::Buffer`]s.
//! Every id comes with a [`View`] (address and length), so a foreign caller can read and write the
//! bytes in place; the memory is freed when the last id over it is released, never before. A stale,
//! double-released or forged id is an [`Error::InvalidHandle`], never undefined behaviour.
//!
//! The C ABI (`ffi/ferry.h`) lives in [`ffi`] and is the only place with `extern "C"` functions.
//!
//! A downstream Rust crate lends its own data without copying:
//! ```
//! let view = ferry::lend(vec![1u8, 2, 3]).unwrap();
//! assert_eq!(view.len, 3);
//! // ... hand view.id to Go or C; they release it, and ferry drops the Vec.
//! ferry::Table::global().release(view.id).unwrap();
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod buffer;
pub mod callback;
pub mod error;
pub mod ffi;
mod pages;
pub mod stats;
pub mod table;

pub use buffer::{BufferRef, MAX_LEN};
pub use error::Error;
pub use stats::Stats;
pub use table::{Table, View};

/// Lends `v` to the process-wide table without copying; see [`Table::lend_vec`].
pub fn lend(v: Vec<u8>) -> Result<View, Error> {
    Table::global().lend_vec(v)
}
