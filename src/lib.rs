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
#![warn(clippy::undocumented_unsafe_blocks)]

/// A named fault-injection point on a callback path (see `fault.rs`): nothing unless the
/// `fault-injection` feature is on.
macro_rules! fault_point {
    ($name:literal) => {
        #[cfg(all(feature = "fault-injection", not(loom)))]
        crate::fault::point($name);
    };
}
pub(crate) use fault_point;

// Under `--cfg loom` only the concurrent core is built (the sync facade, the slot core, the byte
// accounting, the callback registry and the region ring), for the model checker in tests/loom_model.
#[cfg(not(loom))]
pub mod buffer;
pub mod callback;
pub mod error;
#[cfg(all(feature = "fault-injection", not(loom)))]
#[doc(hidden)]
pub mod fault;
#[cfg(not(loom))]
pub mod ffi;
#[cfg(not(loom))]
mod pages;
mod refcount;
#[cfg(not(loom))]
pub mod region;
#[cfg(loom)]
#[path = "region/ring.rs"]
mod region_ring;
mod slots;
pub mod stats;
mod sync;
#[cfg(not(loom))]
pub mod table;

#[cfg(not(loom))]
pub use buffer::{BufferRef, MAX_LEN};
pub use error::Error;
pub use stats::Stats;
#[cfg(not(loom))]
pub use table::{Table, View};

/// Lends `v` to the process-wide table without copying; see [`Table::lend_vec`].
#[cfg(not(loom))]
pub fn lend(v: Vec<u8>) -> Result<View, Error> {
    Table::global().lend_vec(v)
}

/// The concurrent core as the model checker sees it (`tests/loom_model`): built only with
/// `--cfg loom`, never part of the API.
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_api {
    pub use crate::callback::hazard::FAILING_BARRIERS;
    pub use crate::callback::registry::{get, invoke, register, unregister};
    pub use crate::callback::{CallError, Payload};
    pub use crate::refcount::RefCount;
    pub use crate::region_ring::{Consumer, Producer, Ring, RingError};
    pub use crate::slots::{Kind, Slots};
    pub use crate::stats::{Counters, GRAIN};

    /// Callbacks registered, alive (drop hook not run) and parked (waiting for a barrier).
    pub fn registry_counts() -> (usize, usize, usize) {
        use crate::callback::registry;
        (registry::registered(), registry::alive(), registry::parked())
    }
}
