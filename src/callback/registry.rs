//! The callback registry: generational ids over callbacks, with an invoke that takes no lock and
//! makes no atomic read-modify-write.
//!
//! Every sync crossing looks a callback up, and one atomic read-modify-write on a shared line costs
//! about as much as the whole Rust side of the crossing (see `benches/callbacks.rs`: a counted
//! hold, which is a compare-and-swap on the slot, against the hazard path). Each slot has a state
//! word: its generation (high 32 bits), REGISTERED, DEFERRED and CLAIMED bits, and a count of
//! long-lived holds (queued jobs, [`Callback`] values). Two kinds of protection keep a callback
//! alive while it is in use:
//!
//! - a sync [`invoke`] publishes the slot in one of its thread's hazard slots and then checks the
//!   state (see [`super::hazard`]: a light barrier on this side, a heavy one on the other);
//! - a hold ([`get`]) increments the count with a compare-and-swap.
//!
//! [`unregister`] clears REGISTERED, runs the heavy barrier, and frees the slot itself if nothing
//! protects it; otherwise it sets DEFERRED, and whoever drops the last protection later (an
//! invoke leaving, a hold dropped) frees it, after a heavy barrier of its own. Freeing means
//! winning the CAS to CLAIMED, so exactly one party does it: it drops the callback (the drop hook
//! runs there, with no lock held; a panic in it is caught), moves the generation on and puts the
//! slot on the free list. When no heavy barrier can be made (see [`super::hazard`]), the slot is
//! parked and freed after a later barrier succeeds: a drop hook may run late, never too early.
//!
//! Slots live in chunks that are allocated on demand (on the heap: no chunk is ever built on the
//! stack) and never freed, so a slot reference is `'static`. Ids use the one layout of
//! [`crate::slots`] with kind [`Kind::Callback`]; a slot whose generation would reach the last one
//! is retired, so an old id never answers again.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use super::hazard::{self, Hazard};
use super::{catch, CallError, Payload};
use crate::error::Error;
use crate::slots::{self, Kind, FIRST_GEN};
use crate::sync::{
    array_of, global, loom_const_fn, AtomicPtr, AtomicU64, AtomicUsize, Mutex, Ordering, UnsafeCell,
};

type Func = dyn Fn(Payload) -> Result<Payload, CallError> + Send + Sync;

#[cfg(not(loom))]
const CHUNK: usize = 4096;
#[cfg(not(loom))]
const CHUNKS: usize = 1024;
#[cfg(loom)]
const CHUNK: usize = 2;
#[cfg(loom)]
const CHUNKS: usize = 2;
/// Most callbacks registered at once: 4M.
const MAX_SLOTS: usize = CHUNK * CHUNKS;
const _: () = assert!(MAX_SLOTS <= slots::SLOTS_PER_SHARD);

const GEN_SHIFT: u32 = 32;
const DEFERRED: u64 = 1 << 31;
const REGISTERED: u64 = 1 << 30;
const CLAIMED: u64 = 1 << 28;
const COUNT_MASK: u64 = CLAIMED - 1;
const GEN_MASK: u64 = !0 << GEN_SHIFT;

fn gen_of(state: u64) -> u32 {
    (state >> GEN_SHIFT) as u32
}

struct Slot {
    state: AtomicU64,
    /// Written only by the party that owns the slot (the registering thread before it publishes
    /// REGISTERED, or the one that won the CAS to CLAIMED); read by protectors.
    func: UnsafeCell<Option<Box<Func>>>,
}

// SAFETY: `func` is only written by the slot's exclusive owner (see the module docs) and only read
// by protectors, whose protection keeps it from being taken; `Func` itself is Send + Sync.
unsafe impl Sync for Slot {}

impl Slot {
    fn new() -> Slot {
        Slot { state: AtomicU64::new(u64::from(FIRST_GEN) << GEN_SHIFT), func: UnsafeCell::new(None) }
    }

