//! Panic injection: every exported function turns a panic inside its body into
//! `FERRY_STATUS_PANIC`, leaves the table consistent, and works on the next ordinary call.
//!
//! Needs the `fault-injection` feature, in its own target directory so the release library that Go
//! and C link is never replaced:
//! `cargo test --features fault-injection --target-dir target/fault --test fault`
//! (`make test-reliability` runs it). Without the feature this file compiles to nothing.
//!
//! The list of functions is checked against `ffi/ferry.h`: a new exported function that is not
//! covered here fails the test until a case is added for it. Every status a case's call returns
//! must be one its entry in `ferry::ffi::status::function_errors` lists.
#![cfg(feature = "fault-injection")]

use std::collections::BTreeSet;
use std::ffi::CString;
use std::os::raw::{c_char, c_void};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

use ferry::ffi::buffer::*;
use ferry::ffi::callback::*;
use ferry::ffi::fault::ferry_fault_panic_next;
use ferry::ffi::region::*;
use ferry::ffi::status::{ferry_status_message, may_return};
use ferry::ffi::{FerryStats, FerryStatus, FerryView};

/// Exported functions that do not go through the boundary, with the reason.
const NOT_COVERED: &[(&str, &str)] = &[
    ("ferry_abi_version", "returns a constant u32; no body that could panic, no status to return"),
    ("ferry_fault_panic_next", "the arming function itself"),
];

static HANDED_BACK: AtomicUsize = AtomicUsize::new(0);
static DROPPED: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn give_back(_: *mut c_void, data: *mut u8, _: usize) {
    HANDED_BACK.fetch_add(1, Ordering::SeqCst);
    // SAFETY: `data` came from `libc::malloc` in the adopt case, and ferry hands it back once.
    unsafe { libc::free(data.cast()) };
}

unsafe extern "C" fn add_one(_: *mut c_void, _: u64, value: u64, out: *mut FerryPayload) -> u32 {
    // SAFETY: ferry passes a valid, zeroed result struct.
    unsafe { (*out).value = value + 1 };
    FerryStatus::Ok as u32
}

unsafe extern "C" fn count_drop(_: *mut c_void) {
    DROPPED.fetch_add(1, Ordering::SeqCst);
}

unsafe extern "C" fn ignore_batch(_: *mut c_void, _: *const FerryCompletion, _: usize) {}

/// What a case works on: a prepared buffer id (made before each call), and a callback and a queue
/// when its setup makes them; plus what an ordinary call left behind.
struct Ctx {
    id: u64,
    cb: u64,
    q: u64,
    /// Buffer ids the call made, to release at the end.
    ids: Vec<u64>,
    /// The call consumed the prepared id (a release).
    consumed: bool,
    /// A callback or queue id the call made, for the teardown.
    made: u64,
    /// Region handles (the case's region and an attached peer), a region buffer id, a socket pair,
    /// a region name and the thread that lets a named region accept its peer.
    r: u64,
    p: u64,
    rid: u64,
    socks: Option<(std::os::unix::net::UnixStream, std::os::unix::net::UnixStream)>,
    name: String,
    acceptor: Option<(std::sync::Arc<std::sync::atomic::AtomicBool>, std::thread::JoinHandle<()>)>,
}

fn with_region(c: &mut Ctx) {
    assert_eq!(ferry_region_create(ptr::null(), &mut c.r), FerryStatus::Ok);
}

fn with_socks(c: &mut Ctx) {
    with_region(c);
    c.socks = Some(std::os::unix::net::UnixStream::pair().unwrap());
}

fn with_pair(c: &mut Ctx) {
    use std::os::fd::AsRawFd;
    with_socks(c);
    let (a, b) = c.socks.as_ref().unwrap();
    assert_eq!(ferry_region_share(c.r, a.as_raw_fd()), FerryStatus::Ok);
    assert_eq!(ferry_region_from_socket(b.as_raw_fd(), 5000, &mut c.p), FerryStatus::Ok);
}

fn with_region_buffer(c: &mut Ctx) {
    with_region(c);
    let mut v = FerryView { id: 0, ptr: ptr::null_mut(), len: 0 };
    assert_eq!(ferry_region_alloc(c.r, 64, &mut v), FerryStatus::Ok);
    c.rid = v.id;
}

static NAMES: AtomicUsize = AtomicUsize::new(0);

fn region_name() -> String {
    format!("ferry-fault-{}-{}", std::process::id(), NAMES.fetch_add(1, Ordering::SeqCst))
}

