//! The sync facade: the atomics, locks and cells that ferry's concurrent core uses.
//!
//! In a normal build they are std's atomics and `parking_lot`'s mutex (which never poisons, so a
//! panic caught at the C boundary leaves every lock usable). Built with `--cfg loom` they are
//! loom's instrumented types, so the model checker (`tests/loom_model`, `make loom`) explores every
//! interleaving of the *real* slot core, byte accounting and callback registry, not a restatement
//! of them (tokio's `src/loom/` does the same). Only the code that goes through this module is
//! checked: anything lock-free or lock-light must import from here, not from `std::sync`.
//!
//! loom's types cannot be built in a `const` context, so types that live in statics have a `const
//! fn` constructor in normal builds and a plain one under loom (see [`loom_const_fn`]).

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::sync::atomic::{
        compiler_fence, fence, AtomicBool, AtomicI64, AtomicPtr, AtomicU64, AtomicUsize, Ordering,
    };

    /// A mutex whose `lock` never fails: `parking_lot`'s, which does not poison.
    #[derive(Default)]
    pub(crate) struct Mutex<T>(parking_lot::Mutex<T>);

    pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) const fn new(v: T) -> Mutex<T> {
            Mutex(parking_lot::const_mutex(v))
        }

        #[inline]
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock()
        }
    }

    /// An `UnsafeCell` with loom's closure-based access, so the same code compiles against both.
    #[derive(Default)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(v: T) -> UnsafeCell<T> {
            UnsafeCell(std::cell::UnsafeCell::new(v))
        }

        /// Calls `f` with a shared raw pointer to the value.
        #[inline]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Calls `f` with a mutable raw pointer to the value.
        #[inline]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::cell::UnsafeCell;
    pub(crate) use loom::sync::atomic::{
        fence, AtomicBool, AtomicI64, AtomicPtr, AtomicU64, AtomicUsize, Ordering,
    };

    /// loom's mutex, with a `lock` that never fails (a poisoned lock is a failed model run).
    #[derive(Default)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(v: T) -> Mutex<T> {
            Mutex(loom::sync::Mutex::new(v))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().expect("a panic in the model poisoned a lock")
        }
    }
}

pub(crate) use imp::*;

/// Declares a function that is `const` in normal builds (so statics can use it) and plain under
/// loom (whose types have no const constructors).
macro_rules! loom_const_fn {
    ($(#[$m:meta])* $vis:vis fn $name:ident $(<$($g:ident),*>)? ($($arg:ident : $ty:ty),* $(,)?) -> $ret:ty $body:block) => {
        #[cfg(not(loom))]
        $(#[$m])* $vis const fn $name $(<$($g),*>)? ($($arg: $ty),*) -> $ret $body
        #[cfg(loom)]
        $(#[$m])* $vis fn $name $(<$($g),*>)? ($($arg: $ty),*) -> $ret $body
    };
}
pub(crate) use loom_const_fn;

/// An array of `n` values of `e`, usable inside a [`loom_const_fn`] body (`[const { e }; n]` in a
/// normal build, `std::array::from_fn` under loom).
#[cfg(not(loom))]
macro_rules! array_of {
    ($n:expr, $e:expr) => {
        [const { $e }; $n]
    };
}
#[cfg(loom)]
macro_rules! array_of {
    ($n:expr, $e:expr) => {
        std::array::from_fn(|_| $e)
    };
}
pub(crate) use array_of;

/// A private static: a plain `static` in a normal build, a `loom::lazy_static!` (made afresh for
/// each model execution) under loom. Use it through method calls (auto-deref works for both).
#[cfg(not(loom))]
macro_rules! global {
    ($(#[$m:meta])* static $name:ident : $ty:ty = $init:expr;) => {
        $(#[$m])* static $name: $ty = $init;
    };
}
#[cfg(loom)]
macro_rules! global {
    ($(#[$m:meta])* static $name:ident : $ty:ty = $init:expr;) => {
        loom::lazy_static! { $(#[$m])* static ref $name: $ty = $init; }
    };
}
pub(crate) use global;