    /// Calls the callback. The caller holds a protection (a hazard seen before REGISTERED, or a
    /// hold), which keeps `func` in place and unwritten until it is let go.
    ///
    /// `nested` says that the call may be deep in a chain of callbacks, so the stack left is checked
    /// first (a call at the top of a chain, the common case, skips that).
    #[inline(always)]
    fn call(&self, p: Payload, nested: bool) -> Result<Payload, CallError> {
        #[cfg(not(loom))]
        if nested && !super::stack::room() {
            return Err(CallError::NestedTooDeep);
        }
        #[cfg(loom)]
        let _ = nested;
        self.func.with(|f| {
            // SAFETY: see above: no one writes `func` while a protection is held.
            let f = unsafe { (*f).as_ref() }.expect("a protected slot has its callback");
            catch(CallError::CallbackPanic(0), || f(p))
        })
    }
}

struct Alloc {
    next: usize,
    free: Vec<u32>,
}

/// The registry's storage and counters. The process has one ([`REGISTRY`]).
struct Registry {
    chunks: [AtomicPtr<Slot>; CHUNKS],
    alloc: Mutex<Alloc>,
    registered: AtomicUsize,
    /// Callbacks whose drop hook has not run yet.
    alive: AtomicUsize,
    /// Unregistered slots whose reclaim waits for a heavy barrier that succeeds: (slot, generation).
    parked: Mutex<Vec<(usize, u32)>>,
    parked_n: AtomicUsize,
}

global! {
    static REGISTRY: Registry = Registry::new();
}

impl Registry {
    loom_const_fn! {
        fn new() -> Registry {
            Registry {
                chunks: array_of!(CHUNKS, AtomicPtr::new(ptr::null_mut())),
                alloc: Mutex::new(Alloc { next: 0, free: Vec::new() }),
                registered: AtomicUsize::new(0),
                alive: AtomicUsize::new(0),
                parked: Mutex::new(Vec::new()),
                parked_n: AtomicUsize::new(0),
            }
        }
    }

