//! Panic injection: every exported function turns a panic inside its body into
//! `FERRY_STATUS_PANIC`, leaves the table consistent, and works on the next ordinary call.
//!
//! Needs the `fault-injection` feature, in its own target directory so the release library that Go
//! and C link is never replaced:
//! `cargo test --features fault-injection --target-dir target/fault --test fault`
//! (`make test-reliability` runs it). Without the feature this file compiles to nothing.
//!
//! The list of functions is checked against `ffi/ferry.h`: a new exported function that is not
//! covered here fails the test until a case is added for it.
#![cfg(feature = "fault-injection")]

use std::collections::BTreeSet;
use std::ffi::CString;
use std::os::raw::{c_char, c_void};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

use ferry::ffi::buffer::*;
use ferry::ffi::fault::ferry_fault_panic_next;
use ferry::ffi::status::ferry_status_message;
use ferry::ffi::{FerryStats, FerryStatus, FerryView};

/// Exported functions that do not go through the boundary, with the reason.
const NOT_COVERED: &[(&str, &str)] = &[
    ("ferry_abi_version", "returns a constant u32; no body that could panic, no status to return"),
    ("ferry_fault_panic_next", "the arming function itself"),
];

static HANDED_BACK: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn give_back(_: *mut c_void, data: *mut u8, _: usize) {
    HANDED_BACK.fetch_add(1, Ordering::SeqCst);
    // SAFETY: `data` came from `libc::malloc` in the adopt case, and ferry hands it back once.
    unsafe { libc::free(data.cast()) };
}

/// What an ordinary call left behind for the test to clean up.
#[derive(Default)]
struct Made {
    ids: Vec<u64>,
    /// The call consumed the prepared id (a release).
    consumed: bool,
}

type Call = fn(prepared: u64, made: &mut Made) -> FerryStatus;

fn view_out(made: &mut Made, f: impl FnOnce(*mut FerryView) -> FerryStatus) -> FerryStatus {
    let mut v = FerryView { id: 0, ptr: ptr::null_mut(), len: 0 };
    let st = f(&mut v);
    if st == FerryStatus::Ok {
        made.ids.push(v.id);
    }
    st
}

fn cases() -> Vec<(&'static str, Call)> {
    vec![
        ("ferry_buffer_new", |_, m| view_out(m, |o| ferry_buffer_new(64, o))),
        ("ferry_buffer_copy", |_, m| view_out(m, |o| ferry_buffer_copy(b"abc".as_ptr(), 3, o))),
        ("ferry_buffer_adopt", |_, m| {
            // SAFETY: malloc of 32 bytes, checked below; ferry frees it through `give_back`, or the
            // test frees it when ferry refuses it.
            let mem = unsafe { libc::malloc(32) }.cast::<u8>();
            assert!(!mem.is_null());
            let st = view_out(m, |o| ferry_buffer_adopt(mem, 32, Some(give_back), ptr::null_mut(), o));
            if st != FerryStatus::Ok {
                // SAFETY: ferry took nothing on error; the memory is still ours.
                unsafe { libc::free(mem.cast()) };
            }
            st
        }),
        ("ferry_buffer_view", |id, _| {
            let mut v = FerryView { id: 0, ptr: ptr::null_mut(), len: 0 };
            ferry_buffer_view(id, &mut v)
        }),
        ("ferry_buffer_share", |id, m| view_out(m, |o| ferry_buffer_share(id, o))),
        ("ferry_buffer_slice", |id, m| view_out(m, |o| ferry_buffer_slice(id, 2, 4, o))),
        ("ferry_buffer_copy_out", |id, _| {
            let mut out = [0u8; 8];
            let st = ferry_buffer_copy_out(id, 0, out.as_mut_ptr(), 8);
            if st == FerryStatus::Ok {
                assert_eq!(&out, b"01234567");
            }
            st
        }),
        ("ferry_buffer_release", |id, m| {
            let st = ferry_buffer_release(id);
            m.consumed = st == FerryStatus::Ok;
            st
        }),
        ("ferry_buffer_release_many", |id, m| {
            let mut n = 0usize;
            let st = ferry_buffer_release_many(&id, 1, &mut n);
            m.consumed = st == FerryStatus::Ok && n == 1;
            st
        }),
        ("ferry_stats_get", |_, _| {
            let mut s = FerryStats::default();
            ferry_stats_get(&mut s)
        }),
        ("ferry_limit_set", |_, _| ferry_limit_set(0)),
        ("ferry_peak_reset", |_, _| ferry_peak_reset()),
        ("ferry_guard_set", |_, _| ferry_guard_set(0)),
        ("ferry_status_message", |_, _| {
            let mut buf = [0 as c_char; 32];
            let mut n = 0usize;
            ferry_status_message(0, buf.as_mut_ptr(), buf.len(), &mut n)
        }),
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

/// Panics on a released id are fine too: the table entry is checked before and after.
fn check_one(name: &str, call: Call, arm_with: &str) {
    let before = stats();
    let back_before = HANDED_BACK.load(Ordering::SeqCst);

    // 1. Armed: the call panics inside the boundary and says so; nothing changes.
    let id = prepare();
    arm(arm_with);
    let mut made = Made::default();
    let st = call(id, &mut made);
    assert_eq!(st, FerryStatus::Panic, "{name} (armed with {arm_with:?}) did not report the panic");
    assert!(made.ids.is_empty() && !made.consumed, "{name}: a panicking call still did its work");
    assert_intact(id, name);
    let s = stats();
    assert_eq!(
        (s.live_ids, s.live_bytes, s.created, s.released),
        (before.live_ids + 1, before.live_bytes + 10, before.created + 1, before.released),
        "{name}: the table changed across a panicking call"
    );
    assert_eq!(HANDED_BACK.load(Ordering::SeqCst), back_before, "{name}: a release callback ran");

    // 2. The panic was one-shot: the next ordinary call succeeds.
    let st = call(id, &mut made);
    assert_eq!(st, FerryStatus::Ok, "{name}: the call after the panic failed");

    // 3. Clean up and check the table went back to where it was.
    let mut ids = made.ids;
    if !made.consumed {
        assert_intact(id, name);
        ids.push(id);
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
    let covered: BTreeSet<String> = cases.iter().map(|(n, _)| n.to_string()).collect();
    let skipped: BTreeSet<String> = NOT_COVERED.iter().map(|(n, _)| n.to_string()).collect();
    let header = exported();
    let missing: Vec<_> = header.difference(&covered).filter(|n| !skipped.contains(*n)).collect();
    assert!(missing.is_empty(), "exported functions with no panic-injection case: {missing:?}");
    let unknown: Vec<_> = covered.union(&skipped).filter(|n| !header.contains(*n)).collect();
    assert!(unknown.is_empty(), "cases for functions not in ffi/ferry.h: {unknown:?}");

    let start = stats();
    for (name, call) in &cases {
        check_one(name, *call, name);
        check_one(name, *call, "*");
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
    println!(
        "fault: {} exported functions each panicked twice (by name and by \"*\") and recovered; \
         not covered: {:?}",
        cases.len(),
        NOT_COVERED
    );
}
