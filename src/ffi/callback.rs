//! Exported callback, completion-queue and worker-pool functions: the C face of [`crate::callback`].
//!
//! Ownership of what crosses:
//! - A registered callback's `user_data` belongs to ferry from a successful register until ferry
//!   calls its drop function, exactly once, when the last holder lets go (after unregister, and after
//!   any call or queued job still holding it). On a failed register nothing is kept or called.
//! - `FerryPayload.buffer` is borrowed when passed into a callback (valid for the call) and owned by
//!   the receiver when it comes back as a result or in a completion.
//! - A sink's `user_data` must stay valid until ferry_queue_close returns for that queue.

use std::os::raw::c_void;
use std::time::Duration;

use super::boundary::run;
use super::nonnull_mut;
use super::status::FerryStatus;
use crate::callback::{self, pool, queue, CallError, Completion, Op, Payload, PoolConfig, Request};
use crate::error::Error;
use crate::table::Table;

/// A buffer id and a value: the argument and the result of a callback. No pointers.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FerryPayload {
    /// A buffer id, or 0 for none. Borrowed in an argument; owned by the receiver in a result.
    pub buffer: u64,
    /// A value whose meaning is up to the callback (on failure: its own detail code).
    pub value: u64,
}

/// One finished async job, as delivered in batches. A plain struct of integers (no pointers), so an
/// array of them crosses to Go without per-element checks.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FerryCompletion {
    /// The tag given at submit.
    pub tag: u64,
    /// The result's buffer id, owned by the receiver from now on, or 0 for none (always 0 on error).
    pub buffer: u64,
    /// The result's value; on error, the detail (a callback's code, or a Go panic record).
    pub value: u64,
    /// A FerryStatus value: FERRY_STATUS_OK, or why the job failed.
    pub status: u32,
    /// Always 0.
    pub reserved: u32,
}

/// Counters of the callback machinery, for leak checks.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FerryCallbackStats {
    /// Callbacks registered and not unregistered.
    pub registered: u64,
    /// Callbacks whose drop function has not run yet (registered, or still held by a call or job).
    pub alive: u64,
    /// Completion queues open.
    pub queues: u64,
    /// Jobs submitted and not yet completed.
    pub in_flight: u64,
    /// Worker threads running.
    pub workers: u64,
}

/// A callback. ferry calls it with the `user_data` it was registered with and an argument
/// (`buffer` borrowed for the call, or 0), and it stores its result in `*result_out` (which ferry
/// zeroed) and returns a FerryStatus value: FERRY_STATUS_OK, FERRY_STATUS_CALLBACK_PANIC if it
/// recovered a panic, or any other status for a failure, which the caller sees as
/// FERRY_STATUS_CALLBACK_FAILED. On success `result_out->buffer` (if not 0) passes to the caller; on
/// failure ferry releases it, and `result_out->value` travels to the caller as the detail.
/// It may be called from any thread, concurrently, and may call ferry again; it must not unwind.
pub type FerryCallbackFn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        buffer: u64,
        value: u64,
        result_out: *mut FerryPayload,
    ) -> u32,
>;

/// Called exactly once with a callback's `user_data` when ferry lets go of it; on any thread, never
/// under a ferry lock. It must not unwind.
pub type FerryDropFn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// Receives a batch of 1 to max_batch completions on a sink queue's delivery thread. The buffer ids
/// in the batch pass to the sink; `items` is valid only during the call. It must not unwind.
pub type FerrySinkFn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, items: *const FerryCompletion, n: usize)>;

/// Echo: completes with the input buffer under a new id (zero-copy; 0 for no input) and `value`.
pub const FERRY_OP_ECHO: u32 = 1;
/// Checksum: completes with the 64-bit FNV-1a hash of the input buffer's bytes in `value`.
pub const FERRY_OP_CHECKSUM: u32 = 2;
/// Sleep: waits `arg` microseconds (at most 60 s), checking for cancellation every millisecond.
pub const FERRY_OP_SLEEP: u32 = 3;
/// Panic: panics on the worker (tests of panic recovery); completes with FERRY_STATUS_PANIC.
pub const FERRY_OP_PANIC: u32 = 4;
/// Call: invokes callback `arg` on a worker thread with the input buffer and `value`, and completes
/// with its result.
pub const FERRY_OP_CALL: u32 = 5;

const _: () = {
    assert!(FERRY_OP_ECHO == Op::Echo as u32);
    assert!(FERRY_OP_CHECKSUM == Op::Checksum as u32);
    assert!(FERRY_OP_SLEEP == Op::Sleep as u32);
    assert!(FERRY_OP_PANIC == Op::Panic as u32);
    assert!(FERRY_OP_CALL == Op::Call as u32);
};

impl From<CallError> for FerryStatus {
    fn from(e: CallError) -> FerryStatus {
        match e {
            CallError::Ferry(e) => e.into(),
            CallError::InvalidArgument => FerryStatus::InvalidArgument,
            CallError::Failed(_) => FerryStatus::CallbackFailed,
            CallError::CallbackPanic(_) => FerryStatus::CallbackPanic,
            CallError::Panic => FerryStatus::Panic,
            CallError::Cancelled => FerryStatus::Cancelled,
            CallError::Closed => FerryStatus::Closed,
            CallError::QueueFull => FerryStatus::QueueFull,
            CallError::Unsupported => FerryStatus::Unsupported,
            CallError::WouldDeadlock => FerryStatus::WouldDeadlock,
            CallError::NestedTooDeep => FerryStatus::NestedTooDeep,
            // CallError is non_exhaustive for downstream crates only; every variant is listed above.
        }
    }
}