    fn slot(&self, ix: usize) -> Option<&'static Slot> {
        if ix >= MAX_SLOTS {
            return None;
        }
        let c = self.chunks[ix / CHUNK].load(Ordering::Acquire);
        // SAFETY: a published chunk holds CHUNK slots and is never freed or moved (while the
        // registry lives, which is the whole process outside the model checker).
        (!c.is_null()).then(|| unsafe { &*c.add(ix % CHUNK) })
    }

    /// Takes a free slot (allocating its chunk if needed); its state holds the generation to use.
    fn alloc(&self) -> Result<usize, Error> {
        let mut a = self.alloc.lock();
        if let Some(ix) = a.free.pop() {
            return Ok(ix as usize);
        }
        if a.next == MAX_SLOTS {
            return Err(Error::TableFull);
        }
        let ix = a.next;
        if ix % CHUNK == 0 {
            // Built on the heap one slot at a time: a chunk never sits on the stack.
            let chunk: Box<[Slot]> = (0..CHUNK).map(|_| Slot::new()).collect();
            self.chunks[ix / CHUNK].store(Box::into_raw(chunk).cast::<Slot>(), Ordering::Release);
        }
        a.next += 1;
        Ok(ix)
    }

    /// Frees slot `ix`, which the caller has just claimed (its state is `gen | CLAIMED`): drops its
    /// callback with no lock held, moves the generation on and returns the slot to the free list
    /// (or retires it).
    fn release(&self, ix: usize, s: &'static Slot, state: u64) {
        // SAFETY: the caller won the CAS to CLAIMED, after a successful heavy barrier showed that
        // no hold and no hazard protects the slot, so no one else reads or writes `func` until the
        // slot is handed out again below.
        let f = s.func.with_mut(|f| unsafe { (*f).take() });
        // The drop hook; it may call back into ferry. A panic in it must not lose the slot.
        let _ = catch_unwind(AssertUnwindSafe(move || {
            crate::fault_point!("callback.drop");
            drop(f)
        }));
        self.alive.fetch_sub(1, Ordering::Release);
        match slots::next_gen(gen_of(state)) {
            Some(gen) => {
                s.state.store(u64::from(gen) << GEN_SHIFT, Ordering::Release);
                self.alloc.lock().free.push(ix as u32);
            }
            None => s.state.store(u64::from(u32::MAX) << GEN_SHIFT, Ordering::Release),
        }
    }

    /// Claims and frees a DEFERRED slot if nothing protects it any more. Only call after a heavy
    /// barrier that succeeded, made after the protections to be judged were dropped.
    fn reclaim_checked(&self, ix: usize, s: &'static Slot) {
        let mut st = s.state.load(Ordering::Acquire);
        loop {
            if st & (DEFERRED | CLAIMED) != DEFERRED || st & COUNT_MASK != 0 || hazard::protected(ix) {
                return;
            }
            let claimed = (st & GEN_MASK) | CLAIMED;
            match s.state.compare_exchange(st, claimed, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return self.release(ix, s, claimed),
                Err(now) => st = now,
            }
        }
    }

    /// Frees a DEFERRED slot if nothing protects it any more; called by whoever drops a protection.
    fn try_reclaim(&self, ix: usize, s: &'static Slot) {
        if hazard::heavy_barrier() {
            self.reclaim_checked(ix, s);
            self.drain_parked();
        } else {
            self.park(ix, s);
        }
    }

    /// The unregister's side, after it cleared REGISTERED: frees the slot now if nothing protects
    /// it, else marks it DEFERRED for the last protector to free.
    fn retire(&self, ix: usize, s: &'static Slot) {
        if !hazard::heavy_barrier() {
            return self.park(ix, s);
        }
        let mut st = s.state.load(Ordering::Acquire);
        let hazards = loop {
            let hazards = hazard::protected(ix);
            let (next, claim) = if !hazards && st & COUNT_MASK == 0 {
                ((st & GEN_MASK) | CLAIMED, true)
            } else {
                (st | DEFERRED, false)
            };
            match s.state.compare_exchange(st, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) if claim => {
                    self.release(ix, s, next);
                    return self.drain_parked();
                }
                Ok(_) => break hazards,
                Err(now) => st = now,
            }
        };
        if hazards {
            // An invoke that leaves after this sees DEFERRED; one that left before it is seen here.
            self.try_reclaim(ix, s);
        }
    }

    /// Marks the slot DEFERRED and parks it until a heavy barrier succeeds.
    #[cold]
    fn park(&self, ix: usize, s: &'static Slot) {
        let st = s.state.fetch_or(DEFERRED, Ordering::AcqRel);
        if st & CLAIMED != 0 {
            return;
        }
        self.parked.lock().push((ix, gen_of(st)));
        self.parked_n.fetch_add(1, Ordering::Release);
    }

    /// Frees the parked slots that nothing protects any more, if a heavy barrier succeeds now.
    fn drain_parked(&self) {
        if self.parked_n.load(Ordering::Acquire) == 0 {
            return;
        }
        let list = std::mem::take(&mut *self.parked.lock());
        self.parked_n.fetch_sub(list.len(), Ordering::AcqRel);
        // The barrier comes after the list was taken, so it covers every protection dropped
        // before any of these slots was parked.
        if !hazard::heavy_barrier() {
            let n = list.len();
            self.parked.lock().extend(list);
            self.parked_n.fetch_add(n, Ordering::Release);
            return;
        }
        for (ix, gen) in list {
            if let Some(s) = self.slot(ix) {
                if gen_of(s.state.load(Ordering::Acquire)) == gen {
                    self.reclaim_checked(ix, s);
                }
            }
        }
    }

    fn lookup(&self, id: u64) -> Result<(u32, usize, &'static Slot), CallError> {
        let bad = CallError::Ferry(Error::InvalidHandle);
        let k = slots::decode(id, Kind::Callback).ok_or(bad)?;
        if k.shard != 0 {
            return Err(bad);
        }
        Ok((k.gen, k.slot, self.slot(k.slot).ok_or(bad)?))
    }
}

#[cfg(loom)]
impl Drop for Registry {
    fn drop(&mut self) {
        for c in &self.chunks {
            let p = c.load(Ordering::Relaxed);
            if !p.is_null() {
                // SAFETY: made by Box::into_raw of a CHUNK-slot boxed slice in `alloc`; the registry
                // is being dropped, so nothing uses its slots any more.
                drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(p, CHUNK)) });
            }
        }
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
        self.slot.call(p, true)
    }
}

