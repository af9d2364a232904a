//! The callback registry: generational ids over callbacks, with an invoke that takes no lock and
//! makes no atomic read-modify-write.
//!
//! Every sync crossing looks a callback up, and on this hardware one atomic read-modify-write
//! costs ~8 ns against ~35 ns for the whole C-to-Go crossing, so the lookup must not use one (a
//! shard mutex plus an `Arc` clone cost four; see `benches/callbacks.rs`). Each slot has a state
//! word: its generation (high 32 bits), REGISTERED, DEFERRED and CLAIMED bits, and a count of
//! long-lived holds (queued jobs, [`Callback`] values). Two kinds of protection keep a callback
//! alive while it is in use:
//!
//! - a sync [`invoke`] publishes the slot in one of its thread's hazard slots and then checks the
//!   state (see [`super::hazard`]: a compiler fence on this side, `membarrier` on the other);
//! - a hold ([`get`]) increments the count with a compare-and-swap.
//!
//! [`unregister`] clears REGISTERED, runs the heavy barrier, and frees the slot itself if nothing
//! protects it; otherwise it sets DEFERRED, and whoever drops the last protection later (an
//! invoke leaving, a hold dropped) frees it. Freeing means winning the CAS to CLAIMED, so exactly one
//! party does it: it drops the callback (the drop hook runs there, with no lock held), bumps the
//! generation and puts the slot on the free list.
//!
//! Slots live in chunks that are allocated on demand and never freed, so a slot reference is
//! `'static`. An id is `generation << 32 | 0xC << 28 | slot`; 0 is never an id, and a slot whose
//! generation would reach `u32::MAX` is retired, so an old id never answers again.

use std::cell::UnsafeCell;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::hazard::{self, Hazard};
use super::{catch, CallError, Payload};
use crate::error::Error;

type Func = dyn Fn(Payload) -> Result<Payload, CallError> + Send + Sync;

const KIND: u64 = 0xC;
const KIND_SHIFT: u32 = 28;
const GEN_SHIFT: u32 = 32;
const CHUNK: usize = 4096;
const CHUNKS: usize = 1024;
/// Most callbacks registered at once: 4M.
const MAX_SLOTS: usize = CHUNK * CHUNKS;

const DEFERRED: u64 = 1 << 31;
const REGISTERED: u64 = 1 << 30;
const CLAIMED: u64 = 1 << 28;
const COUNT_MASK: u64 = CLAIMED - 1;
const GEN_MASK: u64 = !0 << GEN_SHIFT;

struct Slot {
    state: AtomicU64,
    /// Written only by the party that owns the slot (the registering thread before it publishes
    /// REGISTERED, or the one that saw the last holder go); read by holders.
    /// The callback and its alive token; the tuple drops the callback (its drop hook) first.
    func: UnsafeCell<Option<(Box<Func>, AliveToken)>>,
}

// SAFETY: `func` is only written by the slot's exclusive owner (see the module docs) and only read
// by holders, whose count keeps it from being taken; `Func` itself is Send + Sync.
unsafe impl Sync for Slot {}

type Chunk = [Slot; CHUNK];

static CHUNKS_: [AtomicPtr<Chunk>; CHUNKS] = [const { AtomicPtr::new(ptr::null_mut()) }; CHUNKS];

struct Alloc {
    next: usize,
    free: Vec<u32>,
}

static ALLOC: Mutex<Alloc> = Mutex::new(Alloc { next: 0, free: Vec::new() });
static REGISTERED_N: AtomicUsize = AtomicUsize::new(0);
static ALIVE: AtomicUsize = AtomicUsize::new(0);

fn slot(ix: usize) -> Option<&'static Slot> {
    if ix >= MAX_SLOTS {
        return None;
    }
    let c = CHUNKS_[ix / CHUNK].load(Ordering::Acquire);
    // SAFETY: a published chunk is never freed or moved.
    (!c.is_null()).then(|| unsafe { &(*c)[ix % CHUNK] })
}

fn split(id: u64) -> Option<(u32, usize)> {
    if (id >> KIND_SHIFT) & 0xF != KIND {
        return None;
    }
    Some(((id >> GEN_SHIFT) as u32, (id & ((1 << KIND_SHIFT) - 1)) as usize))
}

