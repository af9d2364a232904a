//! The callback registry: generational ids over `Arc`ed callbacks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::handles::Handles;
use super::{catch, CallError, Payload};

type Func = dyn Fn(Payload) -> Result<Payload, CallError> + Send + Sync;

/// Counts callbacks alive; decremented after the callback (and so its drop hook) is dropped.
struct AliveToken;

static ALIVE: AtomicUsize = AtomicUsize::new(0);

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

struct Entry {
    // Field order matters: `f` (whose drop is the foreign drop hook) goes before the token.
    f: Box<Func>,
    _alive: AliveToken,
}

/// A registered callback, held by an `Arc`. Holding one keeps the callback alive (its drop hook
/// does not run) even after [`unregister`]; the hook runs when the last holder drops it.
#[derive(Clone)]
pub struct Callback(Arc<Entry>);

impl Callback {
    /// Calls the callback on this thread. A panic in it becomes [`CallError::CallbackPanic`]`(0)`.
    pub fn call(&self, p: Payload) -> Result<Payload, CallError> {
        catch(CallError::CallbackPanic(0), || (self.0.f)(p))
    }
}

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Callback")
    }
}

/// Handle kind 0xC: callbacks.
static REGISTRY: Handles<Callback> = Handles::new(0xC);

/// Registers `f` and returns its id (never 0).
///
/// `f` is dropped exactly once, when Rust lets go of it: at [`unregister`], or after it if a call or
/// queued job still holds it. A drop hook for foreign state goes in the `Drop` of what `f` captures.
/// It may run on any thread, never under a ferry lock. Errors: `Ferry(TableFull)`.
pub fn register(
    f: impl Fn(Payload) -> Result<Payload, CallError> + Send + Sync + 'static,
) -> Result<u64, CallError> {
    let cb = Callback(Arc::new(Entry { f: Box::new(f), _alive: AliveToken::new() }));
    Ok(REGISTRY.insert(cb)?)
}

/// Unregisters `id`. The id is invalid from now on; the callback is dropped here, on this thread,
/// unless a running call or queued job still holds it, in which case the last of them drops it.
/// Errors: `Ferry(InvalidHandle)` for an unknown or already unregistered id.
pub fn unregister(id: u64) -> Result<(), CallError> {
    let cb = REGISTRY.remove(id)?;
    drop(cb); // after the shard lock is gone: the drop hook may call into Go
    Ok(())
}

/// The callback `id` names, held: it stays alive until the returned value is dropped.
pub fn get(id: u64) -> Result<Callback, CallError> {
    Ok(REGISTRY.get(id)?)
}

/// Calls the callback `id` on this thread with `p` and returns its result.
///
/// The callback is cloned out of the registry and no lock is held while it runs, so it may call
/// ferry again (even unregister itself). On success the returned payload's buffer id belongs to the
/// caller. Errors: `Ferry(InvalidHandle)` (unknown or stale id), `Failed`, `CallbackPanic`.
pub fn invoke(id: u64, p: Payload) -> Result<Payload, CallError> {
    get(id)?.call(p)
}

pub(crate) fn registered() -> usize {
    REGISTRY.live()
}

pub(crate) fn alive() -> usize {
    ALIVE.load(Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

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
        unregister(id).unwrap();
        assert_eq!(invoke(id, Payload::default()), Err(CallError::Ferry(crate::Error::InvalidHandle)));
        assert_eq!(unregister(id), Err(CallError::Ferry(crate::Error::InvalidHandle)));
        assert!(!dropped.load(Ordering::SeqCst), "a holder still has it");
        assert_eq!(held.call(Payload { buffer: 0, value: 5 }).unwrap().value, 6);
        drop(held);
        assert!(dropped.load(Ordering::SeqCst));
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
        let slot = Arc::new(std::sync::atomic::AtomicU64::new(0));
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
}