/// A named region whose creator receives on a thread, so that it accepts a peer.
fn with_named_server(c: &mut Ctx) {
    c.name = region_name();
    let st = ferry_region_create_named(c.name.as_ptr(), c.name.len(), ptr::null(), &mut c.r);
    assert_eq!(st, FerryStatus::Ok);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (r, s2) = (c.r, stop.clone());
    let t = std::thread::spawn(move || {
        let mut m =
            [FerryRegionMsg { id: 0, ptr: ptr::null_mut(), len: 0, value: 0, corr: 0, tag: 0, flags: 0 }; 4];
        while !s2.load(Ordering::SeqCst) {
            let mut n = 0;
            ferry_region_recv(r, m.as_mut_ptr(), 4, 20, &mut n);
        }
    });
    c.acceptor = Some((stop, t));
}

fn close_regions(c: &mut Ctx) {
    if let Some((stop, t)) = c.acceptor.take() {
        stop.store(true, Ordering::SeqCst);
        t.join().unwrap();
    }
    for r in [c.made, c.p, c.r] {
        if r != 0 {
            let _ = ferry_region_close(r);
        }
    }
    c.made = 0;
}

type Step = fn(&mut Ctx);
type Call = fn(&mut Ctx) -> FerryStatus;

struct Case {
    name: &'static str,
    setup: Step,
    call: Call,
    teardown: Step,
}

fn none(_: &mut Ctx) {}

fn with_callback(c: &mut Ctx) {
    assert_eq!(
        ferry_callback_register(Some(add_one), ptr::null_mut(), Some(count_drop), &mut c.cb),
        FerryStatus::Ok
    );
}

fn drop_callback(c: &mut Ctx) {
    if c.cb != 0 {
        assert_eq!(ferry_callback_unregister(c.cb), FerryStatus::Ok);
    }
}

fn with_queue(c: &mut Ctx) {
    assert_eq!(ferry_queue_new(&mut c.q), FerryStatus::Ok);
}

/// Waits for `n` completions on the case's queue, releases their buffers, closes the queue.
fn drain_and_close(c: &mut Ctx, n: usize) {
    let mut got = 0;
    let mut out = [FerryCompletion::default(); 4];
    while got < n {
        let mut k = 0usize;
        assert_eq!(ferry_queue_wait(c.q, out.as_mut_ptr(), 4, 5_000_000_000, &mut k), FerryStatus::Ok);
        assert!(k > 0, "no completion within 5 s");
        for done in &out[..k] {
            if done.buffer != 0 {
                assert_eq!(ferry_buffer_release(done.buffer), FerryStatus::Ok);
            }
        }
        got += k;
    }
    assert_eq!(ferry_queue_close(c.q), FerryStatus::Ok);
}

fn view_out(c: &mut Ctx, f: impl FnOnce(*mut FerryView) -> FerryStatus) -> FerryStatus {
    let mut v = FerryView { id: 0, ptr: ptr::null_mut(), len: 0 };
    let st = f(&mut v);
    if st == FerryStatus::Ok {
        c.ids.push(v.id);
    }
    st
}

const TAG: u64 = 77;

