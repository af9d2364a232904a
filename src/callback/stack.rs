//! How much stack the calling thread has left, so that a chain of callbacks nested too deeply fails
//! with [`CallError::NestedTooDeep`](super::CallError::NestedTooDeep) instead of overflowing the
//! stack (a worker's stack cannot grow, and a Go callback that invokes a callback that invokes a
//! callback... spends some of it on every crossing).
//!
//! A thread's stack bounds are read once, with `pthread_getattr_np`, and cached in a thread-local
//! without a destructor. A call is refused when less than [`headroom`] is left below the current
//! frame: 32 KiB, or a quarter of the stack for stacks under 128 KiB (ferry's smallest worker stack,
//! 64 KiB, keeps 16 KiB).

use std::cell::Cell;

thread_local! {
    /// (lowest usable address, highest address, headroom); (0, 0, 0) before the first look,
    /// (1, usize::MAX, 0) when unknown.
    static BOUNDS: Cell<(usize, usize, usize)> = const { Cell::new((0, 0, 0)) };
}

const UNKNOWN: (usize, usize, usize) = (1, usize::MAX, 0);

/// The stack kept free below the deepest callback frame, for a stack of `size` bytes.
pub(crate) fn headroom(size: usize) -> usize {
    (32usize << 10).min(size / 4)
}

#[cfg(target_os = "linux")]
fn bounds() -> Option<(usize, usize, usize)> {
    // SAFETY: pthread_attr_t is plain data that pthread_getattr_np fills in; it is destroyed after
    // use, and the out-parameters are valid locals.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let (mut addr, mut size) = (std::ptr::null_mut(), 0usize);
        let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        (ok && !addr.is_null()).then(|| (addr as usize, addr as usize + size, headroom(size)))
    }
}

#[cfg(not(target_os = "linux"))]
fn bounds() -> Option<(usize, usize, usize)> {
    None
}

/// Reports whether this thread has room for one more callback: false when the stack left below
/// the caller's frame is under the headroom. Where the bounds cannot be read, or the stack pointer
/// is not within them (a stack the thread switched to), always true.
#[inline(always)]
pub(crate) fn room() -> bool {
    let sp = stack_pointer();
    // A const thread-local without a destructor: one load, and never gone, even in an exiting thread.
    let (low, high, keep) = BOUNDS.with(Cell::get);
    if low == 0 {
        return first_look(sp);
    }
    fits(sp, (low, high, keep))
}

#[inline(always)]
fn fits(sp: usize, (low, high, keep): (usize, usize, usize)) -> bool {
    !(low..high).contains(&sp) || sp - low >= keep
}

/// The stack pointer. Read from the register where the architecture is known: the address of a
/// local is not it under AddressSanitizer, which may put locals on a "fake stack" on the heap.
#[inline(always)]
fn stack_pointer() -> usize {
    let sp: usize;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: reads the stack pointer register into a general register; no memory, stack or flags.
    unsafe {
        std::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags));
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above.
    unsafe {
        std::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags));
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let here = 0u8;
        sp = std::ptr::addr_of!(here) as usize;
    }
    sp
}

#[cold]
fn first_look(sp: usize) -> bool {
    let b = bounds().unwrap_or(UNKNOWN);
    BOUNDS.with(|c| c.set(b));
    fits(sp, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_knows_its_stack_and_recursion_runs_out_of_room() {
        fn depth(n: usize) -> usize {
            let pad = [0u8; 1024];
            std::hint::black_box(&pad);
            if room() {
                depth(n + 1)
            } else {
                n
            }
        }
        let n = std::thread::Builder::new().stack_size(256 << 10).spawn(|| depth(0)).unwrap().join().unwrap();
        // 256 KiB less 32 KiB of headroom, at a bit over 1 KiB a frame.
        assert!((100..240).contains(&n), "{n} frames");
        assert_eq!(headroom(64 << 10), 16 << 10);
        assert_eq!(headroom(8 << 20), 32 << 10);
    }
}
