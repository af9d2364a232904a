//! Completion queues: where async work reports back, drained many completions at a time.
//!
//! A queue is a mutex-protected FIFO with a condition variable. Producers (workers, [`Completer`]s,
//! [`post`]) push one completion at a time and wake the consumer only if it is asleep. The consumer
//! takes everything ready, up to its batch size, in one lock: under load one wake-up and one
//! crossing carry a whole batch, and under light load [`CompletionQueue::wait_into`] returns as soon
//! as a single completion is there (it never waits for a batch to fill).
//!
//! Each queue also tracks the tags of its jobs in flight, so [`cancel`] can find a job by tag.
//!
//! Ownership: a completion's result buffer id belongs to the queue until it is taken; a completion
//! pushed onto a closed queue, or still queued when the queue is dropped, has its id released.

use std::cell::Cell;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{catch, CallError, Payload};
use crate::slots::{Kind, Slots};
use crate::table::Table;

/// One finished piece of async work: the tag its submitter chose, and the result or the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// The submitter's tag, returned untouched.
    pub tag: u64,
    /// The result (its buffer id, if any, now belongs to whoever takes the completion) or the error.
    pub result: Result<Payload, CallError>,
}

impl Completion {
    /// Releases the result's buffer id, for a completion nobody will receive.
    pub(crate) fn discard(self) {
        if let Ok(p) = self.result {
            if p.buffer != 0 {
                let _ = Table::global().release(p.buffer);
            }
        }
    }
}

/// Tags are chosen by callers (often a counter); a multiplicative hash spreads them well enough and
/// costs a fraction of SipHash.
#[derive(Default)]
struct TagHasher(u64);