fn cases() -> Vec<Case> {
    let case = |name, call| Case { name, setup: none, call, teardown: none };
    vec![
        case("ferry_buffer_new", |c| view_out(c, |o| ferry_buffer_new(64, o))),
        case("ferry_buffer_copy", |c| view_out(c, |o| ferry_buffer_copy(b"abc".as_ptr(), 3, o))),
        case("ferry_buffer_adopt", |c| {
            // SAFETY: malloc of 32 bytes, checked below; ferry frees it through `give_back`, or the
            // test frees it when ferry refuses it.
            let mem = unsafe { libc::malloc(32) }.cast::<u8>();
            assert!(!mem.is_null());
            let st = view_out(c, |o| ferry_buffer_adopt(mem, 32, Some(give_back), ptr::null_mut(), o));
            if st != FerryStatus::Ok {
                // SAFETY: ferry took nothing on error; the memory is still ours.
                unsafe { libc::free(mem.cast()) };
            }
            st
        }),
        case("ferry_buffer_view", |c| {
            let mut v = FerryView { id: 0, ptr: ptr::null_mut(), len: 0 };
            ferry_buffer_view(c.id, &mut v)
        }),
        case("ferry_buffer_claim", |c| {
            let mut v = FerryView { id: 0, ptr: ptr::null_mut(), len: 0 };
            ferry_buffer_claim(c.id, &mut v)
        }),
        Case {
            name: "ferry_buffer_disclaim",
            setup: |c| {
                let mut v = FerryView { id: 0, ptr: ptr::null_mut(), len: 0 };
                assert_eq!(ferry_buffer_claim(c.id, &mut v), FerryStatus::Ok);
            },
            call: |c| ferry_buffer_disclaim(c.id),
            teardown: none,
        },
        case("ferry_buffer_share", |c| {
            let id = c.id;
            view_out(c, |o| ferry_buffer_share(id, o))
        }),
        case("ferry_buffer_slice", |c| {
            let id = c.id;
            view_out(c, |o| ferry_buffer_slice(id, 2, 4, o))
        }),
        case("ferry_buffer_copy_out", |c| {
            let mut out = [0u8; 8];
            let st = ferry_buffer_copy_out(c.id, 0, out.as_mut_ptr(), 8);
            if st == FerryStatus::Ok {
                assert_eq!(&out, b"01234567");
            }
            st
        }),
        case("ferry_buffer_release", |c| {
            let st = ferry_buffer_release(c.id);
            c.consumed = st == FerryStatus::Ok;
            st
        }),
        case("ferry_buffer_release_many", |c| {
            let mut n = 0usize;
            let st = ferry_buffer_release_many(&c.id, 1, &mut n);
            c.consumed = st == FerryStatus::Ok && n == 1;
            st
        }),
        case("ferry_stats_get", |_| {
            let mut s = FerryStats::default();
            ferry_stats_get(&mut s)
        }),
        case("ferry_limit_set", |_| ferry_limit_set(0)),
        case("ferry_peak_reset", |_| ferry_peak_reset()),
        case("ferry_guard_set", |_| ferry_guard_set(0)),
        case("ferry_status_message", |_| {
            let mut buf = [0 as c_char; 32];
            let mut n = 0usize;
            ferry_status_message(0, buf.as_mut_ptr(), buf.len(), &mut n)
        }),
        Case {
            name: "ferry_callback_register",
            setup: none,
            call: |c| ferry_callback_register(Some(add_one), ptr::null_mut(), Some(count_drop), &mut c.cb),
            teardown: drop_callback,
        },
        Case {
            name: "ferry_callback_unregister",
            setup: with_callback,
            call: |c| {
                let st = ferry_callback_unregister(c.cb);
                if st == FerryStatus::Ok {
                    c.cb = 0;
                }
                st
            },
            teardown: drop_callback,
        },
        Case {
            name: "ferry_callback_invoke",
            setup: with_callback,
            call: |c| {
                let mut r = FerryPayload::default();
                let st = ferry_callback_invoke(c.cb, c.id, 41, &mut r);
                if st == FerryStatus::Ok {
                    assert_eq!(r.value, 42);
                }
                st
            },
            teardown: drop_callback,
        },
        Case {
            name: "ferry_queue_new",
            setup: none,
            call: |c| ferry_queue_new(&mut c.made),
            teardown: |c| assert_eq!(ferry_queue_close(c.made), FerryStatus::Ok),
        },
        Case {
            name: "ferry_queue_new_sink",
            setup: none,
            call: |c| ferry_queue_new_sink(Some(ignore_batch), ptr::null_mut(), 8, &mut c.made),
            teardown: |c| assert_eq!(ferry_queue_close(c.made), FerryStatus::Ok),
        },
        Case {
            name: "ferry_queue_close",
            setup: with_queue,
            call: |c| {
                let st = ferry_queue_close(c.q);
                if st == FerryStatus::Ok {
                    c.q = 0;
                }
                st
            },
            teardown: |c| assert_eq!(c.q, 0, "queue still open"),
        },
        Case {
            name: "ferry_queue_wait",
            setup: with_queue,
            call: |c| {
                let mut out = [FerryCompletion::default(); 2];
                let mut n = 7usize;
                let st = ferry_queue_wait(c.q, out.as_mut_ptr(), 2, 0, &mut n);
                if st == FerryStatus::Ok {
                    assert_eq!(n, 0);
                }
                st
            },
            teardown: |c| drain_and_close(c, 0),
        },
        Case {
            name: "ferry_queue_post",
            setup: with_queue,
            call: |c| {
                let item = FerryCompletion { tag: TAG, status: FerryStatus::Ok as u32, ..Default::default() };
                ferry_queue_post(c.q, &item, 1)
            },
            teardown: |c| drain_and_close(c, 1),
        },
        Case {
            name: "ferry_async_submit",
            setup: with_queue,
            call: |c| ferry_async_submit(c.q, TAG, FERRY_OP_ECHO, c.id, 0, 5),
            teardown: |c| drain_and_close(c, 1),
        },
        Case {
            name: "ferry_async_submit_batch",
            setup: with_queue,
            call: |c| {
                let jobs =
                    [FerryJob { tag: TAG, op: FERRY_OP_ECHO, input: c.id, value: 5, ..Default::default() }];
                ferry_async_submit_batch(c.q, jobs.as_ptr(), jobs.len(), std::ptr::null_mut())
            },
            teardown: |c| drain_and_close(c, 1),
        },
        Case {
            name: "ferry_async_cancel",
            setup: |c| {
                with_queue(c);
                // A 10 s sleep that the cancel cuts short.
                assert_eq!(ferry_async_submit(c.q, TAG, FERRY_OP_SLEEP, 0, 10_000_000, 0), FerryStatus::Ok);
            },
            call: |c| ferry_async_cancel(c.q, TAG),
            teardown: |c| drain_and_close(c, 1),
        },
        case("ferry_pool_configure", |_| ferry_pool_configure(0, 0, 0)),
        case("ferry_pool_shutdown", |_| ferry_pool_shutdown()),
        case("ferry_thread_is_worker", |_| {
            let mut w = 9u32;
            let st = ferry_thread_is_worker(&mut w);
            if st == FerryStatus::Ok {
                assert_eq!(w, 0);
            }
            st
        }),
        case("ferry_callback_abandon", |_| ferry_callback_abandon(0)),
        case("ferry_callback_stats", |_| {
            let mut s = FerryCallbackStats::default();
            ferry_callback_stats(&mut s)
        }),
        Case {
            name: "ferry_region_create",
            setup: none,
            call: |c| {
                let mut r = 0;
                let st = ferry_region_create(ptr::null(), &mut r);
                c.made = r;
                st
            },
            teardown: close_regions,
        },
        Case {
            name: "ferry_region_create_named",
            setup: |c| c.name = region_name(),
            call: |c| {
                let mut r = 0;
                let st = ferry_region_create_named(c.name.as_ptr(), c.name.len(), ptr::null(), &mut r);
                c.made = r;
                st
            },
            teardown: close_regions,
        },
        Case {
            name: "ferry_region_open",
            setup: with_named_server,
            call: |c| {
                let mut r = 0;
                let st = ferry_region_open(c.name.as_ptr(), c.name.len(), &mut r);
                c.made = r;
                st
            },
            teardown: close_regions,
        },
        Case {
            name: "ferry_region_share",
            setup: with_socks,
            call: |c| {
                use std::os::fd::AsRawFd;
                ferry_region_share(c.r, c.socks.as_ref().unwrap().0.as_raw_fd())
            },
            teardown: |c| {
                use std::os::fd::AsRawFd;
                let b = c.socks.as_ref().unwrap().1.as_raw_fd();
                assert_eq!(ferry_region_from_socket(b, 5000, &mut c.p), FerryStatus::Ok);
                close_regions(c);
            },
        },
        Case {
            name: "ferry_region_from_socket",
            setup: |c| {
                use std::os::fd::AsRawFd;
                with_socks(c);
                assert_eq!(ferry_region_share(c.r, c.socks.as_ref().unwrap().0.as_raw_fd()), FerryStatus::Ok);
            },
            call: |c| {
                use std::os::fd::AsRawFd;
                let mut r = 0;
                let st = ferry_region_from_socket(c.socks.as_ref().unwrap().1.as_raw_fd(), 5000, &mut r);
                c.made = r;
                st
            },
            teardown: close_regions,
        },
        Case {
            name: "ferry_region_close",
            setup: with_region,
            call: |c| ferry_region_close(c.r),
            teardown: none,
        },
        Case {
            name: "ferry_region_fd",
            setup: with_region,
            call: |c| {
                let mut fd = -1;
                ferry_region_fd(c.r, &mut fd)
            },
            teardown: close_regions,
        },
        Case {
            name: "ferry_region_set_spin",
            setup: with_region,
            call: |c| ferry_region_set_spin(c.r, 1000),
            teardown: close_regions,
        },
        Case {
            name: "ferry_region_alloc",
            setup: with_region,
            call: |c| {
                let mut v = FerryView { id: 0, ptr: ptr::null_mut(), len: 0 };
                let st = ferry_region_alloc(c.r, 64, &mut v);
                c.rid = v.id;
                st
            },
            teardown: close_regions,
        },
        Case {
            name: "ferry_region_view",
            setup: with_region_buffer,
            call: |c| {
                let mut v = FerryView { id: 0, ptr: ptr::null_mut(), len: 0 };
                ferry_region_view(c.r, c.rid, &mut v)
            },
            teardown: close_regions,
        },
        Case {
            name: "ferry_region_release",
            setup: with_region_buffer,
            call: |c| ferry_region_release(c.r, c.rid),
            teardown: close_regions,
        },
        Case {
            name: "ferry_region_send",
            setup: with_pair,
            call: |c| ferry_region_send(c.r, 0, 1, 2, 3, 0),
            teardown: close_regions,
        },
        Case {
            name: "ferry_region_recv",
            setup: with_pair,
            call: |c| {
                let mut m = [FerryRegionMsg {
                    id: 0,
                    ptr: ptr::null_mut(),
                    len: 0,
                    value: 0,
                    corr: 0,
                    tag: 0,
                    flags: 0,
                }; 4];
                let mut n = 0;
                ferry_region_recv(c.p, m.as_mut_ptr(), 4, 0, &mut n)
            },
            teardown: close_regions,
        },
        Case {
            name: "ferry_region_serve",
            setup: |c| {
                with_pair(c);
                with_callback(c);
            },
            call: |c| {
                let mut n = 0;
                ferry_region_serve(c.p, c.cb, 1, 0, &mut n)
            },
            teardown: |c| {
                drop_callback(c);
                close_regions(c);
            },
        },
        Case {
            name: "ferry_region_stats",
            setup: with_region,
            call: |c| {
                let mut s = FerryRegionStats::default();
                ferry_region_stats(c.r, &mut s)
            },
            teardown: close_regions,
        },
        Case {
            name: "ferry_region_count",
            setup: none,
            call: |_| {
                let mut n = 0;
                ferry_region_count(&mut n)
            },
            teardown: none,
        },
    ]
}

