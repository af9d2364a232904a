//! Coverage-guided fuzzing of the C ABI: the input is decoded into a sequence of calls to the
//! exported functions (ids live, stale, forged, 0 or `u64::MAX`; NULL pointers; oversize and
//! overflowing offsets and lengths), and every result is checked against a small model: the status,
//! the bytes read back, the live-id count, and that adopted memory is handed back exactly once.
//! The callback, queue, async and pool functions are in the mix (register, unregister, invoke,
//! queue new/close/wait/post, submit, cancel, pool configure/shutdown): each completion must match
//! a job in flight, every job completes once, and every callback's drop function runs once.
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
use ferry::ffi::callback::*;
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
    let mut cbm = CbModel::default();
    let base = live_ids();
    let back0 = HANDED_BACK.load(Ordering::SeqCst);
    let mut v = FerryView { id: 0, ptr: ptr::null_mut(), len: 0 };
    while !inp.0.is_empty() {
        OPS.fetch_add(1, Ordering::Relaxed);
        let op = inp.u8() % 16;
        if op >= 10 {
            cbm.step(op, &mut inp, &m);
            let live = live_ids();
            let want = base + m.ids.len() as u64;
            assert!(
                live >= want && live <= want + cbm.pending_buffers(),
                "live ids {live}, model {want} + up to {} results in flight",
                cbm.pending_buffers()
            );
            continue;
        }
        match op {
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
                let a = m.ids[&id].alloc;
                // Async jobs in flight read these bytes when they run (and an echo's result shares
                // them): leave them as they were at the submit.
                if v.len > 0 && !cbm.reads(a) {
                    let i = at % v.len;
                    // SAFETY: the view of a live id has `len` writable bytes.
                    unsafe { v.ptr.add(i).write(byte) };
                    let e = &m.ids[&id];
                    let off = e.off;
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
        let live = live_ids();
        let want = base + m.ids.len() as u64;
        assert!(live >= want && live <= want + cbm.pending_buffers(), "live ids {live}, model {want}");
    }
    cbm.finish();
    // Release what is left; every adopted allocation has been handed back exactly once.
    let left = m.order.clone();
    let mut n = 0usize;
    assert_eq!(ferry_buffer_release_many(left.as_ptr(), left.len(), &mut n), FerryStatus::Ok);
    assert_eq!(n, left.len());
    // Discarded results of closed queues' jobs go a moment after those jobs end.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while live_ids() != base {
        assert!(
            std::time::Instant::now() < deadline,
            "live ids {} at the end, {base} at the start",
            live_ids()
        );
        std::thread::yield_now();
    }
    assert_eq!(HANDED_BACK.load(Ordering::SeqCst) - back0, m.adopted, "adopted memory not handed back once");
});

// ---------------------------------------------------------------------------------------------
// Callbacks, queues, async work and the pool
// ---------------------------------------------------------------------------------------------

/// A callback's user data: how often its drop function ran.
struct Drops(AtomicUsize);

/// value % 4: 0 OK with value + 1; 1 OK with a new 1-byte buffer holding `value as u8`; 2 a failure
/// with detail `value`; 3 a recovered panic with record `value`.
unsafe extern "C" fn callback(_ud: *mut c_void, _buffer: u64, value: u64, out: *mut FerryPayload) -> u32 {
    // SAFETY: ferry passes a valid, zeroed result.
    let out = unsafe { &mut *out };
    out.value = value;
    match value % 4 {
        0 => {
            out.value = value + 1;
            0
        }
        1 => {
            let mut v = FerryView { id: 0, ptr: ptr::null_mut(), len: 0 };
            if ferry_buffer_copy(&(value as u8), 1, &mut v) != FerryStatus::Ok {
                return FerryStatus::CallbackFailed as u32;
            }
            out.buffer = v.id;
            0
        }
        2 => FerryStatus::CallbackFailed as u32,
        _ => FerryStatus::CallbackPanic as u32,
    }
}

unsafe extern "C" fn drop_cb(ud: *mut c_void) {
    // SAFETY: registered with a pointer to a Drops that lives until its drop function ran.
    unsafe { (*(ud as *const Drops)).0.fetch_add(1, Ordering::SeqCst) };
}

