//! Every exported function returns only the statuses its header line names, and each status its
//! line names is a real outcome.
//!
//! - `every_listed_status_is_real_and_nothing_else_comes_back` calls every exported function with
//!   arguments chosen to produce each status its entry in `ferry::ffi::status::function_errors` lists
//!   (and OK), and fails when a call returns a status the entry does not list, or when a listed
//!   status never came back and is not in `NOT_FORCED` (the paths this test cannot reach, each with
//!   its reason).
//! - The regressions for defect 7 of issue 9, which fail on the old header lines:
//!   `ferry_async_submit` returns ALLOC_FAILED when the pool cannot start a thread, and every
//!   function that issues an id (so `ferry_buffer_slice` too) can return TABLE_FULL.
//!
//! The tests share the worker pool, the live-byte limit and guard mode, so they run one at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::raw::{c_char, c_int, c_void};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ferry::ffi::buffer::*;
use ferry::ffi::callback::*;
use ferry::ffi::region::*;
use ferry::ffi::status::{errors_of, ferry_status_message, function_errors, may_return};
use ferry::ffi::{FerryStats, FerryStatus, FerryView};
use FerryStatus as S;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every (function, status) seen, as status values.
static SEEN: Mutex<BTreeMap<&'static str, BTreeSet<u32>>> = Mutex::new(BTreeMap::new());

/// Records that `func` returned `st`, failing if its entry in function_errors does not list it.
fn rec(func: &'static str, st: FerryStatus) -> FerryStatus {
    assert!(may_return(func, st), "{func} returned {st:?}, which its entry in function_errors does not list");
    SEEN.lock().unwrap_or_else(|e| e.into_inner()).entry(func).or_default().insert(st as u32);
    st
}

/// Listed statuses this test does not force, with the reason. TABLE_FULL is left out for every
/// function that issues an id (see `table_full_reason`).
const NOT_FORCED: &[(&str, FerryStatus, &str)] = &[
    ("ferry_async_submit_batch", S::Closed, "the admission code of ferry_async_submit, forced there"),
    ("ferry_async_submit_batch", S::AllocFailed, "the admission code of ferry_async_submit, forced there"),
    ("ferry_async_submit_batch", S::WouldDeadlock, "the admission code of ferry_async_submit, forced there"),
    ("ferry_buffer_new", S::AllocFailed, "the allocator must refuse memory; no hook makes it"),
    ("ferry_buffer_copy", S::AllocFailed, "the allocator must refuse memory; no hook makes it"),
    ("ferry_queue_new_sink", S::AllocFailed, "the OS must refuse a thread of the sink's fixed 256 KiB stack"),
    ("ferry_queue_post", S::Closed, "only when a close lands between the queue lookup and the push"),
    (
        "ferry_region_create_named",
        S::PermissionDenied,
        "only when /dev/shm refuses this user a new file; a test cannot take that right away",
    ),
    ("ferry_region_recv", S::SystemError, "only when epoll_wait or poll fails on the handle's own epoll set"),
    (
        "ferry_region_serve",
        S::SystemError,
        "only when epoll_wait or poll fails on the handle's own epoll set",
    ),
];

/// Why TABLE_FULL is not forced here: a full table takes more memory than a test may use.
fn table_full_reason(func: &str) -> &'static str {
    match func {
        f if f.starts_with("ferry_buffer_") => "a buffer shard is full at 2^28 live ids (8 GiB of slots)",
        "ferry_callback_register" => "the registry is full at 2^22 callbacks",
        f if f.starts_with("ferry_region_") => {
            "the region-handle table is full at 4 x 2^24 open regions; the descriptor limit comes first"
        }
        _ => "a queue shard is full at 2^24 open queues",
    }
}

/// Functions this test binary cannot call, with the reason.
const NOT_CALLED: &[(&str, &str)] =
    &[("ferry_fault_panic_next", "exists only with the fault-injection feature (tests/fault.rs calls it)")];

fn view() -> FerryView {
    FerryView { id: 0, ptr: ptr::null_mut(), len: 0 }
}

fn release(id: u64) {
    assert_eq!(rec("ferry_buffer_release", ferry_buffer_release(id)), S::Ok);
}

unsafe extern "C" fn no_release(_: *mut c_void, _: *mut u8, _: usize) {}

/// value 0: OK with value + 1; 1: a failure; 2: a recovered panic.
unsafe extern "C" fn answer(_: *mut c_void, _: u64, value: u64, out: *mut FerryPayload) -> u32 {
    // SAFETY: ferry passes a valid, zeroed result.
    let out = unsafe { &mut *out };
    match value {
        1 => {
            out.value = 41;
            99
        }
        2 => FerryStatus::CallbackPanic as u32,
        v => {
            out.value = v + 1;
            0
        }
    }
}

unsafe extern "C" fn ignore_batch(_: *mut c_void, _: *const FerryCompletion, _: usize) {}

fn stats() -> FerryStats {
    let mut s = FerryStats::default();
    assert_eq!(ferry_stats_get(&mut s), S::Ok);
    s
}

fn cb_stats() -> FerryCallbackStats {
    let mut s = FerryCallbackStats::default();
    assert_eq!(ferry_callback_stats(&mut s), S::Ok);
    s
}

/// Takes completions off `q` until `n` have come (within 60 s), releasing their buffers.
fn drain(q: u64, n: usize) -> Vec<FerryCompletion> {
    let mut got = Vec::new();
    let mut out = [FerryCompletion::default(); 16];
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < n {
        assert!(Instant::now() < deadline, "{} of {n} completions after 60 s", got.len());
        let mut k = 0usize;
        let st = ferry_queue_wait(q, out.as_mut_ptr(), out.len(), 1_000_000_000, &mut k);
        assert_eq!(rec("ferry_queue_wait", st), S::Ok);
        for c in &out[..k] {
            if c.buffer != 0 {
                release(c.buffer);
            }
        }
        got.extend_from_slice(&out[..k]);
    }
    got
}