/// The error a completion posted from C with `status` and `value` stands for: the inverse of
/// `From<CallError> for FerryStatus`. None for OK, for a value that is no status, and for a status
/// no core error stands for (NULL_POINTER, and any status appended for the C or Go side alone), which
/// a completion cannot carry.
fn status_error(status: u32, value: u64) -> Option<CallError> {
    use FerryStatus as S;
    Some(match FerryStatus::from_u32(status)? {
        S::InvalidHandle => Error::InvalidHandle.into(),
        S::OutOfRange => Error::OutOfRange.into(),
        S::Overflow => Error::Overflow.into(),
        S::TooLarge => Error::TooLarge.into(),
        S::LimitReached => Error::LimitReached.into(),
        S::AllocFailed => Error::AllocFailed.into(),
        S::TableFull => Error::TableFull.into(),
        S::Panic => CallError::Panic,
        S::InvalidArgument => CallError::InvalidArgument,
        S::CallbackFailed => CallError::Failed(value),
        S::CallbackPanic => CallError::CallbackPanic(value),
        S::Cancelled => CallError::Cancelled,
        S::Closed => CallError::Closed,
        S::QueueFull => CallError::QueueFull,
        S::Unsupported => CallError::Unsupported,
        S::WouldDeadlock => CallError::WouldDeadlock,
        S::NestedTooDeep => CallError::NestedTooDeep,
        // The test `status_and_error_mappings_agree` fails if a status a core error maps to lands here.
        _ => return None,
    })
}

/// What ferry_callback_invoke reports for a failed call: INVALID_HANDLE, or the callback's own
/// failure. A C or Go callback can only fail with CALLBACK_FAILED or CALLBACK_PANIC; a callback
/// registered through the Rust API may return any [`CallError`], and any other one is reported as
/// CALLBACK_FAILED with its status value as the detail, so the call returns only what its header
/// line names.
fn invoke_error(e: CallError) -> (FerryStatus, u64) {
    match e {
        CallError::Ferry(Error::InvalidHandle)
        | CallError::Failed(_)
        | CallError::CallbackPanic(_)
        | CallError::NestedTooDeep => (e.into(), e.detail()),
        other => (FerryStatus::CallbackFailed, FerryStatus::from(other) as u64),
    }
}

impl From<Completion> for FerryCompletion {
    fn from(c: Completion) -> FerryCompletion {
        match c.result {
            Ok(p) => FerryCompletion { tag: c.tag, buffer: p.buffer, value: p.value, status: 0, reserved: 0 },
            Err(e) => FerryCompletion {
                tag: c.tag,
                buffer: 0,
                value: e.detail(),
                status: FerryStatus::from(e) as u32,
                reserved: 0,
            },
        }
    }
}

fn write<T>(out: *mut T, v: T) -> Result<(), FerryStatus> {
    let out = nonnull_mut(out)?;
    // SAFETY: non-null, and the caller promised a writable T there for this call.
    unsafe { out.write(v) };
    Ok(())
}

/// A C (or Go) callback and what ferry owes it: its drop function, run once when this is dropped.
struct Foreign {
    f: unsafe extern "C" fn(*mut c_void, u64, u64, *mut FerryPayload) -> u32,
    user_data: *mut c_void,
    drop: FerryDropFn,
}

// SAFETY: the register contract says the callback and its drop function may be called from any
// thread, concurrently; user_data is only ever passed back to them.
unsafe impl Send for Foreign {}
// SAFETY: as above.
unsafe impl Sync for Foreign {}

impl Foreign {
    fn call(&self, p: Payload) -> Result<Payload, CallError> {
        let mut out = FerryPayload::default();
        // SAFETY: `f` was registered with this user_data; `out` is a valid FerryPayload for the call.
        let st = unsafe { (self.f)(self.user_data, p.buffer, p.value, &mut out) };
        if st == FerryStatus::Ok as u32 {
            return Ok(Payload { buffer: out.buffer, value: out.value });
        }
        if out.buffer != 0 {
            let _ = Table::global().release(out.buffer);
        }
        if st == FerryStatus::CallbackPanic as u32 {
            Err(CallError::CallbackPanic(out.value))
        } else {
            Err(CallError::Failed(out.value))
        }
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        if let Some(d) = self.drop {
            // SAFETY: called exactly once (Drop), with the user_data registered alongside it.
            unsafe { d(self.user_data) }
        }
    }
}