/// What a job in flight may complete with.
#[derive(Debug, Clone)]
struct Job {
    status: FerryStatus,
    value: u64,
    /// The result buffer's bytes (None: no buffer).
    bytes: Option<Vec<u8>>,
    /// The pool was shut down while it was in flight: CLOSED is allowed.
    closed_ok: bool,
    cancelled: bool,
    /// The allocation (of the buffer model) the job reads.
    reads: Option<usize>,
    /// A FERRY_OP_CALL job with an input lends its callback an id of its own while it runs.
    lends: bool,
}

impl Job {
    /// Buffer ids the job may make: its result, and the id it lends its callback.
    fn ids(&self) -> u64 {
        u64::from(self.bytes.is_some()) + u64::from(self.lends)
    }
}

#[derive(Default)]
struct CbModel {
    /// (id, drops, registered); a callback stays listed until its drop function ran.
    cbs: Vec<(u64, Box<Drops>, bool)>,
    stale_cbs: Vec<u64>,
    /// (queue id, tag -> jobs with that tag in flight).
    queues: Vec<(u64, HashMap<u64, Vec<Job>>)>,
    stale_queues: Vec<u64>,
    /// Result buffers of jobs on queues since closed: released when their completion arrives and is
    /// discarded, a moment after the job ends.
    orphans: u64,
    next_tag: u64,
}

fn outcome(value: u64) -> Job {
    let (status, value, bytes) = match value % 4 {
        0 => (FerryStatus::Ok, value + 1, None),
        1 => (FerryStatus::Ok, value, Some(vec![value as u8])),
        2 => (FerryStatus::CallbackFailed, value, None),
        _ => (FerryStatus::CallbackPanic, value, None),
    };
    Job { status, value, bytes, closed_ok: false, cancelled: false, reads: None, lends: false }
}

impl CbModel {
    fn pick(&self, inp: &mut Input, live: &[u64], stale: &[u64], other: u64) -> u64 {
        let some = |i: u8| if live.is_empty() { 0 } else { live[i as usize % live.len()] };
        match inp.u8() % 12 {
            0 => 0,
            1 => u64::MAX,
            2 => stale.get(inp.u8() as usize % stale.len().max(1)).copied().unwrap_or(3),
            3 => some(inp.u8()) ^ (1 << 32),
            4 => some(inp.u8()) ^ (u64::from(inp.u8() % 16) << 28),
            5 => other,
            6 => u64::from(inp.u16()) << 32 | u64::from(inp.u16()),
            _ => some(inp.u8()),
        }
    }

    fn live_cbs(&self) -> Vec<u64> {
        self.cbs.iter().filter(|c| c.2).map(|c| c.0).collect()
    }

    fn queue_ids(&self) -> Vec<u64> {
        self.queues.iter().map(|q| q.0).collect()
    }

    fn reads(&self, alloc: usize) -> bool {
        self.queues.iter().flat_map(|q| q.1.values().flatten()).any(|j| j.reads == Some(alloc))
    }

    fn pending_buffers(&self) -> u64 {
        let jobs = self.queues.iter().flat_map(|q| q.1.values().flatten());
        jobs.map(Job::ids).sum::<u64>() + self.orphans
    }

    fn step(&mut self, op: u8, inp: &mut Input, m: &Model) {
        match op {
            10 => self.register_or_unregister(inp),
            11 => self.invoke(inp, m),
            12 => self.queue(inp),
            13 | 14 => self.submit(inp, m),
            _ => self.wait_or_cancel(inp),
        }
    }

    fn register_or_unregister(&mut self, inp: &mut Input) {
        if inp.u8() % 2 == 0 {
            let drops = Box::new(Drops(AtomicUsize::new(0)));
            let mut id = 0u64;
            let null = inp.null();
            let out = if null { ptr::null_mut() } else { &mut id as *mut u64 };
            let ud = &*drops as *const Drops as *mut c_void;
            let st = seen(
                "ferry_callback_register",
                ferry_callback_register(Some(callback), ud, Some(drop_cb), out),
            );
            assert_eq!(st, if null { FerryStatus::NullPointer } else { FerryStatus::Ok });
            if st == FerryStatus::Ok {
                self.cbs.push((id, drops, true));
            }
            return;
        }
        let live = self.live_cbs();
        let other = self.queues.first().map_or(0, |q| q.0);
        let id = self.pick(inp, &live, &self.stale_cbs.clone(), other);
        let st = seen("ferry_callback_unregister", ferry_callback_unregister(id));
        assert_eq!(st == FerryStatus::Ok, live.contains(&id), "unregister({id:#x}): {st:?}");
        if st == FerryStatus::Ok {
            let c = self.cbs.iter_mut().find(|c| c.0 == id).expect("live");
            c.2 = false;
            self.stale_cbs.push(id);
        }
        self.reap();
    }