fn buffers() {
    let f = "ferry_buffer_new";
    let mut v = view();
    assert_eq!(rec(f, ferry_buffer_new(16, &mut v)), S::Ok);
    let id = v.id;
    rec(f, ferry_buffer_new(16, ptr::null_mut()));
    rec(f, ferry_buffer_new(ferry::MAX_LEN + 1, &mut v));

    let f = "ferry_buffer_copy";
    let data = [7u8; 16];
    let mut c = view();
    assert_eq!(rec(f, ferry_buffer_copy(data.as_ptr(), 16, &mut c)), S::Ok);
    rec(f, ferry_buffer_copy(ptr::null(), 16, &mut v));
    rec(f, ferry_buffer_copy(data.as_ptr(), ferry::MAX_LEN + 1, &mut v));
    release(c.id);

    let f = "ferry_buffer_adopt";
    let mut mem = [1u8; 32];
    let mut a = view();
    let p = mem.as_mut_ptr();
    assert_eq!(rec(f, ferry_buffer_adopt(p, 32, Some(no_release), ptr::null_mut(), &mut a)), S::Ok);
    rec(f, ferry_buffer_adopt(ptr::null_mut(), 32, None, ptr::null_mut(), &mut v));
    rec(f, ferry_buffer_adopt(p, ferry::MAX_LEN + 1, None, ptr::null_mut(), &mut v));
    release(a.id);

    // A 1-byte limit refuses 1 MiB creates of all three kinds (an id made anyway is released, and
    // the missing LIMIT_REACHED is reported at the end).
    let mut big = vec![3u8; 1 << 20];
    assert_eq!(rec("ferry_limit_set", ferry_limit_set(1)), S::Ok);
    let refused = [
        rec("ferry_buffer_new", ferry_buffer_new(big.len(), &mut v)),
        rec("ferry_buffer_copy", ferry_buffer_copy(big.as_ptr(), big.len(), &mut v)),
        rec(
            "ferry_buffer_adopt",
            ferry_buffer_adopt(big.as_mut_ptr(), big.len(), None, ptr::null_mut(), &mut v),
        ),
    ];
    assert_eq!(rec("ferry_limit_set", ferry_limit_set(0)), S::Ok);
    for st in refused {
        if st == S::Ok {
            release(v.id);
        }
    }
    assert_eq!(rec("ferry_peak_reset", ferry_peak_reset()), S::Ok);
    // Guard mode on and off again, with no buffer made in between.
    assert_eq!(rec("ferry_guard_set", ferry_guard_set(1)), S::Ok);
    assert_eq!(rec("ferry_guard_set", ferry_guard_set(0)), S::Ok);

    let f = "ferry_buffer_view";
    rec(f, ferry_buffer_view(id, &mut v));
    rec(f, ferry_buffer_view(0, &mut v));
    rec(f, ferry_buffer_view(id, ptr::null_mut()));

    let f = "ferry_buffer_claim";
    let mut cl = view();
    assert_eq!(rec(f, ferry_buffer_claim(id, &mut cl)), S::Ok);
    assert_eq!(cl.id, id);
    assert_eq!(rec(f, ferry_buffer_claim(id, &mut v)), S::InvalidHandle, "claimed already");
    rec(f, ferry_buffer_claim(id, ptr::null_mut()));
    let f = "ferry_buffer_disclaim";
    assert_eq!(rec(f, ferry_buffer_disclaim(id)), S::Ok);
    assert_eq!(rec(f, ferry_buffer_disclaim(id)), S::InvalidHandle, "not claimed");

    let f = "ferry_buffer_share";
    let mut sh = view();
    assert_eq!(rec(f, ferry_buffer_share(id, &mut sh)), S::Ok);
    rec(f, ferry_buffer_share(u64::MAX, &mut v));
    rec(f, ferry_buffer_share(id, ptr::null_mut()));

    let f = "ferry_buffer_slice";
    let mut sl = view();
    assert_eq!(rec(f, ferry_buffer_slice(id, 2, 4, &mut sl)), S::Ok);
    rec(f, ferry_buffer_slice(0, 0, 0, &mut v));
    rec(f, ferry_buffer_slice(id, 0, 0, ptr::null_mut()));
    rec(f, ferry_buffer_slice(id, usize::MAX, 2, &mut v));
    rec(f, ferry_buffer_slice(id, 8, 9, &mut v));

    let f = "ferry_buffer_copy_out";
    let mut out = [0u8; 16];
    rec(f, ferry_buffer_copy_out(id, 0, out.as_mut_ptr(), 16));
    rec(f, ferry_buffer_copy_out(0, 0, out.as_mut_ptr(), 1));
    rec(f, ferry_buffer_copy_out(id, 0, ptr::null_mut(), 1));
    rec(f, ferry_buffer_copy_out(id, 0, out.as_mut_ptr(), ferry::MAX_LEN + 1));
    rec(f, ferry_buffer_copy_out(id, usize::MAX, out.as_mut_ptr(), 2));
    rec(f, ferry_buffer_copy_out(id, 8, out.as_mut_ptr(), 9));

    let f = "ferry_buffer_release_many";
    let mut n = 0usize;
    rec(f, ferry_buffer_release_many(ptr::null(), 1, &mut n));
    rec(f, ferry_buffer_release_many([0u64].as_ptr(), ferry::MAX_LEN / 8 + 1, &mut n));
    assert_eq!(rec(f, ferry_buffer_release_many([sh.id, sl.id].as_ptr(), 2, &mut n)), S::Ok);
    rec(f, ferry_buffer_release_many([sh.id].as_ptr(), 1, &mut n));
    release(id);
    rec("ferry_buffer_release", ferry_buffer_release(id));

    let mut s = FerryStats::default();
    rec("ferry_stats_get", ferry_stats_get(&mut s));
    rec("ferry_stats_get", ferry_stats_get(ptr::null_mut()));

    let f = "ferry_status_message";
    let mut buf = [0 as c_char; 32];
    rec(f, ferry_status_message(1, buf.as_mut_ptr(), buf.len(), &mut n));
    rec(f, ferry_status_message(1, ptr::null_mut(), 4, &mut n));
    rec(f, ferry_status_message(FerryStatus::ALL.len() as u32, buf.as_mut_ptr(), buf.len(), &mut n));
}

/// A callback that invokes itself (its id is its user data) until ferry refuses, and passes the
/// refusal's status back as its value.
unsafe extern "C" fn recurse(ud: *mut c_void, _: u64, _: u64, out: *mut FerryPayload) -> u32 {
    let pad = [7u8; 1024];
    std::hint::black_box(&pad);
    // SAFETY: the test registers a pointer to the callback's id, which outlives every call.
    let id = unsafe { *(ud as *const u64) };
    let mut inner = FerryPayload::default();
    let st = ferry_callback_invoke(id, 0, 0, &mut inner);
    // SAFETY: ferry passes a valid result.
    unsafe { (*out).value = if st == S::Ok { inner.value } else { st as u64 } };
    0
}

fn callbacks() {
    // Nested deeper than the thread's stack allows (a 256 KiB thread): refused, never a crash.
    let me: *mut u64 = Box::into_raw(Box::new(0u64));
    let mut id = 0u64;
    assert_eq!(ferry_callback_register(Some(recurse), me.cast(), None, &mut id), S::Ok);
    // SAFETY: `me` is a live Box that nobody reads until the first call below.
    unsafe { *me = id };
    let deepest = std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || {
            let mut r = FerryPayload::default();
            assert_eq!(ferry_callback_invoke(id, 0, 0, &mut r), S::Ok);
            r.value
        })
        .unwrap()
        .join()
        .unwrap();
    let st = FerryStatus::from_u32(deepest as u32).expect("the refusal's status");
    assert_eq!(rec("ferry_callback_invoke", st), S::NestedTooDeep);
    assert_eq!(ferry_callback_unregister(id), S::Ok);
    // SAFETY: made by Box::into_raw above; the callback that read it is unregistered.
    drop(unsafe { Box::from_raw(me) });

    let f = "ferry_callback_register";
    let mut cb = 0u64;
    assert_eq!(rec(f, ferry_callback_register(Some(answer), ptr::null_mut(), None, &mut cb)), S::Ok);
    rec(f, ferry_callback_register(None, ptr::null_mut(), None, &mut 0));

    let f = "ferry_callback_invoke";
    let mut r = FerryPayload::default();
    for value in 0..3 {
        rec(f, ferry_callback_invoke(cb, 0, value, &mut r));
    }
    rec(f, ferry_callback_invoke(0, 0, 0, &mut r));

    let f = "ferry_callback_unregister";
    assert_eq!(rec(f, ferry_callback_unregister(cb)), S::Ok);
    rec(f, ferry_callback_unregister(cb));

    let mut s = FerryCallbackStats::default();
    rec("ferry_callback_stats", ferry_callback_stats(&mut s));
    rec("ferry_callback_stats", ferry_callback_stats(ptr::null_mut()));

    let f = "ferry_thread_is_worker";
    let mut w = 7u32;
    assert_eq!(rec(f, ferry_thread_is_worker(&mut w)), S::Ok);
    assert_eq!(w, 0, "the test's thread is no worker");
    rec(f, ferry_thread_is_worker(ptr::null_mut()));
    // With no ferry call in progress on this thread there is nothing to let go of.
    assert_eq!(rec("ferry_callback_abandon", ferry_callback_abandon(5)), S::Ok);
}

