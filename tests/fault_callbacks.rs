//! Panic injection along every callback path: a one-shot panic at each named point of the callback
//! machinery (`ferry::fault::POINTS`: an invoke holding its hazard or its counted hold, a callback's
//! drop, a FERRY_OP_CALL job that lent an id to its callback, a job starting, a job completing, a
//! waiting job closed by shutdown, a sink's delivery) is caught where ferry promises, the call or job
//! reports it, and nothing is left behind: no buffer id, callback, queue or job, every drop function
//! runs once, and the same path works on the next call.
//!
//! Needs the `fault-injection` feature (`make rel-fault`); its own test binary, because it compares
//! process-wide counters.
#![cfg(feature = "fault-injection")]

use std::ffi::CString;
use std::os::raw::c_void;
use std::ptr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ferry::ffi::buffer::*;
use ferry::ffi::callback::*;
use ferry::ffi::fault::ferry_fault_panic_next;
use ferry::ffi::{FerryStats, FerryStatus as S, FerryView};

static DROPS: AtomicUsize = AtomicUsize::new(0);
static SUNK: AtomicU64 = AtomicU64::new(0);

/// value > 0: invokes the callback whose id is in the user data with value - 1 (nesting); 0: OK
/// with 42. A nested failure comes back as this call's failure, with the innermost status that
/// was not a callback's failure as the detail.
unsafe extern "C" fn cb(ud: *mut c_void, _: u64, value: u64, out: *mut FerryPayload) -> u32 {
    // SAFETY: ferry passes a valid, zeroed result; the tests register a pointer to a live u64 or
    // NULL (no nesting then).
    let (out, me) = unsafe { (&mut *out, (ud as *const AtomicU64).as_ref()) };
    if value == 0 || me.is_none() {
        out.value = 42;
        return 0;
    }
    let mut r = FerryPayload::default();
    let st = ferry_callback_invoke(me.expect("checked").load(Ordering::SeqCst), 0, value - 1, &mut r);
    // A nested failure's detail travels up as is; any other status becomes the detail.
    out.value = if st == S::Ok || st == S::CallbackFailed { r.value } else { st as u64 };
    if st == S::Ok {
        0
    } else {
        S::CallbackFailed as u32
    }
}

unsafe extern "C" fn count_drop(_: *mut c_void) {
    DROPS.fetch_add(1, Ordering::SeqCst);
}

unsafe extern "C" fn sink(_: *mut c_void, items: *const FerryCompletion, n: usize) {
    // SAFETY: ferry passes `n` valid completions.
    let items = unsafe { std::slice::from_raw_parts(items, n) };
    SUNK.fetch_add(items.iter().map(|c| c.value).sum(), Ordering::SeqCst);
}

fn arm(name: &str) {
    let c = CString::new(name).unwrap();
    assert_eq!(ferry_fault_panic_next(c.as_ptr()), S::Ok);
}

fn counters() -> (u64, u64, u64, u64, u64) {
    let mut s = FerryStats::default();
    let mut c = FerryCallbackStats::default();
    assert_eq!(ferry_stats_get(&mut s), S::Ok);
    assert_eq!(ferry_callback_stats(&mut c), S::Ok);
    (s.live_ids, c.registered, c.alive, c.queues, c.in_flight)
}

fn register(ud: *const AtomicU64) -> u64 {
    let mut id = 0;
    assert_eq!(ferry_callback_register(Some(cb), ud.cast_mut().cast(), Some(count_drop), &mut id), S::Ok);
    id
}

fn input() -> u64 {
    let mut v = FerryView { id: 0, ptr: ptr::null_mut(), len: 0 };
    assert_eq!(ferry_buffer_copy(b"input".as_ptr(), 5, &mut v), S::Ok);
    v.id
}

/// Waits for `n` completions on `q` (60 s at most), releasing their buffers.
fn take(q: u64, n: usize) -> Vec<FerryCompletion> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    while got.len() < n {
        assert!(Instant::now() < deadline, "{} of {n} completions", got.len());
        let mut out = [FerryCompletion::default(); 4];
        let mut k = 0;
        assert_eq!(ferry_queue_wait(q, out.as_mut_ptr(), 4, 100_000_000, &mut k), S::Ok);
        for c in &out[..k] {
            if c.buffer != 0 {
                assert_eq!(ferry_buffer_release(c.buffer), S::Ok);
            }
        }
        got.extend_from_slice(&out[..k]);
    }
    got
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs `case` for `point` twice, armed then not, and checks that every counter came back.
fn check(point: &str, case: impl Fn(bool)) {
    let before = counters();
    arm(point);
    case(true);
    assert_eq!(ferry_fault_panic_next(ptr::null()), S::Ok);
    case(false);
    // Jobs end, and drop functions run, a moment after the last completion is taken.
    wait_until(&format!("{point}: counters back to {before:?}"), || counters() == before);
}

