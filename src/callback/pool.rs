//! The worker pool: long-lived threads that run async jobs and complete them on their queues.
//!
//! The pool starts lazily at the first submit, with [`PoolConfig`]'s thread count and stack size, and
//! keeps its threads until [`shutdown`] (after which the next submit starts it again). Jobs wait in
//! one bounded FIFO; a submit wakes a worker only if one is asleep. A job runs under `catch_unwind`,
//! so a panic fails that job alone. No lock is held while a job runs: a job (or a Go callback it
//! invokes) may submit more work or call any other ferry function.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};

use parking_lot::{Condvar, Mutex};

use super::ops::{Prepared, Request};
use super::queue::{self, CancelToken, Completer};
use super::{catch, CallError, Payload};

/// How the pool is built at its next start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Worker threads (1..=256). Default: the number of CPUs, at least 2.
    pub threads: usize,
    /// Jobs that may wait before submits get `QueueFull` (at least 1). Default: 65536.
    pub queue_cap: usize,
    /// Stack size of each worker thread in bytes (at least 64 KiB). Default: 256 KiB.
    pub stack_size: usize,
}

impl Default for PoolConfig {
    fn default() -> PoolConfig {
        let cpus = thread::available_parallelism().map_or(2, |n| n.get());
        PoolConfig { threads: cpus.max(2), queue_cap: 1 << 16, stack_size: 256 << 10 }
    }
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
    running: bool,
    closing: bool,
    threads: Vec<JoinHandle<()>>,
    config: Option<PoolConfig>,
}

struct Pool {
    state: Mutex<State>,
    cv: Condvar,
    /// Serialises shutdowns, so that each one returns only once the workers are joined.
    shutdown: Mutex<()>,
}

static POOL: Pool = Pool {
    state: Mutex::new(State {
        jobs: VecDeque::new(),
        idle: 0,
        signaled: 0,
        running: false,
        closing: false,
        threads: Vec::new(),
        config: None,
    }),
    cv: Condvar::new(),
    shutdown: Mutex::new(()),
};

static WORKERS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static IS_WORKER: Cell<bool> = const { Cell::new(false) };
}

/// Sets the configuration used at the pool's next start; a running pool keeps its threads until
/// [`shutdown`]. Errors: `InvalidArgument` for a value outside the documented ranges.
pub fn configure(c: PoolConfig) -> Result<(), CallError> {
    if !(1..=256).contains(&c.threads) || c.queue_cap == 0 || c.stack_size < (64 << 10) {
        return Err(CallError::InvalidArgument);
    }
    POOL.state.lock().config = Some(c);
    Ok(())
}

/// Stops the pool: jobs still waiting complete with `Closed` without running, running jobs finish
/// (a job that never ends keeps `shutdown` waiting), and every worker thread is joined before
/// `shutdown` returns. The next submit starts a new pool.
/// Errors: `InvalidArgument` when called from a worker thread (it would wait for itself).
pub fn shutdown() -> Result<(), CallError> {
    if IS_WORKER.with(Cell::get) {
        return Err(CallError::InvalidArgument);
    }
    let _serial = POOL.shutdown.lock();
    let (jobs, threads) = {
        let mut st = POOL.state.lock();
        if !st.running {
            return Ok(());
        }
        st.closing = true;
        (std::mem::take(&mut st.jobs), std::mem::take(&mut st.threads))
    };
    POOL.cv.notify_all();
    for j in jobs {
        j.done.complete(Err(CallError::Closed));
    }
    for t in threads {
        let _ = t.join();
    }
    let mut st = POOL.state.lock();
    st.running = false;
    st.closing = false;
    st.signaled = 0;
    Ok(())
}

