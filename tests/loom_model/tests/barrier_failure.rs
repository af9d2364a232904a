//! The callback registry when the system gives it no barrier at all: readers' light barriers do
//! nothing and every heavy barrier fails (as when `membarrier` starts failing under a seccomp filter
//! and no fallback works). Nothing may then be freed that a reader could still be calling; the
//! unregistered callback is parked, and freed once a barrier succeeds again. A binary of its own:
//! the failure switch is process-wide.
#![cfg(loom)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ferry::loom_api::{invoke, register, registry_counts, unregister, Payload, FAILING_BARRIERS};
use loom::thread;

struct Hook(Arc<AtomicUsize>);

impl Drop for Hook {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn nothing_is_freed_without_a_barrier_and_the_park_drains_later() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        FAILING_BARRIERS.store(true, Ordering::SeqCst);
        let drops = Arc::new(AtomicUsize::new(0));
        let hook = Hook(drops.clone());
        let id = register(move |p| {
            let _ = &hook;
            Ok(p)
        })
        .unwrap();
        let caller = thread::spawn(move || invoke(id, Payload { buffer: 0, value: 1 }).map(|p| p.value));
        unregister(id).unwrap();
        let r = caller.join().unwrap();
        assert!(matches!(r, Ok(1) | Err(_)));
        assert_eq!(drops.load(Ordering::SeqCst), 0, "freed without a barrier");
        let (registered, alive, parked) = registry_counts();
        assert_eq!((registered, alive), (0, 1));
        assert!(parked >= 1);
        // Barriers work again: the next registration drains the park.
        FAILING_BARRIERS.store(false, Ordering::SeqCst);
        let other = register(Ok).unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1, "the parked callback was freed");
        unregister(other).unwrap();
        assert_eq!(registry_counts(), (0, 0, 0));
    });
}
