//! Calls from Rust into foreign code (Go, C), and async work whose completions are delivered in batches.
//!
//! Three patterns, all in safe Rust; the C ABI over them is [`crate::ffi::callback`].
//!
//! - **Sync**: a foreign function is [`register`]ed and gets a generational `u64` id. [`invoke`]
//!   calls it on the calling thread with a [`Payload`] (a borrowed buffer id and a value) and returns
//!   its result. The registry keeps the callback in an `Arc`; the callback's own `Drop` is its drop
//!   hook, so the foreign side's reference is released exactly when Rust lets go of it: at
//!   [`unregister`], or later when the last invocation or queued job that holds it finishes.
//! - **Async**: [`submit`] (built-in [`Op`]s) and [`spawn`] (any Rust closure) run work on a pool of
//!   long-lived worker threads, started lazily and never one per call. Each job ends with exactly one
//!   [`Completion`] (its tag, and its result or error) pushed onto a [`queue`]. A downstream crate
//!   completes its own async work the same way with a [`Completer`].
//! - **Batched delivery**: one consumer drains a queue many completions at a time, either by polling
//!   ([`CompletionQueue::wait_into`], which returns as soon as one completion is ready, so a lightly
//!   loaded queue never waits for a batch to fill) or by having a delivery thread push batches to a
//!   sink ([`queue::create_sink`]).
//!
//! Cancellation: [`cancel`] sets a job's flag. A job that has not started completes with
//! [`CallError::Cancelled`] without running; a running one can poll [`CancelToken::is_cancelled`].
//!
//! Panics: a panic inside a job, a callback or a sink is caught where it happens (per job on the
//! workers), becomes an error for whoever waits on it, and leaves ferry working. No lock is held
//! while a callback, a job or a sink runs, so each of them may call back into ferry.
//!
//! ```
//! use ferry::callback::{self, Payload};
//! let id = callback::register(|p: Payload| Ok(Payload { buffer: 0, value: p.value * 2 })).unwrap();
//! assert_eq!(callback::invoke(id, Payload { buffer: 0, value: 21 }).unwrap().value, 42);
//! callback::unregister(id).unwrap();
//! assert!(callback::invoke(id, Payload::default()).is_err());
//! ```

use std::fmt;

use crate::error::{msg, Error};

#[cfg(not(loom))]
pub(crate) mod frames;
pub(crate) mod hazard;
#[cfg(not(loom))]
pub mod ops;
#[cfg(not(loom))]
pub mod pool;
#[cfg(not(loom))]
pub mod queue;
pub(crate) mod registry;
#[cfg(not(loom))]
mod stack;

#[cfg(not(loom))]
pub use ops::{fnv1a64, Op, Request};
#[cfg(not(loom))]
pub use pool::{configure, shutdown, spawn, submit, PoolConfig};
#[cfg(not(loom))]
pub use queue::{cancel, CancelToken, Completer, Completion, CompletionQueue};
pub use registry::{get, invoke, register, unregister, Callback};

/// What crosses in a call or a completion: a buffer id and a plain value, no pointers.
///
/// Ownership of `buffer` depends on the direction. Passed *into* a callback (or into [`submit`]) it
/// is borrowed: the caller keeps owning the id, and the callee must share it to keep it. Returned
/// *from* a callback or a job it is owned by the receiver, who must release it (0 means none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Payload {
    /// A buffer id, or 0 for none.
    pub buffer: u64,
    /// A value whose meaning is up to the callback or operation.
    pub value: u64,
}

/// Why a callback, a job or a queue operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CallError {
    /// An error from the handle table: an unknown, stale or forged callback, queue or buffer id is
    /// `Ferry(Error::InvalidHandle)`; a full registry is `Ferry(Error::TableFull)`.
    Ferry(Error),
    /// An argument is outside its documented domain (a duplicate tag, a zero batch size, ...).
    InvalidArgument,
    /// The callback reported a failure; the value is its own detail code, passed through untouched.
    Failed(u64),
    /// The callback panicked and the panic was recovered (Go: in the trampoline); the value lets the
    /// foreign side find its record of the panic (0 when there is none).
    CallbackPanic(u64),
    /// A Rust panic inside ferry's own work (an operation on a worker) was caught.
    Panic,
    /// The job was cancelled before it finished.
    Cancelled,
    /// The worker pool or the completion queue is shut down.
    Closed,
    /// The worker pool's queue is full; try again later.
    QueueFull,
    /// The operation code is not known.
    Unsupported,
    /// A callback was invoked with too little stack left on its thread: callbacks nested too deeply
    /// (see `stack.rs`). Refused instead of overflowing the stack.
    NestedTooDeep,
    /// Work submitted from a worker thread found every worker busy and the pool at its most
    /// workers (see [`pool`]): queued, it might never run while its submitter waits for it.
    WouldDeadlock,
}

