//! The callback registry when its heavy barrier fails (issue 9, defect 4): `membarrier` failing
//! after it was registered (a seccomp filter installed later returns EPERM), and no barrier at all.
//! Built with `--features fault-injection` (`make rel-fault`); one test, because the failures it
//! injects are process-wide and the seccomp filter cannot be removed.
#![cfg(feature = "fault-injection")]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use ferry::callback::{self, barrier_injection as inject, Payload};

/// A callback's captured state: it must never be called after its drop hook ran.
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

fn make(drops: &Arc<AtomicU64>) -> u64 {
    let c = Canary { dead: AtomicBool::new(false), drops: drops.clone() };
    callback::register(move |p| {
        assert!(!c.dead.load(Ordering::SeqCst), "called after its drop hook");
        Ok(p)
    })
    .unwrap()
}

/// Three threads invoke at random while this one replaces callbacks; every callback is dropped
/// exactly once and never called after that.
fn race(rounds: usize) {
    const SLOTS: usize = 32;
    let drops = Arc::new(AtomicU64::new(0));
    let ids: Arc<Vec<AtomicU64>> = Arc::new((0..SLOTS).map(|_| AtomicU64::new(make(&drops))).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..3)
        .map(|t| {
            let (ids, stop) = (ids.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    let _ = callback::invoke(ids[i % SLOTS].load(Ordering::Relaxed), Payload::default());
                    i = i.wrapping_mul(31).wrapping_add(17);
                }
            })
        })
        .collect();
    for r in 0..rounds {
        let old = ids[r % SLOTS].swap(make(&drops), Ordering::SeqCst);
        callback::unregister(old).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    callers.into_iter().for_each(|c| c.join().unwrap());
    for id in ids.iter() {
        callback::unregister(id.load(Ordering::SeqCst)).unwrap();
    }
    assert_eq!(drops.load(Ordering::SeqCst), (rounds + SLOTS) as u64);
}

/// Installs a seccomp filter that makes every `membarrier` call fail with EPERM from now on.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn forbid_membarrier() -> bool {
    use libc::{sock_filter, sock_fprog};
    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    let stmt = |code: u16, k: u32| sock_filter { code, jt: 0, jf: 0, k };
    let jeq = |k: u32, jt: u8, jf: u8| sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let ld = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    let ret = (libc::BPF_RET | libc::BPF_K) as u16;
    let filter = [
        stmt(ld, 4), // seccomp_data.arch
        jeq(AUDIT_ARCH_X86_64, 1, 0),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
        stmt(ld, 0), // seccomp_data.nr
        jeq(libc::SYS_membarrier as u32, 0, 1),
        stmt(ret, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = sock_fprog { len: filter.len() as u16, filter: filter.as_ptr().cast_mut() };
    // SAFETY: prctl with integer arguments, then with a pointer to a filter that outlives the call.
    unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
            && libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const sock_fprog) == 0
    }
}

#[test]
fn a_failing_heavy_barrier_never_frees_a_callback_in_use() {
    // Warm up: the barrier mode is decided at first use.
    race(200);
    let asymmetric = inject::asymmetric();
    eprintln!("membarrier registered: {asymmetric}");

    // membarrier fails: the fallback barrier serves instead.
    inject::set(1);
    race(2000);
    assert_eq!(inject::parked(), 0, "the fallback barrier freed everything");

    // Every heavy barrier fails: nothing is freed, the slots are parked...
    inject::set(2);
    let drops = Arc::new(AtomicU64::new(0));
    let ids: Vec<u64> = (0..10).map(|_| make(&drops)).collect();
    for &id in &ids {
        callback::unregister(id).unwrap();
        assert!(callback::invoke(id, Payload::default()).is_err());
    }
    if asymmetric {
        assert_eq!(drops.load(Ordering::SeqCst), 0, "freed without a barrier");
        assert!(inject::parked() >= 10);
    }
    // ... until a barrier succeeds again: the next registration frees them.
    inject::set(0);
    let next = make(&drops);
    assert_eq!(drops.load(Ordering::SeqCst), 10);
    assert_eq!(inject::parked(), 0);
    callback::unregister(next).unwrap();

    // A real failure: a seccomp filter installed after first use makes membarrier return EPERM.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    if forbid_membarrier() {
        eprintln!("seccomp: membarrier now fails with EPERM");
        race(2000);
        assert_eq!(inject::parked(), 0);
    }
}