/// Every `ferry_*` function declared in the committed header.
fn exported() -> BTreeSet<String> {
    let h = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ffi/ferry.h"))
        .expect("read ffi/ferry.h");
    let mut names = BTreeSet::new();
    for line in h.lines().filter(|l| !l.starts_with("//") && !l.starts_with(' ') && !l.starts_with('#')) {
        if let Some(open) = line.find('(') {
            if let Some(name) = line[..open].split_whitespace().last() {
                let name = name.trim_start_matches('*');
                if name.starts_with("ferry_") {
                    names.insert(name.to_string());
                }
            }
        }
    }
    names
}

fn arm(name: &str) {
    let c = CString::new(name).unwrap();
    assert_eq!(ferry_fault_panic_next(c.as_ptr()), FerryStatus::Ok);
}

fn stats() -> FerryStats {
    let mut s = FerryStats::default();
    assert_eq!(ferry_stats_get(&mut s), FerryStatus::Ok);
    s
}

fn cb_stats() -> (u64, u64, u64, u64) {
    let mut s = FerryCallbackStats::default();
    assert_eq!(ferry_callback_stats(&mut s), FerryStatus::Ok);
    (s.registered, s.alive, s.queues, s.in_flight)
}

fn prepare() -> u64 {
    let mut v = FerryView { id: 0, ptr: ptr::null_mut(), len: 0 };
    assert_eq!(ferry_buffer_copy(b"0123456789".as_ptr(), 10, &mut v), FerryStatus::Ok);
    v.id
}