impl Hasher for TagHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (v ^ (v >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type TagMap = HashMap<u64, Arc<JobCtl>, BuildHasherDefault<TagHasher>>;

#[derive(Default)]
struct JobCtl {
    cancelled: AtomicBool,
    /// Set, under the state lock, once the job's completion is queued: from then on its tag may
    /// be taken by a new job (see `begin`), and the entry goes when its finisher removes it.
    queued: AtomicBool,
}

struct State {
    items: VecDeque<Completion>,
    waiters: usize,
    /// Waiters notified that have not woken yet (see the pool's `signaled`).
    signaled: usize,
    closed: bool,
}

impl Drop for State {
    fn drop(&mut self) {
        for c in self.items.drain(..) {
            c.discard();
        }
    }
}

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// A completion queue; see the module docs. Reach one by id through [`get`].
pub struct CompletionQueue {
    state: Mutex<State>,
    cv: Condvar,
    inflight: Mutex<TagMap>,
    /// Set for a queue drained by its own delivery thread (see [`create_sink`]), with the id of
    /// the process that started it: after a fork, the child has no such thread to join.
    sink: Mutex<Option<(JoinHandle<()>, u32)>>,
    has_sink: bool,
}

impl CompletionQueue {
    fn new(has_sink: bool) -> CompletionQueue {
        CompletionQueue {
            state: Mutex::new(State { items: VecDeque::new(), waiters: 0, signaled: 0, closed: false }),
            cv: Condvar::new(),
            inflight: Mutex::new(TagMap::default()),
            sink: Mutex::new(None),
            has_sink,
        }
    }

    /// Appends completions and wakes the consumer if it sleeps. On a closed queue the completions
    /// are discarded (their buffer ids released) and `Err(Closed)` is returned.
    pub fn push_many(&self, cs: impl IntoIterator<Item = Completion>) -> Result<(), CallError> {
        let appended = self.append(cs, None);
        self.after_append(appended)
    }

    /// Appends `cs` under the state lock, and marks `job` queued there; reports whether a waiter is
    /// to be woken, or gives `cs` back if the queue is closed. [`CompletionQueue::after_append`]
    /// does the rest once every ferry lock is let go.
    fn append<I: IntoIterator<Item = Completion>>(&self, cs: I, job: Option<&JobCtl>) -> Result<bool, I> {
        let mut st = self.state.lock();
        if st.closed {
            return Err(cs);
        }
        st.items.extend(cs);
        if let Some(j) = job {
            // Under the state lock: whoever takes the completion (under that lock) sees the mark.
            j.queued.store(true, Ordering::Release);
        }
        let wake = st.waiters > st.signaled;
        if wake {
            st.signaled += 1;
        }
        Ok(wake)
    }

    /// Wakes a waiter, or discards what a closed queue refused (releasing buffer ids may run
    /// release functions, hence no lock held).
    fn after_append<I: IntoIterator<Item = Completion>>(
        &self,
        appended: Result<bool, I>,
    ) -> Result<(), CallError> {
        match appended {
            Ok(wake) => {
                if wake {
                    self.cv.notify_one();
                }
                Ok(())
            }
            Err(cs) => {
                cs.into_iter().for_each(Completion::discard);
                Err(CallError::Closed)
            }
        }
    }

    /// Appends one completion; see [`CompletionQueue::push_many`].
    pub fn push(&self, c: Completion) -> Result<(), CallError> {
        self.push_many(std::iter::once(c))
    }

    /// Waits until at least one completion is ready, then hands up to `max` of them, oldest first,
    /// to `each` and returns how many. Returns `Ok(0)` when `timeout` (None: no limit) passes first,
    /// and `Err(Closed)` once the queue is closed and empty. `each` runs under the queue's lock: it
    /// must only store the completion. `max == 0` is `Err(InvalidArgument)`, and so is waiting on a
    /// queue that has a sink (its delivery thread is its only consumer).
    pub fn wait_into(
        &self,
        max: usize,
        timeout: Option<Duration>,
        each: impl FnMut(Completion),
    ) -> Result<usize, CallError> {
        if self.has_sink {
            return Err(CallError::InvalidArgument);
        }
        self.take(max, timeout, each)
    }

    /// Like [`CompletionQueue::wait_into`], collecting into a vector.
    pub fn wait(&self, max: usize, timeout: Option<Duration>) -> Result<Vec<Completion>, CallError> {
        let mut v = Vec::new();
        self.wait_into(max, timeout, |c| v.push(c))?;
        Ok(v)
    }

    fn take(
        &self,
        max: usize,
        timeout: Option<Duration>,
        mut each: impl FnMut(Completion),
    ) -> Result<usize, CallError> {
        if max == 0 {
            return Err(CallError::InvalidArgument);
        }
        let deadline = timeout.map(|t| Instant::now().checked_add(t).unwrap_or_else(far_future));
        let mut st = self.state.lock();
        loop {
            if !st.items.is_empty() {
                let n = max.min(st.items.len());
                st.items.drain(..n).for_each(&mut each);
                return Ok(n);
            }
            if st.closed {
                return Err(CallError::Closed);
            }
            st.waiters += 1;
            let timed_out = match deadline {
                Some(d) => self.cv.wait_until(&mut st, d).timed_out(),
                None => {
                    self.cv.wait(&mut st);
                    false
                }
            };
            st.waiters -= 1;
            st.signaled = st.signaled.saturating_sub(1);
            if timed_out && st.items.is_empty() && !st.closed {
                return Ok(0);
            }
        }
    }

    /// Closes the queue: waiters wake, completions already queued can still be taken, later pushes
    /// are discarded, and every job in flight on it is cancelled.
    fn close(&self) {
        self.state.lock().closed = true;
        self.cv.notify_all();
        for c in self.inflight.lock().values() {
            c.cancelled.store(true, Ordering::Relaxed);
        }
    }

    /// Reports whether the queue is closed.
    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// How many completions are queued.
    pub fn len(&self) -> usize {
        self.state.lock().items.len()
    }

    /// Reports whether no completion is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn begin(&self, tag: u64) -> Result<Arc<JobCtl>, CallError> {
        let ctl = Arc::new(JobCtl::default());
        let mut m = self.inflight.lock();
        // Checked under the in-flight lock, which `close` takes after it sets `closed`: either this
        // sees the queue closed, or `close` sees this tag and cancels it.
        if self.state.lock().closed {
            return Err(CallError::Closed);
        }
        match m.entry(tag) {
            // A tag is free once its job's completion is queued, even if the finisher has not
            // removed the entry yet (a consumer may take the completion and submit the tag again
            // at once).
            Entry::Occupied(mut e) => {
                if !e.get().queued.load(Ordering::Acquire) {
                    return Err(CallError::InvalidArgument);
                }
                e.insert(ctl.clone());
            }
            Entry::Vacant(e) => {
                e.insert(ctl.clone());
                drop(m);
                IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(ctl)
    }

    /// Removes `job`'s entry under `tag`, unless a new job has taken the tag since.
    fn end(&self, tag: u64, job: &Arc<JobCtl>) {
        let mut m = self.inflight.lock();
        if let Entry::Occupied(e) = m.entry(tag) {
            if Arc::ptr_eq(e.get(), job) {
                e.remove();
                drop(m);
                IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Queues `c`, the completion of `job`, then ends its tag. The tag is free for a new job only
    /// once `c` is queued (`begin` reads the mark `append` sets), so the completions of two jobs
    /// under one tag arrive in the order the jobs were accepted.
    fn end_with(&self, c: Completion, job: &Arc<JobCtl>) -> Result<(), CallError> {
        let tag = c.tag;
        let appended = self.append(std::iter::once(c), Some(job));
        self.end(tag, job);
        self.after_append(appended)
    }

    /// Jobs and completers in flight on this queue.
    pub fn in_flight(&self) -> usize {
        self.inflight.lock().len()
    }

    fn cancel(&self, tag: u64) -> bool {
        match self.inflight.lock().get(&tag) {
            Some(c) => {
                c.cancelled.store(true, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

/// A cancellation flag for one job, cheap to clone and to poll.
#[derive(Clone)]
pub struct CancelToken(Arc<JobCtl>);

impl CancelToken {
    /// Reports whether the job was cancelled (by [`cancel`] or by closing its queue).
    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::Relaxed)
    }
}

/// The right, and the duty, to complete one piece of async work: the Rust API a downstream crate
/// uses to report its own async results through a ferry queue, exactly as the worker pool does.
///
/// Made by [`Completer::new`] with the queue id and tag the foreign caller chose; while it lives the
/// tag is in flight on that queue, so [`cancel`] reaches it. [`Completer::complete`] delivers the
/// one completion. A `Completer` dropped without completing delivers `Err(Panic)` if the thread is
/// panicking and `Err(Cancelled)` otherwise, so a waiter is never left hanging.
///
/// ```
/// use ferry::callback::{queue, Completer, Payload};
/// let q = queue::create().unwrap();
/// let c = Completer::new(q, 7).unwrap();
/// std::thread::spawn(move || {
///     let v = ferry::lend(b"result".to_vec()).unwrap();
///     c.complete(Ok(Payload { buffer: v.id, value: 6 }));
/// });
/// let got = queue::get(q).unwrap().wait(16, None).unwrap();
/// assert_eq!((got[0].tag, got[0].result.unwrap().value), (7, 6));
/// ferry::Table::global().release(got[0].result.unwrap().buffer).unwrap();
/// queue::close(q).unwrap();
/// ```
pub struct Completer {
    queue: Arc<CompletionQueue>,
    tag: u64,
    ctl: Arc<JobCtl>,
    done: bool,
}

impl Completer {
    /// Starts work with `tag` on queue `queue`. Errors: `Ferry(InvalidHandle)` (unknown queue),
    /// `Closed`, `InvalidArgument` (the tag is already in flight on that queue).
    pub fn new(queue: u64, tag: u64) -> Result<Completer, CallError> {
        Completer::on(get(queue)?, tag)
    }

    pub(crate) fn on(queue: Arc<CompletionQueue>, tag: u64) -> Result<Completer, CallError> {
        let ctl = queue.begin(tag)?;
        Ok(Completer { queue, tag, ctl, done: false })
    }

    /// The tag.
    pub fn tag(&self) -> u64 {
        self.tag
    }

    /// Reports whether the work was cancelled. Finishing anyway is allowed: the result is delivered
    /// and the receiver decides (Go releases a result nobody waits for).
    pub fn is_cancelled(&self) -> bool {
        self.ctl.cancelled.load(Ordering::Relaxed)
    }

    /// A token to poll for cancellation from elsewhere.
    pub fn token(&self) -> CancelToken {
        CancelToken(self.ctl.clone())
    }

    /// Delivers the result. On success its buffer id passes to the queue's consumer (it is released
    /// if the queue is closed by then).
    pub fn complete(mut self, result: Result<Payload, CallError>) {
        self.finish(result);
    }

    /// Gives the tag up without a completion, for a submit that failed after the Completer was made.
    pub(crate) fn forget(mut self) {
        self.done = true;
        self.queue.end(self.tag, &self.ctl);
    }

    fn finish(&mut self, result: Result<Payload, CallError>) {
        self.done = true;
        let _ = self.queue.end_with(Completion { tag: self.tag, result }, &self.ctl);
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        if !self.done {
            let e = if thread::panicking() { CallError::Panic } else { CallError::Cancelled };
            self.finish(Err(e));
        }
    }
}

impl std::fmt::Debug for Completer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completer").field("tag", &self.tag).finish()
    }
}

/// Completion queues, by id (kind [`Kind::Queue`]).
static QUEUES: Slots<Arc<CompletionQueue>> = Slots::new(Kind::Queue, 8);

/// Creates a queue drained by polling ([`CompletionQueue::wait_into`]) and returns its id.
pub fn create() -> Result<u64, CallError> {
    QUEUES.insert(Arc::new(CompletionQueue::new(false))).map_err(|(e, _)| e.into())
}

/// Stack size of a sink's delivery thread.
const SINK_STACK: usize = 256 << 10;

/// Creates a queue with its own delivery thread, which waits for completions and calls `sink` with
/// batches of 1 to `max_batch` of them, in order, as they become ready (it never waits for a batch
/// to fill). Each completion's buffer id passes to the sink. A panic in the sink is caught; the
/// ids of that batch are then the sink's problem, as if it had returned. Errors: `InvalidArgument`
/// (`max_batch == 0`), `Ferry(TableFull)`.
pub fn create_sink(
    max_batch: usize,
    mut sink: impl FnMut(&[Completion]) + Send + 'static,
) -> Result<u64, CallError> {
    if max_batch == 0 {
        return Err(CallError::InvalidArgument);
    }
    let q = Arc::new(CompletionQueue::new(true));
    let q2 = q.clone();
    let cap = max_batch.min(1 << 16);
    let th = thread::Builder::new()
        .name("ferry-sink".into())
        .stack_size(SINK_STACK)
        .spawn(move || {
            DELIVERING.with(|d| d.set(Arc::as_ptr(&q2) as usize));
            let mut batch = Vec::with_capacity(cap);
            loop {
                batch.clear();
                if q2.take(max_batch, None, |c| batch.push(c)).is_err() {
                    return;
                }
                let _ = catch(CallError::Panic, || {
                    crate::fault_point!("sink.deliver");
                    sink(&batch);
                    Ok(())
                });
            }
        })
        .map_err(|_| CallError::Ferry(crate::Error::AllocFailed))?;
    *q.sink.lock() = Some((th, std::process::id()));
    match QUEUES.insert(q.clone()) {
        Ok(id) => Ok(id),
        Err((e, _)) => {
            shut(&q);
            Err(e.into())
        }
    }
}

/// The queue `id` names, held.
pub fn get(id: u64) -> Result<Arc<CompletionQueue>, CallError> {
    Ok(QUEUES.with(id, Arc::clone)?)
}

/// Closes queue `id`: the id is invalid from now on, a waiter wakes (it can still take what is
/// queued, then gets `Closed`), every job in flight on it is cancelled, and later completions are
/// discarded with their buffer ids released. For a sink queue, everything queued is delivered and
/// the delivery thread is joined before `close` returns (unless `close` runs on that thread).
pub fn close(id: u64) -> Result<(), CallError> {
    let q = QUEUES.remove(id)?;
    shut(&q);
    Ok(())
}

thread_local! {
    /// On a sink's delivery thread, the address of the queue it delivers for (0 elsewhere). Read
    /// instead of `thread::current()`, which would give a C thread that closes a sink queue a
    /// thread handle of its own that is never freed.
    static DELIVERING: Cell<usize> = const { Cell::new(0) };
}

fn shut(q: &CompletionQueue) {
    q.close();
    let th = q.sink.lock().take();
    if let Some((th, pid)) = th {
        if pid != std::process::id() {
            // Started before a fork, in the parent: the child has no such thread to join.
            std::mem::forget(th);
        } else if DELIVERING.with(Cell::get) != q as *const CompletionQueue as usize {
            // (A sink that closes its own queue cannot wait for itself: its thread exits alone.)
            let _ = th.join();
        }
    }
}

/// Cancels the job with `tag` on queue `queue`: a job not yet started completes with `Cancelled`
/// without running, a running one sees [`CancelToken::is_cancelled`]. Returns whether the tag was in
/// flight (a job that already finished is not an error: its completion stands).
pub fn cancel(queue: u64, tag: u64) -> Result<bool, CallError> {
    Ok(get(queue)?.cancel(tag))
}

/// Pushes ready-made completions onto queue `id`, for producers that track their own work (no tag
/// registration, so [`cancel`] does not reach them). Their buffer ids pass to the queue.
/// Errors: `Ferry(InvalidHandle)`, `Closed` (the completions are discarded, ids released).
pub fn post(id: u64, cs: impl IntoIterator<Item = Completion>) -> Result<(), CallError> {
    match get(id) {
        Ok(q) => q.push_many(cs),
        Err(e) => {
            cs.into_iter().for_each(Completion::discard);
            Err(e)
        }
    }
}

pub(crate) fn open_queues() -> usize {
    QUEUES.live() as usize
}

pub(crate) fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(tag: u64, value: u64) -> Completion {
        Completion { tag, result: Ok(Payload { buffer: 0, value }) }
    }

    /// A tag is free for a new job only once its completion is queued, so the completions of two
    /// jobs under one tag arrive in the order the jobs were accepted (the callback model test saw
    /// a newer job's CLOSED before the older job's result: the tag ended before its push).
    #[test]
    fn a_tag_is_free_again_only_once_its_completion_is_queued() {
        let id = create().unwrap();
        let q = get(id).unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<(Completer, u64)>();
        let finisher = std::thread::spawn(move || {
            for (c, round) in rx {
                c.complete(Ok(Payload { buffer: 0, value: round }));
            }
        });
        for round in 0..2_000u64 {
            tx.send((Completer::on(q.clone(), 7).unwrap(), round)).unwrap();
            let second = loop {
                if let Ok(c) = Completer::on(q.clone(), 7) {
                    break c;
                }
                std::thread::yield_now();
            };
            assert_eq!(q.len(), 1, "round {round}: tag 7 was free before its completion was queued");
            second.forget();
            assert_eq!(q.wait(4, None).unwrap().len(), 1);
        }
        drop(tx);
        finisher.join().unwrap();
        close(id).unwrap();
    }

    /// Once a job's completion is queued its tag is free, even before the finisher removes the
    /// entry (a consumer may take the completion and submit the tag again at once), and the old
    /// finisher's removal leaves the new job's entry alone.
    #[test]
    fn a_queued_tag_is_free_before_its_finisher_removes_it() {
        let id = create().unwrap();
        let q = get(id).unwrap();
        let old = q.begin(9).unwrap();
        assert_eq!(q.begin(9).err(), Some(CallError::InvalidArgument), "in flight, nothing queued");
        assert!(q.append(std::iter::once(ok(9, 1)), Some(&old)).is_ok());
        let new = q.begin(9).expect("free once its completion is queued");
        q.end(9, &old);
        assert_eq!(q.in_flight(), 1, "the old finisher removed the new job's entry");
        assert_eq!(q.begin(9).err(), Some(CallError::InvalidArgument), "the new job holds the tag");
        q.end(9, &new);
        assert_eq!(q.in_flight(), 0);
        close(id).unwrap();
    }

    #[test]
    fn wait_returns_what_is_ready_up_to_max() {
        let id = create().unwrap();
        let q = get(id).unwrap();
        assert_eq!(q.wait(4, Some(Duration::from_millis(1))).unwrap(), vec![]);
        post(id, (0..10).map(|i| ok(i, i))).unwrap();
        let a = q.wait(4, None).unwrap();
        assert_eq!(a.iter().map(|c| c.tag).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        assert_eq!(q.wait(100, None).unwrap().len(), 6);
        assert_eq!(q.wait(0, None), Err(CallError::InvalidArgument));
        close(id).unwrap();
        assert_eq!(q.wait(1, None), Err(CallError::Closed));
        assert!(get(id).is_err());
        assert_eq!(close(id), Err(CallError::Ferry(crate::Error::InvalidHandle)));
    }

    #[test]
    fn a_sleeping_waiter_wakes_for_one_item_and_for_close() {
        let id = create().unwrap();
        let q = get(id).unwrap();
        let q2 = q.clone();
        let t = thread::spawn(move || q2.wait(256, None));
        thread::sleep(Duration::from_millis(20));
        post(id, [ok(5, 1)]).unwrap();
        assert_eq!(t.join().unwrap().unwrap(), vec![ok(5, 1)]);
        let q3 = q.clone();
        let t = thread::spawn(move || q3.wait(256, None));
        thread::sleep(Duration::from_millis(20));
        close(id).unwrap();
        assert_eq!(t.join().unwrap(), Err(CallError::Closed));
    }

    #[test]
    fn completer_registers_its_tag_and_delivers_once() {
        let id = create().unwrap();
        let c = Completer::new(id, 1).unwrap();
        assert_eq!(Completer::new(id, 1).unwrap_err(), CallError::InvalidArgument);
        assert!(!c.is_cancelled());
        assert_eq!(cancel(id, 1), Ok(true));
        assert!(c.is_cancelled());
        assert_eq!(cancel(id, 2), Ok(false));
        c.complete(Ok(Payload { buffer: 0, value: 3 }));
        assert_eq!(cancel(id, 1), Ok(false));
        drop(Completer::new(id, 2).unwrap());
        let got = get(id).unwrap().wait(8, None).unwrap();
        assert_eq!(got, vec![ok(1, 3), Completion { tag: 2, result: Err(CallError::Cancelled) }]);
        close(id).unwrap();
        assert_eq!(Completer::new(id, 3).unwrap_err(), CallError::Ferry(crate::Error::InvalidHandle));
    }

    #[test]
    fn completions_nobody_takes_release_their_buffers() {
        let t = Table::global();
        let id = create().unwrap();
        let q = get(id).unwrap();
        let a = t.create_copy(b"a").unwrap();
        let b = t.create_copy(b"b").unwrap();
        let c = Completer::new(id, 9).unwrap();
        post(id, [Completion { tag: 1, result: Ok(Payload { buffer: a.id, value: 0 }) }]).unwrap();
        close(id).unwrap();
        assert!(c.is_cancelled(), "close cancels what is in flight");
        c.complete(Ok(Payload { buffer: b.id, value: 0 }));
        assert_eq!(t.view(b.id), Err(crate::Error::InvalidHandle), "pushed after close: released");
        assert!(t.view(a.id).is_ok(), "still queued: a holder of the queue can take it");
        drop(q);
        assert_eq!(t.view(a.id), Err(crate::Error::InvalidHandle), "queue dropped: released");
        assert_eq!(post(id, []), Err(CallError::Ferry(crate::Error::InvalidHandle)));
    }

    /// A job started while its queue closes is cancelled, or refused: never left running (issue
    /// 10: `begin` checked `closed` under one lock and inserted under another).
    #[test]
    fn a_completer_made_while_the_queue_closes_is_cancelled() {
        let mut missed = 0;
        for _ in 0..3000 {
            let id = create().unwrap();
            let start = Arc::new(std::sync::Barrier::new(2));
            let s2 = start.clone();
            let maker = thread::spawn(move || {
                s2.wait();
                (0..64).filter_map(|t| Completer::new(id, t).ok()).collect::<Vec<_>>()
            });
            start.wait();
            close(id).unwrap();
            let made = maker.join().unwrap();
            missed += made.iter().filter(|c| !c.is_cancelled()).count();
        }
        assert_eq!(missed, 0, "jobs begun on a closing queue were never cancelled");
    }

    #[test]
    fn a_sink_gets_everything_in_order_and_close_joins_it() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let id = create_sink(16, move |b: &[Completion]| {
            assert!(!b.is_empty() && b.len() <= 16);
            s2.lock().extend(b.iter().map(|c| c.tag));
        })
        .unwrap();
        assert_eq!(get(id).unwrap().wait(1, None), Err(CallError::InvalidArgument));
        for chunk in 0..10u64 {
            post(id, (0..100).map(|i| ok(chunk * 100 + i, 0))).unwrap();
        }
        close(id).unwrap();
        assert_eq!(*seen.lock(), (0..1000).collect::<Vec<_>>());
        assert_eq!(create_sink(0, |_: &[Completion]| {}).unwrap_err(), CallError::InvalidArgument);
    }

    #[test]
    fn a_panicking_sink_keeps_delivering() {
        let n = Arc::new(AtomicUsize::new(0));
        let n2 = n.clone();
        let id = create_sink(1, move |b: &[Completion]| {
            n2.fetch_add(1, Ordering::SeqCst);
            if b[0].tag == 0 {
                panic!("sink panic (expected by the test)");
            }
        })
        .unwrap();
        post(id, (0..3).map(|i| ok(i, 0))).unwrap();
        close(id).unwrap();
        assert_eq!(n.load(Ordering::SeqCst), 3);
    }
}
