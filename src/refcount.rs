//! The reference count of a [`crate::BufferRef`]'s block, on its own so that the model checker runs
//! it (`tests/loom_model`): `Arc`'s protocol, through the sync facade.

use crate::sync::{fence, AtomicUsize, Ordering};

/// A reference count with `Arc`'s protocol, and one shortcut: the holder of the only reference
/// gives it up with a plain load, no read-modify-write (nobody else can take a reference then,
/// since taking one needs one).
pub struct RefCount(AtomicUsize);

impl RefCount {
    /// A count of one.
    pub fn one() -> RefCount {
        RefCount(AtomicUsize::new(1))
    }

    /// Takes one more reference (the caller holds one).
    #[inline]
    pub fn acquire(&self) {
        if self.0.fetch_add(1, Ordering::Relaxed) > isize::MAX as usize {
            std::process::abort(); // as Arc does: billions of references means a leak loop
        }
    }

    /// Gives one reference up; true when it was the last, and the caller must free what it counts.
    #[inline]
    pub fn release(&self) -> bool {
        if self.0.load(Ordering::Acquire) == 1 {
            return true;
        }
        if self.0.fetch_sub(1, Ordering::Release) != 1 {
            return false;
        }
        fence(Ordering::Acquire);
        true
    }

    /// Reports whether the caller's reference is the only one.
    pub fn is_unique(&self) -> bool {
        self.0.load(Ordering::Acquire) == 1
    }
}
