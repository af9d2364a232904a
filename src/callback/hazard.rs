//! Hazard slots with asymmetric fences: how a sync invoke protects a callback with no atomic
//! read-modify-write at all.
//!
//! A thread about to call a callback writes the callback's slot number into one of its own hazard
//! slots and then reads the callback's state; the thread that unregisters clears the state's
//! REGISTERED bit and then reads every hazard slot. That is Dekker's pattern, which needs a full
//! fence on both sides. Here the reader only has a compiler fence, and the writer (rare) makes every
//! thread of the process run a full barrier with `membarrier(PRIVATE_EXPEDITED)`: then either the
//! reader sees the bit cleared, or the writer sees the hazard. Where `membarrier` is unavailable
//! (non-Linux, old kernels, valgrind), both sides use a real `fence(SeqCst)` instead.
//!
//! Each thread owns a record of [`DEPTH`] hazard slots (nested invokes, when a callback invokes
//! another, take the next one; deeper nesting falls back to a counted hold). Records are linked in
//! a global list, never freed, and reused after their thread exits.

use std::cell::Cell;
use std::ptr;
use std::sync::atomic::{compiler_fence, fence, AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Hazard slots per thread: the depth of nested invokes protected without a counted hold.
pub(crate) const DEPTH: usize = 8;

struct Record {
    slots: [AtomicUsize; DEPTH],
    in_use: AtomicBool,
    /// Set once, before the record is published.
    next: *const Record,
}

// SAFETY: `next` is written before the record is published and never again; everything else is
// atomic.
unsafe impl Sync for Record {}

static HEAD: AtomicPtr<Record> = AtomicPtr::new(ptr::null_mut());

/// This thread's record and how many of its slots are in use. No destructor, so access is a plain
/// thread-local load; the record goes back to the pool through [`Owner`] when the thread exits.
struct Local {
    rec: Cell<*const Record>,
    depth: Cell<usize>,
}

/// Hands this thread's record back at thread exit.
struct Owner(*const Record);

impl Drop for Owner {
    fn drop(&mut self) {
        let _ = LOCAL.try_with(|l| l.rec.set(ptr::null()));
        // SAFETY: records are never freed.
        unsafe { (*self.0).in_use.store(false, Ordering::Release) };
    }
}

thread_local! {
    static LOCAL: Local = const { Local { rec: Cell::new(ptr::null()), depth: Cell::new(0) } };
    static OWNER: Cell<Option<Owner>> = const { Cell::new(None) };
}

/// Takes a record for this thread, or None if the thread is exiting.
#[cold]
fn first_record() -> Option<*const Record> {
    let r = acquire_record();
    if OWNER.try_with(|o| o.set(Some(Owner(r)))).is_err() {
        // SAFETY: records are never freed; nobody else has this one.
        unsafe { (*r).in_use.store(false, Ordering::Release) };
        return None;
    }
    Some(r)
}

/// Whether `membarrier` does the writer's side (true) or both sides use `fence(SeqCst)` (false).
/// Decided once, before any hazard is used, and never changed.
static ASYMMETRIC: OnceLock<bool> = OnceLock::new();

#[inline]
fn asymmetric() -> bool {
    match ASYMMETRIC.get() {
        Some(&a) => a,
        None => *ASYMMETRIC.get_or_init(register_membarrier),
    }
}

#[cfg(target_os = "linux")]
mod sys {
    const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

    /// Registers the process for private expedited membarriers; false if the kernel refuses.
    pub(super) fn register() -> bool {
        // SAFETY: membarrier takes two integer arguments and touches no memory of ours.
        unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0) == 0 }
    }

    /// Runs a full memory barrier on every running thread of the process.
    pub(super) fn barrier() -> bool {
        // SAFETY: as above.
        unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0) == 0 }
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    pub(super) fn register() -> bool {
        false
    }
    pub(super) fn barrier() -> bool {
        false
    }
}

fn register_membarrier() -> bool {
    std::env::var_os("FERRY_NO_MEMBARRIER").is_none() && sys::register()
}

/// The reader's side of the barrier, between storing a hazard and reading the state it guards.
#[inline]
fn light_barrier() {
    if asymmetric() {
        compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

/// The writer's side: after changing a state, before reading hazards.
pub(crate) fn heavy_barrier() {
    if !(asymmetric() && sys::barrier()) {
        fence(Ordering::SeqCst);
    }
}

/// A hazard slot in use by this thread; dropping it clears the slot.
pub(crate) struct Hazard {
    slot: &'static AtomicUsize,
}

impl Hazard {
    /// Publishes `ix` as in use by this thread and fences, so that a state read after this either
    /// sees an unregister that ran before, or that unregister sees this hazard.
    #[inline]
    pub(crate) fn protect(ix: usize) -> Option<Hazard> {
        let slot = LOCAL.with(|l| {
            let d = l.depth.get();
            if d == DEPTH {
                return None;
            }
            let mut r = l.rec.get();
            if r.is_null() {
                r = first_record()?;
                l.rec.set(r);
            }
            l.depth.set(d + 1);
            // SAFETY: records are never freed; this thread owns `r`.
            Some(unsafe { &(*r).slots[d] })
        })?;
        slot.store(ix + 1, Ordering::Relaxed);
        light_barrier();
        Some(Hazard { slot })
    }
}

impl Drop for Hazard {
    #[inline]
    fn drop(&mut self) {
        self.slot.store(0, Ordering::Release);
        LOCAL.with(|l| l.depth.set(l.depth.get() - 1));
        light_barrier();
    }
}

/// Reports whether any thread has `ix` in a hazard slot. Call after a barrier.
pub(crate) fn protected(ix: usize) -> bool {
    let mut r = HEAD.load(Ordering::Acquire).cast_const();
    while !r.is_null() {
        // SAFETY: records are never freed.
        let rec = unsafe { &*r };
        if rec.slots.iter().any(|s| s.load(Ordering::Relaxed) == ix + 1) {
            return true;
        }
        r = rec.next;
    }
    false
}

fn acquire_record() -> *const Record {
    let mut r = HEAD.load(Ordering::Acquire).cast_const();
    while !r.is_null() {
        // SAFETY: records are never freed.
        let rec = unsafe { &*r };
        if !rec.in_use.load(Ordering::Relaxed)
            && rec.in_use.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok()
        {
            return r;
        }
        r = rec.next;
    }
    let fresh = Box::into_raw(Box::new(Record {
        slots: [const { AtomicUsize::new(0) }; DEPTH],
        in_use: AtomicBool::new(true),
        next: ptr::null(),
    }));
    let mut head = HEAD.load(Ordering::Relaxed);
    loop {
        // SAFETY: `fresh` is not published yet; this thread owns it.
        unsafe { (*fresh).next = head };
        match HEAD.compare_exchange_weak(head, fresh, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return fresh,
            Err(h) => head = h,
        }
    }
}