/// Takes a free slot (allocating its chunk if needed); its state holds the generation to use.
fn alloc() -> Result<usize, Error> {
    let mut a = ALLOC.lock();
    if let Some(ix) = a.free.pop() {
        return Ok(ix as usize);
    }
    if a.next == MAX_SLOTS {
        return Err(Error::TableFull);
    }
    let ix = a.next;
    if ix % CHUNK == 0 {
        let chunk: Box<Chunk> = Box::new(std::array::from_fn(|_| Slot {
            state: AtomicU64::new(1 << GEN_SHIFT),
            func: UnsafeCell::new(None),
        }));
        CHUNKS_[ix / CHUNK].store(Box::into_raw(chunk), Ordering::Release);
    }
    a.next += 1;
    Ok(ix)
}

/// Frees slot `ix`, which the caller has just claimed (its state is `gen | CLAIMED`): drops its
/// callback with no lock held, bumps the generation and returns it to the free list (or retires it).
fn release(ix: usize, s: &'static Slot, state: u64) {
    // SAFETY: the caller won the CAS to CLAIMED, after checking that no hold and no hazard protects
    // the slot, so no one else reads or writes `func` until the slot is handed out again below.
    let f = unsafe { (*s.func.get()).take() };
    drop(f); // the drop hook; it may call back into ferry
    let gen = (state >> GEN_SHIFT) as u32 + 1;
    s.state.store(u64::from(gen) << GEN_SHIFT, Ordering::Release);
    if gen != u32::MAX {
        ALLOC.lock().free.push(ix as u32);
    }
}

/// Frees a DEFERRED slot if nothing protects it any more; called by whoever drops a protection.
fn try_reclaim(ix: usize, s: &'static Slot) {
    std::sync::atomic::fence(Ordering::SeqCst);
    let mut st = s.state.load(Ordering::Acquire);
    loop {
        if st & (DEFERRED | CLAIMED) != DEFERRED || st & COUNT_MASK != 0 || hazard::protected(ix) {
            return;
        }
        match s.state.compare_exchange(st, (st & GEN_MASK) | CLAIMED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return release(ix, s, (st & GEN_MASK) | CLAIMED),
            Err(now) => st = now,
        }
    }
}

/// The unregister's side, after it cleared REGISTERED: frees the slot now if nothing protects it,
/// else marks it DEFERRED for the last protector to free.
fn retire(ix: usize, s: &'static Slot) {
    hazard::heavy_barrier();
    let mut st = s.state.load(Ordering::Acquire);
    let hazards = loop {
        let hazards = hazard::protected(ix);
        let (next, claim) = if !hazards && st & COUNT_MASK == 0 {
            ((st & GEN_MASK) | CLAIMED, true)
        } else {
            (st | DEFERRED, false)
        };
        match s.state.compare_exchange(st, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) if claim => return release(ix, s, next),
            Ok(_) => break hazards,
            Err(now) => st = now,
        }
    };
    if hazards {
        // An invoke leaving after this barrier sees DEFERRED; one that left before it is seen here.
        hazard::heavy_barrier();
        try_reclaim(ix, s);
    }
}

/// Counts callbacks alive; decremented after the callback (and so its drop hook) is dropped.
struct AliveToken;

impl AliveToken {
    fn new() -> AliveToken {
        ALIVE.fetch_add(1, Ordering::Relaxed);
        AliveToken
    }
}

impl Drop for AliveToken {
    fn drop(&mut self) {
        ALIVE.fetch_sub(1, Ordering::Release);
    }
}

/// A hold on a registered callback. While it lives the callback is not dropped (its drop hook does
/// not run), even after [`unregister`]; the last holder to let go drops it.
pub struct Callback {
    ix: usize,
    slot: &'static Slot,
}

impl Callback {
    /// Calls the callback on this thread. A panic in it becomes [`CallError::CallbackPanic`]`(0)`.
    #[inline]
    pub fn call(&self, p: Payload) -> Result<Payload, CallError> {
        // SAFETY: this hold keeps `func` in place and unwritten (see the module docs).
        let (f, _) = unsafe { (*self.slot.func.get()).as_ref() }.expect("a held slot has its callback");
        catch(CallError::CallbackPanic(0), || f(p))
    }
}

impl Clone for Callback {
    fn clone(&self) -> Callback {
        // Already held, so the slot cannot be freed under us; the count cannot overflow in practice
        // (2^30 holders of one callback).
        self.slot.state.fetch_add(1, Ordering::Relaxed);
        Callback { ix: self.ix, slot: self.slot }
    }
}

impl Drop for Callback {
    fn drop(&mut self) {
        let now = self.slot.state.fetch_sub(1, Ordering::AcqRel) - 1;
        if now & DEFERRED != 0 && now & COUNT_MASK == 0 {
            try_reclaim(self.ix, self.slot);
        }
    }
}

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callback").field("slot", &self.ix).finish()
    }
}