/// Registers the callback `f` with `user_data` and its drop function `drop` (may be NULL), and
/// stores the new callback id (never 0) in `*id_out`.
///
/// From then on ferry owns `user_data`: it calls `drop(user_data)` exactly once, when the callback
/// is unregistered and no call or job holds it any more. On error nothing is kept and `drop` is not
/// called. Errors: NULL_POINTER (`f` or `id_out`), TABLE_FULL.
#[no_mangle]
pub extern "C" fn ferry_callback_register(
    f: FerryCallbackFn,
    user_data: *mut c_void,
    drop: FerryDropFn,
    id_out: *mut u64,
) -> FerryStatus {
    run("ferry_callback_register", || {
        let out = nonnull_mut(id_out)?;
        let f = f.ok_or(FerryStatus::NullPointer)?;
        // Take the slot first: once the Foreign exists, dropping it calls `drop`, which a failed
        // register must not do.
        let slot = crate::callback::registry::reserve()?;
        let foreign = Foreign { f, user_data, drop };
        let id = slot.fill(Box::new(move |p| foreign.call(p)));
        write(out, id)
    })
}

/// Unregisters callback `id`. The id is invalid from now on; the drop function runs now, on this
/// thread, unless a call or job still holds the callback (then when the last one finishes, on its
/// thread). An invoke that is looking the callback's slot up on another thread at that moment (with
/// this id or a stale one) counts as a call: the drop function then runs as it leaves.
/// Errors: INVALID_HANDLE.
#[no_mangle]
pub extern "C" fn ferry_callback_unregister(id: u64) -> FerryStatus {
    run("ferry_callback_unregister", || Ok(callback::unregister(id)?))
}

/// Calls callback `id` on this thread with `buffer` (borrowed for the call, 0 for none) and `value`,
/// and stores its result in `*result_out`.
///
/// On OK, `result_out->buffer` (if not 0) is a new id the caller owns. On error `result_out` holds
/// buffer 0 and the detail value: the callback's own code for CALLBACK_FAILED, its panic record for
/// CALLBACK_PANIC. `result_out` may be NULL (a result buffer is then released). No ferry lock is held
/// during the call. A callback registered through the Rust API that fails with an error of its own
/// other than these gives CALLBACK_FAILED with that error's status value as the detail.
///
/// Callbacks may invoke callbacks, to any depth the thread's stack allows: a call that finds less
/// than 32 KiB of stack left on its thread (a quarter of the stack, for stacks under 128 KiB) is
/// refused with NESTED_TOO_DEEP instead of overflowing the stack.
/// Errors: INVALID_HANDLE (unknown or unregistered id), CALLBACK_FAILED, CALLBACK_PANIC,
/// NESTED_TOO_DEEP.
#[no_mangle]
pub extern "C" fn ferry_callback_invoke(
    id: u64,
    buffer: u64,
    value: u64,
    result_out: *mut FerryPayload,
) -> FerryStatus {
    run("ferry_callback_invoke", || {
        let r = callback::invoke(id, Payload { buffer, value });
        let (p, st) = match r {
            Ok(p) => (FerryPayload { buffer: p.buffer, value: p.value }, Ok(())),
            Err(e) => {
                let (status, detail) = invoke_error(e);
                (FerryPayload { buffer: 0, value: detail }, Err(status))
            }
        };
        if result_out.is_null() {
            if p.buffer != 0 {
                let _ = Table::global().release(p.buffer);
            }
        } else {
            write(result_out, p)?;
        }
        st
    })
}

/// Creates a completion queue, drained with ferry_queue_wait, and stores its id in `*queue_out`.
/// Errors: NULL_POINTER, TABLE_FULL.
#[no_mangle]
pub extern "C" fn ferry_queue_new(queue_out: *mut u64) -> FerryStatus {
    run("ferry_queue_new", || {
        let out = nonnull_mut(queue_out)?;
        write(out, queue::create()?)
    })
}

struct Sink {
    f: unsafe extern "C" fn(*mut c_void, *const FerryCompletion, usize),
    user_data: *mut c_void,
    batch: Vec<FerryCompletion>,
}

// SAFETY: the sink contract says `f` runs on ferry's delivery thread; user_data is only passed back.
unsafe impl Send for Sink {}

impl Sink {
    fn deliver(&mut self, items: &[Completion]) {
        self.batch.clear();
        self.batch.extend(items.iter().map(|&c| FerryCompletion::from(c)));
        // SAFETY: `f` was registered with this user_data, which the caller keeps valid until the
        // queue is closed; the batch is valid for the call.
        unsafe { (self.f)(self.user_data, self.batch.as_ptr(), self.batch.len()) }
    }
}

/// Creates a completion queue with its own delivery thread, which calls `f(user_data, items, n)` with
/// batches of 1 to `max_batch` completions as soon as they are ready (it never waits for a batch to
/// fill), and stores the queue id in `*queue_out`. `user_data` must stay valid until
/// ferry_queue_close for this queue returns. Errors: NULL_POINTER (`f`, `queue_out`),
/// INVALID_ARGUMENT (`max_batch` 0), TABLE_FULL, ALLOC_FAILED (no thread).
#[no_mangle]
pub extern "C" fn ferry_queue_new_sink(
    f: FerrySinkFn,
    user_data: *mut c_void,
    max_batch: usize,
    queue_out: *mut u64,
) -> FerryStatus {
    run("ferry_queue_new_sink", || {
        let out = nonnull_mut(queue_out)?;
        let f = f.ok_or(FerryStatus::NullPointer)?;
        let mut sink = Sink { f, user_data, batch: Vec::with_capacity(max_batch.min(1 << 16)) };
        let id = queue::create_sink(max_batch, move |items: &[Completion]| sink.deliver(items))?;
        write(out, id)
    })
}

