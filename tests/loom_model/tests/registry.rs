//! The callback registry (`ferry::callback::registry`: hazard slots, holds, unregister and the
//! deferred reclaim), with both barriers as `fence(SeqCst)`, which is what `membarrier` gives each
//! pair of a light and a heavy barrier. loom checks every access to a callback's cell: a free that
//! races a call is reported as a causality violation, so "no use after free" needs no assert.
#![cfg(loom)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ferry::loom_api::{get, invoke, register, registry_counts, unregister, CallError, Payload};
use loom::thread;

/// Counts its drops: the drop hook of a callback.
struct Hook(Arc<AtomicUsize>);

impl Drop for Hook {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn register_counted(drops: &Arc<AtomicUsize>) -> u64 {
    let hook = Hook(drops.clone());
    register(move |p| {
        let _ = &hook;
        Ok(Payload { buffer: 0, value: p.value + 1 })
    })
    .unwrap()
}

fn bounded(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

/// An invoke races the unregister: it either runs the callback (before its drop hook) or gets
/// INVALID_HANDLE, and the hook runs exactly once, whoever frees.
#[test]
fn invoke_races_unregister() {
    bounded(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let id = register_counted(&drops);
        let caller = thread::spawn(move || invoke(id, Payload { buffer: 0, value: 1 }));
        unregister(id).unwrap();
        match caller.join().unwrap() {
            Ok(p) => assert_eq!(p.value, 2),
            Err(e) => assert!(matches!(e, CallError::Ferry(_)), "{e:?}"),
        }
        assert_eq!(drops.load(Ordering::SeqCst), 1, "the drop hook ran exactly once");
        assert_eq!(registry_counts(), (0, 0, 0));
        assert!(invoke(id, Payload::default()).is_err());
    });
}

/// The case a reviewer found lost a slot: an unregister that sees only a hold defers the free; an
/// invoke that starts after it publishes a hazard and leaves; then the hold is dropped. The last
/// to leave must free the slot (its drop hook must run) whatever the interleaving.
#[test]
fn a_late_reader_and_the_last_hold_never_lose_the_slot() {
    bounded(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let id = register_counted(&drops);
        let hold = get(id).unwrap();
        let reader = thread::spawn(move || {
            let _ = invoke(id, Payload::default());
        });
        let holder = thread::spawn(move || {
            assert_eq!(hold.call(Payload { buffer: 0, value: 4 }).unwrap().value, 5);
            drop(hold);
        });
        unregister(id).unwrap();
        reader.join().unwrap();
        holder.join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1, "the slot was lost: its drop hook never ran");
        assert_eq!(registry_counts(), (0, 0, 0));
    });
}

/// A callback that unregisters itself while a second invoke of it runs on another thread.
#[test]
fn a_callback_unregisters_itself_during_another_call() {
    bounded(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let hook = Hook(drops.clone());
        let me = Arc::new(AtomicUsize::new(0));
        let me2 = me.clone();
        let id = register(move |p| {
            let _ = &hook;
            if p.value == 1 {
                unregister(me2.load(Ordering::SeqCst) as u64)?;
            }
            Ok(p)
        })
        .unwrap();
        me.store(id as usize, Ordering::SeqCst);
        let other = thread::spawn(move || invoke(id, Payload { buffer: 0, value: 2 }).is_ok());
        assert!(invoke(id, Payload { buffer: 0, value: 1 }).is_ok());
        other.join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert_eq!(registry_counts(), (0, 0, 0));
    });
}

/// A slot freed and registered again under a new generation never answers to the old id.
#[test]
fn a_reused_slot_never_runs_for_the_old_id() {
    bounded(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let old = register_counted(&drops);
        let d2 = drops.clone();
        let writer = thread::spawn(move || {
            unregister(old).unwrap();
            let hook = Hook(d2);
            register(move |_| {
                let _ = &hook;
                Ok(Payload { buffer: 0, value: 99 })
            })
            .unwrap()
        });
        if let Ok(p) = invoke(old, Payload { buffer: 0, value: 1 }) {
            assert_eq!(p.value, 2, "the old id ran the new callback");
        }
        let new = writer.join().unwrap();
        assert_ne!(new, old);
        assert!(invoke(old, Payload::default()).is_err());
        assert_eq!(invoke(new, Payload::default()).unwrap().value, 99);
        unregister(new).unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    });
}