fn queues() {
    let f = "ferry_queue_new";
    let mut q = 0u64;
    assert_eq!(rec(f, ferry_queue_new(&mut q)), S::Ok);
    rec(f, ferry_queue_new(ptr::null_mut()));

    let f = "ferry_queue_new_sink";
    let mut sink = 0u64;
    assert_eq!(rec(f, ferry_queue_new_sink(Some(ignore_batch), ptr::null_mut(), 4, &mut sink)), S::Ok);
    rec(f, ferry_queue_new_sink(None, ptr::null_mut(), 4, &mut 0));
    rec(f, ferry_queue_new_sink(Some(ignore_batch), ptr::null_mut(), 0, &mut 0));

    let f = "ferry_queue_post";
    let ok = FerryCompletion { tag: 1, ..Default::default() };
    rec(f, ferry_queue_post(q, &ok, 1));
    rec(f, ferry_queue_post(0, &ok, 1));
    rec(f, ferry_queue_post(q, ptr::null(), 1));
    let bad = FerryCompletion { tag: 2, status: S::NullPointer as u32, ..Default::default() };
    rec(f, ferry_queue_post(q, &bad, 1));
    rec(f, ferry_queue_post(q, &ok, ferry::MAX_LEN));

    let f = "ferry_queue_wait";
    let mut out = [FerryCompletion::default(); 4];
    let mut n = 0usize;
    assert_eq!(rec(f, ferry_queue_wait(q, out.as_mut_ptr(), 4, 0, &mut n)), S::Ok);
    assert_eq!(n, 1, "the posted completion");
    rec(f, ferry_queue_wait(0, out.as_mut_ptr(), 4, 0, &mut n));
    rec(f, ferry_queue_wait(q, ptr::null_mut(), 4, 0, &mut n));
    rec(f, ferry_queue_wait(q, out.as_mut_ptr(), 0, 0, &mut n));
    rec(f, ferry_queue_wait(sink, out.as_mut_ptr(), 4, 0, &mut n));
    rec(f, ferry_queue_wait(q, out.as_mut_ptr(), ferry::MAX_LEN, 0, &mut n));

    let f = "ferry_queue_close";
    assert_eq!(rec(f, ferry_queue_close(sink)), S::Ok);
    assert_eq!(rec(f, ferry_queue_close(q)), S::Ok);
    rec(f, ferry_queue_close(q));
    let rounds = closed_while_waiting();
    println!("statuses: a wait saw CLOSED in round {rounds}");
}

/// The thread's state letter in /proc (S: asleep), or None where there is no /proc.
fn thread_state(tid: i64) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// CLOSED from ferry_queue_wait: a close while a waiter sleeps in the wait. The close must come
/// after the waiter looked the queue up (else the waiter gets INVALID_HANDLE), so the waiter's
/// thread is first seen asleep; a round that still closes too early is repeated.
fn closed_while_waiting() -> usize {
    for round in 1..=200 {
        let mut q = 0u64;
        assert_eq!(rec("ferry_queue_new", ferry_queue_new(&mut q)), S::Ok);
        let tid = AtomicU64::new(0);
        let st = std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                // SAFETY: gettid has no preconditions.
                tid.store(unsafe { libc::gettid() } as u64, Ordering::SeqCst);
                let mut out = [FerryCompletion::default(); 1];
                let mut n = 0usize;
                rec("ferry_queue_wait", ferry_queue_wait(q, out.as_mut_ptr(), 1, -1, &mut n))
            });
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let t = tid.load(Ordering::SeqCst);
                if (t != 0 && thread_state(t as i64).map_or(true, |c| c == 'S')) || Instant::now() > deadline
                {
                    break;
                }
                std::thread::yield_now();
            }
            assert_eq!(rec("ferry_queue_close", ferry_queue_close(q)), S::Ok);
            waiter.join().unwrap()
        });
        if st == S::Closed {
            return round;
        }
        assert_eq!(st, S::InvalidHandle, "a wait that lost the race to the close");
    }
    panic!("no wait saw CLOSED in 200 rounds");
}

/// Statuses that need a callback running on a worker: ferry_pool_shutdown refuses to run there
/// (it would wait for itself), and a submit made while the pool shuts down gets CLOSED.
struct OnWorker {
    q: u64,
    started: AtomicBool,
    go: AtomicBool,
    next_tag: AtomicU64,
    submitted: AtomicU64,
}

unsafe extern "C" fn on_worker(ud: *mut c_void, _: u64, _: u64, out: *mut FerryPayload) -> u32 {
    // SAFETY: the test registers a pointer to an OnWorker that outlives the job.
    let w = unsafe { &*(ud as *const OnWorker) };
    w.started.store(true, Ordering::SeqCst);
    let mut worker = 0u32;
    rec("ferry_thread_is_worker", ferry_thread_is_worker(&mut worker));
    assert_eq!(worker, 1, "a FERRY_OP_CALL job runs on a worker");
    rec("ferry_pool_shutdown", ferry_pool_shutdown());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !w.go.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::yield_now();
    }
    // The main thread is shutting the pool down now: submit until the pool says CLOSED.
    while Instant::now() < deadline {
        let tag = w.next_tag.fetch_add(1, Ordering::SeqCst);
        match rec("ferry_async_submit", ferry_async_submit(w.q, tag, FERRY_OP_ECHO, 0, 0, 0)) {
            S::Ok => {
                w.submitted.fetch_add(1, Ordering::SeqCst);
            }
            S::Closed => {
                // SAFETY: ferry passes a valid result.
                unsafe { (*out).value = 1 };
                return 0;
            }
            _ => {}
        }
        std::thread::yield_now();
    }
    99
}

/// A callback that, on a worker, submits 60 s sleeps without waiting until the pool refuses one.
struct Nest {
    q: u64,
    next_tag: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
}

unsafe extern "C" fn nest(ud: *mut c_void, _: u64, _: u64, _: *mut FerryPayload) -> u32 {
    // SAFETY: the test registers a pointer to a Nest that outlives the job.
    let n = unsafe { &*(ud as *const Nest) };
    loop {
        let tag = n.next_tag.fetch_add(1, Ordering::SeqCst);
        match ferry_async_submit(n.q, tag, FERRY_OP_SLEEP, 0, 60_000_000, 0) {
            S::Ok => n.accepted.fetch_add(1, Ordering::SeqCst),
            st => {
                n.refused.store(st as u64, Ordering::SeqCst);
                return 0;
            }
        };
    }
}

