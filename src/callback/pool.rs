//! The worker pool: long-lived threads that run async jobs and complete them on their queues.
//!
//! The pool starts lazily at the first submit, with [`PoolConfig`]'s thread count and stack size, and
//! keeps its threads until [`shutdown`] (after which the next submit starts it again). Jobs wait in
//! one bounded FIFO; a submit wakes a worker only if one is asleep. A job runs under `catch_unwind`,
//! and so do its drop and its completion, so a panic fails that job alone and never kills a
//! worker. No lock is held while a job runs: a job (or a Go callback it invokes) may submit more
//! work or call any other ferry function.
//!
//! # Nested work
//!
//! A callback running on a worker may submit async work and wait for it (a Go callback calling
//! `ferry.Checksum`, a C callback waiting on a queue). If every worker did that at once, nobody
//! would be left to run the work they wait for. So a submit made *on a worker* when no worker is
//! free to take the job starts an extra worker (the way Go's runtime hands a blocked thread's work
//! to a new one, and tokio's `block_in_place`). Extra workers run jobs like the others and exit as
//! soon as they find the queue empty, so the pool shrinks back to its configured size. At most
//! [`extra_workers`] extras run at once; a submit from a worker that would need one more fails
//! with [`CallError::WouldDeadlock`] instead of queueing work nobody may ever run.
//!
//! # Abandoned jobs
//!
//! A Go callback that calls `runtime.Goexit` on a worker never returns to the worker's frames (and
//! Go cannot end a goroutine on a thread it did not create). ferry then completes the job with
//! `CallbackPanic` (see [`super::frames`]), [`retire_current`] takes the worker out of the pool and
//! starts another in its place, and the thread stays parked for the life of the process.
//!
//! # fork
//!
//! After `fork` the child has no worker threads. A `pthread_atfork` handler (installed when the
//! pool first starts) stops the child's copy of the pool: jobs that were waiting complete there with
//! `Closed`, jobs that were running complete in the parent only, and the child's next submit starts
//! a pool of its own. The handler takes the pool's locks around the fork, so a fork never copies
//! them held.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::frames;
use super::ops::{Prepared, Request};
use super::queue::{self, CancelToken, Completer};
use super::{catch, CallError, Payload};

/// Most worker threads a pool is configured with.
pub const MAX_THREADS: usize = 256;
/// Smallest worker stack accepted: every ferry function runs in it (c_tests/small_stack.c).
pub const MIN_STACK: usize = 64 << 10;
/// Largest worker stack accepted: 1 GiB.
pub const MAX_STACK: usize = 1 << 30;

/// How the pool is built at its next start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Worker threads (1..=256). Default: the number of CPUs, at least 2.
    pub threads: usize,
    /// Jobs that may wait before submits get `QueueFull` (at least 1). Default: 65536.
    pub queue_cap: usize,
    /// Stack size of each worker thread in bytes (64 KiB ..= 1 GiB). Default: 256 KiB.
    pub stack_size: usize,
}

impl Default for PoolConfig {
    fn default() -> PoolConfig {
        let cpus = thread::available_parallelism().map_or(2, |n| n.get());
        PoolConfig { threads: cpus.clamp(2, MAX_THREADS), queue_cap: 1 << 16, stack_size: 256 << 10 }
    }
}

/// Extra workers a pool of `threads` may start for work submitted from its own workers (see the
/// module docs): as many as it has threads, and at least 64.
pub fn extra_workers(threads: usize) -> usize {
    threads.max(64)
}

type BoxedWork = Box<dyn FnOnce(&CancelToken) -> Result<Payload, CallError> + Send>;

enum Work {
    Op(Prepared),
    Fn(BoxedWork),
}

struct Job {
    work: Work,
    done: Completer,
}

struct State {
    jobs: VecDeque<Job>,
    /// Workers asleep on the condition variable.
    idle: usize,
    /// Of those, how many were notified and have not woken yet: a submit wakes a worker only if
    /// one is asleep and not already on its way, so a burst of submits makes one wake-up, not one
    /// futex call each.
    signaled: usize,
    /// Workers running (configured ones and extras).
    workers: usize,
    running: bool,
    closing: bool,
    threads: Vec<JoinHandle<()>>,
    /// The configuration of the running pool.
    active: Option<PoolConfig>,
    /// The configuration for the next start.
    next: Option<PoolConfig>,
    /// Workers retired by [`retire_current`]: they never exit, so nothing may join them.
    parked: Vec<thread::ThreadId>,
}

struct Pool {
    state: Mutex<State>,
    cv: Condvar,
    /// Notified when a worker leaves the count (exits or is retired), for shutdown.
    gone: Condvar,
    /// Serialises shutdowns, so that each one returns only once the workers are joined.
    shutdown: Mutex<()>,
}

static POOL: Pool = Pool {
    state: Mutex::new(State {
        jobs: VecDeque::new(),
        idle: 0,
        signaled: 0,
        workers: 0,
        running: false,
        closing: false,
        threads: Vec::new(),
        active: None,
        next: None,
        parked: Vec::new(),
    }),
    cv: Condvar::new(),
    gone: Condvar::new(),
    shutdown: Mutex::new(()),
};