    /// Forgets unregistered callbacks whose drop function ran (exactly once).
    fn reap(&mut self) {
        self.cbs.retain(|c| {
            let d = c.1 .0.load(Ordering::SeqCst);
            assert!(d <= 1, "callback {:#x} dropped {d} times", c.0);
            assert!(d == 0 || !c.2, "callback {:#x} dropped while registered", c.0);
            c.2 || d == 0
        });
    }

    fn invoke(&mut self, inp: &mut Input, m: &Model) {
        let live = self.live_cbs();
        let id = self.pick(inp, &live, &self.stale_cbs.clone(), m.order.first().copied().unwrap_or(0));
        let value = u64::from(inp.u16());
        let buffer = m.pick(inp);
        let mut r = FerryPayload { buffer: 7, value: 7 };
        let st = seen("ferry_callback_invoke", ferry_callback_invoke(id, buffer, value, &mut r));
        if !live.contains(&id) {
            assert_eq!(st, FerryStatus::InvalidHandle, "invoke({id:#x})");
            return;
        }
        let want = outcome(value);
        assert_eq!((st, r.value), (want.status, want.value), "invoke({id:#x}, {value})");
        assert_eq!(r.buffer != 0, want.bytes.is_some());
        if r.buffer != 0 {
            check_bytes(r.buffer, want.bytes.as_deref().expect("a buffer"));
            assert_eq!(ferry_buffer_release(r.buffer), FerryStatus::Ok);
        }
    }

    fn queue(&mut self, inp: &mut Input) {
        match inp.u8() % 8 {
            0..=3 => {
                let mut q = 0u64;
                let null = inp.null();
                let st =
                    seen("ferry_queue_new", ferry_queue_new(if null { ptr::null_mut() } else { &mut q }));
                assert_eq!(st, if null { FerryStatus::NullPointer } else { FerryStatus::Ok });
                if st == FerryStatus::Ok {
                    self.queues.push((q, HashMap::new()));
                }
            }
            4 | 5 => {
                let live = self.queue_ids();
                let other = self.cbs.first().map_or(0, |c| c.0);
                let q = self.pick(inp, &live, &self.stale_queues.clone(), other);
                let st = seen("ferry_queue_close", ferry_queue_close(q));
                assert_eq!(st == FerryStatus::Ok, live.contains(&q), "close({q:#x}): {st:?}");
                if st == FerryStatus::Ok {
                    // Its jobs are cancelled; their completions (and result buffers) are discarded.
                    let gone = self.queues.iter().find(|x| x.0 == q).expect("live");
                    self.orphans += gone.1.values().flatten().map(Job::ids).sum::<u64>();
                    self.queues.retain(|x| x.0 != q);
                    self.stale_queues.push(q);
                    settle_pool();
                }
            }
            6 => {
                let (threads, stack) =
                    (u32::from(inp.u8() % 6), [0, 1024, 256 << 10, usize::MAX][inp.u8() as usize % 4]);
                let st = seen("ferry_pool_configure", ferry_pool_configure(threads, 0, stack));
                let ok = stack == 0 || stack == 256 << 10;
                assert_eq!(st, if ok { FerryStatus::Ok } else { FerryStatus::InvalidArgument });
            }
            _ => {
                // Waiting jobs complete with CLOSED; running ones finish.
                assert_eq!(seen("ferry_pool_shutdown", ferry_pool_shutdown()), FerryStatus::Ok);
                for j in self.queues.iter_mut().flat_map(|q| q.1.values_mut().flatten()) {
                    j.closed_ok = true;
                }
            }
        }
    }