/// Work submitted on a worker while no worker is free starts extra workers, up to the pool's most
/// (one thread plus 64 extras here); one more is refused with WOULD_DEADLOCK.
fn nested_submits_until_would_deadlock() {
    assert_eq!(ferry_pool_shutdown(), S::Ok);
    assert_eq!(ferry_pool_configure(1, 1024, 0), S::Ok);
    let mut q = 0u64;
    assert_eq!(ferry_queue_new(&mut q), S::Ok);
    let n =
        Nest { q, next_tag: AtomicU64::new(1000), accepted: AtomicU64::new(0), refused: AtomicU64::new(0) };
    let mut cb = 0u64;
    assert_eq!(ferry_callback_register(Some(nest), &n as *const Nest as *mut c_void, None, &mut cb), S::Ok);
    assert_eq!(ferry_async_submit(q, 1, FERRY_OP_CALL, 0, cb, 0), S::Ok);
    let mut done = drain(q, 1);
    let refused = n.refused.load(Ordering::SeqCst) as u32;
    assert_eq!(rec("ferry_async_submit", FerryStatus::from_u32(refused).unwrap()), S::WouldDeadlock);
    let accepted = n.accepted.load(Ordering::SeqCst);
    assert_eq!(accepted, 64, "one extra worker per nested submit, 64 at most");
    for tag in 1000..1000 + accepted {
        assert_eq!(ferry_async_cancel(q, tag), S::Ok);
    }
    done.extend(drain(q, accepted as usize));
    assert!(done.iter().filter(|c| c.tag >= 1000).all(|c| c.status == S::Cancelled as u32));
    assert_eq!(ferry_callback_unregister(cb), S::Ok);
    assert_eq!(ferry_queue_close(q), S::Ok);
    assert_eq!(ferry_pool_shutdown(), S::Ok);
    assert_eq!(ferry_pool_configure(0, 0, 0), S::Ok);
}

/// ferry_async_submit_batch: each refusal stops the batch where it happens.
fn batches() {
    assert_eq!(ferry_pool_shutdown(), S::Ok);
    assert_eq!(ferry_pool_configure(1, 1, 0), S::Ok);
    let f = "ferry_async_submit_batch";
    let mut q = 0u64;
    assert_eq!(ferry_queue_new(&mut q), S::Ok);
    let job = |tag: u64, op: u32, arg: u64| FerryJob { tag, op, arg, value: tag, ..Default::default() };
    let mut n = 99usize;
    assert_eq!(rec(f, ferry_async_submit_batch(q, ptr::null(), 1, &mut n)), S::NullPointer);
    assert_eq!(rec(f, ferry_async_submit_batch(q, ptr::null(), usize::MAX, &mut n)), S::TooLarge);
    assert_eq!(rec(f, ferry_async_submit_batch(q, ptr::null(), 0, &mut n)), S::Ok);
    let echo = [job(1, FERRY_OP_ECHO, 0)];
    assert_eq!(rec(f, ferry_async_submit_batch(0, echo.as_ptr(), 1, &mut n)), S::InvalidHandle);
    assert_eq!(n, 0);
    let bad_op = [job(2, FERRY_OP_ECHO, 0), job(3, 77, 0)];
    assert_eq!(rec(f, ferry_async_submit_batch(q, bad_op.as_ptr(), 2, &mut n)), S::Unsupported);
    assert_eq!(n, 1, "the job before the unknown op was taken");
    drain(q, 1);
    let bad_arg = [job(4, FERRY_OP_SLEEP, u64::MAX)];
    assert_eq!(rec(f, ferry_async_submit_batch(q, bad_arg.as_ptr(), 1, &mut n)), S::InvalidArgument);
    // Room for one waiting job: a batch is queued under one lock, before any worker can take a
    // job of it, so the second 60 s sleep is refused.
    let sleeps = [job(10, FERRY_OP_SLEEP, 60_000_000), job(11, FERRY_OP_SLEEP, 60_000_000)];
    let st = rec(f, ferry_async_submit_batch(q, sleeps.as_ptr(), 2, &mut n));
    assert_eq!((st, n), (S::QueueFull, 1));
    assert_eq!(ferry_async_cancel(q, 10), S::Ok);
    drain(q, 1);
    assert_eq!(ferry_queue_close(q), S::Ok);
    assert_eq!(ferry_pool_shutdown(), S::Ok);
    assert_eq!(ferry_pool_configure(0, 0, 0), S::Ok);
}

fn async_work() {
    assert_eq!(rec("ferry_pool_shutdown", ferry_pool_shutdown()), S::Ok);
    let f = "ferry_pool_configure";
    rec(f, ferry_pool_configure(1000, 0, 0));
    // One worker and room for one waiting job, for QUEUE_FULL below.
    assert_eq!(rec(f, ferry_pool_configure(1, 1, 0)), S::Ok);

    let mut q = 0u64;
    assert_eq!(ferry_queue_new(&mut q), S::Ok);
    let mut v = view();
    assert_eq!(ferry_buffer_copy(b"abc".as_ptr(), 3, &mut v), S::Ok);
    let f = "ferry_async_submit";
    rec(f, ferry_async_submit(q, 1, 77, 0, 0, 0));
    rec(f, ferry_async_submit(0, 1, FERRY_OP_ECHO, 0, 0, 0));
    rec(f, ferry_async_submit(q, 1, FERRY_OP_ECHO, u64::MAX, 0, 0));
    rec(f, ferry_async_submit(q, 1, FERRY_OP_SLEEP, 0, u64::MAX, 0));
    // Two 60 s sleeps fill the worker and the queue; a third job is refused. The tag of one in
    // flight is refused too.
    let mut sleeping = Vec::new();
    for tag in 10..13 {
        match rec(f, ferry_async_submit(q, tag, FERRY_OP_SLEEP, 0, 60_000_000, 0)) {
            S::Ok => sleeping.push(tag),
            st => assert_eq!(st, S::QueueFull),
        }
    }
    assert_eq!(rec(f, ferry_async_submit(q, 10, FERRY_OP_ECHO, v.id, 0, 0)), S::InvalidArgument);
    let g = "ferry_async_cancel";
    for &tag in &sleeping {
        assert_eq!(rec(g, ferry_async_cancel(q, tag)), S::Ok);
    }
    rec(g, ferry_async_cancel(q, 999));
    drain(q, sleeping.len());
    release(v.id);

    // On a worker: shutdown refused there, then a submit racing a shutdown from here.
    let w = OnWorker {
        q,
        started: AtomicBool::new(false),
        go: AtomicBool::new(false),
        next_tag: AtomicU64::new(100),
        submitted: AtomicU64::new(0),
    };
    let mut cb = 0u64;
    let ud = &w as *const OnWorker as *mut c_void;
    assert_eq!(ferry_callback_register(Some(on_worker), ud, None, &mut cb), S::Ok);
    assert_eq!(rec(f, ferry_async_submit(q, 1, FERRY_OP_CALL, 0, cb, 0)), S::Ok);
    // Once the job runs (a job still waiting would just be closed), shut the pool down under it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !w.started.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the callback job did not start within 60 s");
        std::thread::yield_now();
    }
    w.go.store(true, Ordering::SeqCst);
    assert_eq!(rec("ferry_pool_shutdown", ferry_pool_shutdown()), S::Ok);
    let done = drain(q, 1 + w.submitted.load(Ordering::SeqCst) as usize);
    let call = done.iter().find(|c| c.tag == 1).expect("the callback job completed");
    assert_eq!((call.status, call.value), (0, 1), "the callback saw CLOSED from a submit");
    assert_eq!(ferry_callback_unregister(cb), S::Ok);
    assert_eq!(ferry_queue_close(q), S::Ok);
    assert_eq!(rec("ferry_pool_configure", ferry_pool_configure(0, 0, 0)), S::Ok);
}

