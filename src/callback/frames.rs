//! Calls whose frames are abandoned: what ferry does when a callback never returns.
//!
//! A Go callback that calls `runtime.Goexit` (`t.FailNow` does) ends its goroutine without returning
//! to the C and Rust frames below it: the frames of the ferry calls in progress on that thread are
//! never returned to. Whatever those frames hold would be held for ever: the hazard that protects a
//! callback, a counted hold on one, the input id an async call lent to its callback, the job whose
//! completion the worker was about to deliver. So each such frame registers what it holds in a
//! per-thread list while it calls out ([`holding`]), and [`abandon_thread`] lets go of all of it:
//! hazards are cleared (see [`super::hazard::abandon_thread`]), holds and lent ids are released, and
//! a worker's job completes with [`CallError::CallbackPanic`] carrying the caller's detail.
//!
//! The frames stay on the stack below the caller of [`abandon_thread`] until it returns (a Go
//! deferred call runs before Go drops the C frames), so the list can be walked. A frame that is
//! abandoned and then returned to after all (only a caller that breaks the contract of
//! `ferry_callback_abandon` can do that) finds its flag set and releases nothing twice.

use std::cell::Cell;
use std::ptr;

use super::CallError;

/// Something a frame holds while it calls out, and lets go of if the thread's calls are abandoned.
pub(crate) trait Abandon {
    /// Lets go of what the frame holds; `detail` is the caller's detail for a failure to report.
    /// Called at most once per frame.
    fn abandon(&self, detail: u64);
}

struct Node {
    prev: *const Node,
    this: *const (),
    undo: unsafe fn(*const (), u64),
}

thread_local! {
    // No destructor: usable from any thread at any time, exiting threads included.
    static TOP: Cell<*const Node> = const { Cell::new(ptr::null()) };
}

/// Runs `body` with `frame` on this thread's list of frames to abandon.
#[inline]
pub(crate) fn holding<T: Abandon, R>(frame: &T, body: impl FnOnce() -> R) -> R {
    /// # Safety
    /// `p` points to a live `T`.
    unsafe fn undo<T: Abandon>(p: *const (), detail: u64) {
        // SAFETY: made from `&T` below, and the frame is still on the stack (see the module docs).
        unsafe { (*p.cast::<T>()).abandon(detail) }
    }
    struct Pop<'a>(&'a Node);
    impl Drop for Pop<'_> {
        fn drop(&mut self) {
            let _ = TOP.try_with(|t| t.set(self.0.prev));
        }
    }
    let Ok(prev) = TOP.try_with(Cell::get) else {
        return body();
    };
    let node = Node { prev, this: ptr::from_ref(frame).cast(), undo: undo::<T> };
    TOP.with(|t| t.set(&node));
    let _pop = Pop(&node);
    body()
}

/// Lets go of everything the ferry calls in progress on this thread hold, innermost first, and
/// forgets them. Their frames must never be returned to.
pub(crate) fn abandon_thread(detail: u64) {
    let mut n = TOP.try_with(|t| t.replace(ptr::null())).unwrap_or(ptr::null());
    super::registry::abandon_hazards();
    while !n.is_null() {
        // SAFETY: every node on the list lives in a frame below this call (see the module docs).
        let node = unsafe { &*n };
        // SAFETY: `this` and `undo` were made together for the same T in `holding`.
        unsafe { (node.undo)(node.this, detail) };
        n = node.prev;
    }
}

/// A flag for [`Abandon`] implementations: set once, by whichever of abandon or the normal exit
/// comes first.
#[derive(Default)]
pub(crate) struct Once(Cell<bool>);

impl Once {
    /// Reports whether this is the first call.
    pub(crate) fn first(&self) -> bool {
        !self.0.replace(true)
    }
}