fn assert_intact(id: u64, what: &str) {
    let mut out = [0u8; 10];
    assert_eq!(
        ferry_buffer_copy_out(id, 0, out.as_mut_ptr(), 10),
        FerryStatus::Ok,
        "{what}: prepared id lost"
    );
    assert_eq!(&out, b"0123456789", "{what}: prepared bytes changed");
}

/// Fails unless `name` may return `st`: its entry in `ferry::ffi::status::function_errors` (the list
/// its header line states) must list it.
fn observed(name: &str, st: FerryStatus) -> FerryStatus {
    assert!(may_return(name, st), "{name} returned {st:?}, which its entry in function_errors does not list");
    st
}

fn check_one(case: &Case, arm_with: &str) {
    let name = case.name;
    let before = stats();
    let cb_before = cb_stats();
    let back_before = HANDED_BACK.load(Ordering::SeqCst);
    let drops_before = DROPPED.load(Ordering::SeqCst);

    let mut c = Ctx {
        id: prepare(),
        cb: 0,
        q: 0,
        ids: Vec::new(),
        consumed: false,
        made: 0,
        r: 0,
        p: 0,
        rid: 0,
        socks: None,
        name: String::new(),
        acceptor: None,
    };
    (case.setup)(&mut c);
    let set_up = stats();
    let cb_set_up = cb_stats();

    // 1. Armed: the call panics inside the boundary and says so; nothing changes.
    arm(arm_with);
    let st = observed(name, (case.call)(&mut c));
    assert_eq!(st, FerryStatus::Panic, "{name} (armed with {arm_with:?}) did not report the panic");
    assert!(c.ids.is_empty() && !c.consumed && c.made == 0, "{name}: a panicking call still did its work");
    assert_intact(c.id, name);
    let s = stats();
    assert_eq!(
        (s.live_ids, s.live_bytes, s.created, s.released),
        (set_up.live_ids, set_up.live_bytes, set_up.created, set_up.released),
        "{name}: the buffer table changed across a panicking call"
    );
    assert_eq!(cb_stats(), cb_set_up, "{name}: callback state changed across a panicking call");
    assert_eq!(HANDED_BACK.load(Ordering::SeqCst), back_before, "{name}: a release callback ran");
    assert_eq!(DROPPED.load(Ordering::SeqCst), drops_before, "{name}: a callback drop function ran");

    // 2. The panic was one-shot: the next ordinary call succeeds.
    let st = observed(name, (case.call)(&mut c));
    assert_eq!(st, FerryStatus::Ok, "{name}: the call after the panic failed");

    // 3. Clean up, and check everything went back to where it was.
    (case.teardown)(&mut c);
    let mut ids = std::mem::take(&mut c.ids);
    if !c.consumed {
        assert_intact(c.id, name);
        ids.push(c.id);
    }
    let mut n = 0usize;
    assert_eq!(
        ferry_buffer_release_many(ids.as_ptr(), ids.len(), &mut n),
        FerryStatus::Ok,
        "{name}: cleanup"
    );
    assert_eq!(n, ids.len());
    let s = stats();
    assert_eq!(
        (s.live_ids, s.live_bytes),
        (before.live_ids, before.live_bytes),
        "{name}: table not back to start"
    );
    assert_eq!(cb_stats(), cb_before, "{name}: callbacks or queues left behind");
}