#[test]
fn every_callback_path_survives_a_panic() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let injected =
            info.payload().downcast_ref::<String>().is_some_and(|m| m.starts_with("ferry fault injection"));
        if !injected {
            default_hook(info);
        }
    }));
    assert_eq!(ferry_pool_configure(1, 0, 0), S::Ok);
    let mut covered = Vec::new();

    // An invoke holding its hazard: PANIC; the hazard goes, so unregister drops at once.
    check("invoke.protected", |armed| {
        let id = register(ptr::null());
        let d = DROPS.load(Ordering::SeqCst);
        let mut r = FerryPayload::default();
        let st = ferry_callback_invoke(id, 0, 0, &mut r);
        assert_eq!((st, armed), (if armed { S::Panic } else { S::Ok }, armed));
        assert_eq!(ferry_callback_unregister(id), S::Ok);
        assert_eq!(DROPS.load(Ordering::SeqCst), d + 1, "dropped at unregister: no hazard left");
    });
    covered.push("invoke.protected");

    // Invokes nested deeper than the hazard slots take counted holds; one panics while it holds.
    check("invoke.held", |armed| {
        let me = Box::new(AtomicU64::new(0));
        let id = register(&*me);
        me.store(id, Ordering::SeqCst);
        let d = DROPS.load(Ordering::SeqCst);
        let mut r = FerryPayload::default();
        let st = ferry_callback_invoke(id, 0, 12, &mut r);
        if armed {
            // The innermost held invoke reported PANIC; each level above passed it on as a failure.
            assert_eq!((st, r.value), (S::CallbackFailed, S::Panic as u64));
        } else {
            assert_eq!((st, r.value), (S::Ok, 42));
        }
        assert_eq!(ferry_callback_unregister(id), S::Ok);
        assert_eq!(DROPS.load(Ordering::SeqCst), d + 1, "no hold left behind");
    });
    covered.push("invoke.held");

    // A callback's drop that panics: caught, the slot is freed all the same.
    check("callback.drop", |_| {
        let id = register(ptr::null());
        assert_eq!(ferry_callback_unregister(id), S::Ok);
        assert_eq!(ferry_callback_invoke(id, 0, 0, ptr::null_mut()), S::InvalidHandle);
    });
    covered.push("callback.drop");

    // Jobs: the panic fails the job alone (PANIC), the lent id and the hold go, the worker lives.
    let mut q = 0;
    assert_eq!(ferry_queue_new(&mut q), S::Ok);
    for (point, op) in
        [("op.call.lent", FERRY_OP_CALL), ("job.run", FERRY_OP_ECHO), ("job.complete", FERRY_OP_ECHO)]
    {
        check(point, |armed| {
            let id = register(ptr::null());
            let d = DROPS.load(Ordering::SeqCst);
            let inp = input();
            assert_eq!(ferry_async_submit(q, 1, op, inp, id, 7), S::Ok);
            assert_eq!(ferry_buffer_release(inp), S::Ok);
            let c = take(q, 1)[0];
            let want = match (armed, op) {
                (true, _) => S::Panic as u32,
                _ => S::Ok as u32,
            };
            assert_eq!(c.status, want, "{point}: {c:?}");
            assert_eq!(ferry_callback_unregister(id), S::Ok);
            wait_until("the job's hold on the callback let go", || DROPS.load(Ordering::SeqCst) == d + 1);
        });
        covered.push(point);
    }

    // A waiting job closed by shutdown: the panic is caught and the job still completes.
    check("job.close", |armed| {
        assert_eq!(ferry_async_submit(q, 1, FERRY_OP_SLEEP, 0, 20_000, 0), S::Ok);
        let inp = input();
        assert_eq!(ferry_async_submit(q, 2, FERRY_OP_ECHO, inp, 0, 0), S::Ok);
        assert_eq!(ferry_buffer_release(inp), S::Ok);
        assert_eq!(ferry_pool_shutdown(), S::Ok);
        let got = take(q, 2);
        let closed = got.iter().find(|c| c.tag == 2).expect("the waiting job completes");
        let want = if armed { [S::Panic as u32, S::Closed as u32] } else { [S::Closed as u32; 2] };
        // The sleep may have ended before shutdown took the echo: then the echo ran (OK).
        assert!(want.contains(&closed.status) || closed.status == S::Ok as u32, "{closed:?}");
    });
    covered.push("job.close");
    assert_eq!(ferry_queue_close(q), S::Ok);

    // A sink's delivery: caught; the sink gets the next batch.
    check("sink.deliver", |armed| {
        let mut sq = 0;
        assert_eq!(ferry_queue_new_sink(Some(sink), ptr::null_mut(), 4, &mut sq), S::Ok);
        let before = SUNK.load(Ordering::SeqCst);
        let one = FerryCompletion { tag: 1, value: 1, ..Default::default() };
        assert_eq!(ferry_queue_post(sq, &one, 1), S::Ok);
        let two = FerryCompletion { tag: 2, value: 10, ..Default::default() };
        assert_eq!(ferry_queue_post(sq, &two, 1), S::Ok);
        assert_eq!(ferry_queue_close(sq), S::Ok);
        let got = SUNK.load(Ordering::SeqCst) - before;
        // Armed, the first batch is lost to the panic (it held the first or both completions).
        assert!(if armed { got == 10 || got == 0 } else { got == 11 }, "sunk {got}");
    });
    covered.push("sink.deliver");

    assert_eq!(ferry_pool_shutdown(), S::Ok);
    assert_eq!(ferry_pool_configure(0, 0, 0), S::Ok);
    let missing: Vec<_> = ferry::fault::POINTS.iter().filter(|p| !covered.contains(p)).collect();
    assert!(missing.is_empty(), "callback-path points with no case: {missing:?}");
    println!("fault: {} callback-path points each panicked once and recovered", covered.len());
}