/// Runs ferry_async_submit with a pool that cannot start a thread: the largest worker stack
/// ferry_pool_configure accepts (1 GiB), under an address-space limit that leaves less room than
/// that. (ferry_pool_configure itself refuses a stack larger than 1 GiB.)
fn submit_without_threads() -> FerryStatus {
    assert_eq!(ferry_pool_shutdown(), S::Ok);
    assert_eq!(ferry_pool_configure(2, 0, 1 << 50), S::InvalidArgument);
    assert_eq!(ferry_pool_configure(2, 0, 1 << 30), S::Ok);
    let mut q = 0u64;
    assert_eq!(ferry_queue_new(&mut q), S::Ok);
    let vm = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmSize:")?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()
            })
        })
        .expect("VmSize in /proc/self/status");
    let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid rlimit; only the soft limit is lowered, then restored.
    let st = unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_AS, &mut old), 0);
        let tight = libc::rlimit { rlim_cur: (vm << 10) + (256 << 20), rlim_max: old.rlim_max };
        assert_eq!(libc::setrlimit(libc::RLIMIT_AS, &tight), 0);
        let st = ferry_async_submit(q, 1, FERRY_OP_ECHO, 0, 0, 0);
        assert_eq!(libc::setrlimit(libc::RLIMIT_AS, &old), 0);
        st
    };
    let st = rec("ferry_async_submit", st);
    assert_eq!(ferry_pool_configure(0, 0, 0), S::Ok);
    if st == S::Ok {
        drain(q, 1);
    }
    assert_eq!(ferry_queue_close(q), S::Ok);
    st
}

// ---- Regions ----------------------------------------------------------------------------------

/// A small region: 2 ring entries each way (a third message is QUEUE_FULL), 64 KiB arenas.
fn small_region() -> FerryRegionConfig {
    FerryRegionConfig { ring: 2, slots: 8, arena: 1 << 16, mode: 0 }
}

fn region_view() -> FerryView {
    view()
}

fn region_count() -> u64 {
    let mut n = 0;
    assert_eq!(ferry_region_count(&mut n), S::Ok);
    n
}

fn count_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn close_region(r: u64) {
    assert_eq!(rec("ferry_region_close", ferry_region_close(r)), S::Ok);
}

/// Receives on `r` (waiting up to 5 s for each batch) until a message with `flag` comes; returns
/// the messages that came, releasing the buffers they carry.
fn recv_until(r: u64, flag: u32) -> Vec<FerryRegionMsg> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !got.iter().any(|m: &FerryRegionMsg| m.flags & flag != 0) {
        assert!(Instant::now() < deadline, "no message with flag {flag} in 60 s: {got:?}");
        let mut ms =
            [FerryRegionMsg { id: 0, ptr: ptr::null_mut(), len: 0, value: 0, corr: 0, tag: 0, flags: 0 }; 8];
        let mut n = 0usize;
        assert_eq!(rec("ferry_region_recv", ferry_region_recv(r, ms.as_mut_ptr(), 8, 5000, &mut n)), S::Ok);
        for m in &ms[..n] {
            if m.id != 0 {
                assert_eq!(rec("ferry_region_release", ferry_region_release(r, m.id)), S::Ok);
            }
        }
        got.extend_from_slice(&ms[..n]);
    }
    got
}

/// Two handles on one region in this process: the creator and the peer it shared it with over a
/// datagram socket pair (the creator has seen the peer join).
fn region_pair(cfg: &FerryRegionConfig) -> (u64, u64) {
    let (s1, s2) = UnixDatagram::pair().unwrap();
    let (mut a, mut b) = (0u64, 0u64);
    assert_eq!(rec("ferry_region_create", ferry_region_create(cfg, &mut a)), S::Ok);
    assert_eq!(rec("ferry_region_share", ferry_region_share(a, s1.as_raw_fd())), S::Ok);
    assert_eq!(
        rec("ferry_region_from_socket", ferry_region_from_socket(s2.as_raw_fd(), 5000, &mut b)),
        S::Ok
    );
    recv_until(a, FERRY_REGION_MSG_PEER_JOINED);
    (a, b)
}

/// Overwrites the shared metadata of `a`'s region (everything between the header page and the
/// first arena) with 0x55 bytes, as a hostile peer could: every ring position becomes impossible.
fn scribble(a: u64) {
    let mut v = region_view();
    assert_eq!(ferry_region_alloc(a, 64, &mut v), S::Ok);
    let (base, len) = ferry::region::get(a).unwrap().mapping();
    let arena = v.ptr as usize - base;
    assert!(arena > 4096 && arena < len, "the creator's first buffer starts its arena");
    // SAFETY: [base + 4096, base + arena) lies inside the region's live mapping, which holds only
    // words ferry reads with atomic loads and checks; the region stays open while this writes.
    unsafe { ptr::write_bytes((base + 4096) as *mut u8, 0x55, arena - 4096) };
    assert_eq!(ferry_region_release(a, v.id), S::Ok);
}

/// Runs `f` while this process may open no new descriptor (RLIMIT_NOFILE 0): every system call
/// that would make one fails with EMFILE. The tests of this file run one at a time.
fn without_descriptors<T>(f: impl FnOnce() -> T) -> T {
    let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid rlimit; only the soft limit is lowered, then restored.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut old), 0);
        assert_eq!(
            libc::setrlimit(libc::RLIMIT_NOFILE, &libc::rlimit { rlim_cur: 0, rlim_max: old.rlim_max }),
            0
        );
    }
    let out = f();
    // SAFETY: as above; restores the soft limit read before.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &old) }, 0);
    out
}

/// Receives one datagram and the descriptors it carries (SCM_RIGHTS).
fn recv_with_fds(sock: &UnixDatagram) -> (Vec<u8>, Vec<OwnedFd>) {
    let mut data = [0u8; 256];
    let mut cbuf = [0u64; 16];
    let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
    // SAFETY: a zeroed msghdr is a valid empty one; it points at live buffers for the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf);
    // SAFETY: as above.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    assert!(n >= 0, "recvmsg: {}", std::io::Error::last_os_error());
    let mut fds = Vec::new();
    // SAFETY: walks the control messages the kernel wrote into `cbuf`; each SCM_RIGHTS descriptor
    // is new and owned by nobody else.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let count =
                    ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / std::mem::size_of::<RawFd>();
                let p = libc::CMSG_DATA(c).cast::<RawFd>();
                fds.extend((0..count).map(|i| OwnedFd::from_raw_fd(p.add(i).read_unaligned())));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    (data[..n as usize].to_vec(), fds)
}

/// Sends one datagram with `fds` attached (SCM_RIGHTS).
fn send_with_fds(sock: &UnixDatagram, data: &[u8], fds: &[OwnedFd]) {
    let mut cbuf = [0u64; 16];
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let bytes = std::mem::size_of_val(raw.as_slice()) as u32;
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut c_void, iov_len: data.len() };
    // SAFETY: a zeroed msghdr is a valid empty one; it points at live buffers for the call, and
    // `cbuf` has room for one header and the descriptors (at most 8 here).
    unsafe {
        assert!(raw.len() <= 8);
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(bytes) as usize;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(bytes) as usize;
        ptr::copy_nonoverlapping(raw.as_ptr(), libc::CMSG_DATA(c).cast::<RawFd>(), raw.len());
        let n = libc::sendmsg(sock.as_raw_fd(), &msg, 0);
        assert_eq!(n, data.len() as isize, "sendmsg: {}", std::io::Error::last_os_error());
    }
}

/// A region name of this test process.
fn region_name(what: &str) -> String {
    format!("ferry-statuses-{}-{what}", std::process::id())
}

fn name_file(name: &str) -> String {
    format!("/dev/shm/{name}")
}