/// A free slot taken for a callback not made yet; see [`reserve`].
pub(crate) struct Reservation {
    ix: Option<usize>,
}

/// Takes a slot first, so that a caller whose callback owns foreign state can make the callback
/// only once registering cannot fail any more. Errors: `Ferry(TableFull)`.
pub(crate) fn reserve() -> Result<Reservation, CallError> {
    Ok(Reservation { ix: Some(alloc()?) })
}

impl Reservation {
    /// Registers `f` in the reserved slot and returns its id.
    pub(crate) fn fill(mut self, f: Box<Func>) -> u64 {
        let ix = self.ix.take().expect("filled once");
        let s = slot(ix).expect("allocated slots exist");
        // SAFETY: the slot came off the free list (or is new): nobody else reads or writes it.
        unsafe { *s.func.get() = Some((f, AliveToken::new())) };
        let gen = s.state.load(Ordering::Relaxed) >> GEN_SHIFT;
        s.state.store((gen << GEN_SHIFT) | REGISTERED, Ordering::Release);
        REGISTERED_N.fetch_add(1, Ordering::Relaxed);
        (gen << GEN_SHIFT) | (KIND << KIND_SHIFT) | ix as u64
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(ix) = self.ix {
            ALLOC.lock().free.push(ix as u32);
        }
    }
}

/// Registers `f` and returns its id (never 0).
///
/// `f` is dropped exactly once, when Rust lets go of it: at [`unregister`], or after it if a call or
/// queued job still holds it. A drop hook for foreign state goes in the `Drop` of what `f` captures.
/// It may run on any thread, never under a ferry lock. On error `f` is dropped at once.
/// Errors: `Ferry(TableFull)`.
pub fn register(
    f: impl Fn(Payload) -> Result<Payload, CallError> + Send + Sync + 'static,
) -> Result<u64, CallError> {
    Ok(reserve()?.fill(Box::new(f)))
}

/// Unregisters `id`. The id is invalid from now on; the callback is dropped here, on this thread,
/// unless a running call or queued job still holds it, in which case the last of them drops it.
/// Errors: `Ferry(InvalidHandle)` for an unknown or already unregistered id.
pub fn unregister(id: u64) -> Result<(), CallError> {
    let bad = CallError::Ferry(Error::InvalidHandle);
    let (gen, ix) = split(id).ok_or(bad)?;
    let s = slot(ix).ok_or(bad)?;
    let mut cur = s.state.load(Ordering::Acquire);
    loop {
        if (cur >> GEN_SHIFT) as u32 != gen || cur & REGISTERED == 0 {
            return Err(bad);
        }
        match s.state.compare_exchange_weak(cur, cur & !REGISTERED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => break,
            Err(now) => cur = now,
        }
    }
    REGISTERED_N.fetch_sub(1, Ordering::Relaxed);
    retire(ix, s);
    Ok(())
}

/// A hold on the callback `id` names: it stays alive until the returned value is dropped.
/// Errors: `Ferry(InvalidHandle)`.
pub fn get(id: u64) -> Result<Callback, CallError> {
    let bad = CallError::Ferry(Error::InvalidHandle);
    let (gen, ix) = split(id).ok_or(bad)?;
    let s = slot(ix).ok_or(bad)?;
    let mut cur = s.state.load(Ordering::Relaxed);
    loop {
        if (cur >> GEN_SHIFT) as u32 != gen || cur & REGISTERED == 0 || cur & COUNT_MASK == COUNT_MASK {
            return Err(bad);
        }
        match s.state.compare_exchange_weak(cur, cur + 1, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return Ok(Callback { ix, slot: s }),
            Err(now) => cur = now,
        }
    }
}