static WORKERS: AtomicUsize = AtomicUsize::new(0);
static JOB_PANICS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static IS_WORKER: Cell<bool> = const { Cell::new(false) };
    /// Set while this thread's `shutdown` completes the jobs it took (see `shutdown`).
    static CLOSING_JOBS: Cell<bool> = const { Cell::new(false) };
}

/// Reports whether this thread is one of the pool's workers.
pub fn on_worker() -> bool {
    IS_WORKER.with(Cell::get)
}

/// Sets the configuration used at the pool's next start; a running pool keeps its threads, its
/// queue capacity and its stack size until [`shutdown`]. Errors: `InvalidArgument` for a value
/// outside the documented ranges (checked here, never at the next submit).
pub fn configure(c: PoolConfig) -> Result<(), CallError> {
    if !(1..=MAX_THREADS).contains(&c.threads)
        || c.queue_cap == 0
        || !(MIN_STACK..=MAX_STACK).contains(&c.stack_size)
    {
        return Err(CallError::InvalidArgument);
    }
    POOL.state.lock().next = Some(c);
    Ok(())
}

/// Stops the pool: jobs still waiting complete with `Closed` without running, running jobs finish
/// (a job that never ends keeps `shutdown` waiting), and every worker thread is joined before
/// `shutdown` returns. The next submit starts a new pool.
///
/// The waiting jobs are completed first, before `shutdown` waits for the running ones: a running
/// job may be waiting for one of them (a callback that submitted work and waits for it), and would
/// otherwise never finish. They are dropped with no pool lock held, so their release functions and
/// drop hooks may call ferry; `shutdown` called from one of them returns `Ok` at once (the pool is
/// being stopped).
/// Errors: `InvalidArgument` when called from a worker thread (it would wait for itself); nothing
/// is changed then.
pub fn shutdown() -> Result<(), CallError> {
    if on_worker() {
        return Err(CallError::InvalidArgument);
    }
    if CLOSING_JOBS.with(Cell::get) {
        return Ok(());
    }
    let serial = POOL.shutdown.lock();
    let (jobs, threads) = {
        let mut st = POOL.state.lock();
        if !st.running {
            return Ok(());
        }
        st.closing = true;
        (std::mem::take(&mut st.jobs), std::mem::take(&mut st.threads))
    };
    POOL.cv.notify_all();
    CLOSING_JOBS.with(|c| c.set(true));
    for j in jobs {
        close_job(j);
    }
    CLOSING_JOBS.with(|c| c.set(false));
    let parked = {
        // Every worker leaves the count when it exits or is retired; then the handles left are
        // of threads that have exited or are about to, except the retired ones, which never do.
        let mut st = POOL.state.lock();
        while st.workers > 0 {
            POOL.gone.wait(&mut st);
        }
        st.parked.clone()
    };
    for t in threads {
        if !parked.contains(&t.thread().id()) {
            let _ = t.join();
        }
    }
    {
        let mut st = POOL.state.lock();
        st.running = false;
        st.closing = false;
        st.signaled = 0;
        st.active = None;
    }
    drop(serial);
    Ok(())
}

/// Completes a job that will never run with `Closed`; a panic while dropping it is caught.
fn close_job(j: Job) {
    let Job { work, done } = j;
    if catch_unwind(AssertUnwindSafe(move || {
        crate::fault_point!("job.close");
        drop(work);
        done.complete(Err(CallError::Closed));
    }))
    .is_err()
    {
        JOB_PANICS.fetch_add(1, Ordering::Relaxed);
    }
}

/// Submits a built-in operation; its completion arrives on queue `queue` with `tag`.
///
/// Exactly one completion follows a successful submit (an error, `Cancelled` or `Closed` included);
/// none follows a failed one. The input buffer is held from now on, so the caller may release its
/// id at once. Errors: `Ferry(InvalidHandle)` (queue, input or callback id), `InvalidArgument`
/// (tag already in flight on the queue, bad argument), `Closed`, `QueueFull`,
/// `Ferry(AllocFailed)` (no worker thread could be started), `WouldDeadlock` (see the module docs).
pub fn submit(queue: u64, tag: u64, req: Request) -> Result<(), CallError> {
    let work = Work::Op(Prepared::new(req)?);
    enqueue(queue, tag, work)
}

/// Runs `f` on a worker and completes `tag` on queue `queue` with its result; like [`submit`], for
/// a downstream crate's own work. A panic in `f` completes the job with `Panic`.
pub fn spawn(
    queue: u64,
    tag: u64,
    f: impl FnOnce(&CancelToken) -> Result<Payload, CallError> + Send + 'static,
) -> Result<(), CallError> {
    enqueue(queue, tag, Work::Fn(Box::new(f)))
}