/// A stand-in for the creator of a named region: publishes `name` the way a creator does (its
/// name file holds "ferry-region-rendezvous-v1 TOKEN PID", TOKEN an abstract Unix address), and,
/// with `answer`, listens on the token and answers one connection with those bytes. Without, no
/// one listens (a creator that died). Returns the thread that answers.
fn fake_creator(name: &str, answer: Option<Vec<u8>>) -> Option<std::thread::JoinHandle<()>> {
    let token = format!("{name}-token");
    let content = format!("ferry-region-rendezvous-v1 {token} {}\n", std::process::id());
    let path = name_file(name);
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let answer = answer?;
    // SAFETY: plain socket calls on a descriptor this function owns; the address is a zeroed
    // sockaddr_un with the abstract name (a leading NUL) copied in, its length given exactly.
    let lis = unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let lis = OwnedFd::from_raw_fd(fd);
        let mut a: libc::sockaddr_un = std::mem::zeroed();
        a.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (d, s) in a.sun_path[1..].iter_mut().zip(token.bytes()) {
            *d = s as c_char;
        }
        let len = (std::mem::size_of::<libc::sa_family_t>() + 1 + token.len()) as libc::socklen_t;
        assert_eq!(libc::bind(fd, (&a as *const libc::sockaddr_un).cast(), len), 0);
        assert_eq!(libc::listen(fd, 4), 0);
        lis
    };
    Some(std::thread::spawn(move || {
        // SAFETY: accepts on the listener this thread owns; writes `answer` from a live buffer.
        unsafe {
            let c = libc::accept4(lis.as_raw_fd(), ptr::null_mut(), ptr::null_mut(), libc::SOCK_CLOEXEC);
            assert!(c >= 0);
            let conn = OwnedFd::from_raw_fd(c);
            let n = libc::send(conn.as_raw_fd(), answer.as_ptr().cast(), answer.len(), libc::MSG_NOSIGNAL);
            assert_eq!(n, answer.len() as isize);
        }
    }))
}