/// Closes queue `queue`: its id is invalid from now on, a waiter in ferry_queue_wait wakes (it gets
/// what is still queued, then CLOSED), every job in flight on it is cancelled, and completions that
/// arrive later are discarded with their buffer ids released. For a sink queue, everything queued is
/// delivered and the delivery thread has exited when this returns (unless called from the sink).
/// Errors: INVALID_HANDLE.
#[no_mangle]
pub extern "C" fn ferry_queue_close(queue: u64) -> FerryStatus {
    run("ferry_queue_close", || Ok(queue::close(queue)?))
}

/// Waits for completions on `queue` and copies up to `cap` of them, oldest first, into `out`; stores
/// how many in `*n_out`.
///
/// Returns as soon as at least one is ready: it never waits for the batch to fill. `timeout_ns < 0`
/// waits without limit, 0 only looks; on timeout it returns OK with `*n_out == 0`. The buffer ids in
/// the completions now belong to the caller. Errors: INVALID_HANDLE (unknown or closed queue),
/// CLOSED (closed while waiting and nothing left), NULL_POINTER, INVALID_ARGUMENT (`cap` 0, or a
/// sink queue), TOO_LARGE (`cap`).
#[no_mangle]
pub extern "C" fn ferry_queue_wait(
    queue: u64,
    out: *mut FerryCompletion,
    cap: usize,
    timeout_ns: i64,
    n_out: *mut usize,
) -> FerryStatus {
    run("ferry_queue_wait", || {
        let n_out = nonnull_mut(n_out)?;
        let out = nonnull_mut(out)?;
        if cap > crate::MAX_LEN / std::mem::size_of::<FerryCompletion>() {
            return Err(FerryStatus::TooLarge);
        }
        let timeout = u64::try_from(timeout_ns).ok().map(Duration::from_nanos);
        let q = queue::get(queue)?;
        let mut i = 0;
        let r = q.wait_into(cap, timeout, |c| {
            // SAFETY: the caller gave `cap` writable FerryCompletions at `out`; wait_into hands us at
            // most `cap` completions, so `i < cap`.
            unsafe { out.add(i).write(c.into()) };
            i += 1;
        });
        write(n_out, i)?;
        r.map(drop).map_err(Into::into)
    })
}

/// Pushes `n` ready-made completions onto `queue` (for C producers that track their own work; their
/// tags are not registered, so ferry_async_cancel does not reach them). Each `buffer` id passes to
/// the queue. Errors: INVALID_HANDLE (unknown queue: the buffer ids are released), CLOSED (the queue
/// was closed during the call: likewise), NULL_POINTER, INVALID_ARGUMENT (a status a completion
/// cannot carry, or a buffer with an error status; nothing is posted), TOO_LARGE.
#[no_mangle]
pub extern "C" fn ferry_queue_post(queue: u64, items: *const FerryCompletion, n: usize) -> FerryStatus {
    run("ferry_queue_post", || {
        if n > crate::MAX_LEN / std::mem::size_of::<FerryCompletion>() {
            return Err(FerryStatus::TooLarge);
        }
        let items: &[FerryCompletion] = if n == 0 {
            &[]
        } else {
            let p = nonnull_mut(items.cast_mut())?;
            // SAFETY: non-null, and the caller promised `n` readable FerryCompletions for this call.
            unsafe { std::slice::from_raw_parts(p, n) }
        };
        let mut cs = Vec::with_capacity(n);
        for it in items {
            let result = if it.status == 0 {
                Ok(Payload { buffer: it.buffer, value: it.value })
            } else if it.buffer != 0 {
                return Err(FerryStatus::InvalidArgument);
            } else {
                Err(status_error(it.status, it.value).ok_or(FerryStatus::InvalidArgument)?)
            };
            cs.push(Completion { tag: it.tag, result });
        }
        Ok(queue::post(queue, cs)?)
    })
}

/// Submits built-in operation `op` (FERRY_OP_*) to the worker pool (started at the first submit);
/// its one completion arrives on `queue` with `tag`.
///
/// `input` is a buffer id (0 for none) borrowed for this call only: the job holds the bytes itself,
/// so the caller may release the id at once. `arg` and `value` are as each FERRY_OP_* says. Exactly
/// one completion follows an OK (its status may be CANCELLED, CLOSED, PANIC, ...); none follows an
/// error. Errors: UNSUPPORTED (`op`), INVALID_HANDLE (queue, input or callback id), INVALID_ARGUMENT
/// (`tag` already in flight on `queue`, or a bad `arg`), CLOSED (the queue was closed during the
/// call, or the pool is shutting down), QUEUE_FULL (try again later), ALLOC_FAILED (the pool could
/// not start a worker thread it needed), WOULD_DEADLOCK (see below).
///
/// A tag is in flight from the submit until its completion is queued; it may then be used again,
/// even before that completion is taken, and the completions of one tag arrive in submit order.
///
/// Called on a worker thread (from a callback that FERRY_OP_CALL runs) while no worker is free, the
/// submit starts an extra worker, so a callback may submit work and wait for it without starving
/// the pool; extras exit once the queue is empty. When the pool already runs its most workers (its
/// thread count plus max(thread count, 64)), such a submit fails with WOULD_DEADLOCK instead.
#[no_mangle]
pub extern "C" fn ferry_async_submit(
    queue: u64,
    tag: u64,
    op: u32,
    input: u64,
    arg: u64,
    value: u64,
) -> FerryStatus {
    run("ferry_async_submit", || {
        let op = Op::from_u32(op).ok_or(FerryStatus::Unsupported)?;
        Ok(callback::submit(queue, tag, Request { op, input, arg, value })?)
    })
}

