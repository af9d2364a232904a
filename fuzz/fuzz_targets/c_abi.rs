//! Coverage-guided fuzzing of the C ABI: the input is decoded into a sequence of calls to the
//! exported functions (ids live, stale, forged, 0 or `u64::MAX`; NULL pointers; oversize and
//! overflowing offsets and lengths), and every result is checked against a small model: the status,
//! the bytes read back, the live-id count, and that adopted memory is handed back exactly once.
//! Every status a call returns must be one its entry in `ferry::ffi::status::function_errors` (the
//! list its header line states) names. A crash, a sanitizer report or a failed check is a finding.
//!
//! Run: `make fuzz` (or `RUSTC_BOOTSTRAP=1 cargo fuzz run c_abi` in fuzz/'s parent, with
//! AddressSanitizer; `cargo fuzz run -s none c_abi` without it).
#![no_main]

use std::collections::HashMap;
use std::os::raw::c_void;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

use ferry::ffi::buffer::*;
use ferry::ffi::status::may_return;
use ferry::ffi::{FerryStats, FerryStatus, FerryView};
use libfuzzer_sys::fuzz_target;

const MAX_LEN: usize = ferry::MAX_LEN;

static HANDED_BACK: AtomicUsize = AtomicUsize::new(0);
/// Calls made, printed when libFuzzer exits.
static OPS: AtomicUsize = AtomicUsize::new(0);
static REPORT: std::sync::Once = std::sync::Once::new();

extern "C" fn report() {
    eprintln!("fuzz: {} operations on the C ABI, 0 failed checks", OPS.load(Ordering::Relaxed));
}

unsafe extern "C" fn give_back(_: *mut c_void, data: *mut u8, _: usize) {
    HANDED_BACK.fetch_add(1, Ordering::SeqCst);
    // SAFETY: `data` came from `libc::malloc` below, and ferry hands it back exactly once.
    unsafe { libc::free(data.cast()) };
}

/// `st`, after checking that `func` may return it.
fn seen(func: &str, st: FerryStatus) -> FerryStatus {
    assert!(may_return(func, st), "{func} returned {st:?}, which its entry in function_errors does not list");
    st
}

/// Reads the input a byte at a time; past its end every read is 0.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from(self.u8()) | u16::from(self.u8()) << 8
    }
    /// A NULL pointer one time in eight.
    fn null(&mut self) -> bool {
        self.u8() & 7 == 0
    }
    /// A length or offset relative to `len`, now and then huge.
    fn pos(&mut self, len: usize) -> usize {
        match self.u8() % 8 {
            0 => self.u8() as usize,
            1 => len.saturating_sub(self.u8() as usize % 4),
            2 => len + self.u8() as usize % 4,
            3 => usize::MAX - self.u8() as usize % 4,
            4 => MAX_LEN + 1,
            _ => (len * self.u8() as usize) / 255,
        }
    }
    fn size(&mut self) -> usize {
        match self.u8() % 16 {
            0 => 0,
            1 => MAX_LEN + 1,
            2 => usize::MAX,
            3 => 4096 + self.u16() as usize * 4,
            _ => self.u8() as usize,
        }
    }
}

struct Entry {
    alloc: usize,
    off: usize,
    len: usize,
}

#[derive(Default)]
struct Model {
    ids: HashMap<u64, Entry>,
    order: Vec<u64>,
    stale: Vec<u64>,
    /// Bytes of each allocation, and the live ids over it.
    allocs: Vec<(Vec<u8>, usize)>,
    adopted: usize,
}

impl Model {
    fn pick(&self, inp: &mut Input) -> u64 {
        let k = inp.u8();
        let live = |i: u8| if self.order.is_empty() { 0 } else { self.order[i as usize % self.order.len()] };
        match k % 16 {
            0 => 0,
            1 => u64::MAX,
            2 => self.stale.get(inp.u8() as usize % self.stale.len().max(1)).copied().unwrap_or(7),
            3 => live(inp.u8()) ^ (1 << 32),
            4 => live(inp.u8()).wrapping_add(1),
            // Another shard, or the same slot under another kind (src/slots.rs: kind is bits 28..31).
            5 => live(inp.u8()) ^ (u64::from(inp.u8()) << 24),
            6 => u64::from(inp.u16()) << 24 | u64::from(inp.u16()),
            _ => live(inp.u8()),
        }
    }

    fn add(&mut self, v: FerryView, alloc: usize, off: usize, len: usize) {
        assert_ne!(v.id, 0);
        assert_eq!(v.len, len);
        assert_eq!(v.ptr.is_null(), len == 0, "ptr is NULL exactly when len is 0");
        assert!(self.ids.insert(v.id, Entry { alloc, off, len }).is_none(), "id issued twice");
        self.order.push(v.id);
        self.allocs[alloc].1 += 1;
        self.check(v.id);
    }