/// Opens `name` on another thread while `creator` receives (a creator accepts its peer while it
/// receives; what it receives meanwhile, events only, is dropped); returns the open's status and
/// handle.
fn open_while_receiving(creator: u64, name: &str) -> (FerryStatus, u64) {
    let name = name.to_string();
    let t = std::thread::spawn(move || {
        let mut r = 0u64;
        let st = rec("ferry_region_open", ferry_region_open(name.as_ptr(), name.len(), &mut r));
        (st, r)
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while !t.is_finished() {
        assert!(Instant::now() < deadline, "ferry_region_open did not return in 60 s");
        let mut ms =
            [FerryRegionMsg { id: 0, ptr: ptr::null_mut(), len: 0, value: 0, corr: 0, tag: 0, flags: 0 }; 4];
        let mut n = 0usize;
        assert_eq!(
            rec("ferry_region_recv", ferry_region_recv(creator, ms.as_mut_ptr(), 4, 10, &mut n)),
            S::Ok
        );
    }
    t.join().unwrap()
}

fn regions() {
    let (fds_before, regions_before) = (count_fds(), region_count());
    let cfg = small_region();
    let devnull = std::fs::File::open("/dev/null").unwrap();

    let f = "ferry_region_count";
    let mut n = 0u64;
    assert_eq!(rec(f, ferry_region_count(&mut n)), S::Ok);
    rec(f, ferry_region_count(ptr::null_mut()));

    let f = "ferry_region_create";
    let mut r = 0u64;
    assert_eq!(rec(f, ferry_region_create(ptr::null(), &mut r)), S::Ok);
    close_region(r);
    assert_eq!(rec(f, ferry_region_create(&cfg, &mut r)), S::Ok);
    let mut x = 0u64;
    rec(f, ferry_region_create(&cfg, ptr::null_mut()));
    let odd_ring = FerryRegionConfig { ring: 3, ..cfg };
    rec(f, ferry_region_create(&odd_ring, &mut x));
    assert_eq!(without_descriptors(|| rec(f, ferry_region_create(&cfg, &mut x))), S::SystemError);

    // One handle with no peer.
    let f = "ferry_region_fd";
    let mut fd: c_int = -1;
    assert_eq!(rec(f, ferry_region_fd(r, &mut fd)), S::Ok);
    rec(f, ferry_region_fd(0, &mut fd));
    rec(f, ferry_region_fd(r, ptr::null_mut()));

    let f = "ferry_region_set_spin";
    assert_eq!(rec(f, ferry_region_set_spin(r, 1000)), S::Ok);
    rec(f, ferry_region_set_spin(0, 0));
    rec(f, ferry_region_set_spin(r, 10_000_001));
    assert_eq!(rec(f, ferry_region_set_spin(r, 0)), S::Ok);

    let f = "ferry_region_stats";
    let mut st = FerryRegionStats::default();
    assert_eq!(rec(f, ferry_region_stats(r, &mut st)), S::Ok);
    rec(f, ferry_region_stats(0, &mut st));
    rec(f, ferry_region_stats(r, ptr::null_mut()));

    let f = "ferry_region_alloc";
    let mut v = region_view();
    assert_eq!(rec(f, ferry_region_alloc(r, 16, &mut v)), S::Ok);
    let mut w = region_view();
    rec(f, ferry_region_alloc(0, 16, &mut w));
    rec(f, ferry_region_alloc(r, 16, ptr::null_mut()));
    rec(f, ferry_region_alloc(r, 1 << 20, &mut w));

    let f = "ferry_region_view";
    assert_eq!(rec(f, ferry_region_view(r, v.id, &mut w)), S::Ok);
    assert_eq!((w.id, w.ptr, w.len), (v.id, v.ptr, v.len));
    rec(f, ferry_region_view(r, v.id ^ 1, &mut w));
    rec(f, ferry_region_view(r, v.id, ptr::null_mut()));

    let f = "ferry_region_send";
    rec(f, ferry_region_send(r, v.id, 1, 2, 3, 0));
    rec(f, ferry_region_send(0, 0, 1, 2, 3, 0));
    rec(f, ferry_region_send(r, 0, 1, 2, 3, 4));

    let f = "ferry_region_recv";
    let mut ms =
        [FerryRegionMsg { id: 0, ptr: ptr::null_mut(), len: 0, value: 0, corr: 0, tag: 0, flags: 0 }; 4];
    let mut got = 1usize;
    assert_eq!(rec(f, ferry_region_recv(r, ms.as_mut_ptr(), 4, 0, &mut got)), S::Ok);
    assert_eq!(got, 0);
    rec(f, ferry_region_recv(0, ms.as_mut_ptr(), 4, 0, &mut got));
    rec(f, ferry_region_recv(r, ptr::null_mut(), 4, 0, &mut got));
    rec(f, ferry_region_recv(r, ms.as_mut_ptr(), 0, 0, &mut got));

    let f = "ferry_region_release";
    assert_eq!(rec(f, ferry_region_release(r, v.id)), S::Ok);
    rec(f, ferry_region_release(r, v.id));

    let f = "ferry_region_share";
    rec(f, ferry_region_share(0, devnull.as_raw_fd()));
    rec(f, ferry_region_share(r, -1));
    rec(f, ferry_region_share(r, devnull.as_raw_fd()));

    let f = "ferry_region_from_socket";
    let (s1, s2) = UnixDatagram::pair().unwrap();
    rec(f, ferry_region_from_socket(s2.as_raw_fd(), 0, ptr::null_mut()));
    rec(f, ferry_region_from_socket(-1, 0, &mut x));
    rec(f, ferry_region_from_socket(s2.as_raw_fd(), 0, &mut x));
    rec(f, ferry_region_from_socket(devnull.as_raw_fd(), 0, &mut x));
    s1.send(&[0u8; 48]).unwrap();
    rec(f, ferry_region_from_socket(s2.as_raw_fd(), 5000, &mut x));
    // A handshake received twice: the seat it offers is taken by the first.
    assert_eq!(rec("ferry_region_share", ferry_region_share(r, s1.as_raw_fd())), S::Ok);
    let (hs, hs_fds) = recv_with_fds(&s2);
    send_with_fds(&s1, &hs, &hs_fds);
    send_with_fds(&s1, &hs, &hs_fds);
    drop(hs_fds);
    let mut p = 0u64;
    assert_eq!(rec(f, ferry_region_from_socket(s2.as_raw_fd(), 5000, &mut p)), S::Ok);
    rec(f, ferry_region_from_socket(s2.as_raw_fd(), 5000, &mut x));
    recv_until(r, FERRY_REGION_MSG_PEER_JOINED);
    // The region has its peer now.
    rec("ferry_region_share", ferry_region_share(r, s1.as_raw_fd()));
    close_region(p);
    recv_until(r, FERRY_REGION_MSG_PEER_GONE);

    let f = "ferry_region_close";
    close_region(r);
    rec(f, ferry_region_close(r));

    region_messages();
    named_regions();
    drop((s1, s2, devnull));
    assert_eq!(region_count(), regions_before, "region handles left open");
    assert_eq!(count_fds(), fds_before, "descriptors left open");
}

/// send, recv and serve between two handles: full rings, a scribbled region, a peer gone.
fn region_messages() {
    let cfg = small_region();
    let mut answer_cb = 0u64;
    assert_eq!(ferry_callback_register(Some(answer), ptr::null_mut(), None, &mut answer_cb), S::Ok);
    let (a, b) = region_pair(&cfg);
    let mut v = region_view();
    assert_eq!(ferry_region_alloc(a, 32, &mut v), S::Ok);

    // A request served: the answer callback replies value + 1 without a buffer.
    let f = "ferry_region_send";
    assert_eq!(rec(f, ferry_region_send(a, v.id, 7, 0, 11, FERRY_REGION_SEND_MOVE)), S::Ok);
    let g = "ferry_region_serve";
    let mut served = 0usize;
    assert_eq!(rec(g, ferry_region_serve(b, answer_cb, 4, 5000, &mut served)), S::Ok);
    assert_eq!(served, 1);
    rec(g, ferry_region_serve(0, answer_cb, 4, 0, &mut served));
    rec(g, ferry_region_serve(b, answer_cb, 0, 0, &mut served));
    let mut ms =
        [FerryRegionMsg { id: 0, ptr: ptr::null_mut(), len: 0, value: 0, corr: 0, tag: 0, flags: 0 }; 4];
    let mut n = 0usize;
    assert_eq!(rec("ferry_region_recv", ferry_region_recv(a, ms.as_mut_ptr(), 4, 5000, &mut n)), S::Ok);
    assert_eq!((n, ms[0].tag, ms[0].value, ms[0].corr, ms[0].id), (1, 7, 1, 11, 0), "the reply");

    // Two messages fill the ring towards b; a third is refused, and so is b's reply to a request.
    assert_eq!(rec(f, ferry_region_send(a, 0, 1, 0, 0, 0)), S::Ok);
    assert_eq!(rec(f, ferry_region_send(a, 0, 2, 0, 0, 0)), S::Ok);
    assert_eq!(rec(f, ferry_region_send(a, 0, 3, 0, 0, 0)), S::QueueFull);
    assert_eq!(rec(f, ferry_region_send(b, 0, 4, 0, 0, 0)), S::Ok);
    assert_eq!(rec(g, ferry_region_serve(a, answer_cb, 4, 5000, &mut served)), S::QueueFull);
    assert_eq!(rec("ferry_region_recv", ferry_region_recv(b, ms.as_mut_ptr(), 4, 5000, &mut n)), S::Ok);
    assert_eq!(n, 2);

    // A scribbled region: a's send finds the ring's positions impossible, and so does b's receive.
    scribble(a);
    assert_eq!(rec(f, ferry_region_send(a, 0, 5, 0, 0, 0)), S::Corrupt);
    assert_eq!(rec("ferry_region_recv", ferry_region_recv(b, ms.as_mut_ptr(), 4, 0, &mut n)), S::Corrupt);
    close_region(a);
    close_region(b);

    // serve on a scribbled region.
    let (a, b) = region_pair(&cfg);
    scribble(a);
    assert_eq!(rec(g, ferry_region_serve(b, answer_cb, 4, 0, &mut served)), S::Corrupt);
    close_region(a);
    close_region(b);

    // serve once the peer is gone: nothing to serve.
    let (a, b) = region_pair(&cfg);
    close_region(b);
    assert_eq!(rec(g, ferry_region_serve(a, answer_cb, 4, 5000, &mut served)), S::PeerGone);
    rec(f, ferry_region_send(a, 0, 6, 0, 0, 0));
    close_region(a);
    assert_eq!(ferry_callback_unregister(answer_cb), S::Ok);
}

fn named_regions() {
    let cfg = small_region();
    let name = region_name("named");
    let f = "ferry_region_create_named";
    let mut r = 0u64;
    let mut x = 0u64;
    assert_eq!(rec(f, ferry_region_create_named(name.as_ptr(), name.len(), &cfg, &mut r)), S::Ok);
    // The name file is what fake_creator writes.
    let content = std::fs::read_to_string(name_file(&name)).unwrap();
    assert!(content.starts_with("ferry-region-rendezvous-v1 "), "the name file changed format: {content:?}");
    rec(f, ferry_region_create_named(name.as_ptr(), name.len(), &cfg, ptr::null_mut()));
    rec(f, ferry_region_create_named(ptr::null(), 5, &cfg, &mut x));
    rec(f, ferry_region_create_named(name.as_ptr(), 0, &cfg, &mut x));
    rec(f, ferry_region_create_named(b"../x".as_ptr(), 4, &cfg, &mut x));
    rec(f, ferry_region_create_named(name.as_ptr(), name.len(), &cfg, &mut x));
    let other = region_name("other");
    let st = without_descriptors(|| ferry_region_create_named(other.as_ptr(), other.len(), &cfg, &mut x));
    assert_eq!(rec(f, st), S::SystemError);

    let f = "ferry_region_open";
    let (st, p) = open_while_receiving(r, &name);
    assert_eq!(st, S::Ok);
    assert_eq!(open_while_receiving(r, &name).0, S::Busy);
    close_region(p);
    rec(f, ferry_region_open(name.as_ptr(), name.len(), ptr::null_mut()));
    rec(f, ferry_region_open(ptr::null(), 5, &mut x));
    rec(f, ferry_region_open(name.as_ptr(), 0, &mut x));
    rec(f, ferry_region_open(b"a/b".as_ptr(), 3, &mut x));
    let none = region_name("none");
    rec(f, ferry_region_open(none.as_ptr(), none.len(), &mut x));
    assert_eq!(
        without_descriptors(|| rec(f, ferry_region_open(name.as_ptr(), name.len(), &mut x))),
        S::SystemError
    );
    // A name this user may not read: mode 000, and for root a thread whose file-system user id is
    // nobody's (setfsuid is per thread; it also drops the capability that bypasses the mode).
    std::fs::set_permissions(name_file(&name), std::fs::Permissions::from_mode(0o000)).unwrap();
    let denied = std::thread::spawn({
        let name = name.clone();
        move || {
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } == 0 {
                // SAFETY: SYS_setfsuid changes only this thread's file-system user id; the thread
                // ends after the open below.
                unsafe { libc::syscall(libc::SYS_setfsuid, 65534) };
            }
            let mut x = 0u64;
            rec("ferry_region_open", ferry_region_open(name.as_ptr(), name.len(), &mut x))
        }
    })
    .join()
    .unwrap();
    assert_eq!(denied, S::PermissionDenied);
    close_region(r);

    // Names whose creator is gone, or speaks no ferry.
    let gone = region_name("gone");
    assert!(fake_creator(&gone, None).is_none());
    assert_eq!(rec(f, ferry_region_open(gone.as_ptr(), gone.len(), &mut x)), S::PeerGone);
    let _ = std::fs::remove_file(name_file(&gone));
    let bad = region_name("bad");
    let t = fake_creator(&bad, Some(vec![0u8; 48])).unwrap();
    assert_eq!(rec(f, ferry_region_open(bad.as_ptr(), bad.len(), &mut x)), S::Corrupt);
    t.join().unwrap();
    let _ = std::fs::remove_file(name_file(&bad));
}

#[test]
fn every_listed_status_is_real_and_nothing_else_comes_back() {
    let _g = serial();
    let (before, cb_before) = (stats(), cb_stats());
    buffers();
    callbacks();
    queues();
    async_work();
    regions();
    batches();
    nested_submits_until_would_deadlock();
    assert_eq!(submit_without_threads(), S::AllocFailed);
    let (after, cb_after) = (stats(), cb_stats());
    assert_eq!((after.live_ids, after.live_bytes), (before.live_ids, before.live_bytes), "ids left live");
    assert_eq!(
        (cb_after.registered, cb_after.queues, cb_after.in_flight),
        (cb_before.registered, cb_before.queues, cb_before.in_flight),
        "callbacks, queues or jobs left behind"
    );

    let seen = SEEN.lock().unwrap().clone();
    let mut missing = Vec::new();
    for &(func, list) in function_errors() {
        if NOT_CALLED.iter().any(|(n, _)| *n == func) {
            continue;
        }
        let got = seen.get(func).cloned().unwrap_or_default();
        if !got.contains(&0) {
            missing.push(format!("{func}: OK"));
        }
        for &st in list {
            let excused = st == S::TableFull || NOT_FORCED.iter().any(|&(n, s, _)| n == func && s == st);
            if !got.contains(&(st as u32)) && !excused {
                missing.push(format!("{func}: {st:?}"));
            }
        }
    }
    assert!(missing.is_empty(), "listed statuses this sweep never saw:\n  {}", missing.join("\n  "));
    let pairs: usize = seen.values().map(BTreeSet::len).sum();
    let skipped: Vec<String> = function_errors()
        .iter()
        .flat_map(|&(f, list)| list.iter().map(move |&s| (f, s)))
        .filter(|&(f, s)| s == S::TableFull || NOT_FORCED.iter().any(|&(n, t, _)| n == f && t == s))
        .map(|(f, s)| {
            let why =
                NOT_FORCED.iter().find(|&&(n, t, _)| n == f && t == s).map_or(table_full_reason(f), |x| x.2);
            format!("{f} {s:?} ({why})")
        })
        .collect();
    println!(
        "statuses: {pairs} (function, status) pairs seen over {} functions; not forced: {}",
        seen.len(),
        skipped.join("; ")
    );
}

/// The comment above `func`'s declaration in the committed header, from `Errors:` on.
fn header_errors_line(func: &str) -> String {
    let h = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ffi/ferry.h")).unwrap();
    let lines: Vec<&str> = h.lines().collect();
    let at = lines.iter().position(|l| l.contains(&format!(" {func}("))).expect("declared in ferry.h");
    let mut comment = Vec::new();
    for l in lines[..at].iter().rev() {
        match l.strip_prefix("//") {
            Some(text) => comment.insert(0, text.trim()),
            None => break,
        }
    }
    let text = comment.join(" ");
    text.split_once("Errors:").map(|(_, e)| e.to_string()).unwrap_or_default()
}

/// Defect 7 of issue 9: ferry_async_submit returned ALLOC_FAILED, which its header line did not name.
#[test]
fn submit_can_fail_to_start_the_pool_and_says_so() {
    let _g = serial();
    assert_eq!(submit_without_threads(), S::AllocFailed);
    assert!(errors_of("ferry_async_submit").unwrap().contains(&S::AllocFailed));
    assert!(header_errors_line("ferry_async_submit").contains("ALLOC_FAILED"));
}

/// Defect 7 of issue 9: ferry_buffer_slice issues an id, so it can meet a full table, and its header
/// line did not say TABLE_FULL. A full table is 2^28 ids in one shard (8 GiB), too much to make in
/// a test, so the rule is checked on every function's signature instead: each function that stores a
/// new id through an out-parameter (`view_out`, `id_out`, `queue_out`, `region_out`) lists
/// TABLE_FULL, except the views and ferry_buffer_claim, which store an id the caller already has,
/// and ferry_region_alloc, whose id is not from a table.
#[test]
fn every_function_that_issues_an_id_can_say_the_table_is_full() {
    // The sweep above takes the descriptor limit away for a moment: read the header after it.
    let _g = serial();
    let h = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ffi/ferry.h")).unwrap();
    let lines: Vec<&str> = h.lines().collect();
    let mut decls = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if let (false, Some(at)) = (l.starts_with("//") || l.starts_with(' '), l.find(" ferry_")) {
            let name: String = l[at + 1..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            let mut decl = l.to_string();
            while !decl.contains(';') {
                i += 1;
                decl.push_str(lines[i]);
            }
            decls.push((name, decl));
        }
        i += 1;
    }
    // Not issuers: ferry_buffer_view, ferry_buffer_claim and ferry_region_view store an id the
    // caller already has; ferry_region_alloc's id is a slot of the region's own arena, whose end is
    // REGION_FULL.
    let stores_no_table_id =
        ["ferry_buffer_view", "ferry_buffer_claim", "ferry_region_view", "ferry_region_alloc"];
    let mut issuers = Vec::new();
    for (name, decl) in decls {
        let out_id = ["*view_out", "*id_out", "*queue_out", "*region_out"].iter().any(|p| decl.contains(p));
        if out_id && !stores_no_table_id.contains(&name.as_str()) {
            assert!(
                errors_of(&name).is_some_and(|l| l.contains(&S::TableFull)),
                "{name} issues an id but function_errors does not list TABLE_FULL for it"
            );
            assert!(
                header_errors_line(&name).contains("TABLE_FULL"),
                "{name}: the header does not name TABLE_FULL"
            );
            issuers.push(name);
        }
    }
    assert!(issuers.contains(&"ferry_buffer_slice".to_string()), "{issuers:?}");
    assert!(issuers.contains(&"ferry_region_open".to_string()), "{issuers:?}");
    assert!(
        errors_of("ferry_region_alloc")
            .is_some_and(|l| l.contains(&S::RegionFull) && !l.contains(&S::TableFull)),
        "ferry_region_alloc: a full arena is REGION_FULL"
    );
    assert!(issuers.len() >= 8, "only {issuers:?} issue ids?");
}
