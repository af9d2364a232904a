//! The reference count of a buffer's block (`ferry::refcount::RefCount`): whatever the
//! interleaving, exactly one holder frees, and it frees after every other holder's last access
//! (loom checks the accesses to the cell the count protects), including when the freeing holder
//! takes the shortcut for the only reference (a load, no read-modify-write).
#![cfg(loom)]

use ferry::loom_api::RefCount;
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

struct Counted {
    refs: RefCount,
    data: UnsafeCell<u64>,
    frees: AtomicUsize,
}

impl Counted {
    /// Gives a reference up; the last holder "frees": it writes the data, as dropping it would.
    fn drop_ref(&self) {
        if self.refs.release() {
            self.data.with_mut(|d| unsafe { *d = 0 });
            self.frees.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn bounded(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

#[test]
fn exactly_one_holder_frees_after_every_other_access() {
    bounded(|| {
        let c = Arc::new(Counted { refs: RefCount::one(), data: UnsafeCell::new(7), frees: AtomicUsize::new(0) });
        c.refs.acquire(); // a second reference, handed to the other thread
        c.refs.acquire(); // and a third, for this thread to give up mid-way
        let c2 = c.clone();
        let other = thread::spawn(move || {
            c2.data.with(|d| assert_eq!(unsafe { *d }, 7));
            c2.drop_ref();
        });
        c.drop_ref();
        c.data.with(|d| assert_eq!(unsafe { *d }, 7)); // still held: not freed yet
        c.drop_ref();
        other.join().unwrap();
        assert_eq!(c.frees.load(Ordering::SeqCst), 1);
    });
}