/// Calls the callback `id` on this thread with `p` and returns its result.
///
/// No lock is held while it runs, so it may call ferry again (even unregister itself). On success
/// the returned payload's buffer id belongs to the caller. Errors: `Ferry(InvalidHandle)` (unknown
/// or stale id), `Failed`, `CallbackPanic`.
pub fn invoke(id: u64, p: Payload) -> Result<Payload, CallError> {
    let bad = CallError::Ferry(Error::InvalidHandle);
    let (gen, ix) = split(id).ok_or(bad)?;
    let s = slot(ix).ok_or(bad)?;
    let Some(h) = Hazard::protect(ix) else {
        // No hazard slot left (deeply nested invokes, or a thread that is exiting): take a hold.
        return get(id)?.call(p);
    };
    let st = s.state.load(Ordering::Acquire);
    let r = if (st >> GEN_SHIFT) as u32 == gen && st & REGISTERED != 0 {
        // SAFETY: the hazard, published before the state was seen REGISTERED, keeps `func` in
        // place and unwritten until it is dropped (see the module docs).
        let (f, _) = unsafe { (*s.func.get()).as_ref() }.expect("a registered slot has its callback");
        catch(CallError::CallbackPanic(0), || f(p))
    } else {
        Err(bad)
    };
    drop(h);
    // If an unregister found this hazard, it left the freeing to whoever drops the last protection.
    if s.state.load(Ordering::Relaxed) & DEFERRED != 0 {
        try_reclaim(ix, s);
    }
    r
}

pub(crate) fn registered() -> usize {
    REGISTERED_N.load(Ordering::Relaxed)
}

