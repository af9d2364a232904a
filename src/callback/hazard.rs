//! Hazard slots with asymmetric fences: how a sync invoke protects a callback with no atomic
//! read-modify-write at all.
//!
//! A thread about to call a callback writes the callback's slot number into one of its own hazard
//! slots and then reads the callback's state ([`light_barrier`] between the two); a thread that
//! unregisters clears the state's REGISTERED bit and then reads every hazard slot ([`heavy_barrier`]
//! between the two). That is Dekker's pattern: with a full fence on both sides, either the reader
//! sees the bit cleared, or the writer sees the hazard.
//!
//! # Barriers
//!
//! Readers are hot and writers rare, so on Linux the reader's side is only a compiler fence and the
//! writer makes every thread of the process run a full barrier with
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`. For every pair of a light and a heavy barrier,
//! that gives exactly what two `fence(SeqCst)` give; it gives nothing for a light barrier paired
//! with a plain fence. So **every** path that reads hazard slots to decide whether memory may be
//! freed runs [`heavy_barrier`] first, including the reclaim by the last reader or holder to leave.
//! Where `membarrier` cannot be registered (not Linux, old kernels, valgrind, or
//! `FERRY_NO_MEMBARRIER` set), both sides use `fence(SeqCst)` ("symmetric" mode) and
//! [`heavy_barrier`] always succeeds.
//!
//! A `membarrier` call can still fail after registration succeeded (a seccomp filter installed
//! later, ENOMEM). Then, on x86-64 Linux, the writer falls back to changing the protection of a page
//! of its own, which makes the kernel interrupt every CPU that runs a thread of the process to flush
//! its TLB (the fallback .NET and Folly use). If that fails too, [`heavy_barrier`] returns false and
//! the caller must not free anything that a hazard could protect: the registry parks the slot and
//! frees it after a later barrier succeeds. A failed barrier can delay a drop hook; it can never
//! free a callback that a reader is about to call.
//!
//! The model checker (`tests/loom_model`) runs this code with both barriers as `fence(SeqCst)`
//! (membarrier's guarantee for each light/heavy pair) and, separately, with barriers that fail.
//!
//! # Records
//!
//! Each thread owns a record of [`DEPTH`] hazard slots (nested invokes, when a callback invokes
//! another, take the next one; deeper nesting falls back to a counted hold). Records are linked in
//! a list that is never freed, and reused after their thread exits. A thread gives its record back
//! through a `pthread` key destructor, not a Rust thread-local destructor: a thread whose first use
//! of ferry comes from a destructor of its own (a C thread's key destructor calling ferry, say) is
//! past the point where Rust runs thread-local destructors, and a destructor registered then would
//! leak its registration and never run.

use std::cell::Cell;
use std::ptr;

use crate::sync::{fence, global, loom_const_fn, AtomicBool, AtomicPtr, AtomicUsize, Ordering};

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
// SAFETY: as above; a record is only ever shared, never moved between threads by value.
unsafe impl Send for Record {}

/// The list of records. One per process (one per model execution under loom).
struct Domain {
    head: AtomicPtr<Record>,
}

impl Domain {
    loom_const_fn! {
        fn new() -> Domain {
            Domain { head: AtomicPtr::new(ptr::null_mut()) }
        }
    }
}

#[cfg(loom)]
impl Drop for Domain {
    fn drop(&mut self) {
        // Each model execution makes its own domain: free its records so loom sees no leak.
        let mut r = self.head.load(Ordering::Relaxed);
        while !r.is_null() {
            // SAFETY: the domain is being dropped, so no thread uses its records any more; each was
            // made by Box::into_raw in `acquire_record`.
            let rec = unsafe { Box::from_raw(r) };
            r = rec.next.cast_mut();
        }
    }
}

global! {
    static DOMAIN: Domain = Domain::new();
}

/// This thread's record and how many of its slots are in use.
struct Local {
    rec: Cell<*const Record>,
    depth: Cell<usize>,
}

#[cfg(not(loom))]
thread_local! {
    // No destructor: a plain load, usable from any thread at any time, exiting threads included.
    static LOCAL: Local = const { Local { rec: Cell::new(ptr::null()), depth: Cell::new(0) } };
}

#[cfg(loom)]
loom::thread_local! {
    static LOCAL: Local = Local { rec: Cell::new(ptr::null()), depth: Cell::new(0) };
}

/// Gives a thread's record back when the thread exits (see the module docs).
#[cfg(all(unix, not(loom)))]
mod exit {
    use std::sync::OnceLock;

    use super::Record;
    use crate::sync::Ordering;

    static KEY: OnceLock<Option<libc::pthread_key_t>> = OnceLock::new();

    unsafe extern "C" fn give_back(rec: *mut libc::c_void) {
        let _ = super::LOCAL.try_with(|l| l.rec.set(std::ptr::null()));
        // SAFETY: records are never freed, and `rec` is the record this thread registered.
        unsafe { (*rec.cast::<Record>()).in_use.store(false, Ordering::Release) };
    }

    /// Arranges for `rec` to be given back when this thread exits; false if that cannot be done.
    pub(super) fn on_exit(rec: *const Record) -> bool {
        let key = KEY.get_or_init(|| {
            let mut k: libc::pthread_key_t = 0;
            // SAFETY: `k` is a valid out-parameter and `give_back` has the destructor signature.
            (unsafe { libc::pthread_key_create(&mut k, Some(give_back)) } == 0).then_some(k)
        });
        match key {
            // SAFETY: a key this process created; setting it needs no allocation for early keys,
            // and is allowed while the thread runs key destructors (they run again for it).
            Some(k) => unsafe { libc::pthread_setspecific(*k, rec.cast()) == 0 },
            None => false,
        }
    }
}

/// Elsewhere a record is kept by its thread for good (never reused). Only Unix is built today.
#[cfg(any(not(unix), loom))]
mod exit {
    pub(super) fn on_exit(_: *const super::Record) -> bool {
        true
    }
}

/// Takes a record for this thread, or None if it cannot be given back at exit.
#[cold]
fn first_record() -> Option<*const Record> {
    let r = acquire_record();
    if !exit::on_exit(r) {
        // SAFETY: records are never freed (while their domain lives); nobody else has this one.
        unsafe { (*r).in_use.store(false, Ordering::Release) };
        return None;
    }
    Some(r)
}

fn acquire_record() -> *const Record {
    let mut r = DOMAIN.head.load(Ordering::Acquire).cast_const();
    while !r.is_null() {
        // SAFETY: records are never freed while their domain lives.
        let rec = unsafe { &*r };
        if !rec.in_use.load(Ordering::Relaxed)
            && rec.in_use.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok()
        {
            return r;
        }
        r = rec.next;
    }
    let fresh = Box::into_raw(Box::new(Record {
        slots: std::array::from_fn(|_| AtomicUsize::new(0)),
        in_use: AtomicBool::new(true),
        next: ptr::null(),
    }));
    let mut head = DOMAIN.head.load(Ordering::Relaxed);
    loop {
        // SAFETY: `fresh` is not published yet; this thread owns it.
        unsafe { (*fresh).next = head };
        match DOMAIN.head.compare_exchange(head, fresh, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return fresh,
            Err(h) => head = h,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(loom, allow(dead_code))]
enum Mode {
    /// `membarrier` does the writer's side; readers only stop the compiler.
    Asymmetric,
    /// Both sides use `fence(SeqCst)`.
    Symmetric,
}

#[cfg(not(loom))]
mod mode {
    use std::sync::OnceLock;

    use super::Mode;

    /// Decided once, before any hazard is used, and never changed.
    static MODE: OnceLock<Mode> = OnceLock::new();

    #[inline]
    pub(super) fn get() -> Mode {
        match MODE.get() {
            Some(&m) => m,
            None => *MODE.get_or_init(|| {
                if std::env::var_os("FERRY_NO_MEMBARRIER").is_none() && super::sys::register() {
                    Mode::Asymmetric
                } else {
                    Mode::Symmetric
                }
            }),
        }
    }
}

#[cfg(loom)]
mod mode {
    use super::Mode;

    pub(super) fn get() -> Mode {
        Mode::Asymmetric
    }
}

/// Under loom: barriers that fail (light ones do nothing, heavy ones report failure), to check that
/// the registry frees nothing a reader could still use when the system gives it no barrier.
#[cfg(loom)]
pub static FAILING_BARRIERS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[cfg(loom)]
fn failing() -> bool {
    FAILING_BARRIERS.load(std::sync::atomic::Ordering::Relaxed)
}

#[cfg(target_os = "linux")]
#[cfg_attr(loom, allow(dead_code))]
mod sys {
    const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

    /// Registers the process for private expedited membarriers; false if the kernel refuses.
    pub(super) fn register() -> bool {
        // SAFETY: membarrier takes two integer arguments and touches no memory of ours.
        unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0) == 0 }
    }

    /// Runs a full memory barrier on every running thread of the process.
    pub(super) fn membarrier() -> bool {
        if super::inject::membarrier_fails() {
            return false;
        }
        // SAFETY: as above.
        unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0) == 0 }
    }

    /// The fallback when membarrier fails: downgrading the protection of a page this process has
    /// touched makes the kernel shoot down its TLB entries on every CPU that runs one of the
    /// process's threads, with an interrupt that serialises each of them (x86-64 only: other
    /// architectures invalidate TLBs without interrupting the other CPUs).
    #[cfg(target_arch = "x86_64")]
    pub(super) fn tlb_shootdown() -> bool {
        use std::sync::OnceLock;

        static PAGE: OnceLock<Option<usize>> = OnceLock::new();
        static SERIAL: parking_lot::Mutex<()> = parking_lot::const_mutex(());
        if super::inject::shootdown_fails() {
            return false;
        }
        // SAFETY: sysconf has no preconditions.
        let len = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let Some(page) = *PAGE.get_or_init(|| {
            // SAFETY: a fresh anonymous private mapping at an address of the kernel's choosing.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            (p != libc::MAP_FAILED).then_some(p as usize)
        }) else {
            return false;
        };
        let _serial = SERIAL.lock();
        let p = page as *mut libc::c_void;
        // SAFETY: `p..p+len` is the page mapped above, only ever touched here, under SERIAL: made
        // writable, dirtied so that it is mapped, then made read-only again (the downgrade is what
        // forces the shootdown).
        unsafe {
            libc::mprotect(p, len, libc::PROT_READ | libc::PROT_WRITE) == 0 && {
                std::ptr::write_volatile(p.cast::<u8>(), 1);
                libc::mprotect(p, len, libc::PROT_READ) == 0
            }
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub(super) fn tlb_shootdown() -> bool {
        false
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    pub(super) fn register() -> bool {
        false
    }
    pub(super) fn membarrier() -> bool {
        false
    }
    pub(super) fn tlb_shootdown() -> bool {
        false
    }
}

/// Failure injection for the heavy barrier's system calls (the `fault-injection` feature, for
/// tests; a normal build never fails them on purpose).
pub(crate) mod inject {
    use std::sync::atomic::{AtomicU8, Ordering};

    /// 0: nothing fails; 1: membarrier fails; 2: membarrier and the TLB shootdown both fail.
    static LEVEL: AtomicU8 = AtomicU8::new(0);

    #[allow(dead_code)]
    pub(crate) fn set(level: u8) {
        LEVEL.store(level, Ordering::SeqCst);
    }

    #[allow(dead_code)]
    pub(super) fn membarrier_fails() -> bool {
        cfg!(feature = "fault-injection") && LEVEL.load(Ordering::Relaxed) >= 1
    }

    #[allow(dead_code)]
    pub(super) fn shootdown_fails() -> bool {
        cfg!(feature = "fault-injection") && LEVEL.load(Ordering::Relaxed) >= 2
    }
}

/// Reports whether the heavy barrier relies on membarrier (for tests and stats).
#[allow(dead_code)]
pub(crate) fn asymmetric() -> bool {
    mode::get() == Mode::Asymmetric
}

/// The reader's side of the barrier, between storing a hazard and reading the state it guards.
#[cfg(not(loom))]
#[inline]
fn light_barrier() {
    match mode::get() {
        Mode::Asymmetric => crate::sync::compiler_fence(Ordering::SeqCst),
        Mode::Symmetric => fence(Ordering::SeqCst),
    }
}

/// The writer's side: after changing a state, before reading hazards to decide whether to free.
/// Returns false when no barrier could be made (see the module docs): the caller must then not
/// free anything a hazard may protect.
#[cfg(not(loom))]
pub(crate) fn heavy_barrier() -> bool {
    fence(Ordering::SeqCst);
    match mode::get() {
        Mode::Symmetric => true,
        Mode::Asymmetric => sys::membarrier() || sys::tlb_shootdown(),
    }
}

// Under loom, the asymmetric pair is modelled exactly: a light and a heavy barrier are two
// read-modify-writes of one location, which order each other both ways (as a light barrier and a
// membarrier do), while a plain `fence` anywhere else does *not* pair with a light barrier (as
// with membarrier, where a light barrier is only a compiler fence). So the model catches a reclaim
// path that relies on a plain fence.
#[cfg(loom)]
global! {
    static BARRIER: AtomicUsize = AtomicUsize::new(0);
}

#[cfg(loom)]
fn light_barrier() {
    if !failing() {
        BARRIER.fetch_add(0, Ordering::AcqRel);
    }
}

#[cfg(loom)]
pub(crate) fn heavy_barrier() -> bool {
    fence(Ordering::SeqCst);
    if failing() {
        return false;
    }
    BARRIER.fetch_add(1, Ordering::AcqRel);
    true
}

/// A hazard slot in use by this thread; dropping it clears the slot.
pub(crate) struct Hazard {
    slot: &'static AtomicUsize,
    /// The thread's depth with this hazard taken.
    depth: usize,
}

impl Hazard {
    /// Publishes `ix` as in use by this thread and fences, so that a state read after this either
    /// sees an unregister that ran before, or that unregister sees this hazard. None when the
    /// thread has no free hazard slot (deep nesting) or no record.
    #[inline]
    pub(crate) fn protect(ix: usize) -> Option<Hazard> {
        let (slot, depth) = LOCAL.with(|l| {
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
            // SAFETY: records are never freed while their domain lives; this thread owns `r`.
            Some((unsafe { &(*r).slots[d] }, d + 1))
        })?;
        slot.store(ix + 1, Ordering::Relaxed);
        light_barrier();
        Some(Hazard { slot, depth })
    }

    /// Reports whether another invoke on this thread is running under this one (a callback that
    /// invokes a callback).
    #[inline]
    pub(crate) fn nested(&self) -> bool {
        self.depth > 1
    }
}

impl Drop for Hazard {
    #[inline]
    fn drop(&mut self) {
        // After `abandon_thread` (which breaks its contract if this frame runs again) the slot
        // and the depth belong to whoever comes next: leave them alone.
        LOCAL.with(|l| {
            if l.depth.get() == self.depth {
                self.slot.store(0, Ordering::Release);
                l.depth.set(self.depth - 1);
            }
        });
        light_barrier();
    }
}

/// Clears every hazard this thread holds, for calls whose frames will never be returned to (see
/// `super::frames`), and calls `f` with the slot each one protected.
#[cfg(not(loom))]
pub(crate) fn abandon_thread(mut f: impl FnMut(usize)) {
    let Ok((r, d)) = LOCAL.try_with(|l| (l.rec.get(), l.depth.replace(0))) else {
        return;
    };
    if r.is_null() {
        return;
    }
    // SAFETY: records are never freed while their domain lives; this thread owns `r`.
    let rec = unsafe { &*r };
    for s in rec.slots[..d].iter().rev() {
        let v = s.swap(0, Ordering::Release);
        if v != 0 {
            f(v - 1);
        }
    }
    light_barrier();
}

/// This thread's depth of nested invokes holding a hazard, for tests.
#[cfg(all(test, not(loom)))]
pub(crate) fn depth() -> usize {
    LOCAL.with(|l| l.depth.get())
}

/// Reports whether any thread has `ix` in a hazard slot. Call after [`heavy_barrier`] succeeded.
pub(crate) fn protected(ix: usize) -> bool {
    let mut r = DOMAIN.head.load(Ordering::Acquire).cast_const();
    while !r.is_null() {
        // SAFETY: records are never freed while their domain lives.
        let rec = unsafe { &*r };
        // Acquire: a reader clears its hazard with a release store after its last use of the
        // callback, so seeing the slot clear means that use happened before any free that follows.
        if rec.slots.iter().any(|s| s.load(Ordering::Acquire) == ix + 1) {
            return true;
        }
        r = rec.next;
    }
    false
}

/// How many records exist and how many are in use, for tests.
#[cfg(all(test, not(loom)))]
pub(crate) fn record_counts() -> (usize, usize) {
    let (mut total, mut used) = (0, 0);
    let mut r = DOMAIN.head.load(Ordering::Acquire).cast_const();
    while !r.is_null() {
        // SAFETY: records are never freed.
        let rec = unsafe { &*r };
        total += 1;
        used += usize::from(rec.in_use.load(Ordering::Relaxed));
        r = rec.next;
    }
    (total, used)
}

#[cfg(all(test, unix, not(loom)))]
mod tests {
    use super::*;

    unsafe extern "C" fn first_use_while_exiting(_: *mut libc::c_void) {
        // A thread's first hazard, taken in a pthread key destructor: after Rust's thread-local
        // destructors have run.
        let h = Hazard::protect(123_456);
        assert!(h.is_some());
    }

    /// On ferry before issue 9 each such thread kept its record in use for ever (and leaked the
    /// registration of a Rust thread-local destructor that never ran), so every thread made a new
    /// record.
    #[test]
    fn threads_that_first_use_a_hazard_while_exiting_give_their_record_back() {
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: a valid out-parameter and a destructor with the right signature.
        assert_eq!(unsafe { libc::pthread_key_create(&mut key, Some(first_use_while_exiting)) }, 0);
        let (before, _) = record_counts();
        for _ in 0..50 {
            std::thread::spawn(move || {
                // SAFETY: a key this test created; any non-null value arms its destructor.
                unsafe { libc::pthread_setspecific(key, 1 as *const libc::c_void) };
            })
            .join()
            .unwrap();
        }
        let (after, _) = record_counts();
        // Other tests run in parallel and take records of their own; 50 threads that each kept
        // theirs would add 50.
        assert!(after - before < 10, "{} records made by 50 exiting threads", after - before);
        // SAFETY: no thread uses the key any more.
        unsafe { libc::pthread_key_delete(key) };
    }
}