impl CallError {
    /// The detail value carried to the receiver: the callback's own code for `Failed`, the panic
    /// record for `CallbackPanic`, 0 otherwise.
    pub fn detail(self) -> u64 {
        match self {
            CallError::Failed(v) | CallError::CallbackPanic(v) => v,
            _ => 0,
        }
    }

    /// A short, stable description (from the one status list, `crate::error::status_table!`).
    pub fn message(self) -> &'static str {
        match self {
            CallError::Ferry(e) => e.message(),
            CallError::InvalidArgument => msg::InvalidArgument,
            CallError::Failed(_) => msg::CallbackFailed,
            CallError::CallbackPanic(_) => msg::CallbackPanic,
            CallError::Panic => msg::Panic,
            CallError::Cancelled => msg::Cancelled,
            CallError::Closed => msg::Closed,
            CallError::QueueFull => msg::QueueFull,
            CallError::Unsupported => msg::Unsupported,
            CallError::WouldDeadlock => msg::WouldDeadlock,
            CallError::NestedTooDeep => msg::NestedTooDeep,
        }
    }
}

impl From<Error> for CallError {
    fn from(e: Error) -> CallError {
        CallError::Ferry(e)
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for CallError {}

/// Lets go of everything the ferry calls in progress on this thread hold, because their frames
/// will never be returned to: a Go callback called `runtime.Goexit`, which skips the C and Rust
/// frames below it. Hazards and holds on callbacks are released, ids lent to callbacks are
/// released, and a job a worker was running completes with [`CallError::CallbackPanic`]`(detail)`.
///
/// On a worker thread the worker is retired as well (a new one takes its place) and `true` is
/// returned: the caller must then never return to the worker, and parks the thread for good.
/// Returns `false` elsewhere.
///
/// Calling it while any of this thread's ferry calls may still return breaks what they protect.
#[cfg(not(loom))]
pub(crate) fn abandon_thread(detail: u64) -> bool {
    frames::abandon_thread(detail);
    pool::retire_current()
}

/// Counters for leak checks: what the callback machinery holds right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallbackStats {
    /// Callbacks registered and not yet unregistered.
    pub registered: u64,
    /// Callbacks alive: registered ones plus unregistered ones still held by a running call or job
    /// (their drop hook has not run yet).
    pub alive: u64,
    /// Completion queues open.
    pub queues: u64,
    /// Jobs and completers started and not yet completed, over all queues.
    pub in_flight: u64,
    /// Worker threads running.
    pub workers: u64,
}

/// A snapshot of the counters in [`CallbackStats`].
#[cfg(not(loom))]
pub fn stats() -> CallbackStats {
    CallbackStats {
        registered: registry::registered() as u64,
        alive: registry::alive() as u64,
        queues: queue::open_queues() as u64,
        in_flight: queue::in_flight() as u64,
        workers: pool::workers() as u64,
    }
}

/// Test support (the `fault-injection` feature): makes the registry's heavy barrier fail (level 1:
/// `membarrier` fails, so the fallback is used; level 2: every heavy barrier fails, so unregistered
/// callbacks are parked), and reports whether the barrier is asymmetric and how many slots are
/// parked. Never in a release library.
#[cfg(all(feature = "fault-injection", not(loom)))]
#[doc(hidden)]
pub mod barrier_injection {
    /// Sets the failure level (0: none).
    pub fn set(level: u8) {
        super::hazard::inject::set(level);
    }
    /// Reports whether readers use only a compiler fence (membarrier registered).
    pub fn asymmetric() -> bool {
        super::hazard::asymmetric()
    }
    /// Unregistered callbacks waiting for a heavy barrier that succeeds.
    pub fn parked() -> usize {
        super::registry::parked()
    }
}

/// Runs `f` and turns a panic into `Err(on_panic)`.
#[inline]
pub(crate) fn catch<T>(
    on_panic: CallError,
    f: impl FnOnce() -> Result<T, CallError>,
) -> Result<T, CallError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => Err(on_panic),
    }
}