    fn new_alloc(&mut self, bytes: Vec<u8>) -> usize {
        self.allocs.push((bytes, 0));
        self.allocs.len() - 1
    }

    fn forget(&mut self, id: u64) {
        let e = self.ids.remove(&id).expect("live");
        self.order.retain(|&x| x != id);
        self.stale.push(id);
        self.allocs[e.alloc].1 -= 1;
    }

    /// The bytes through the view and through copy_out equal the model's.
    fn check(&self, id: u64) {
        let e = &self.ids[&id];
        let want = &self.allocs[e.alloc].0[e.off..e.off + e.len];
        let mut v = FerryView { id: 0, ptr: ptr::null_mut(), len: 0 };
        assert_eq!(ferry_buffer_view(id, &mut v), FerryStatus::Ok);
        if v.len > 0 {
            // SAFETY: a live id's view: `len` readable bytes at `ptr`.
            assert_eq!(unsafe { std::slice::from_raw_parts(v.ptr, v.len) }, want);
        }
        let mut out = vec![0u8; want.len()];
        assert_eq!(ferry_buffer_copy_out(id, 0, out.as_mut_ptr(), out.len()), FerryStatus::Ok);
        assert_eq!(out, want);
    }
}

fn range(off: usize, len: usize, have: usize) -> FerryStatus {
    match off.checked_add(len) {
        None => FerryStatus::Overflow,
        Some(end) if end > have => FerryStatus::OutOfRange,
        Some(_) => FerryStatus::Ok,
    }
}

fn live_ids() -> u64 {
    let mut s = FerryStats::default();
    assert_eq!(ferry_stats_get(&mut s), FerryStatus::Ok);
    s.live_ids
}