/// One job of a batch (ferry_async_submit_batch): the arguments of one ferry_async_submit.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FerryJob {
    /// The tag its completion carries.
    pub tag: u64,
    /// The operation, FERRY_OP_*.
    pub op: u32,
    /// Set to 0.
    pub reserved: u32,
    /// A buffer id borrowed for the call (0 for none), as for ferry_async_submit.
    pub input: u64,
    /// The operation's argument.
    pub arg: u64,
    /// A value passed through or to the callback.
    pub value: u64,
}

/// Submits the `n` jobs at `jobs` to the worker pool in one call: one lookup of `queue`, one lock
/// of the pool and at most one wake-up per worker for the whole batch, against one of each per
/// ferry_async_submit. Each job is what ferry_async_submit would submit with the same arguments.
///
/// Jobs are taken in order. The first job that is refused stops the batch: it and the jobs after
/// it are not submitted, and its status is returned. `*accepted_out` (which may be NULL) receives
/// how many jobs were taken, each of which gets exactly one completion on `queue`. `jobs` may be
/// NULL when `n` is 0.
/// Errors: NULL_POINTER (`jobs`), TOO_LARGE (`n`), UNSUPPORTED, INVALID_HANDLE, INVALID_ARGUMENT,
/// CLOSED, QUEUE_FULL, ALLOC_FAILED, WOULD_DEADLOCK (each as for ferry_async_submit).
#[no_mangle]
pub extern "C" fn ferry_async_submit_batch(
    queue: u64,
    jobs: *const FerryJob,
    n: usize,
    accepted_out: *mut usize,
) -> FerryStatus {
    run("ferry_async_submit_batch", || {
        if !accepted_out.is_null() {
            // SAFETY: non-null, and the caller promised a writable size_t there.
            unsafe { accepted_out.write(0) };
        }
        if n > crate::MAX_LEN / std::mem::size_of::<FerryJob>() {
            return Err(FerryStatus::TooLarge);
        }
        let jobs: &[FerryJob] = if n == 0 {
            &[]
        } else {
            let p = nonnull_mut(jobs.cast_mut())?;
            // SAFETY: non-null, and the caller promised `n` readable FerryJobs for this call.
            unsafe { std::slice::from_raw_parts(p, n) }
        };
        // An unknown op stops the batch there, like any other refusal.
        let known = jobs.iter().take_while(|j| Op::from_u32(j.op).is_some()).count();
        let reqs = jobs[..known].iter().map(|j| {
            let op = Op::from_u32(j.op).expect("checked above");
            (j.tag, Request { op, input: j.input, arg: j.arg, value: j.value })
        });
        let (taken, r) = pool::submit_batch(queue, reqs);
        if !accepted_out.is_null() {
            // SAFETY: as above.
            unsafe { accepted_out.write(taken) };
        }
        r?;
        if known < jobs.len() {
            return Err(FerryStatus::Unsupported);
        }
        Ok(())
    })
}

/// Cancels the job with `tag` on `queue`: if it has not started it completes with CANCELLED without
/// running; if it is running it can see the flag (FERRY_OP_SLEEP does within a millisecond). Its
/// completion still arrives. Errors: INVALID_HANDLE (the queue is unknown, or no job with that tag
/// is in flight: it may just have finished, and its completion stands).
#[no_mangle]
pub extern "C" fn ferry_async_cancel(queue: u64, tag: u64) -> FerryStatus {
    run("ferry_async_cancel", || match callback::cancel(queue, tag)? {
        true => Ok(()),
        false => Err(FerryStatus::InvalidHandle),
    })
}

/// Sets the worker pool's thread count (1..=256), job queue capacity (at least 1) and worker stack
/// size in bytes (65536 ..= 1 GiB) for its next start; 0 for any of them means its default (CPUs
/// but at least 2, 65536 jobs, 256 KiB). Every value is checked here. A running pool keeps its
/// threads, queue capacity and stack size until ferry_pool_shutdown; the new values apply when the
/// next submit starts the pool again.
/// Errors: INVALID_ARGUMENT.
#[no_mangle]
pub extern "C" fn ferry_pool_configure(threads: u32, queue_cap: usize, stack_size: usize) -> FerryStatus {
    run("ferry_pool_configure", || {
        let d = PoolConfig::default();
        let pick = |v: usize, def: usize| if v == 0 { def } else { v };
        Ok(pool::configure(PoolConfig {
            threads: pick(threads as usize, d.threads),
            queue_cap: pick(queue_cap, d.queue_cap),
            stack_size: pick(stack_size, d.stack_size),
        })?)
    })
}