/// Submits a built-in operation; its completion arrives on queue `queue` with `tag`.
///
/// Exactly one completion follows a successful submit (an error, `Cancelled` or `Closed` included);
/// none follows a failed one. The input buffer is held from now on, so the caller may release its
/// id at once. Errors: `Ferry(InvalidHandle)` (queue, input or callback id), `InvalidArgument`
/// (tag already in flight on the queue, bad argument), `Closed`, `QueueFull`.
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
    let mut st = POOL.state.lock();
    let refused = if st.closing {
        Some(CallError::Closed)
    } else if !st.running && !start(&mut st) {
        Some(CallError::Ferry(crate::Error::AllocFailed))
    } else if st.jobs.len() >= st.config.map_or(1 << 16, |c| c.queue_cap) {
        Some(CallError::QueueFull)
    } else {
        None
    };
    if let Some(e) = refused {
        drop(st);
        done.forget();
        return Err(e);
    }
    st.jobs.push_back(Job { work, done });
    let wake = st.idle > st.signaled && st.jobs.len() > st.signaled;
    if wake {
        st.signaled += 1;
    }
    drop(st);
    if wake {
        POOL.cv.notify_one();
    }
    Ok(())
}

/// Starts the workers; returns false if not even one thread could be made.
fn start(st: &mut State) -> bool {
    let c = *st.config.get_or_insert_with(PoolConfig::default);
    for i in 0..c.threads {
        let b = thread::Builder::new().name(format!("ferry-worker-{i}")).stack_size(c.stack_size);
        if let Ok(h) = b.spawn(worker) {
            st.threads.push(h);
        }
    }
    st.running = !st.threads.is_empty();
    st.running
}

fn worker() {
    IS_WORKER.with(|w| w.set(true));
    WORKERS.fetch_add(1, Ordering::SeqCst);
    while let Some(job) = next_job() {
        run(job);
    }
    WORKERS.fetch_sub(1, Ordering::SeqCst);
}

fn next_job() -> Option<Job> {
    let mut st = POOL.state.lock();
    loop {
        if let Some(j) = st.jobs.pop_front() {
            return Some(j);
        }
        if st.closing {
            return None;
        }
        st.idle += 1;
        POOL.cv.wait(&mut st);
        st.idle -= 1;
        st.signaled = st.signaled.saturating_sub(1);
    }
}

fn run(job: Job) {
    let Job { work, done } = job;
    if done.is_cancelled() {
        drop(work);
        done.complete(Err(CallError::Cancelled));
        return;
    }
    let token = done.token();
    let result = catch(CallError::Panic, move || match work {
        Work::Op(p) => p.run(&token),
        Work::Fn(f) => f(&token),
    });
    done.complete(result);
}

/// Worker threads running now.
pub fn workers() -> usize {
    WORKERS.load(Ordering::SeqCst)
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

    fn drain(q: u64, n: usize) -> Vec<Completion> {
        let q = queue::get(q).unwrap();
        let mut out = Vec::new();
        while out.len() < n {
            out.extend(q.wait(64, Some(Duration::from_secs(10))).unwrap());
        }
        out.sort_by_key(|c| c.tag);
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
        submit(q, 1, req(Op::Sleep, 0, 5_000_000, 0)).unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let r2 = ran.clone();
        spawn(q, 2, move |_| {
            r2.fetch_add(1, Ordering::SeqCst);
            Ok(Payload::default())
        })
        .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(queue::cancel(q, 2), Ok(true));
        assert_eq!(queue::cancel(q, 1), Ok(true));
        let t0 = std::time::Instant::now();
        let got = drain(q, 2);
        assert!(t0.elapsed() < Duration::from_secs(2), "the running sleep saw the flag");
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
        submit(q, 0, req(Op::Sleep, 0, 50_000, 0)).unwrap();
        submit(q, 1, req(Op::Sleep, 0, 50_000, 0)).unwrap();
        std::thread::sleep(Duration::from_millis(10));
        assert_eq!(workers(), 2);
        for tag in 2..6 {
            submit(q, tag, req(Op::Echo, 0, 0, 0)).unwrap();
        }
        assert_eq!(submit(q, 6, req(Op::Echo, 0, 0, 0)), Err(CallError::QueueFull));
        shutdown().unwrap();
        assert_eq!(workers(), 0);
        let got = drain(q, 6);
        assert!(got[..2].iter().all(|c| c.result.is_ok()), "running jobs finish");
        assert!(got[2..].iter().all(|c| c.result == Err(CallError::Closed)), "waiting jobs are closed");
        configure(PoolConfig::default()).unwrap();
        submit(q, 7, req(Op::Echo, 0, 0, 9)).unwrap();
        assert_eq!(drain(q, 1)[0].result.unwrap().value, 9);
        queue::close(q).unwrap();
        assert_eq!(queue::in_flight(), 0);
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
}
