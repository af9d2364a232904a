//! The slot core (`ferry::slots::Slots`, what the buffer table and the queue table are made of)
//! and the byte accounting (`ferry::stats::Counters`), in every interleaving of two threads.
#![cfg(loom)]

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use ferry::loom_api::{Counters, Kind, Slots, GRAIN};
use ferry::Error;
use loom::thread;

/// The bytes of one buffer: a tag saying which create made it, and whether it was freed.
struct Buf {
    tag: u32,
    freed: Arc<AtomicUsize>,
    alive: AtomicBool,
}

impl Buf {
    fn read(&self) -> u32 {
        assert!(self.alive.load(Ordering::SeqCst), "use after free");
        self.tag
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        assert!(self.alive.swap(false, Ordering::SeqCst), "freed twice");
        self.freed.fetch_add(1, Ordering::SeqCst);
    }
}

fn buf(tag: u32, freed: &Arc<AtomicUsize>) -> Arc<Buf> {
    Arc::new(Buf { tag, freed: freed.clone(), alive: AtomicBool::new(true) })
}

/// Every interleaving with up to three preemptions per execution (loom's usual bound: bugs that
/// need more are rare, and the unbounded search does not finish for the larger models).
fn bounded(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

/// One shard, as when two threads share a home shard (the interesting case for the lock).
fn table() -> loom::sync::Arc<Slots<Arc<Buf>>> {
    loom::sync::Arc::new(Slots::new(Kind::Buffer, 1))
}

fn get(t: &Slots<Arc<Buf>>, id: u64) -> Option<Arc<Buf>> {
    t.with(id, Arc::clone).ok()
}

fn insert(t: &Slots<Arc<Buf>>, b: Arc<Buf>) -> u64 {
    t.insert(b).map_err(|(e, _)| e).unwrap()
}

#[test]
fn a_remove_races_a_reader_without_use_after_free() {
    bounded(|| {
        let t = table();
        let freed = Arc::new(AtomicUsize::new(0));
        let id = insert(&t, buf(7, &freed));
        let t2 = t.clone();
        let reader = thread::spawn(move || get(&t2, id).map(|b| b.read()));
        drop(t.remove(id).unwrap()); // dropped outside the lock, as the table does
        assert_eq!(reader.join().unwrap().unwrap_or(7), 7);
        assert_eq!(freed.load(Ordering::SeqCst), 1, "freed exactly once after both let go");
        assert!(get(&t, id).is_none());
    });
}

#[test]
fn two_removes_of_one_id_succeed_once() {
    bounded(|| {
        let t = table();
        let freed = Arc::new(AtomicUsize::new(0));
        let id = insert(&t, buf(1, &freed));
        let t2 = t.clone();
        let other = thread::spawn(move || t2.remove(id).is_ok());
        let mine = t.remove(id).is_ok();
        let theirs = other.join().unwrap();
        assert!(mine ^ theirs, "exactly one release wins (mine={mine}, theirs={theirs})");
        assert_eq!(freed.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn a_reused_slot_never_answers_to_the_old_id() {
    bounded(|| {
        let t = table();
        let freed = Arc::new(AtomicUsize::new(0));
        let old = insert(&t, buf(1, &freed));
        let t2 = t.clone();
        let f2 = freed.clone();
        // Removes the old id and inserts a new buffer, which takes the same slot.
        let writer = thread::spawn(move || {
            drop(t2.remove(old).unwrap());
            let new = insert(&t2, buf(2, &f2));
            assert_eq!(new & 0xFFFF_FFFF, old & 0xFFFF_FFFF, "the slot is reused");
            assert_ne!(new, old);
            new
        });
        // Whatever the interleaving, the old id yields the old bytes or nothing, never the new ones.
        let seen = get(&t, old).map(|b| b.read());
        assert!(matches!(seen, None | Some(1)), "old id answered with {seen:?}");
        let new = writer.join().unwrap();
        assert!(get(&t, old).is_none());
        assert_eq!(t.remove(old).err(), Some(Error::InvalidHandle));
        assert_eq!(get(&t, new).map(|b| b.read()), Some(2));
        drop(t.remove(new).unwrap());
        assert_eq!(freed.load(Ordering::SeqCst), 2);
        assert_eq!(t.counts(), (2, 2));
    });
}

/// Kind confusion: a table refuses the ids of every other kind, whatever is in its slots, even
/// while another thread fills and empties the same slot numbers in a table of another kind.
#[test]
fn ids_of_another_kind_are_refused() {
    bounded(|| {
        let buffers = table();
        let queues: loom::sync::Arc<Slots<Arc<Buf>>> = loom::sync::Arc::new(Slots::new(Kind::Queue, 1));
        let freed = Arc::new(AtomicUsize::new(0));
        let b = insert(&buffers, buf(1, &freed));
        let q2 = queues.clone();
        let f2 = freed.clone();
        let other = thread::spawn(move || {
            let q = insert(&q2, buf(2, &f2));
            drop(q2.remove(q).unwrap());
            q
        });
        assert!(get(&queues, b).is_none());
        assert_eq!(queues.remove(b).err(), Some(Error::InvalidHandle));
        let q = other.join().unwrap();
        assert_eq!(b & 0x00FF_FFFF, q & 0x00FF_FFFF, "same slot number");
        assert!(get(&buffers, q).is_none());
        assert_eq!(buffers.remove(q).err(), Some(Error::InvalidHandle));
        assert_eq!(get(&buffers, b).map(|x| x.read()), Some(1));
        drop(buffers.remove(b).unwrap());
        assert_eq!(freed.load(Ordering::SeqCst), 2);
    });
}

/// Reserves each size in turn (keeping what succeeds), checking the test's own count of held bytes
/// against the limit, then gives everything back.
fn churn(c: &Counters, held: &AtomicU64, limit: u64, sizes: &[u64]) {
    let mut mine = Vec::new();
    for &n in sizes {
        if c.reserve(n as usize).is_ok() {
            let now = held.fetch_add(n, Ordering::SeqCst) + n;
            assert!(now <= limit, "{now} bytes live under a limit of {limit}");
            assert!(c.granted() <= limit);
            mine.push(n);
        }
    }
    for n in mine {
        held.fetch_sub(n, Ordering::SeqCst);
        c.unreserve(n as usize);
    }
}

/// Live bytes never pass the limit, whatever two threads do, and the counts are exact once they
/// are joined. The test holds its own count of the bytes it has successfully reserved and not yet
/// given back; it may never exceed the limit.
#[test]
fn the_limit_holds_under_concurrent_creates() {
    bounded(|| {
        let limit = 3 * GRAIN;
        let c = loom::sync::Arc::new(Counters::new());
        c.set_limit(limit);
        let held = Arc::new(AtomicU64::new(0));
        let (c2, h2) = (c.clone(), held.clone());
        let other = thread::spawn(move || churn(&c2, &h2, limit, &[1, GRAIN + 1]));
        churn(&c, &held, limit, &[2, 2 * GRAIN]);
        other.join().unwrap();
        let st = c.snapshot();
        assert_eq!(st.live_bytes, 0);
        assert!(st.peak_bytes <= limit);
        assert!(c.granted() <= limit);
    });
}

/// Credit parked in another thread's slot never makes a create that fits fail: with 2 grains of
/// limit, one thread holds 1 byte (and parks the rest of a grain as credit); the other can still
/// have everything else.
#[test]
fn parked_credit_never_causes_a_refusal() {
    bounded(|| {
        let limit = 2 * GRAIN;
        let c = loom::sync::Arc::new(Counters::new());
        c.set_limit(limit);
        let c2 = c.clone();
        let other = thread::spawn(move || {
            c2.reserve(1).unwrap();
        });
        other.join().unwrap();
        c.reserve((limit - 1) as usize).unwrap();
        assert!(c.reserve(1).is_err());
        assert_eq!(c.snapshot().live_bytes, limit);
    });
}