/// Stops the worker pool: waiting jobs complete with CLOSED, running ones finish, and every worker
/// thread has exited when this returns. The next submit starts the pool again. The waiting jobs
/// complete first, so a running job that waits for one of them (a callback that submitted work)
/// finishes. They are dropped with no ferry lock held, so the release and drop functions they run
/// may call any ferry function (this one included: it returns OK at once).
/// Errors: INVALID_ARGUMENT when called on a worker thread (from a callback run by FERRY_OP_CALL),
/// before anything is changed.
#[no_mangle]
pub extern "C" fn ferry_pool_shutdown() -> FerryStatus {
    run("ferry_pool_shutdown", || Ok(pool::shutdown()?))
}

/// Stores 1 in `*worker_out` if this thread is one of the worker pool's threads (where callbacks run
/// by FERRY_OP_CALL run), else 0. Errors: NULL_POINTER.
#[no_mangle]
pub extern "C" fn ferry_thread_is_worker(worker_out: *mut u32) -> FerryStatus {
    run("ferry_thread_is_worker", || write(worker_out, u32::from(pool::on_worker())))
}

/// Tells ferry that the ferry calls in progress on this thread will never return: a Go callback
/// called runtime.Goexit, which drops the C and Rust frames below it without returning to them.
///
/// ferry lets go of what those calls hold: the callbacks they run are no longer protected from
/// their drop functions, buffer ids lent to them are released, and the job a worker thread was
/// running completes with CALLBACK_PANIC and `detail`. On a worker thread the worker is also
/// retired (a new one takes its place) and this call never returns: the thread stays parked for
/// the life of the process. Elsewhere it returns OK. Call it only where no ferry call in progress on
/// this thread will ever return (with none in progress it does nothing). Errors: none.
#[no_mangle]
pub extern "C" fn ferry_callback_abandon(detail: u64) -> FerryStatus {
    let mut retired = false;
    let st = run("ferry_callback_abandon", || {
        retired = callback::abandon_thread(detail);
        Ok(())
    });
    if retired {
        loop {
            std::thread::park();
        }
    }
    unpoison_abandoned_frames();
    st
}

/// Under AddressSanitizer, clears the poison of this thread's stack above the current frame, where
/// the abandoned frames are: their redzones would otherwise stay poisoned, and later calls that
/// reuse that stack (the next cgo call on the thread) would be reported as overflows, as after a
/// longjmp, which ASan handles the same way. Only a sanitized build has the function, so it is
/// looked up at run time (once: the result is kept); elsewhere this does nothing.
fn unpoison_abandoned_frames() {
    static NO_RETURN: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let f = *NO_RETURN.get_or_init(|| {
        // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only looks the symbol up.
        unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__asan_handle_no_return".as_ptr()) as usize }
    });
    if f != 0 {
        // SAFETY: the symbol is ASan's `void __asan_handle_no_return(void)`, which only rewrites
        // the shadow of this thread's stack.
        let handle_no_return: extern "C" fn() = unsafe { std::mem::transmute(f) };
        handle_no_return();
    }
}