    fn submit(&mut self, inp: &mut Input, m: &Model) {
        let live = self.queue_ids();
        let other = m.order.first().copied().unwrap_or(0);
        let q = self.pick(inp, &live, &self.stale_queues.clone(), other);
        let input = if inp.u8() % 3 == 0 { 0 } else { m.pick(inp) };
        // No FERRY_OP_PANIC: libFuzzer's panic hook aborts on any panic, caught or not (the model
        // test and tests/fault_callbacks.rs cover panicking jobs).
        let op = match inp.u8() % 8 {
            0 | 1 => FERRY_OP_ECHO,
            2 | 3 => FERRY_OP_CHECKSUM,
            4..=6 => FERRY_OP_CALL,
            _ => [0, FERRY_OP_SLEEP, 77][inp.u8() as usize % 3],
        };
        let value = u64::from(inp.u16());
        let cbs = self.live_cbs();
        let arg = match op {
            FERRY_OP_CALL => self.pick(inp, &cbs, &self.stale_cbs.clone(), q),
            _ => [0, 500, 60_000_001][inp.u8() as usize % 3],
        };
        let qix = self.queues.iter().position(|x| x.0 == q);
        let dup = qix.and_then(|i| self.queues[i].1.keys().next().copied()).filter(|_| inp.u8() % 8 == 0);
        let tag = dup.unwrap_or_else(|| {
            self.next_tag += 1;
            self.next_tag
        });
        let st = seen("ferry_async_submit", ferry_async_submit(q, tag, op, input, arg, value));
        let input_ok = input == 0 || m.ids.contains_key(&input);
        let want = if !(FERRY_OP_ECHO..=FERRY_OP_CALL).contains(&op) {
            FerryStatus::Unsupported
        } else if !input_ok {
            FerryStatus::InvalidHandle
        } else if op == FERRY_OP_SLEEP && arg > 60_000_000 {
            FerryStatus::InvalidArgument
        } else if (op == FERRY_OP_CALL && !cbs.contains(&arg)) || qix.is_none() {
            FerryStatus::InvalidHandle
        } else if dup.is_some() && st != FerryStatus::Ok {
            FerryStatus::InvalidArgument
        } else {
            FerryStatus::Ok
        };
        assert_eq!(st, want, "submit(q={q:#x}, tag={tag}, op={op}, input={input:#x}, arg={arg:#x})");
        if st != FerryStatus::Ok {
            return;
        }
        let bytes = m.ids.get(&input).map(|e| m.allocs[e.alloc].0[e.off..e.off + e.len].to_vec());
        let reads = m.ids.get(&input).map(|e| e.alloc);
        let plain = |value, bytes| Job {
            status: FerryStatus::Ok,
            value,
            bytes,
            closed_ok: false,
            cancelled: false,
            reads,
            lends: false,
        };
        let job = match op {
            FERRY_OP_ECHO => plain(value, bytes),
            FERRY_OP_CHECKSUM => plain(ferry::callback::fnv1a64(bytes.as_deref().unwrap_or(&[])), None),
            FERRY_OP_SLEEP => plain(value, None),
            _ => Job { reads, lends: input != 0, ..outcome(value) },
        };
        self.queues[qix.expect("checked")].1.entry(tag).or_default().push(job);
    }

    fn wait_or_cancel(&mut self, inp: &mut Input) {
        let live = self.queue_ids();
        let q = self.pick(inp, &live, &self.stale_queues.clone(), 0);
        let qix = self.queues.iter().position(|x| x.0 == q);
        if inp.u8() % 4 == 0 {
            let known = qix.and_then(|i| self.queues[i].1.keys().next().copied());
            let tag = if inp.u8() % 4 == 0 { 1 << 50 } else { known.unwrap_or(1 << 50) };
            let st = seen("ferry_async_cancel", ferry_async_cancel(q, tag));
            match qix.filter(|_| known == Some(tag)) {
                Some(i) => {
                    assert!(st == FerryStatus::Ok || st == FerryStatus::InvalidHandle, "cancel: {st:?}");
                    if st == FerryStatus::Ok {
                        let jobs = self.queues[i].1.get_mut(&tag).expect("in flight");
                        jobs.last_mut().expect("one").cancelled = true;
                    }
                }
                None => assert_eq!(st, FerryStatus::InvalidHandle, "cancel(q={q:#x}, tag={tag:#x})"),
            }
            return;
        }
        let cap = [0usize, 1, 8][inp.u8() as usize % 3];
        let mut out = [FerryCompletion::default(); 8];
        let mut n = 0usize;
        let null = inp.null();
        let p = if null { ptr::null_mut() } else { out.as_mut_ptr() };
        let st = seen("ferry_queue_wait", ferry_queue_wait(q, p, cap, 0, &mut n));
        let want = if null {
            FerryStatus::NullPointer
        } else if qix.is_none() {
            FerryStatus::InvalidHandle
        } else if cap == 0 {
            FerryStatus::InvalidArgument
        } else {
            FerryStatus::Ok
        };
        assert_eq!(st, want, "wait(q={q:#x}, cap={cap})");
        if st == FerryStatus::Ok {
            for c in &out[..n] {
                self.complete(qix.expect("checked"), c);
            }
        }
    }