impl Clone for Callback {
    fn clone(&self) -> Callback {
        // Already held, so the slot cannot be freed under us; the count cannot overflow in practice
        // (2^28 holders of one callback; `get` refuses the last one).
        self.slot.state.fetch_add(1, Ordering::Relaxed);
        Callback { ix: self.ix, slot: self.slot }
    }
}

impl Callback {
    /// Lets go of the hold this value stands for, without dropping it: for a frame that will never
    /// be returned to (see `super::frames`).
    ///
    /// # Safety
    /// The value must never be dropped afterwards (the caller forgets it), or the count would be
    /// decremented twice.
    #[cfg(not(loom))]
    pub(crate) unsafe fn release_for_abandoned(&self) {
        self.release();
    }

    fn release(&self) {
        let now = self.slot.state.fetch_sub(1, Ordering::AcqRel) - 1;
        if now & DEFERRED != 0 && now & COUNT_MASK == 0 {
            REGISTRY.try_reclaim(self.ix, self.slot);
        }
    }
}

impl Drop for Callback {
    fn drop(&mut self) {
        self.release();
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
    REGISTRY.drain_parked();
    Ok(Reservation { ix: Some(REGISTRY.alloc()?) })
}

impl Reservation {
    /// Registers `f` in the reserved slot and returns its id.
    pub(crate) fn fill(mut self, f: Box<Func>) -> u64 {
        let ix = self.ix.take().expect("filled once");
        let s = REGISTRY.slot(ix).expect("allocated slots exist");
        // SAFETY: the slot came off the free list (or is new): nobody else reads or writes it.
        s.func.with_mut(|p| unsafe { *p = Some(f) });
        REGISTRY.alive.fetch_add(1, Ordering::Relaxed);
        let gen = gen_of(s.state.load(Ordering::Relaxed));
        s.state.store((u64::from(gen) << GEN_SHIFT) | REGISTERED, Ordering::Release);
        REGISTRY.registered.fetch_add(1, Ordering::Relaxed);
        slots::encode(Kind::Callback, slots::Key { gen, shard: 0, slot: ix })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(ix) = self.ix {
            REGISTRY.alloc.lock().free.push(ix as u32);
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
/// unless a running call or queued job still holds it, in which case the last of them drops it (an
/// invoke looking the slot up at that moment, even with a stale id, counts as a running call).
/// Errors: `Ferry(InvalidHandle)` for an unknown or already unregistered id, or an id of another
/// kind.
pub fn unregister(id: u64) -> Result<(), CallError> {
    let (gen, ix, s) = REGISTRY.lookup(id)?;
    let mut cur = s.state.load(Ordering::Acquire);
    loop {
        if gen_of(cur) != gen || cur & REGISTERED == 0 {
            return Err(CallError::Ferry(Error::InvalidHandle));
        }
        match s.state.compare_exchange_weak(cur, cur & !REGISTERED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => break,
            Err(now) => cur = now,
        }
    }
    REGISTRY.registered.fetch_sub(1, Ordering::Relaxed);
    REGISTRY.retire(ix, s);
    Ok(())
}

/// A hold on the callback `id` names: it stays alive until the returned value is dropped.
/// Errors: `Ferry(InvalidHandle)`.
pub fn get(id: u64) -> Result<Callback, CallError> {
    let (gen, ix, s) = REGISTRY.lookup(id)?;
    let mut cur = s.state.load(Ordering::Relaxed);
    loop {
        if gen_of(cur) != gen || cur & REGISTERED == 0 || cur & COUNT_MASK == COUNT_MASK {
            return Err(CallError::Ferry(Error::InvalidHandle));
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
/// the returned payload's buffer id belongs to the caller. Errors: `Ferry(InvalidHandle)` (unknown,
/// stale or another kind of id), `Failed`, `CallbackPanic`, `NestedTooDeep` (too little stack left
/// on this thread for one more callback: see `stack.rs`).
pub fn invoke(id: u64, p: Payload) -> Result<Payload, CallError> {
    let (gen, ix, s) = REGISTRY.lookup(id)?;
    // Dropped after the hazard (declared before it), on return and on unwind alike.
    let _leave = Leave { ix, s };
    let Some(h) = Hazard::protect(ix) else {
        // No hazard slot left (deeply nested invokes, or a thread that is exiting): take a hold.
        return Held::new(get(id)?).call(p);
    };
    crate::fault_point!("invoke.protected");
    let st = s.state.load(Ordering::Acquire);
    if gen_of(st) == gen && st & REGISTERED != 0 {
        // The hazard, published before the state was seen REGISTERED, keeps `func` in place.
        s.call(p, h.nested())
    } else {
        Err(CallError::Ferry(Error::InvalidHandle))
    }
}

/// What an invoke does as it leaves, after its hazard is cleared: if an unregister found the
/// hazard, it left the freeing to whoever drops the last protection.
struct Leave {
    ix: usize,
    s: &'static Slot,
}

impl Drop for Leave {
    #[inline]
    fn drop(&mut self) {
        if self.s.state.load(Ordering::Relaxed) & DEFERRED != 0 {
            REGISTRY.try_reclaim(self.ix, self.s);
        }
    }
}

/// A counted hold taken by a nested invoke, let go of at its end or when the thread's calls are
/// abandoned (see `super::frames`).
struct Held {
    hold: Callback,
    #[cfg(not(loom))]
    once: super::frames::Once,
}

impl Held {
    fn new(hold: Callback) -> Held {
        Held {
            hold,
            #[cfg(not(loom))]
            once: Default::default(),
        }
    }

    #[cfg(not(loom))]
    fn call(self, p: Payload) -> Result<Payload, CallError> {
        let r = super::frames::holding(&self, || {
            crate::fault_point!("invoke.held");
            self.hold.call(p)
        });
        if !self.once.first() {
            // Abandoned: the hold was let go of already.
            std::mem::forget(self.hold);
        }
        r
    }

    #[cfg(loom)]
    fn call(self, p: Payload) -> Result<Payload, CallError> {
        self.hold.call(p)
    }
}

#[cfg(not(loom))]
impl super::frames::Abandon for Held {
    fn abandon(&self, _detail: u64) {
        if self.once.first() {
            // SAFETY: the frame that owns `hold` forgets it (see `call`), so the count is dropped once.
            unsafe { self.hold.release_for_abandoned() };
        }
    }
}

/// Lets go of the hazards this thread holds for calls whose frames will never be returned to,
/// freeing the callbacks unregistered meanwhile that nothing else protects.
#[cfg(not(loom))]
pub(crate) fn abandon_hazards() {
    hazard::abandon_thread(|ix| {
        if let Some(s) = REGISTRY.slot(ix) {
            if s.state.load(Ordering::Acquire) & DEFERRED != 0 {
                REGISTRY.try_reclaim(ix, s);
            }
        }
    });
}

/// Callbacks registered and not unregistered.
pub(crate) fn registered() -> usize {
    REGISTRY.registered.load(Ordering::Relaxed)
}

/// Callbacks whose drop hook has not run yet.
pub(crate) fn alive() -> usize {
    REGISTRY.alive.load(Ordering::Acquire)
}

/// Slots waiting for a heavy barrier before they can be freed (0 unless barriers failed).
#[allow(dead_code)]
pub(crate) fn parked() -> usize {
    REGISTRY.parked_n.load(Ordering::Acquire)
}
#[cfg(all(test, not(loom)))]
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

    /// Issue 10, item 5: callbacks nested deeper than the stack allows fail with an error instead
    /// of overflowing a worker's stack (which cannot grow).
    #[test]
    fn nesting_deeper_than_the_stack_fails_cleanly() {
        static ME: AtomicU64 = AtomicU64::new(0);
        let id = register(|p| {
            let pad = [p.value as u8; 2048];
            std::hint::black_box(&pad);
            match invoke(ME.load(Ordering::SeqCst), Payload { buffer: 0, value: p.value + 1 }) {
                Ok(inner) => Ok(inner),
                Err(CallError::NestedTooDeep) => Ok(Payload { buffer: 0, value: p.value }),
                Err(e) => Err(e),
            }
        })
        .unwrap();
        ME.store(id, Ordering::SeqCst);
        let deepest = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || invoke(id, Payload::default()))
            .unwrap()
            .join()
            .unwrap()
            .unwrap()
            .value;
        assert!((10..200).contains(&deepest), "nested {deepest} deep on a 256 KiB stack");
        unregister(id).unwrap();
    }
}