#[test]
fn every_exported_function_survives_a_panic() {
    // Keep the injected panics' messages out of the output; anything else still prints.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let injected =
            info.payload().downcast_ref::<String>().is_some_and(|m| m.starts_with("ferry fault injection"));
        if !injected {
            default_hook(info);
        }
    }));

    let cases = cases();
    let covered: BTreeSet<String> = cases.iter().map(|c| c.name.to_string()).collect();
    let skipped: BTreeSet<String> = NOT_COVERED.iter().map(|(n, _)| n.to_string()).collect();
    let header = exported();
    let missing: Vec<_> = header.difference(&covered).filter(|n| !skipped.contains(*n)).collect();
    assert!(missing.is_empty(), "exported functions with no panic-injection case: {missing:?}");
    let unknown: Vec<_> = covered.union(&skipped).filter(|n| !header.contains(*n)).collect();
    assert!(unknown.is_empty(), "cases for functions not in ffi/ferry.h: {unknown:?}");

    let start = stats();
    for case in &cases {
        check_one(case, case.name);
        check_one(case, "*");
    }
    // A disarmed name fires nothing.
    arm("ferry_buffer_view");
    assert_eq!(ferry_fault_panic_next(ptr::null()), FerryStatus::Ok);
    let id = prepare();
    let mut v = FerryView { id: 0, ptr: ptr::null_mut(), len: 0 };
    assert_eq!(ferry_buffer_view(id, &mut v), FerryStatus::Ok);
    assert_eq!(ferry_buffer_release(id), FerryStatus::Ok);

    let end = stats();
    assert_eq!((end.live_ids, end.live_bytes), (start.live_ids, start.live_bytes));
    assert_eq!(HANDED_BACK.load(Ordering::SeqCst), 2, "adopt: one hand-back per ordinary adopt");
    // Two callbacks registered by each of register, unregister, invoke and region_serve: all
    // dropped once.
    assert_eq!(DROPPED.load(Ordering::SeqCst), 8, "callback drop functions");
    assert_eq!(ferry_pool_shutdown(), FerryStatus::Ok);
    println!(
        "fault: {} exported functions each panicked twice (by name and by \"*\") and recovered; \
         not covered: {:?}",
        cases.len(),
        NOT_COVERED
    );
}