fn enqueue(queue: u64, tag: u64, work: Work) -> Result<(), CallError> {
    let done = Completer::on(queue::get(queue)?, tag)?;
    // push_jobs for one job, without moving the job through an iterator.
    let nested = on_worker();
    let mut st = POOL.state.lock();
    if let Err(e) = admit(&mut st, nested) {
        drop(st);
        done.forget();
        return Err(e);
    }
    st.jobs.push_back(Job { work, done });
    wake_for(st, 1);
    Ok(())
}

/// Submits built-in operations in one go: one queue lookup, one lock of the pool and at most one
/// wake-up per worker for the whole batch. Jobs are taken in order; the first that is refused
/// stops the batch (it and the jobs after it are not submitted). Returns how many were taken,
/// each of which gets exactly one completion, and `Ok` or the first refusal's error (the same
/// errors as [`submit`]).
pub fn submit_batch(
    queue: u64,
    jobs: impl IntoIterator<Item = (u64, Request)>,
) -> (usize, Result<(), CallError>) {
    let q = match queue::get(queue) {
        Ok(q) => q,
        Err(e) => return (0, Err(e)),
    };
    let mut ready = Vec::new();
    let mut refused = Ok(());
    for (tag, req) in jobs {
        let job = Prepared::new(req)
            .and_then(|p| Ok(Job { work: Work::Op(p), done: Completer::on(q.clone(), tag)? }));
        match job {
            Ok(j) => ready.push(j),
            Err(e) => {
                refused = Err(e);
                break;
            }
        }
    }
    let (n, r) = push_jobs(ready);
    (n, r.and(refused))
}

/// Queues `jobs` in order under one lock, until one is refused; wakes as many sleeping workers as
/// there are new jobs. Returns how many were queued and the refusal, if any (the refused job and
/// those after it give their tags up without a completion).
fn push_jobs(jobs: impl IntoIterator<Item = Job>) -> (usize, Result<(), CallError>) {
    let nested = on_worker();
    let mut st = POOL.state.lock();
    let mut pushed = 0;
    let mut rest = jobs.into_iter();
    let mut refused = Ok(());

    let mut left = Vec::new();
    for job in rest.by_ref() {
        if let Err(e) = admit(&mut st, nested) {
            refused = Err(e);
            left.push(job);
            left.extend(rest.by_ref());
            break;
        }
        st.jobs.push_back(job);
        pushed += 1;
    }
    // Wake for what was queued, refused or not (a batch refused part-way still queued its first
    // jobs).
    wake_for(st, pushed);
    // The refused job and those after it give their tags up, after the lock is let go.
    for j in left {
        j.done.forget();
    }
    (pushed, refused)
}

/// Lets go of the pool's lock after `pushed` jobs were queued, and wakes as many sleeping workers
/// as there are new jobs no woken worker will take.
fn wake_for(mut st: MutexGuard<'_, State>, pushed: usize) {
    let sleeping = st.idle.saturating_sub(st.signaled);
    let wake = sleeping.min(st.jobs.len().saturating_sub(st.signaled)).min(pushed);
    st.signaled += wake;
    drop(st);
    for _ in 0..wake {
        POOL.cv.notify_one();
    }
}

/// Decides whether one more job may be queued, starting the pool or an extra worker as needed.
fn admit(st: &mut State, nested: bool) -> Result<(), CallError> {
    if st.closing {
        return Err(CallError::Closed);
    }
    if !st.running {
        start(st)?;
    }
    let c = st.active.expect("a running pool has its configuration");
    if st.jobs.len() >= c.queue_cap {
        return Err(CallError::QueueFull);
    }
    // A worker submitting while no worker is free to take the job may be about to wait for it.
    let free = st.idle.saturating_sub(st.signaled) > st.jobs.len();
    if nested && !free {
        if st.workers >= c.threads + extra_workers(c.threads) {
            return Err(CallError::WouldDeadlock);
        }
        st.threads.retain(|h| !h.is_finished());
        spawn_worker(st, &c).map_err(|_| CallError::Ferry(crate::Error::AllocFailed))?;
    }
    Ok(())
}

fn spawn_worker(st: &mut State, c: &PoolConfig) -> std::io::Result<()> {
    let n = st.threads.len();
    let h =
        thread::Builder::new().name(format!("ferry-worker-{n}")).stack_size(c.stack_size).spawn(worker)?;
    st.threads.push(h);
    st.workers += 1;
    Ok(())
}

/// Starts the workers; fails if not even one thread could be made.
fn start(st: &mut State) -> Result<(), CallError> {
    install_fork_handlers();
    let c = st.next.unwrap_or_default();
    st.active = Some(c);
    for _ in 0..c.threads {
        if spawn_worker(st, &c).is_err() {
            break;
        }
    }
    st.running = !st.threads.is_empty();
    if st.running {
        Ok(())
    } else {
        st.active = None;
        Err(CallError::Ferry(crate::Error::AllocFailed))
    }
}

fn worker() {
    IS_WORKER.with(|w| w.set(true));
    WORKERS.fetch_add(1, Ordering::SeqCst);
    while let Some(job) = next_job() {
        run(job);
    }
    WORKERS.fetch_sub(1, Ordering::SeqCst);
}