/// The failure a job reports when its worker's calls were abandoned.
pub(crate) fn abandoned_error(detail: u64) -> CallError {
    CallError::CallbackPanic(detail)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::super::{hazard, pool, queue, registry, Op, Payload, PoolConfig, Request};
    use super::*;
    use crate::table::Table;

    struct Hook(Arc<AtomicUsize>);
    impl Drop for Hook {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// What a Go callback that calls runtime.Goexit on a thread Go created leaves behind: invokes
    /// nested deeper than the hazard slots (so counted holds too), whose frames are never returned
    /// to. After abandon_thread nothing stays pinned: every callback is dropped once unregistered.
    #[test]
    fn abandoned_invokes_pin_nothing() {
        const LEVELS: u64 = hazard::DEPTH as u64 + 4;
        let drops = Arc::new(AtomicUsize::new(0));
        let ids: Arc<Vec<AtomicU64>> = Arc::new((0..LEVELS).map(|_| AtomicU64::new(0)).collect());
        let parked = Arc::new(AtomicBool::new(false));
        for level in 0..LEVELS {
            let (hook, ids2, parked2) = (Hook(drops.clone()), ids.clone(), parked.clone());
            let id = registry::register(move |p| {
                let _ = &hook;
                if level + 1 < LEVELS {
                    return registry::invoke(ids2[level as usize + 1].load(Ordering::SeqCst), p);
                }
                // The innermost call: its frames and every one below are abandoned.
                assert!(!super::super::abandon_thread(0), "not a worker");
                assert_eq!(hazard::depth(), 0, "the thread's hazard depth is back to 0");
                parked2.store(true, Ordering::SeqCst);
                loop {
                    std::thread::park();
                }
            })
            .unwrap();
            ids[level as usize].store(id, Ordering::SeqCst);
        }
        let first = ids[0].load(Ordering::SeqCst);
        std::thread::spawn(move || registry::invoke(first, Payload::default()));
        wait_until("the innermost call", || parked.load(Ordering::SeqCst));
        for id in ids.iter() {
            registry::unregister(id.load(Ordering::SeqCst)).unwrap();
        }
        assert_eq!(drops.load(Ordering::SeqCst), LEVELS as usize, "every abandoned callback was dropped");
    }

    /// The same on a worker (a Go callback run by FERRY_OP_CALL): the job completes with
    /// CallbackPanic and the detail, the id lent to the callback and the job's hold on it are
    /// released, and the pool keeps its size without the parked thread.
    #[test]
    fn an_abandoned_job_completes_and_its_worker_is_replaced() {
        let _g = pool::TEST_LOCK.lock();
        pool::shutdown().unwrap();
        pool::configure(PoolConfig { threads: 2, ..PoolConfig::default() }).unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let hook = Hook(drops.clone());
        let lent = Arc::new(AtomicU64::new(0));
        let lent2 = lent.clone();
        let cb = registry::register(move |p| {
            let _ = &hook;
            lent2.store(p.buffer, Ordering::SeqCst);
            assert!(super::super::abandon_thread(77), "a worker");
            loop {
                std::thread::park();
            }
        })
        .unwrap();
        let input = Table::global().create_copy(b"lent").unwrap();
        let q = queue::create().unwrap();
        pool::submit(q, 1, Request { op: Op::Call, input: input.id, arg: cb, value: 0 }).unwrap();
        Table::global().release(input.id).unwrap();
        let got = queue::get(q).unwrap().wait(1, Some(Duration::from_secs(60))).unwrap();
        assert_eq!(got[0].result, Err(CallError::CallbackPanic(77)));
        wait_until("the replacement worker", || pool::workers() == 2);
        registry::unregister(cb).unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1, "the job's hold on the callback was let go");
        let lent = lent.load(Ordering::SeqCst);
        assert_ne!(lent, 0);
        assert!(Table::global().view(lent).is_err(), "the id lent to the callback was released");
        pool::submit(q, 2, Request { op: Op::Echo, input: 0, arg: 0, value: 5 }).unwrap();
        let got = queue::get(q).unwrap().wait(1, Some(Duration::from_secs(60))).unwrap();
        assert_eq!(got[0].result, Ok(Payload { buffer: 0, value: 5 }));
        queue::close(q).unwrap();
        pool::shutdown().unwrap();
        assert_eq!(pool::workers(), 0, "shutdown does not wait for the parked thread");
        pool::configure(PoolConfig::default()).unwrap();
    }
}