fuzz_target!(|data: &[u8]| {
    REPORT.call_once(|| {
        // SAFETY: registers a plain function with no captured state to run at exit.
        unsafe { libc::atexit(report) };
    });
    let mut inp = Input(data);
    let mut m = Model::default();
    let base = live_ids();
    let back0 = HANDED_BACK.load(Ordering::SeqCst);
    let mut v = FerryView { id: 0, ptr: ptr::null_mut(), len: 0 };
    while !inp.0.is_empty() {
        OPS.fetch_add(1, Ordering::Relaxed);
        match inp.u8() % 10 {
            0 => {
                let n = inp.size();
                let null = inp.null();
                let st = seen(
                    "ferry_buffer_new",
                    ferry_buffer_new(n, if null { ptr::null_mut() } else { &mut v }),
                );
                if st == FerryStatus::Ok {
                    let a = m.new_alloc(vec![0; n]);
                    m.add(v, a, 0, n);
                } else {
                    assert!(null || n > MAX_LEN, "new({n}) failed: {st:?}");
                }
            }
            1 => {
                let n = inp.size();
                let seed = inp.u8();
                let src: Vec<u8> = (0..if n > MAX_LEN { 16 } else { n }).map(|i| seed ^ i as u8).collect();
                let (null_src, null_out) = (inp.null(), inp.null());
                let p = if null_src { ptr::null() } else { src.as_ptr() };
                let st = seen(
                    "ferry_buffer_copy",
                    ferry_buffer_copy(p, n, if null_out { ptr::null_mut() } else { &mut v }),
                );
                if st == FerryStatus::Ok {
                    let a = m.new_alloc(src);
                    m.add(v, a, 0, n);
                } else {
                    assert!(null_out || n > MAX_LEN || (null_src && n > 0), "copy({n}) failed: {st:?}");
                }
            }
            2 => {
                let n = inp.size();
                let seed = inp.u8();
                let keep = if n > MAX_LEN { 16 } else { n };
                // SAFETY: malloc of at least one byte, checked below.
                let mem = unsafe { libc::malloc(keep.max(1)) }.cast::<u8>();
                assert!(!mem.is_null());
                for i in 0..keep {
                    // SAFETY: `i < keep` bytes were allocated.
                    unsafe { mem.add(i).write(seed ^ i as u8) };
                }
                let null_out = inp.null();
                let st = seen(
                    "ferry_buffer_adopt",
                    ferry_buffer_adopt(
                        mem,
                        n,
                        Some(give_back),
                        ptr::null_mut(),
                        if null_out { ptr::null_mut() } else { &mut v },
                    ),
                );
                if st == FerryStatus::Ok {
                    assert_eq!(v.ptr.is_null() || v.ptr == mem, true, "adopt copied");
                    m.adopted += 1;
                    let a = m.new_alloc((0..n).map(|i| seed ^ i as u8).collect());
                    m.add(v, a, 0, n);
                } else {
                    assert!(null_out || n > MAX_LEN, "adopt({n}) failed: {st:?}");
                    // SAFETY: ferry refused the memory, so it is still ours.
                    unsafe { libc::free(mem.cast()) };
                }
            }
            3 => {
                let id = m.pick(&mut inp);
                let st = seen("ferry_buffer_view", ferry_buffer_view(id, &mut v));
                assert_eq!(st == FerryStatus::Ok, m.ids.contains_key(&id), "view({id:#x}): {st:?}");
                if st == FerryStatus::Ok {
                    m.check(id);
                }
            }
            4 => {
                let id = m.pick(&mut inp);
                let st = seen("ferry_buffer_share", ferry_buffer_share(id, &mut v));
                assert_eq!(st == FerryStatus::Ok, m.ids.contains_key(&id), "share({id:#x}): {st:?}");
                if st == FerryStatus::Ok {
                    let e = &m.ids[&id];
                    let (a, off, len) = (e.alloc, e.off, e.len);
                    m.add(v, a, off, len);
                }
            }
            5 | 6 => {
                let slice = inp.u8() % 2 == 0;
                let id = m.pick(&mut inp);
                let have = m.ids.get(&id).map_or(0, |e| e.len);
                let off = inp.pos(have);
                let len = inp.pos(have.saturating_sub(off));
                let want = match m.ids.get(&id) {
                    None => FerryStatus::InvalidHandle,
                    Some(_) => range(off, len, have),
                };
                if slice {
                    let st = seen("ferry_buffer_slice", ferry_buffer_slice(id, off, len, &mut v));
                    assert_eq!(st, want, "slice({id:#x}, {off}, {len})");
                    if st == FerryStatus::Ok {
                        let e = &m.ids[&id];
                        let (a, eoff) = (e.alloc, e.off);
                        m.add(v, a, eoff + off, len);
                    }
                } else {
                    // The destination has `len` bytes, except over MAX_LEN, where ferry must refuse
                    // before touching it; lengths in between that fit no buffer are skipped.
                    if len <= MAX_LEN && len > (1 << 20) {
                        continue;
                    }
                    let mut out = vec![0xEEu8; if len > MAX_LEN { 8 } else { len }];
                    let st =
                        seen("ferry_buffer_copy_out", ferry_buffer_copy_out(id, off, out.as_mut_ptr(), len));
                    let want = if len > MAX_LEN { FerryStatus::TooLarge } else { want };
                    assert_eq!(st, want, "copy_out({id:#x}, {off}, {len})");
                    if st == FerryStatus::Ok {
                        let e = &m.ids[&id];
                        assert_eq!(out[..], m.allocs[e.alloc].0[e.off + off..e.off + off + len]);
                    } else {
                        assert!(out.iter().all(|&b| b == 0xEE), "copy_out wrote on error");
                    }
                }
            }
            7 => {
                // Write through the view of a live id, then read back through every id over it.
                if m.order.is_empty() {
                    continue;
                }
                let id = m.order[inp.u8() as usize % m.order.len()];
                let (at, byte) = (inp.u16() as usize, inp.u8());
                assert_eq!(ferry_buffer_view(id, &mut v), FerryStatus::Ok);
                if v.len > 0 {
                    let i = at % v.len;
                    // SAFETY: the view of a live id has `len` writable bytes.
                    unsafe { v.ptr.add(i).write(byte) };
                    let e = &m.ids[&id];
                    let (a, off) = (e.alloc, e.off);
                    m.allocs[a].0[off + i] = byte;
                    let same: Vec<u64> = m.order.iter().copied().filter(|x| m.ids[x].alloc == a).collect();
                    for x in same {
                        m.check(x);
                    }
                }
            }
            8 => {
                let id = m.pick(&mut inp);
                let st = seen("ferry_buffer_release", ferry_buffer_release(id));
                assert_eq!(st == FerryStatus::Ok, m.ids.contains_key(&id), "release({id:#x}): {st:?}");
                if st == FerryStatus::Ok {
                    m.forget(id);
                }
            }
            _ => {
                let k = inp.u8() as usize % 6;
                let ids: Vec<u64> = (0..k).map(|_| m.pick(&mut inp)).collect();
                let mut n = 0usize;
                let st = seen(
                    "ferry_buffer_release_many",
                    ferry_buffer_release_many(ids.as_ptr(), ids.len(), &mut n),
                );
                let mut valid = 0;
                for id in &ids {
                    if m.ids.contains_key(id) {
                        m.forget(*id);
                        valid += 1;
                    }
                }
                assert_eq!(n, valid, "release_many({ids:x?})");
                assert_eq!(st == FerryStatus::Ok, valid == ids.len());
            }
        }
        assert_eq!(live_ids(), base + m.ids.len() as u64, "live ids differ from the model");
    }
    // Release what is left; every adopted allocation has been handed back exactly once.
    let left = m.order.clone();
    let mut n = 0usize;
    assert_eq!(ferry_buffer_release_many(left.as_ptr(), left.len(), &mut n), FerryStatus::Ok);
    assert_eq!(n, left.len());
    assert_eq!(live_ids(), base);
    assert_eq!(HANDED_BACK.load(Ordering::SeqCst) - back0, m.adopted, "adopted memory not handed back once");
});