    /// Matches completion `c` from queue `i` with a job in flight under its tag (a resubmitted tag
    /// may complete in either order), and ends that job.
    fn complete(&mut self, i: usize, c: &FerryCompletion) {
        let jobs = self.queues[i]
            .1
            .get_mut(&c.tag)
            .unwrap_or_else(|| panic!("completion for tag {} not in flight", c.tag));
        let k = jobs
            .iter()
            .position(|j| matches(j, c))
            .unwrap_or_else(|| panic!("{c:?} matches none of {jobs:?}"));
        jobs.remove(k);
        if jobs.is_empty() {
            self.queues[i].1.remove(&c.tag);
        }
        if c.buffer != 0 {
            assert_eq!(ferry_buffer_release(c.buffer), FerryStatus::Ok);
        }
        self.reap();
    }

    /// Drains every queue, closes them, unregisters every callback: each drop function runs once.
    fn finish(&mut self) {
        for i in 0..self.queues.len() {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while !self.queues[i].1.is_empty() {
                assert!(std::time::Instant::now() < deadline, "lost completions");
                let mut out = [FerryCompletion::default(); 8];
                let mut n = 0usize;
                assert_eq!(
                    ferry_queue_wait(self.queues[i].0, out.as_mut_ptr(), 8, 100_000_000, &mut n),
                    FerryStatus::Ok
                );
                for c in &out[..n] {
                    self.complete(i, c);
                }
            }
        }
        for (q, _) in std::mem::take(&mut self.queues) {
            assert_eq!(ferry_queue_close(q), FerryStatus::Ok);
        }
        for c in &mut self.cbs {
            if c.2 {
                assert_eq!(ferry_callback_unregister(c.0), FerryStatus::Ok);
                c.2 = false;
            }
        }
        // Jobs of closed queues may still hold a callback for a moment.
        settle_pool();
        self.reap();
        // No worker outlives an input: LeakSanitizer, at exit, counts the start-up closure of a
        // thread that is being created as leaked.
        assert_eq!(ferry_pool_shutdown(), FerryStatus::Ok);
        assert!(
            self.cbs.is_empty(),
            "callbacks never dropped: {:x?}",
            self.cbs.iter().map(|c| c.0).collect::<Vec<_>>()
        );
    }
}

/// Waits until no job is in flight in the pool (jobs of closed queues end without a completion).
fn settle_pool() {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let mut s = FerryCallbackStats::default();
        assert_eq!(ferry_callback_stats(&mut s), FerryStatus::Ok);
        if s.in_flight == 0 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "jobs still in flight after 60 s");
        std::thread::yield_now();
    }
}

fn check_bytes(id: u64, want: &[u8]) {
    let mut got = vec![0u8; want.len()];
    assert_eq!(ferry_buffer_copy_out(id, 0, got.as_mut_ptr(), got.len()), FerryStatus::Ok);
    assert_eq!(got, want, "result bytes of {id:#x}");
}

fn matches(j: &Job, c: &FerryCompletion) -> bool {
    let Some(st) = FerryStatus::from_u32(c.status) else { return false };
    if (st == FerryStatus::Cancelled && j.cancelled) || (st == FerryStatus::Closed && j.closed_ok) {
        return c.buffer == 0;
    }
    if st != j.status || c.value != j.value || (c.buffer != 0) != j.bytes.is_some() {
        return false;
    }
    match &j.bytes {
        Some(want) => {
            let mut got = vec![0u8; want.len()];
            ferry_buffer_copy_out(c.buffer, 0, got.as_mut_ptr(), got.len()) == FerryStatus::Ok && &got == want
        }
        None => true,
    }
}