/// Stores the callback machinery's counters in `*stats_out`. Errors: NULL_POINTER.
#[no_mangle]
pub extern "C" fn ferry_callback_stats(stats_out: *mut FerryCallbackStats) -> FerryStatus {
    run("ferry_callback_stats", || {
        let s = callback::stats();
        write(
            stats_out,
            FerryCallbackStats {
                registered: s.registered,
                alive: s.alive,
                queues: s.queues,
                in_flight: s.in_flight,
                workers: s.workers,
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    static DROPS: AtomicUsize = AtomicUsize::new(0);
    static FAILED_RESULT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

    /// value 0: panic record 5; value 1: failure 9 with a result buffer that ferry must release;
    /// otherwise: returns value + *user_data.
    unsafe extern "C" fn add(ud: *mut c_void, _buffer: u64, value: u64, out: *mut FerryPayload) -> u32 {
        // SAFETY: the tests register a pointer to a live u64 and ferry passes a valid `out`.
        let (base, out) = unsafe { (*(ud as *const u64), &mut *out) };
        match value {
            0 => {
                out.value = 5;
                FerryStatus::CallbackPanic as u32
            }
            1 => {
                out.buffer = Table::global().create_copy(b"x").unwrap().id;
                FAILED_RESULT.store(out.buffer, Ordering::SeqCst);
                out.value = 9;
                99
            }
            v => {
                out.value = v + base;
                0
            }
        }
    }

    unsafe extern "C" fn count_drop(_ud: *mut c_void) {
        DROPS.fetch_add(1, Ordering::SeqCst);
    }

    static BASE: u64 = 100;

    #[test]
    fn register_invoke_and_drop_through_the_c_abi() {
        let ud = &BASE as *const u64 as *mut c_void;
        let mut id = 0;
        assert_eq!(ferry_callback_register(None, ud, None, &mut id), FerryStatus::NullPointer);
        assert_eq!(
            ferry_callback_register(Some(add), ud, None, std::ptr::null_mut()),
            FerryStatus::NullPointer
        );
        let before = DROPS.load(Ordering::SeqCst);
        assert_eq!(ferry_callback_register(Some(add), ud, Some(count_drop), &mut id), FerryStatus::Ok);
        let mut r = FerryPayload::default();
        assert_eq!(ferry_callback_invoke(id, 0, 7, &mut r), FerryStatus::Ok);
        assert_eq!(r, FerryPayload { buffer: 0, value: 107 });
        assert_eq!(ferry_callback_invoke(id, 0, 0, &mut r), FerryStatus::CallbackPanic);
        assert_eq!(r, FerryPayload { buffer: 0, value: 5 });
        assert_eq!(ferry_callback_invoke(id, 0, 1, &mut r), FerryStatus::CallbackFailed);
        assert_eq!(r, FerryPayload { buffer: 0, value: 9 });
        let failed = FAILED_RESULT.load(Ordering::SeqCst);
        assert_ne!(failed, 0);
        assert!(Table::global().view(failed).is_err(), "the failed result's buffer was released");
        assert_eq!(ferry_callback_invoke(id, 0, 3, std::ptr::null_mut()), FerryStatus::Ok);
        assert_eq!(DROPS.load(Ordering::SeqCst), before);
        assert_eq!(ferry_callback_unregister(id), FerryStatus::Ok);
        assert_eq!(DROPS.load(Ordering::SeqCst), before + 1);
        assert_eq!(ferry_callback_unregister(id), FerryStatus::InvalidHandle);
        assert_eq!(ferry_callback_invoke(id, 0, 7, &mut r), FerryStatus::InvalidHandle);
    }

    #[test]
    fn queue_wait_post_submit_and_cancel() {
        let _g = pool::TEST_LOCK.lock();
        let mut q = 0;
        assert_eq!(ferry_queue_new(&mut q), FerryStatus::Ok);
        let mut out = [FerryCompletion::default(); 8];
        let mut n = 99;
        assert_eq!(ferry_queue_wait(q, out.as_mut_ptr(), 8, 0, &mut n), FerryStatus::Ok);
        assert_eq!(n, 0);
        assert_eq!(ferry_queue_wait(q, out.as_mut_ptr(), 0, 0, &mut n), FerryStatus::InvalidArgument);
        let v = Table::global().create_copy(b"abc").unwrap();
        assert_eq!(ferry_async_submit(q, 1, FERRY_OP_CHECKSUM, v.id, 0, 0), FerryStatus::Ok);
        assert_eq!(ferry_async_submit(q, 2, 77, 0, 0, 0), FerryStatus::Unsupported);
        assert_eq!(ferry_async_submit(q, 3, FERRY_OP_PANIC, 0, 0, 0), FerryStatus::Ok);
        assert_eq!(ferry_async_submit(q, 4, FERRY_OP_SLEEP, 0, 10_000_000, 0), FerryStatus::Ok);
        assert_eq!(ferry_async_cancel(q, 4), FerryStatus::Ok);
        assert_eq!(ferry_async_cancel(q, 5), FerryStatus::InvalidHandle);
        let posted = [
            FerryCompletion {
                tag: 10,
                buffer: 0,
                value: 1,
                status: FerryStatus::CallbackFailed as u32,
                reserved: 0,
            },
            FerryCompletion { tag: 11, buffer: 0, value: 0, status: 1000, reserved: 0 },
        ];
        assert_eq!(ferry_queue_post(q, posted.as_ptr(), 2), FerryStatus::InvalidArgument, "nothing posted");
        assert_eq!(ferry_queue_post(q, posted.as_ptr(), 1), FerryStatus::Ok);
        let mut got = Vec::new();
        while got.len() < 4 {
            assert_eq!(ferry_queue_wait(q, out.as_mut_ptr(), 8, -1, &mut n), FerryStatus::Ok);
            got.extend_from_slice(&out[..n]);
        }
        got.sort_by_key(|c| c.tag);
        let st = |c: &FerryCompletion| c.status;
        assert_eq!((got[0].tag, st(&got[0]), got[0].value), (1, 0, crate::callback::fnv1a64(b"abc")));
        assert_eq!(st(&got[1]), FerryStatus::Panic as u32);
        assert_eq!(st(&got[2]), FerryStatus::Cancelled as u32);
        assert_eq!((got[3].tag, st(&got[3]), got[3].value), (10, FerryStatus::CallbackFailed as u32, 1));
        Table::global().release(v.id).unwrap();
        assert_eq!(ferry_queue_close(q), FerryStatus::Ok);
        assert_eq!(ferry_queue_wait(q, out.as_mut_ptr(), 8, -1, &mut n), FerryStatus::InvalidHandle);
        assert_eq!(ferry_async_submit(q, 1, FERRY_OP_ECHO, 0, 0, 0), FerryStatus::InvalidHandle);
    }

    static SUNK: AtomicUsize = AtomicUsize::new(0);

    unsafe extern "C" fn sink(ud: *mut c_void, items: *const FerryCompletion, n: usize) {
        // SAFETY: ferry passes `n` valid completions; the test registers a live usize as user_data.
        let (items, max) = unsafe { (std::slice::from_raw_parts(items, n), *(ud as *const usize)) };
        assert!(n >= 1 && n <= max);
        SUNK.fetch_add(items.iter().map(|c| c.value as usize).sum(), Ordering::SeqCst);
    }

    static MAX_BATCH: usize = 4;

    #[test]
    fn a_sink_queue_delivers_batches_to_a_c_function() {
        let mut q = 0;
        let ud = &MAX_BATCH as *const usize as *mut c_void;
        assert_eq!(ferry_queue_new_sink(Some(sink), ud, 0, &mut q), FerryStatus::InvalidArgument);
        assert_eq!(ferry_queue_new_sink(Some(sink), ud, MAX_BATCH, &mut q), FerryStatus::Ok);
        let items: Vec<_> = (0..100)
            .map(|i| FerryCompletion { tag: i, buffer: 0, value: 1, status: 0, reserved: 0 })
            .collect();
        assert_eq!(ferry_queue_post(q, items.as_ptr(), items.len()), FerryStatus::Ok);
        let mut n = 0;
        let mut out = [FerryCompletion::default(); 1];
        assert_eq!(ferry_queue_wait(q, out.as_mut_ptr(), 1, 0, &mut n), FerryStatus::InvalidArgument);
        assert_eq!(ferry_queue_close(q), FerryStatus::Ok);
        assert_eq!(SUNK.load(Ordering::SeqCst), 100, "everything is delivered before close returns");
    }

    /// One value of every `CallError` variant (every `Error` variant inside `Ferry`). The matches
    /// stop compiling when a variant is added, pointing here to list it.
    fn every_call_error(detail: u64) -> Vec<CallError> {
        let core = [
            Error::InvalidHandle,
            Error::OutOfRange,
            Error::Overflow,
            Error::TooLarge,
            Error::LimitReached,
            Error::AllocFailed,
            Error::TableFull,
        ];
        let mut all: Vec<CallError> = core.iter().map(|&e| CallError::Ferry(e)).collect();
        all.extend([
            CallError::InvalidArgument,
            CallError::Failed(detail),
            CallError::CallbackPanic(detail),
            CallError::Panic,
            CallError::Cancelled,
            CallError::Closed,
            CallError::QueueFull,
            CallError::Unsupported,
            CallError::WouldDeadlock,
            CallError::NestedTooDeep,
        ]);
        for e in &all {
            match e {
                CallError::Ferry(
                    Error::InvalidHandle
                    | Error::OutOfRange
                    | Error::Overflow
                    | Error::TooLarge
                    | Error::LimitReached
                    | Error::AllocFailed
                    | Error::TableFull,
                )
                | CallError::InvalidArgument
                | CallError::Failed(_)
                | CallError::CallbackPanic(_)
                | CallError::Panic
                | CallError::Cancelled
                | CallError::Closed
                | CallError::QueueFull
                | CallError::Unsupported
                | CallError::WouldDeadlock
                | CallError::NestedTooDeep => {}
            }
        }
        all
    }

    #[test]
    fn status_and_error_mappings_agree() {
        for e in every_call_error(3) {
            let st = FerryStatus::from(e);
            assert_eq!(status_error(st as u32, e.detail()), Some(e), "{e:?} does not survive a post from C");
            assert_eq!(e.message(), st.message(), "{e:?}: the core's message differs from the status's");
            assert_eq!(e.to_string(), st.message());
        }
        for &st in FerryStatus::ALL {
            if let Some(e) = status_error(st as u32, 3) {
                assert_eq!(FerryStatus::from(e), st);
            }
        }
        let past = FerryStatus::ALL.len() as u32;
        assert!(
            status_error(0, 0).is_none() && status_error(2, 0).is_none() && status_error(past, 0).is_none()
        );
        let c = FerryCompletion::from(Completion { tag: 1, result: Err(CallError::Failed(4)) });
        assert_eq!((c.status, c.value, c.buffer), (FerryStatus::CallbackFailed as u32, 4, 0));
    }

    #[test]
    fn invoke_reports_only_the_statuses_its_header_line_names() {
        let allowed = crate::ffi::status::errors_of("ferry_callback_invoke").unwrap();
        for e in every_call_error(6) {
            let (st, detail) = invoke_error(e);
            assert!(allowed.contains(&st), "{e:?} gives {st:?}");
            let want = match e {
                CallError::Failed(v) | CallError::CallbackPanic(v) => v,
                CallError::Ferry(Error::InvalidHandle) | CallError::NestedTooDeep => 0,
                other => FerryStatus::from(other) as u64,
            };
            assert_eq!(detail, want, "{e:?}");
        }
        // End to end: a callback registered through the Rust API that fails with CLOSED.
        let id = callback::register(|_| Err(CallError::Closed)).unwrap();
        let mut r = FerryPayload { buffer: 9, value: 9 };
        assert_eq!(ferry_callback_invoke(id, 0, 0, &mut r), FerryStatus::CallbackFailed);
        assert_eq!(r, FerryPayload { buffer: 0, value: FerryStatus::Closed as u64 });
        assert_eq!(ferry_callback_unregister(id), FerryStatus::Ok);
    }

    #[test]
    fn pool_configure_checks_its_arguments() {
        assert_eq!(ferry_pool_configure(1000, 0, 0), FerryStatus::InvalidArgument);
        assert_eq!(ferry_pool_configure(0, 0, 1024), FerryStatus::InvalidArgument);
        let mut s = FerryCallbackStats::default();
        assert_eq!(ferry_callback_stats(&mut s), FerryStatus::Ok);
        assert_eq!(ferry_callback_stats(std::ptr::null_mut()), FerryStatus::NullPointer);
    }
}