/// The next job, or None when this worker should exit: the pool is closing, or it has more
/// workers than configured (extras started for nested work) and nothing is waiting.
fn next_job() -> Option<Job> {
    let mut st = POOL.state.lock();
    loop {
        if let Some(j) = st.jobs.pop_front() {
            return Some(j);
        }
        let configured = st.active.map_or(0, |c| c.threads);
        if st.closing || st.workers > configured {
            st.workers -= 1;
            POOL.gone.notify_all();
            return None;
        }
        st.idle += 1;
        POOL.cv.wait(&mut st);
        st.idle -= 1;
        st.signaled = st.signaled.saturating_sub(1);
    }
}

/// Runs a job and delivers its completion. Everything, the job's drop and the delivery included,
/// runs under `catch_unwind`: a panic there is counted and never ends the worker.
fn run(job: Job) {
    let Job { work, done } = job;
    let outcome = catch_unwind(AssertUnwindSafe(move || {
        if done.is_cancelled() {
            drop(work);
            done.complete(Err(CallError::Cancelled));
            return;
        }
        let token = done.token();
        let running = Running { done: RefCell::new(Some(done)) };
        let result = frames::holding(&running, || {
            catch(CallError::Panic, move || {
                crate::fault_point!("job.run");
                match work {
                    Work::Op(p) => p.run(&token),
                    Work::Fn(f) => f(&token),
                }
            })
        });
        // Until it is delivered, the result's buffer id is released if anything unwinds.
        let mut result = Unsent(Some(result));
        crate::fault_point!("job.complete");
        if let Some(done) = running.done.into_inner() {
            done.complete(result.0.take().expect("set above"));
        }
    }));
    if outcome.is_err() {
        JOB_PANICS.fetch_add(1, Ordering::Relaxed);
    }
}

/// A job's result on its way to the queue: its buffer id is released if it never gets there.
struct Unsent(Option<Result<Payload, CallError>>);

impl Drop for Unsent {
    fn drop(&mut self) {
        if let Some(Ok(p)) = self.0.take() {
            if p.buffer != 0 {
                let _ = crate::table::Table::global().release(p.buffer);
            }
        }
    }
}

/// The completion of the job a worker runs, reachable while the job calls out, so that a job whose
/// frames are abandoned (see [`frames`]) still completes: with `CallbackPanic` and the detail.
struct Running {
    done: RefCell<Option<Completer>>,
}

impl frames::Abandon for Running {
    fn abandon(&self, detail: u64) {
        // The job's own code never borrows `done`, so this borrow cannot fail.
        if let Some(done) = self.done.borrow_mut().take() {
            done.complete(Err(frames::abandoned_error(detail)));
        }
    }
}

/// Retires the worker this is called on, whose calls were abandoned (see [`frames`]): it never
/// takes another job, the pool no longer counts or joins it, and a new worker takes its place.
/// Returns false, doing nothing, on any other thread.
pub(crate) fn retire_current() -> bool {
    if !on_worker() {
        return false;
    }
    IS_WORKER.with(|w| w.set(false));
    let me = thread::current().id();
    let mut st = POOL.state.lock();
    // Shutdown may hold this thread's handle already: it skips the threads listed here.
    st.parked.push(me);
    st.threads.retain(|h| h.thread().id() != me);
    st.workers -= 1;
    WORKERS.fetch_sub(1, Ordering::SeqCst);
    if let (Some(c), false) = (st.active, st.closing) {
        if st.workers < c.threads {
            let _ = spawn_worker(&mut st, &c);
        }
    }
    drop(st);
    POOL.gone.notify_all();
    true
}

/// Worker threads running now.
pub fn workers() -> usize {
    WORKERS.load(Ordering::SeqCst)
}

/// Panics caught outside a job's own work (in its drop or its delivery) since the process started.
pub fn job_panics() -> u64 {
    JOB_PANICS.load(Ordering::Relaxed)
}

#[cfg(unix)]
fn install_fork_handlers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: the three handlers are plain functions that only take, release or reset the
        // pool's own locks and state; registering them has no other effect.
        unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child)) };
    });
}

#[cfg(not(unix))]
fn install_fork_handlers() {}

/// Before fork: take the pool's locks, so the child never inherits them held by a thread that
/// does not exist there.
#[cfg(unix)]
extern "C" fn fork_prepare() {
    std::mem::forget(POOL.shutdown.lock());
    std::mem::forget(POOL.state.lock());
}

/// After fork, in the parent: give the locks back.
#[cfg(unix)]
extern "C" fn fork_parent() {
    // SAFETY: fork_prepare took both locks on this thread and forgot the guards.
    unsafe {
        POOL.state.force_unlock();
        POOL.shutdown.force_unlock();
    }
}