pub(crate) fn alive() -> usize {
    ALIVE.load(Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64};
    use std::sync::Arc;

    use super::*;

    struct Hook(Arc<AtomicBool>);
    impl Drop for Hook {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn drop_hook_runs_when_the_last_holder_lets_go() {
        let dropped = Arc::new(AtomicBool::new(false));
        let hook = Hook(dropped.clone());
        let id = register(move |p| {
            let _ = &hook;
            Ok(Payload { buffer: 0, value: p.value + 1 })
        })
        .unwrap();
        assert_eq!(invoke(id, Payload { buffer: 0, value: 1 }), Ok(Payload { buffer: 0, value: 2 }));
        let held = get(id).unwrap();
        let held2 = held.clone();
        unregister(id).unwrap();
        assert_eq!(invoke(id, Payload::default()), Err(CallError::Ferry(Error::InvalidHandle)));
        assert_eq!(unregister(id), Err(CallError::Ferry(Error::InvalidHandle)));
        assert!(!dropped.load(Ordering::SeqCst), "holders still have it");
        assert_eq!(held.call(Payload { buffer: 0, value: 5 }).unwrap().value, 6);
        drop(held);
        assert!(!dropped.load(Ordering::SeqCst));
        drop(held2);
        assert!(dropped.load(Ordering::SeqCst));
    }

    #[test]
    fn ids_are_generational_and_never_zero() {
        let a = register(Ok).unwrap();
        assert_ne!(a, 0);
        unregister(a).unwrap();
        let b = register(Ok).unwrap();
        assert_ne!(a, b);
        assert!(invoke(a, Payload::default()).is_err());
        for bad in [0, u64::MAX, b ^ (1 << 28), b + (1 << 32), b & 0xFFFF_FFFF] {
            assert!(invoke(bad, Payload::default()).is_err(), "{bad:#x}");
        }
        unregister(b).unwrap();
    }

    #[test]
    fn panics_and_failures_become_errors() {
        let id = register(|p| match p.value {
            0 => panic!("callback panic (expected by the test)"),
            1 => Err(CallError::Failed(77)),
            v => Ok(Payload { buffer: 0, value: v }),
        })
        .unwrap();
        assert_eq!(invoke(id, Payload { buffer: 0, value: 0 }), Err(CallError::CallbackPanic(0)));
        assert_eq!(invoke(id, Payload { buffer: 0, value: 1 }), Err(CallError::Failed(77)));
        assert_eq!(invoke(id, Payload { buffer: 0, value: 9 }).unwrap().value, 9);
        unregister(id).unwrap();
    }

    #[test]
    fn a_callback_may_reenter_and_unregister_itself() {
        let slot = Arc::new(AtomicU64::new(0));
        let s2 = slot.clone();
        let inner = register(|p| Ok(Payload { buffer: 0, value: p.value * 10 })).unwrap();
        let id = register(move |p| {
            let v = invoke(inner, p)?.value;
            unregister(s2.load(Ordering::SeqCst))?;
            Ok(Payload { buffer: 0, value: v + 1 })
        })
        .unwrap();
        slot.store(id, Ordering::SeqCst);
        assert_eq!(invoke(id, Payload { buffer: 0, value: 4 }).unwrap().value, 41);
        assert!(invoke(id, Payload::default()).is_err());
        unregister(inner).unwrap();
    }

    #[test]
    fn racing_invokes_and_unregisters_drop_each_callback_exactly_once() {
        let drops = Arc::new(AtomicU64::new(0));
        struct Count(Arc<AtomicU64>);
        impl Drop for Count {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        const N: u64 = 2000;
        let ids: Vec<u64> = (0..N)
            .map(|_| {
                let c = Count(drops.clone());
                register(move |p| {
                    let _ = &c;
                    Ok(p)
                })
                .unwrap()
            })
            .collect();
        let ids = Arc::new(ids);
        let callers: Vec<_> = (0..3)
            .map(|t| {
                let ids = ids.clone();
                std::thread::spawn(move || {
                    let mut ok = 0u64;
                    for round in 0..4 {
                        for (i, &id) in ids.iter().enumerate() {
                            if (i + t + round) % 2 == 0 && invoke(id, Payload { buffer: 0, value: 1 }).is_ok()
                            {
                                ok += 1;
                            }
                        }
                    }
                    ok
                })
            })
            .collect();
        for &id in ids.iter() {
            unregister(id).unwrap();
        }
        for c in callers {
            c.join().unwrap();
        }
        assert_eq!(drops.load(Ordering::SeqCst), N);
        // Slots are reused with new generations; old ids stay dead.
        let fresh: Vec<u64> = (0..N).map(|_| register(Ok).unwrap()).collect();
        assert!(ids.iter().all(|&id| invoke(id, Payload::default()).is_err()));
        for id in fresh {
            unregister(id).unwrap();
        }
    }

    /// Threads invoke ids at random while others unregister and register: a callback must never
    /// run after its drop hook, and every callback is dropped exactly once.
    #[test]
    fn invoke_never_sees_a_dropped_callback() {
        struct Canary {
            dead: AtomicBool,
            drops: Arc<AtomicU64>,
        }
        impl Drop for Canary {
            fn drop(&mut self) {
                assert!(!self.dead.swap(true, Ordering::SeqCst), "dropped twice");
                self.drops.fetch_add(1, Ordering::SeqCst);
            }
        }
        let drops = Arc::new(AtomicU64::new(0));
        let made = Arc::new(AtomicU64::new(0));
        let mk = |drops: &Arc<AtomicU64>| {
            let c = Canary { dead: AtomicBool::new(false), drops: drops.clone() };
            register(move |p| {
                assert!(!c.dead.load(Ordering::SeqCst), "called after its drop hook");
                Ok(p)
            })
            .unwrap()
        };
        const SLOTS: usize = 64;
        let ids: Arc<Vec<AtomicU64>> = Arc::new((0..SLOTS).map(|_| AtomicU64::new(mk(&drops))).collect());
        made.fetch_add(SLOTS as u64, Ordering::SeqCst);
        let stop = Arc::new(AtomicBool::new(false));
        let callers: Vec<_> = (0..3)
            .map(|t| {
                let (ids, stop) = (ids.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut i = t;
                    let mut ok = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let id = ids[i % SLOTS].load(Ordering::Relaxed);
                        if invoke(id, Payload::default()).is_ok() {
                            ok += 1;
                        }
                        if i % 7 == 0 {
                            if let Ok(h) = get(id) {
                                let _ = h.call(Payload::default());
                            }
                        }
                        i = i.wrapping_mul(31).wrapping_add(17);
                    }
                    ok
                })
            })
            .collect();
        for round in 0..20_000 {
            let k = round % SLOTS;
            let old = ids[k].swap(mk(&drops), Ordering::SeqCst);
            made.fetch_add(1, Ordering::SeqCst);
            unregister(old).unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        let calls: u64 = callers.into_iter().map(|c| c.join().unwrap()).sum();
        assert!(calls > 0);
        for id in ids.iter() {
            unregister(id.load(Ordering::SeqCst)).unwrap();
        }
        assert_eq!(drops.load(Ordering::SeqCst), made.load(Ordering::SeqCst));
    }

    #[test]
    fn deep_nesting_falls_back_to_holds() {
        static DEPTH_ID: AtomicU64 = AtomicU64::new(0);
        let id = register(|p| {
            if p.value == 0 {
                return Ok(p);
            }
            let r = invoke(DEPTH_ID.load(Ordering::SeqCst), Payload { buffer: 0, value: p.value - 1 })?;
            Ok(Payload { buffer: 0, value: r.value + 1 })
        })
        .unwrap();
        DEPTH_ID.store(id, Ordering::SeqCst);
        let n = (super::hazard::DEPTH * 3) as u64;
        assert_eq!(invoke(id, Payload { buffer: 0, value: n }).unwrap().value, n);
        unregister(id).unwrap();
        assert!(invoke(id, Payload::default()).is_err());
    }
}