/// After fork, in the child: the workers are gone. Stop the pool, give the locks back, and
/// complete the jobs that were waiting with `Closed`.
#[cfg(unix)]
extern "C" fn fork_child() {
    // SAFETY: fork_prepare took the state lock before the fork, so this (only) thread of the child
    // holds it; the guard was forgotten, and nothing else can touch the state until it is unlocked.
    let st = unsafe { &mut *POOL.state.data_ptr() };
    // The parent's threads do not exist here: their handles must never be joined.
    std::mem::take(&mut st.threads).into_iter().for_each(std::mem::forget);
    let jobs = std::mem::take(&mut st.jobs);
    st.running = false;
    st.closing = false;
    st.idle = 0;
    st.signaled = 0;
    st.workers = 0;
    st.active = None;
    st.parked.clear();
    WORKERS.store(0, Ordering::SeqCst);
    // SAFETY: as in fork_parent: these locks were taken in fork_prepare and their guards forgotten.
    unsafe {
        POOL.state.force_unlock();
        POOL.shutdown.force_unlock();
    }
    for j in jobs {
        close_job(j);
    }
}

/// Serialises the tests (here and in the C layer) that start, reconfigure or stop the global pool.
#[cfg(test)]
pub(crate) static TEST_LOCK: Mutex<()> = Mutex::new(());

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::callback::ops::{fnv1a64, Op};
    use crate::callback::queue::Completion;
    use crate::table::Table;
    use std::sync::atomic::AtomicUsize;

    fn drain(q: u64, n: usize) -> Vec<Completion> {
        let q = queue::get(q).unwrap();
        let mut out = Vec::new();
        while out.len() < n {
            out.extend(q.wait(64, Some(Duration::from_secs(10))).unwrap());
        }
        out.sort_by_key(|c| c.tag);
        out
    }

    /// Up to `n` completions from queue `q`, waiting at most `within` in all.
    fn collect(q: u64, n: usize, within: Duration) -> Vec<Completion> {
        let q = queue::get(q).unwrap();
        let deadline = std::time::Instant::now() + within;
        let mut out = Vec::new();
        while out.len() < n {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            out.extend(q.wait(n - out.len(), Some(left)).unwrap());
        }
        out
    }

    fn req(op: Op, input: u64, arg: u64, value: u64) -> Request {
        Request { op, input, arg, value }
    }

    #[test]
    fn echo_and_checksum_run_on_workers() {
        let _g = TEST_LOCK.lock();
        let t = Table::global();
        let q = queue::create().unwrap();
        let v = t.create_copy(b"hello, ferry").unwrap();
        submit(q, 1, req(Op::Echo, v.id, 0, 42)).unwrap();
        submit(q, 2, req(Op::Checksum, v.id, 0, 0)).unwrap();
        submit(q, 3, req(Op::Echo, 0, 0, 5)).unwrap();
        t.release(v.id).unwrap(); // the jobs hold the bytes on their own
        let got = drain(q, 3);
        let echo = got[0].result.unwrap();
        assert_eq!(echo.value, 42);
        let ev = t.view(echo.buffer).unwrap();
        assert_eq!(ev.ptr, v.ptr, "echo is zero-copy");
        t.release(echo.buffer).unwrap();
        assert_eq!(got[1].result.unwrap().value, fnv1a64(b"hello, ferry"));
        assert_eq!(got[2].result, Ok(Payload { buffer: 0, value: 5 }));
        queue::close(q).unwrap();
    }

    #[test]
    fn bad_submits_fail_at_once_without_a_completion() {
        let _g = TEST_LOCK.lock();
        let q = queue::create().unwrap();
        let bad = CallError::Ferry(crate::Error::InvalidHandle);
        assert_eq!(submit(q, 1, req(Op::Echo, 12345, 0, 0)), Err(bad));
        assert_eq!(submit(q, 1, req(Op::Call, 0, 999, 0)), Err(bad));
        assert_eq!(submit(q, 1, req(Op::Sleep, 0, MAX + 1, 0)), Err(CallError::InvalidArgument));
        assert_eq!(submit(0, 1, req(Op::Echo, 0, 0, 0)), Err(bad));
        submit(q, 1, req(Op::Sleep, 0, 20_000, 0)).unwrap();
        assert_eq!(submit(q, 1, req(Op::Echo, 0, 0, 0)), Err(CallError::InvalidArgument), "tag in flight");
        assert_eq!(drain(q, 1).len(), 1);
        assert!(queue::get(q).unwrap().wait(1, Some(Duration::from_millis(20))).unwrap().is_empty());
        queue::close(q).unwrap();
    }
    const MAX: u64 = 60_000_000;

    #[test]
    fn a_panicking_job_fails_alone() {
        let _g = TEST_LOCK.lock();
        let q = queue::create().unwrap();
        for i in 0..8 {
            let op = if i % 2 == 0 { Op::Panic } else { Op::Echo };
            submit(q, i, req(op, 0, 0, i)).unwrap();
        }
        spawn(q, 100, |_| panic!("spawned panic (expected by the test)")).unwrap();
        for (i, c) in drain(q, 9).iter().enumerate().take(8) {
            let want =
                if i % 2 == 0 { Err(CallError::Panic) } else { Ok(Payload { buffer: 0, value: i as u64 }) };
            assert_eq!(c.result, want);
        }
        queue::close(q).unwrap();
    }

    #[test]
    fn cancel_skips_waiting_jobs_and_stops_running_ones() {
        let _g = TEST_LOCK.lock();
        shutdown().unwrap();
        configure(PoolConfig { threads: 1, ..PoolConfig::default() }).unwrap();
        let q = queue::create().unwrap();
        submit(q, 1, req(Op::Sleep, 0, 60_000_000, 0)).unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let r2 = ran.clone();
        spawn(q, 2, move |_| {
            r2.fetch_add(1, Ordering::SeqCst);
            Ok(Payload::default())
        })
        .unwrap();
        // Whether or not the sleep has started yet, both complete CANCELLED: a waiting job is
        // skipped, a running sleep checks the flag every millisecond.
        assert_eq!(queue::cancel(q, 2), Ok(true));
        assert_eq!(queue::cancel(q, 1), Ok(true));
        let t0 = std::time::Instant::now();
        let got = drain(q, 2);
        // Not a timing test: an uncancelled sleep would take its full 60 s.
        assert!(t0.elapsed() < Duration::from_secs(50), "the running sleep never saw the flag");
        assert_eq!(got[0].result, Err(CallError::Cancelled));
        assert_eq!(got[1].result, Err(CallError::Cancelled));
        assert_eq!(ran.load(Ordering::SeqCst), 0, "a job cancelled before it started never runs");
        queue::close(q).unwrap();
        shutdown().unwrap();
        configure(PoolConfig::default()).unwrap();
    }

    #[test]
    fn shutdown_closes_waiting_jobs_joins_workers_and_restarts() {
        let _g = TEST_LOCK.lock();
        shutdown().unwrap();
        configure(PoolConfig { threads: 2, queue_cap: 4, ..PoolConfig::default() }).unwrap();
        let q = queue::create().unwrap();
        // Two jobs hold both workers until the gate opens (no sleeps: a loaded machine or valgrind
        // must not change what this test sees).
        let gate = Arc::new(std::sync::Barrier::new(3));
        let started = Arc::new(AtomicUsize::new(0));
        for tag in 0..2 {
            let (g, s) = (gate.clone(), started.clone());
            spawn(q, tag, move |_| {
                s.fetch_add(1, Ordering::SeqCst);
                g.wait();
                Ok(Payload::default())
            })
            .unwrap();
        }
        while started.load(Ordering::SeqCst) < 2 {
            std::thread::yield_now();
        }
        assert_eq!(workers(), 2);
        for tag in 2..6 {
            submit(q, tag, req(Op::Echo, 0, 0, 0)).unwrap();
        }
        assert_eq!(submit(q, 6, req(Op::Echo, 0, 0, 0)), Err(CallError::QueueFull));
        let stopper = std::thread::spawn(shutdown);
        // Once shutdown has taken the waiting jobs, submits are refused; then let the running ones go.
        // (The queue is full, so until then a probe is refused with QUEUE_FULL.)
        loop {
            match submit(q, 7, req(Op::Echo, 0, 0, 0)) {
                Err(CallError::QueueFull) => std::thread::yield_now(),
                Err(CallError::Closed) => break,
                other => panic!("probe submit: {other:?}"),
            }
        }
        gate.wait();
        stopper.join().unwrap().unwrap();
        assert_eq!(workers(), 0);
        let got = drain(q, 6);
        assert!(got[..2].iter().all(|c| c.result.is_ok()), "running jobs finish");
        assert!(got[2..].iter().all(|c| c.result == Err(CallError::Closed)), "waiting jobs are closed");
        configure(PoolConfig::default()).unwrap();
        submit(q, 7, req(Op::Echo, 0, 0, 9)).unwrap();
        assert_eq!(drain(q, 1)[0].result.unwrap().value, 9);
        // This queue's count: the process-wide one also counts other tests' jobs, running in parallel.
        assert_eq!(queue::get(q).unwrap().in_flight(), 0);
        queue::close(q).unwrap();
        assert_eq!(
            configure(PoolConfig { threads: 0, ..PoolConfig::default() }),
            Err(CallError::InvalidArgument)
        );
    }

    #[test]
    fn many_jobs_from_many_threads() {
        let _g = TEST_LOCK.lock();
        let q = queue::create().unwrap();
        let per = 5000u64;
        let ths: Vec<_> = (0..4u64)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..per {
                        let tag = t * per + i;
                        loop {
                            match submit(q, tag, req(Op::Echo, 0, 0, tag)) {
                                Err(CallError::QueueFull) => std::thread::yield_now(),
                                r => break r.unwrap(),
                            }
                        }
                    }
                })
            })
            .collect();
        let got = drain(q, 4 * per as usize);
        for t in ths {
            t.join().unwrap();
        }
        assert!(got
            .iter()
            .enumerate()
            .all(|(i, c)| c.tag == i as u64 && c.result.unwrap().value == i as u64));
        queue::close(q).unwrap();
    }

    /// Issue 10, item 1: two jobs on a 2-worker pool each submit work and wait for it. Before
    /// extra workers, both workers waited and nothing ran the work they waited for: a hang.
    #[test]
    fn nested_work_waited_on_by_every_worker_completes() {
        let _g = TEST_LOCK.lock();
        shutdown().unwrap();
        configure(PoolConfig { threads: 2, ..PoolConfig::default() }).unwrap();
        let outer = queue::create().unwrap();
        for tag in 0..2 {
            spawn(outer, tag, move |_| {
                let inner = queue::create()?;
                submit(inner, 7, req(Op::Echo, 0, 0, tag + 40))?;
                let got = queue::get(inner)?.wait(1, Some(Duration::from_secs(60)))?;
                queue::close(inner)?;
                got.first().map(|c| c.result).unwrap_or(Err(CallError::Cancelled))
            })
            .unwrap();
        }
        let got = collect(outer, 2, Duration::from_secs(120));
        assert_eq!(got.len(), 2, "nested waits on every worker hung the pool");
        assert!(got.iter().all(|c| c.result == Ok(Payload { buffer: 0, value: c.tag + 40 })));
        queue::close(outer).unwrap();
        shutdown().unwrap();
        assert_eq!(workers(), 0);
        configure(PoolConfig::default()).unwrap();
    }

    /// Issue 10, item 2: a release function run by a job that shutdown drops calls shutdown again.
    /// Before, the first shutdown still held its lock while dropping the jobs: a deadlock.
    #[test]
    fn shutdown_reentered_from_a_release_function_returns() {
        let _g = TEST_LOCK.lock();
        shutdown().unwrap();
        configure(PoolConfig { threads: 1, ..PoolConfig::default() }).unwrap();
        let q = queue::create().unwrap();
        let gate = Arc::new(std::sync::Barrier::new(2));
        let g2 = gate.clone();
        let running = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let r2 = running.clone();
        spawn(q, 1, move |_| {
            r2.store(true, Ordering::SeqCst);
            g2.wait();
            Ok(Payload::default())
        })
        .unwrap();
        // The gate job holds the one worker (it must be running, not waiting, when shutdown comes).
        while !running.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        // A job that waits behind the gate, holding adopted memory whose release calls shutdown.
        static INNER: AtomicUsize = AtomicUsize::new(0);
        let mut mem = vec![5u8; 16];
        let p = mem.as_mut_ptr();
        // SAFETY: `mem` lives until the end of the test, after the release ran.
        let v = unsafe {
            Table::global().adopt_raw(p, 16, || {
                assert_eq!(shutdown(), Ok(()));
                INNER.fetch_add(1, Ordering::SeqCst);
            })
        }
        .unwrap();
        submit(q, 2, req(Op::Echo, v.id, 0, 0)).unwrap();
        Table::global().release(v.id).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(shutdown()).unwrap());
        // Once shutdown has taken the waiting jobs, submits are refused; then let the running job go.
        let mut probes = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            assert!(std::time::Instant::now() < deadline, "shutdown never started ({probes} probes)");
            probes += 1;
            match submit(q, 1000 + probes, req(Op::Echo, 0, 0, 0)) {
                Err(CallError::Closed) => break,
                Ok(()) => std::thread::yield_now(),
                Err(e) => panic!("probe submit: {e:?}"),
            }
        }
        gate.wait();
        let r = rx.recv_timeout(Duration::from_secs(60));
        assert_eq!(r, Ok(Ok(())), "shutdown re-entered from a release function hung");
        assert_eq!(INNER.load(Ordering::SeqCst), 1);
        let got = collect(q, 1 + probes as usize, Duration::from_secs(60));
        assert_eq!(got.iter().find(|c| c.tag == 2).map(|c| c.result), Some(Err(CallError::Closed)));
        queue::close(q).unwrap();
        drop(mem);
        configure(PoolConfig::default()).unwrap();
    }

    /// A running job waits for a job queued behind it (submitted from outside the pool, so no extra
    /// worker starts), and the pool shuts down. Shutdown used to close the waiting jobs only after
    /// it had joined the workers: the running job waited for ever (here: until its 60 s timeout).
    /// The waiting jobs are now closed first, so the running one sees CLOSED and finishes.
    #[test]
    fn shutdown_closes_waiting_jobs_before_it_waits_for_running_ones() {
        let _g = TEST_LOCK.lock();
        shutdown().unwrap();
        configure(PoolConfig { threads: 1, ..PoolConfig::default() }).unwrap();
        let (outer, inner) = (queue::create().unwrap(), queue::create().unwrap());
        let running = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let r2 = running.clone();
        spawn(outer, 1, move |_| {
            r2.store(true, Ordering::SeqCst);
            let got = queue::get(inner)?.wait(1, Some(Duration::from_secs(60)))?;
            // What the job waited for: the queued job's result, or Cancelled for a timeout.
            got.first().map(|c| c.result).unwrap_or(Err(CallError::Cancelled))
        })
        .unwrap();
        while !running.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        // Queued behind the running job on the only worker.
        submit(inner, 2, req(Op::Echo, 0, 0, 5)).unwrap();
        shutdown().unwrap();
        let got = collect(outer, 1, Duration::from_secs(120));
        assert_eq!(got[0].result, Err(CallError::Closed), "the running job saw the queued one closed");
        queue::close(outer).unwrap();
        queue::close(inner).unwrap();
        configure(PoolConfig::default()).unwrap();
    }

    /// Issue 10, item 7: configure changes the next start only, and checks every value at once.
    #[test]
    fn configure_applies_at_the_next_start_and_checks_at_once() {
        let _g = TEST_LOCK.lock();
        shutdown().unwrap();
        configure(PoolConfig { threads: 1, queue_cap: 64, ..PoolConfig::default() }).unwrap();
        let q = queue::create().unwrap();
        submit(q, 0, req(Op::Echo, 0, 0, 0)).unwrap();
        // A running pool keeps its queue capacity: this must not make the next submits QUEUE_FULL.
        configure(PoolConfig { threads: 1, queue_cap: 1, ..PoolConfig::default() }).unwrap();
        for tag in 1..8 {
            submit(q, tag, req(Op::Echo, 0, 0, 0)).unwrap();
        }
        assert_eq!(collect(q, 8, Duration::from_secs(60)).len(), 8);
        for bad in [usize::MAX, MAX_STACK + 1, MIN_STACK - 1] {
            let c = PoolConfig { stack_size: bad, ..PoolConfig::default() };
            assert_eq!(configure(c), Err(CallError::InvalidArgument), "stack {bad}");
        }
        queue::close(q).unwrap();
        shutdown().unwrap();
        configure(PoolConfig::default()).unwrap();
    }

    /// Issue 10, item 8: a job whose drop panics (here: a cancelled job, dropped without running)
    /// no longer kills its worker; the pool keeps its size and later jobs run.
    #[test]
    fn a_job_whose_drop_panics_keeps_the_pool_alive() {
        struct PanicOnDrop;
        impl Drop for PanicOnDrop {
            fn drop(&mut self) {
                panic!("a job's drop panicked (expected by the test)");
            }
        }
        let _g = TEST_LOCK.lock();
        shutdown().unwrap();
        configure(PoolConfig { threads: 1, ..PoolConfig::default() }).unwrap();
        let q = queue::create().unwrap();
        let gate = Arc::new(std::sync::Barrier::new(2));
        let g2 = gate.clone();
        spawn(q, 1, move |_| {
            g2.wait();
            Ok(Payload::default())
        })
        .unwrap();
        let bomb = PanicOnDrop;
        spawn(q, 2, move |_| {
            let _keep = &bomb;
            Ok(Payload::default())
        })
        .unwrap();
        assert_eq!(queue::cancel(q, 2), Ok(true));
        let before = job_panics();
        gate.wait();
        let got = collect(q, 2, Duration::from_secs(60));
        assert_eq!(got.len(), 2, "the cancelled job's completion arrives");
        // The completion is delivered while the panic unwinds; the count follows right after.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while job_panics() == before && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(job_panics(), before + 1);
        assert_eq!(workers(), 1, "the worker survived");
        submit(q, 3, req(Op::Echo, 0, 0, 9)).unwrap();
        assert_eq!(collect(q, 1, Duration::from_secs(60))[0].result.unwrap().value, 9);
        queue::close(q).unwrap();
        shutdown().unwrap();
        configure(PoolConfig::default()).unwrap();
    }

    /// A batch refused part-way (here: the queue is full after its first job) still runs the jobs
    /// it queued: the sleeping worker is woken for them (it was not, at first, and the job hung).
    #[test]
    fn a_batch_refused_part_way_runs_what_it_queued() {
        let _g = TEST_LOCK.lock();
        shutdown().unwrap();
        configure(PoolConfig { threads: 1, queue_cap: 1, ..PoolConfig::default() }).unwrap();
        let q = queue::create().unwrap();
        // Start the pool and let its worker go to sleep on an empty queue.
        submit(q, 0, req(Op::Echo, 0, 0, 0)).unwrap();
        assert_eq!(collect(q, 1, Duration::from_secs(60)).len(), 1);
        let (taken, r) = submit_batch(q, (1..4).map(|t| (t, req(Op::Echo, 0, 0, t))));
        assert_eq!((taken, r), (1, Err(CallError::QueueFull)));
        let got = collect(q, 1, Duration::from_secs(60));
        assert_eq!(got.len(), 1, "the queued job of a refused batch never ran");
        assert_eq!(got[0].result.unwrap().value, 1);
        assert_eq!(queue::get(q).unwrap().in_flight(), 0, "the refused jobs gave their tags up");
        queue::close(q).unwrap();
        shutdown().unwrap();
        configure(PoolConfig::default()).unwrap();
    }
}
