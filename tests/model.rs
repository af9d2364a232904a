//! Model-based property test of the C ABI.
//!
//! proptest generates random sequences of calls to the exported buffer functions (create, copy,
//! adopt, view, claim, disclaim, share, slice, copy-out, write through a view, release,
//! release-many, limit, peak, status message) with random ids (live, 0, `u64::MAX`, stale, wrong generation, another slot's or
//! shard's id, forged), NULL pointers, and oversize or overflowing offset + length. Each call is
//! checked at once against a plain model: the status, the view, the bytes (read through the view and
//! through `ferry_buffer_copy_out`), the stats counters, and the exact moment adopted memory is
//! handed back (its release callback runs exactly once, in the call that drops the last id over it).
//! Every status a call returns must also be one that its entry in
//! `ferry::ffi::status::function_errors` lists (the list its `Errors:` line in the header states).
//!
//! The callback, queue, async and pool functions have a model of their own, run from several
//! threads: tests/model_callbacks.rs.
//!
//! This file is its own test binary with a single `#[test]`, so the process-wide table holds only
//! this model's ids; the model still compares deltas from the stats at the start of each case.
//!
//! Operation count: `FERRY_MODEL_OPS` (default 200,000 in a debug build, 1,000,000 in release).
//! Seed: `FERRY_MODEL_SEED` (default random, printed). `make test-reliability` runs a million:
//! `FERRY_MODEL_OPS=1000000 cargo test --test model -- --nocapture`.

use std::collections::HashMap;
use std::os::raw::{c_char, c_void};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use ferry::ffi::buffer::{
    ferry_buffer_adopt, ferry_buffer_claim, ferry_buffer_copy, ferry_buffer_copy_out, ferry_buffer_disclaim,
    ferry_buffer_new, ferry_buffer_release, ferry_buffer_release_many, ferry_buffer_share,
    ferry_buffer_slice, ferry_buffer_view, ferry_limit_set, ferry_peak_reset, ferry_stats_get,
    FerryReleaseFn,
};
use ferry::ffi::status::{ferry_status_message, may_return};
use ferry::ffi::{FerryStats, FerryStatus, FerryView};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, RngSeed, TestCaseError, TestRunner};

const MAX_LEN: usize = ferry::MAX_LEN;

// ---------------------------------------------------------------------------------------------
// Generated operations
// ---------------------------------------------------------------------------------------------

/// How an operation picks its id.
#[derive(Debug, Clone)]
enum IdSel {
    /// A live id of the model (index modulo the live count; 0 when none is live).
    Live(usize),
    /// A released id.
    Stale(usize),
    Zero,
    Max,
    /// A live id with its generation moved by +1 or -1.
    WrongGen(usize, bool),
    /// A live id with its slot number moved.
    OtherSlot(usize, u8),
    /// A live id with its shard bits replaced (bit 4 clear), or its kind bits (bit 4 set).
    OtherShard(usize, u8),
    /// A plausible id built from small numbers: it may or may not name a live slot.
    Forged(u8, u8, u8),
    Raw(u64),
}

/// An offset or length, relative to the length of the range it applies to.
#[derive(Debug, Clone)]
enum Pos {
    /// `k * len / 255`: somewhere inside.
    Within(u8),
    Abs(u8),
    /// `len - k` (saturating).
    FromEnd(u8),
    /// `len + k`.
    Past(u8),
    /// `usize::MAX - k`.
    Huge(u8),
    /// `MAX_LEN + 1`.
    TooBig,
}

impl Pos {
    fn at(&self, len: usize) -> usize {
        match *self {
            Pos::Within(k) => len / 255 * k as usize + len % 255 * k as usize / 255,
            Pos::Abs(k) => k as usize,
            Pos::FromEnd(k) => len.saturating_sub(k as usize),
            Pos::Past(k) => len + k as usize,
            Pos::Huge(k) => usize::MAX - k as usize,
            Pos::TooBig => MAX_LEN + 1,
        }
    }
}

/// A buffer length for creates.
#[derive(Debug, Clone)]
enum Size {
    N(usize),
    /// `MAX_LEN + 1` or `usize::MAX`: must be refused before anything is read or allocated.
    Oversize(bool),
}

impl Size {
    fn get(&self) -> usize {
        match *self {
            Size::N(n) => n,
            Size::Oversize(false) => MAX_LEN + 1,
            Size::Oversize(true) => usize::MAX,
        }
    }
}

#[derive(Debug, Clone)]
enum LimitKind {
    None,
    /// Current live bytes plus this.
    Above(u16),
    /// Current live bytes minus this (saturating at 1).
    Below(u16),
}

#[derive(Debug, Clone)]
enum Op {
    New { size: Size, null_out: bool },
    Copy { size: Size, seed: u8, null_data: bool, null_out: bool },
    Adopt { size: Size, seed: u8, null_data: bool, no_release_fn: bool, null_out: bool },
    View { id: IdSel, null_out: bool },
    Claim { id: IdSel, null_out: bool },
    Disclaim { id: IdSel },
    Share { id: IdSel, null_out: bool },
    Slice { id: IdSel, off: Pos, len: Pos, null_out: bool },
    CopyOut { id: IdSel, off: Pos, len: Pos, null_dst: bool },
    Write { id: usize, at: u32, byte: u8 },
    Release { id: IdSel },
    ReleaseMany { ids: Vec<IdSel>, null_ids: bool, null_out: bool, huge_n: bool },
    SetLimit(LimitKind),
    PeakReset,
    StatsNull,
    Message { status: u32, buf_len: u8, null_buf: bool, null_n: bool },
}

fn id_sel() -> impl Strategy<Value = IdSel> {
    prop_oneof![
        24 => any::<usize>().prop_map(IdSel::Live),
        2 => any::<usize>().prop_map(IdSel::Stale),
        1 => Just(IdSel::Zero),
        1 => Just(IdSel::Max),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(i, up)| IdSel::WrongGen(i, up)),
        1 => (any::<usize>(), 1u8..8).prop_map(|(i, k)| IdSel::OtherSlot(i, k)),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(i, s)| IdSel::OtherShard(i, s)),
        2 => (0u8..4, 0u8..16, 0u8..16).prop_map(|(g, sh, sl)| IdSel::Forged(g, sh, sl)),
        1 => any::<u64>().prop_map(IdSel::Raw),
    ]
}

fn pos() -> impl Strategy<Value = Pos> {
    prop_oneof![
        8 => any::<u8>().prop_map(Pos::Within),
        3 => (0u8..80).prop_map(Pos::Abs),
        4 => (0u8..8).prop_map(Pos::FromEnd),
        2 => (0u8..4).prop_map(Pos::Past),
        1 => (0u8..4).prop_map(Pos::Huge),
        1 => Just(Pos::TooBig),
    ]
}

fn size() -> impl Strategy<Value = Size> {
    prop_oneof![
        30 => (0usize..=64).prop_map(Size::N),
        6 => Just(Size::N(0)),
        8 => (65usize..=4096).prop_map(Size::N),
        // Past the stats' 256 KiB per-thread grain, so folding into the global total is exercised.
        1 => ((256usize << 10)..=(300 << 10)).prop_map(Size::N),
        1 => any::<bool>().prop_map(Size::Oversize),
    ]
}

/// NULL one time in `1/n` (roughly).
fn rarely(n: u32) -> impl Strategy<Value = bool> {
    (0..n).prop_map(|v| v == 0)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (size(), rarely(40)).prop_map(|(size, null_out)| Op::New { size, null_out }),
        8 => (size(), any::<u8>(), rarely(30), rarely(40))
            .prop_map(|(size, seed, null_data, null_out)| Op::Copy { size, seed, null_data, null_out }),
        6 => (size(), any::<u8>(), rarely(30), rarely(5), rarely(40)).prop_map(
            |(size, seed, null_data, no_release_fn, null_out)| Op::Adopt {
                size,
                seed,
                null_data,
                no_release_fn,
                null_out
            }
        ),
        8 => (id_sel(), rarely(40)).prop_map(|(id, null_out)| Op::View { id, null_out }),
        3 => (id_sel(), rarely(40)).prop_map(|(id, null_out)| Op::Claim { id, null_out }),
        2 => id_sel().prop_map(|id| Op::Disclaim { id }),
        5 => (id_sel(), rarely(40)).prop_map(|(id, null_out)| Op::Share { id, null_out }),
        7 => (id_sel(), pos(), pos(), rarely(40))
            .prop_map(|(id, off, len, null_out)| Op::Slice { id, off, len, null_out }),
        8 => (id_sel(), pos(), pos(), rarely(30))
            .prop_map(|(id, off, len, null_dst)| Op::CopyOut { id, off, len, null_dst }),
        6 => (any::<usize>(), any::<u32>(), any::<u8>()).prop_map(|(id, at, byte)| Op::Write { id, at, byte }),
        14 => id_sel().prop_map(|id| Op::Release { id }),
        3 => (prop::collection::vec(id_sel(), 0..8), rarely(30), rarely(4), rarely(40))
            .prop_map(|(ids, null_ids, null_out, huge_n)| Op::ReleaseMany { ids, null_ids, null_out, huge_n }),
        1 => prop_oneof![
            Just(LimitKind::None),
            any::<u16>().prop_map(LimitKind::Above),
            any::<u16>().prop_map(LimitKind::Below),
        ]
        .prop_map(Op::SetLimit),
        1 => Just(Op::PeakReset),
        1 => Just(Op::StatsNull),
        1 => (0u32..20, any::<u8>(), rarely(10), rarely(4))
            .prop_map(|(status, buf_len, null_buf, null_n)| Op::Message { status, buf_len, null_buf, null_n }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Adopted memory: allocated here with malloc, handed back through this callback
// ---------------------------------------------------------------------------------------------

/// (token, data, len) of every release callback, in call order; drained after each operation.
static HANDED_BACK: Mutex<Vec<(u64, usize, usize)>> = Mutex::new(Vec::new());

unsafe extern "C" fn give_back(user_data: *mut c_void, data: *mut u8, len: usize) {
    HANDED_BACK.lock().unwrap_or_else(|e| e.into_inner()).push((user_data as u64, data as usize, len));
    // SAFETY: `data` came from `malloc` in `Model::adopt` (or is NULL) and ferry hands it back once.
    unsafe { libc::free(data.cast()) };
}

fn handed_back() -> Vec<(u64, usize, usize)> {
    std::mem::take(&mut *HANDED_BACK.lock().unwrap_or_else(|e| e.into_inner()))
}

fn malloc_filled(len: usize, seed: u8) -> *mut u8 {
    // SAFETY: malloc of at least one byte; checked for NULL below.
    let p = unsafe { libc::malloc(len.max(1)) }.cast::<u8>();
    assert!(!p.is_null(), "malloc failed");
    let src = pattern(seed, len);
    // SAFETY: `len` bytes were allocated at `p`, and `src` is a separate vector of `len` bytes.
    unsafe { ptr::copy_nonoverlapping(src.as_ptr(), p, len) };
    p
}

/// `n` bytes of a pattern that depends on `seed`: a 251-byte block (prime, so it does not line up
/// with slice offsets) repeated, built with block copies so it is cheap in a debug build too.
fn pattern(seed: u8, n: usize) -> Vec<u8> {
    let block: Vec<u8> =
        (0..251u32).map(|i| seed.wrapping_add((i as u8).wrapping_mul(31)) ^ (i >> 3) as u8).collect();
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        let k = (n - v.len()).min(block.len());
        v.extend_from_slice(&block[..k]);
    }
    v
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

/// One piece of memory, shared by every id made from it by share or slice.
struct Alloc {
    bytes: Vec<u8>,
    /// The address ferry reported for byte 0 (NULL for an empty allocation).
    base: usize,
    /// Live ids over this memory.
    refs: usize,
    /// Adopted with a release callback: the token it will be called with.
    token: Option<u64>,
    /// Adopted without a release callback: the memory the model frees once ferry let go of it.
    unowned: Option<*mut u8>,
}

struct Entry {
    alloc: u64,
    off: usize,
    len: usize,
    /// Claimed (ferry_buffer_claim) and not disclaimed.
    claimed: bool,
}

struct Model {
    entries: HashMap<u64, Entry>,
    /// Live ids in creation order (the order makes a failing case reproducible when shrunk).
    live: Vec<u64>,
    allocs: HashMap<u64, Alloc>,
    stale: Vec<u64>,
    next_alloc: u64,
    /// Expected absolute stats.
    live_ids: u64,
    live_bytes: u64,
    peak: u64,
    limit: u64,
    created: u64,
    released: u64,
    /// Callbacks expected by the operation running now.
    expect_back: Vec<(u64, usize, usize)>,
}

static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);
static OPS: AtomicU64 = AtomicU64::new(0);

/// How often each status came back, per exported function, to show the run reached every path.
static TALLY: Mutex<Vec<(&'static str, FerryStatus, u64)>> = Mutex::new(Vec::new());

/// Counts a status `func` returned, and fails the case if `func` is not supposed to return it: its
/// entry in `ferry::ffi::status::function_errors` (which its header line states) must list it.
fn tally(func: &'static str, st: FerryStatus) -> Result<(), TestCaseError> {
    let mut t = TALLY.lock().unwrap_or_else(|e| e.into_inner());
    match t.iter_mut().find(|(f, s, _)| *f == func && *s == st) {
        Some(e) => e.2 += 1,
        None => t.push((func, st, 1)),
    }
    if !may_return(func, st) {
        return Err(TestCaseError::fail(format!(
            "{func} returned {st:?}, a status its entry in ferry::ffi::status::function_errors does not list"
        )));
    }
    Ok(())
}

fn stats() -> FerryStats {
    let mut s = FerryStats::default();
    assert_eq!(ferry_stats_get(&mut s), FerryStatus::Ok);
    s
}

macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(TestCaseError::fail(format!($($fmt)+)));
        }
    };
}

macro_rules! check_eq {
    ($a:expr, $b:expr, $($fmt:tt)+) => {{
        let (a, b) = (&$a, &$b);
        if a != b {
            return Err(TestCaseError::fail(format!(
                "{}: got {:?}, model says {:?}", format!($($fmt)+), a, b
            )));
        }
    }};
}

type R = Result<(), TestCaseError>;

fn out_ptr(v: &mut FerryView, null: bool) -> *mut FerryView {
    if null {
        ptr::null_mut()
    } else {
        v
    }
}

const UNSET: FerryView = FerryView { id: 0xDEAD, ptr: ptr::null_mut(), len: 0xDEAD };

impl Model {
    fn new() -> Model {
        // Start from whatever the table holds now: the model only counts its own ids.
        assert_eq!(ferry_limit_set(0), FerryStatus::Ok);
        assert_eq!(ferry_peak_reset(), FerryStatus::Ok);
        let s = stats();
        Model {
            entries: HashMap::new(),
            live: Vec::new(),
            allocs: HashMap::new(),
            stale: Vec::new(),
            next_alloc: 1,
            live_ids: s.live_ids,
            live_bytes: s.live_bytes,
            peak: s.live_bytes,
            limit: 0,
            created: s.created,
            released: s.released,
            expect_back: Vec::new(),
        }
    }

    fn resolve(&self, sel: &IdSel) -> u64 {
        let live = |i: usize| if self.live.is_empty() { 0 } else { self.live[i % self.live.len()] };
        match *sel {
            IdSel::Live(i) => live(i),
            IdSel::Stale(i) => {
                if self.stale.is_empty() {
                    live(i) ^ (1 << 32)
                } else {
                    self.stale[i % self.stale.len()]
                }
            }
            IdSel::Zero => 0,
            IdSel::Max => u64::MAX,
            IdSel::WrongGen(i, up) => {
                let id = live(i);
                if up {
                    id.wrapping_add(1 << 32)
                } else {
                    id.wrapping_sub(1 << 32)
                }
            }
            // The id layout (src/slots.rs): generation:32 | kind:4 | shard:4 | slot:24; buffers are kind 1.
            IdSel::OtherSlot(i, k) => {
                let id = live(i);
                (id & !0x00FF_FFFF) | ((id & 0x00FF_FFFF).wrapping_add(k as u64) & 0x00FF_FFFF)
            }
            IdSel::OtherShard(i, s) if s & 0x10 == 0 => (live(i) & !(0xF << 24)) | (((s & 0xF) as u64) << 24),
            // The same slot under another kind (a callback or queue id, or a kind never issued).
            IdSel::OtherShard(i, s) => (live(i) & !(0xF << 28)) | (((s & 0xF) as u64) << 28),
            IdSel::Forged(g, sh, sl) => ((g as u64) << 32) | (1 << 28) | ((sh as u64) << 24) | sl as u64,
            IdSel::Raw(v) => v,
        }
    }

    /// What a reserve of `n` bytes does to the live-byte limit.
    fn limit_refuses(&self, n: usize) -> bool {
        self.limit != 0 && self.live_bytes.saturating_add(n as u64) > self.limit
    }

    fn add_alloc(&mut self, a: Alloc) -> u64 {
        let k = self.next_alloc;
        self.next_alloc += 1;
        self.live_bytes += a.bytes.len() as u64;
        self.allocs.insert(k, a);
        k
    }

    fn add_id(&mut self, v: &FerryView, alloc: u64, off: usize, len: usize) -> R {
        check!(v.id != 0, "a new id is 0");
        check!(!self.entries.contains_key(&v.id), "new id {:#x} is already live", v.id);
        let a = self.allocs.get_mut(&alloc).expect("alloc exists");
        a.refs += 1;
        let want = if len == 0 { 0 } else { a.base + off };
        check_eq!((v.ptr as usize, v.len), (want, len), "view of new id {:#x}", v.id);
        self.entries.insert(v.id, Entry { alloc, off, len, claimed: false });
        self.live.push(v.id);
        self.live_ids += 1;
        self.created += 1;
        Ok(())
    }

    /// The model's side of a successful release of a live id.
    fn drop_id(&mut self, id: u64) {
        let e = self.entries.remove(&id).expect("live id");
        let pos = self.live.iter().position(|&x| x == id).expect("listed");
        self.live.remove(pos);
        self.stale.push(id);
        if self.stale.len() > 64 {
            self.stale.remove(0);
        }
        self.live_ids -= 1;
        self.released += 1;
        let a = self.allocs.get_mut(&e.alloc).expect("alloc exists");
        a.refs -= 1;
        if a.refs == 0 {
            let a = self.allocs.remove(&e.alloc).expect("alloc exists");
            self.live_bytes -= a.bytes.len() as u64;
            if let Some(t) = a.token {
                self.expect_back.push((t, a.base, a.bytes.len()));
            }
            if let Some(p) = a.unowned {
                // SAFETY: ferry dropped its last id over this memory just now and never calls back
                // for it (NULL release function), so the model, its owner, frees it.
                unsafe { libc::free(p.cast()) };
            }
        }
    }

    /// The status a call that takes one id and an out-parameter must return.
    fn id_status(&self, id: u64, null_out: bool) -> FerryStatus {
        if null_out {
            FerryStatus::NullPointer
        } else if self.lookup(id).is_some() {
            FerryStatus::Ok
        } else {
            FerryStatus::InvalidHandle
        }
    }

    fn lookup(&self, id: u64) -> Option<&Entry> {
        self.entries.get(&id)
    }

    /// The bytes of a live id's range, per the model.
    fn range(&self, e: &Entry) -> &[u8] {
        &self.allocs[&e.alloc].bytes[e.off..e.off + e.len]
    }

    fn run(&mut self, op: &Op) -> R {
        OPS.fetch_add(1, Ordering::Relaxed);
        match op {
            Op::New { size, null_out } => {
                let n = size.get();
                let mut v = UNSET;
                let st = ferry_buffer_new(n, out_ptr(&mut v, *null_out));
                let want = if *null_out {
                    FerryStatus::NullPointer
                } else if n == 0 {
                    FerryStatus::Ok
                } else if n > MAX_LEN {
                    FerryStatus::TooLarge
                } else if self.limit_refuses(n) {
                    FerryStatus::LimitReached
                } else {
                    FerryStatus::Ok
                };
                tally("ferry_buffer_new", st)?;
                check_eq!(st, want, "new({n}, null_out={null_out})");
                if st == FerryStatus::Ok {
                    let k = self.add_alloc(Alloc {
                        bytes: vec![0; n],
                        base: v.ptr as usize,
                        refs: 0,
                        token: None,
                        unowned: None,
                    });
                    self.add_id(&v, k, 0, n)?;
                    self.check_bytes(v.id)?;
                }
            }
            Op::Copy { size, seed, null_data, null_out } => {
                let n = size.get();
                // Oversize lengths are refused before the data is read, so a short source is fine.
                let src = pattern(*seed, n.min(300 << 10));
                let data = if *null_data { ptr::null() } else { src.as_ptr() };
                let mut v = UNSET;
                let st = ferry_buffer_copy(data, n, out_ptr(&mut v, *null_out));
                let want = if *null_out {
                    FerryStatus::NullPointer
                } else if n == 0 {
                    FerryStatus::Ok
                } else if n > MAX_LEN {
                    FerryStatus::TooLarge
                } else if *null_data {
                    FerryStatus::NullPointer
                } else if self.limit_refuses(n) {
                    FerryStatus::LimitReached
                } else {
                    FerryStatus::Ok
                };
                tally("ferry_buffer_copy", st)?;
                check_eq!(st, want, "copy({n}, null_data={null_data}, null_out={null_out})");
                if st == FerryStatus::Ok {
                    check!(n == 0 || !std::ptr::eq(v.ptr, src.as_ptr()), "copy kept the caller's pointer");
                    let k = self.add_alloc(Alloc {
                        bytes: src,
                        base: v.ptr as usize,
                        refs: 0,
                        token: None,
                        unowned: None,
                    });
                    self.add_id(&v, k, 0, n)?;
                    self.check_bytes(v.id)?;
                }
            }
            Op::Adopt { size, seed, null_data, no_release_fn, null_out } => {
                let n = size.get();
                let mem = if *null_data { ptr::null_mut() } else { malloc_filled(n.min(300 << 10), *seed) };
                let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
                let release: FerryReleaseFn = if *no_release_fn { None } else { Some(give_back) };
                let mut v = UNSET;
                let st =
                    ferry_buffer_adopt(mem, n, release, token as *mut c_void, out_ptr(&mut v, *null_out));
                let want = if *null_out {
                    FerryStatus::NullPointer
                } else if n > MAX_LEN {
                    FerryStatus::TooLarge
                } else if n > 0 && *null_data {
                    FerryStatus::NullPointer
                } else if n > 0 && self.limit_refuses(n) {
                    // Like new/copy, an empty adopt holds no bytes, so the limit never refuses it.
                    FerryStatus::LimitReached
                } else {
                    FerryStatus::Ok
                };
                tally("ferry_buffer_adopt", st)?;
                check_eq!(st, want, "adopt({n}, null_data={null_data}, null_out={null_out})");
                if st == FerryStatus::Ok {
                    check_eq!(v.ptr as usize, if n == 0 { 0 } else { mem as usize }, "adopt must not copy");
                    let k = self.add_alloc(Alloc {
                        bytes: pattern(*seed, n),
                        base: mem as usize,
                        refs: 0,
                        token: (!*no_release_fn).then_some(token),
                        unowned: if *no_release_fn && !mem.is_null() { Some(mem) } else { None },
                    });
                    // The callback gets back exactly the pointer it was given, even for 0 bytes.
                    self.allocs.get_mut(&k).unwrap().base = mem as usize;
                    self.add_id(&v, k, 0, n)?;
                    self.check_bytes(v.id)?;
                } else {
                    // On error ferry took nothing: the model still owns the memory.
                    // SAFETY: `mem` is from malloc (or NULL) and ferry refused it.
                    unsafe { libc::free(mem.cast()) };
                }
            }
            Op::View { id, null_out } => {
                let id = self.resolve(id);
                let mut v = UNSET;
                let st = ferry_buffer_view(id, out_ptr(&mut v, *null_out));
                let want = self.id_status(id, *null_out);
                tally("ferry_buffer_view", st)?;
                check_eq!(st, want, "view({id:#x}, null_out={null_out})");
                if st == FerryStatus::Ok {
                    let e = &self.entries[&id];
                    let base = self.allocs[&e.alloc].base;
                    let ptr_want = if e.len == 0 { 0 } else { base + e.off };
                    check_eq!((v.id, v.ptr as usize, v.len), (id, ptr_want, e.len), "view({id:#x})");
                    self.check_bytes(id)?;
                } else {
                    check!(v.id == UNSET.id && v.len == UNSET.len, "view wrote its out-param on error");
                }
            }
            Op::Claim { id, null_out } => {
                let id = self.resolve(id);
                let mut v = UNSET;
                let st = ferry_buffer_claim(id, out_ptr(&mut v, *null_out));
                let want = match self.entries.get(&id) {
                    _ if *null_out => FerryStatus::NullPointer,
                    Some(e) if !e.claimed => FerryStatus::Ok,
                    _ => FerryStatus::InvalidHandle,
                };
                tally("ferry_buffer_claim", st)?;
                check_eq!(st, want, "claim({id:#x}, null_out={null_out})");
                if st == FerryStatus::Ok {
                    let e = self.entries.get_mut(&id).expect("live");
                    e.claimed = true;
                    let a = &self.allocs[&e.alloc];
                    let ptr_want = if e.len == 0 { 0 } else { a.base + e.off };
                    check_eq!((v.id, v.ptr as usize, v.len), (id, ptr_want, e.len), "claim({id:#x}) view");
                } else {
                    check!(v.id == UNSET.id && v.len == UNSET.len, "claim wrote its out-param on error");
                }
            }
            Op::Disclaim { id } => {
                let id = self.resolve(id);
                let st = ferry_buffer_disclaim(id);
                let claimed = self.entries.get(&id).is_some_and(|e| e.claimed);
                tally("ferry_buffer_disclaim", st)?;
                check_eq!(
                    st,
                    if claimed { FerryStatus::Ok } else { FerryStatus::InvalidHandle },
                    "disclaim({id:#x})"
                );
                if claimed {
                    self.entries.get_mut(&id).expect("live").claimed = false;
                }
            }
            Op::Share { id, null_out } => {
                let id = self.resolve(id);
                let mut v = UNSET;
                let st = ferry_buffer_share(id, out_ptr(&mut v, *null_out));
                let want = self.id_status(id, *null_out);
                tally("ferry_buffer_share", st)?;
                check_eq!(st, want, "share({id:#x}, null_out={null_out})");
                if st == FerryStatus::Ok {
                    check!(v.id != id, "share returned the same id");
                    let e = &self.entries[&id];
                    let (a, off, len) = (e.alloc, e.off, e.len);
                    self.add_id(&v, a, off, len)?;
                    self.check_bytes(v.id)?;
                }
            }
            Op::Slice { id, off, len, null_out } => {
                let id = self.resolve(id);
                let have = self.lookup(id).map(|e| e.len).unwrap_or(0);
                let (off, len) = (off.at(have), len.at(have.saturating_sub(off.at(have))));
                let mut v = UNSET;
                let st = ferry_buffer_slice(id, off, len, out_ptr(&mut v, *null_out));
                let want = if *null_out {
                    FerryStatus::NullPointer
                } else if self.lookup(id).is_none() {
                    FerryStatus::InvalidHandle
                } else {
                    range_status(off, len, have)
                };
                tally("ferry_buffer_slice", st)?;
                check_eq!(st, want, "slice({id:#x}, {off}, {len}, null_out={null_out}) of {have} bytes");
                if st == FerryStatus::Ok {
                    let e = &self.entries[&id];
                    let (a, eoff) = (e.alloc, e.off);
                    self.add_id(&v, a, eoff + off, len)?;
                    self.check_bytes(v.id)?;
                }
            }
            Op::CopyOut { id, off, len, null_dst } => {
                let id = self.resolve(id);
                let have = self.lookup(id).map(|e| e.len).unwrap_or(0);
                let (off, len) = (off.at(have), len.at(have.saturating_sub(off.at(have))));
                // The destination always has `len` bytes, except for lengths ferry must refuse before
                // touching it (over MAX_LEN), which get a short one.
                let mut dst = vec![0xEEu8; if len > MAX_LEN { 16 } else { len }];
                let p = if *null_dst { ptr::null_mut() } else { dst.as_mut_ptr() };
                let st = ferry_buffer_copy_out(id, off, p, len);
                let want = if len > MAX_LEN {
                    FerryStatus::TooLarge
                } else if len > 0 && *null_dst {
                    FerryStatus::NullPointer
                } else if self.lookup(id).is_none() {
                    FerryStatus::InvalidHandle
                } else {
                    range_status(off, len, have)
                };
                tally("ferry_buffer_copy_out", st)?;
                check_eq!(st, want, "copy_out({id:#x}, {off}, {len}, null_dst={null_dst}) of {have} bytes");
                if st == FerryStatus::Ok {
                    let e = &self.entries[&id];
                    check!(
                        dst[..] == self.range(e)[off..off + len],
                        "copy_out({id:#x}, {off}, {len}) bytes differ"
                    );
                } else {
                    check!(dst.iter().all(|&b| b == 0xEE), "copy_out wrote its destination on error");
                }
            }
            Op::Write { id, at, byte } => {
                if self.live.is_empty() {
                    return Ok(());
                }
                let id = self.live[id % self.live.len()];
                let mut v = UNSET;
                check_eq!(ferry_buffer_view(id, &mut v), FerryStatus::Ok, "view({id:#x}) before a write");
                if v.len > 0 {
                    let i = *at as usize % v.len;
                    // SAFETY: `v` is the view of a live id, so `v.ptr` has `v.len` writable bytes.
                    unsafe { v.ptr.add(i).write(*byte) };
                    let e = &self.entries[&id];
                    let at = e.off + i;
                    self.allocs.get_mut(&e.alloc).unwrap().bytes[at] = *byte;
                }
            }
            Op::Release { id } => {
                let id = self.resolve(id);
                let st = ferry_buffer_release(id);
                let live = self.lookup(id).is_some();
                tally("ferry_buffer_release", st)?;
                check_eq!(
                    st,
                    if live { FerryStatus::Ok } else { FerryStatus::InvalidHandle },
                    "release({id:#x})"
                );
                if live {
                    self.drop_id(id);
                }
            }
            Op::ReleaseMany { ids, null_ids, null_out, huge_n } => {
                let ids: Vec<u64> = ids.iter().map(|s| self.resolve(s)).collect();
                let n = if *huge_n { MAX_LEN / 8 + 1 } else { ids.len() };
                let p = if *null_ids { ptr::null() } else { ids.as_ptr() };
                let mut count = 0xDEADusize;
                let outp = if *null_out { ptr::null_mut() } else { &mut count as *mut usize };
                let st = ferry_buffer_release_many(p, n, outp);
                tally("ferry_buffer_release_many", st)?;
                let early = if n > MAX_LEN / 8 {
                    Some(FerryStatus::TooLarge)
                } else if n > 0 && *null_ids {
                    Some(FerryStatus::NullPointer)
                } else {
                    None
                };
                if let Some(want) = early {
                    check_eq!(st, want, "release_many(n={n}, null_ids={null_ids})");
                    check!(count == 0xDEAD, "release_many wrote released_out on error");
                } else {
                    let mut valid = 0;
                    for &id in &ids {
                        if self.lookup(id).is_some() {
                            self.drop_id(id);
                            valid += 1;
                        }
                    }
                    let want = if valid == n { FerryStatus::Ok } else { FerryStatus::InvalidHandle };
                    check_eq!(st, want, "release_many({ids:x?})");
                    if !*null_out {
                        check_eq!(count, valid, "release_many({ids:x?}) count");
                    }
                }
            }
            Op::SetLimit(kind) => {
                let limit = match *kind {
                    LimitKind::None => 0,
                    LimitKind::Above(k) => self.live_bytes + k as u64,
                    LimitKind::Below(k) => self.live_bytes.saturating_sub(k as u64).max(1),
                };
                let st = ferry_limit_set(limit);
                tally("ferry_limit_set", st)?;
                check_eq!(st, FerryStatus::Ok, "limit_set({limit})");
                self.limit = limit;
            }
            Op::PeakReset => {
                let st = ferry_peak_reset();
                tally("ferry_peak_reset", st)?;
                check_eq!(st, FerryStatus::Ok, "peak_reset");
                self.peak = self.live_bytes;
            }
            Op::StatsNull => {
                let st = ferry_stats_get(ptr::null_mut());
                tally("ferry_stats_get", st)?;
                check_eq!(st, FerryStatus::NullPointer, "stats_get(NULL)");
            }
            Op::Message { status, buf_len, null_buf, null_n } => {
                self.message(*status, *buf_len as usize, *null_buf, *null_n)?
            }
        }
        self.after_op(op)
    }

    fn message(&mut self, status: u32, len: usize, null_buf: bool, null_n: bool) -> R {
        let mut buf = vec![0x7Fu8; len];
        let mut n = 0xDEADusize;
        let bp = if null_buf { ptr::null_mut() } else { buf.as_mut_ptr().cast::<c_char>() };
        let np = if null_n { ptr::null_mut() } else { &mut n as *mut usize };
        let st = ferry_status_message(status, bp, len, np);
        tally("ferry_status_message", st)?;
        let (msg, ok) = match FerryStatus::from_u32(status) {
            Some(s) => (s.message(), true),
            None => ("unknown status", false),
        };
        check!(!msg.is_empty(), "status {status} has an empty message");
        if len > 0 && null_buf {
            check_eq!(st, FerryStatus::NullPointer, "status_message({status}, NULL, {len})");
            check!(n == 0xDEAD, "status_message wrote n_out on error");
            return Ok(());
        }
        let want = if ok { FerryStatus::Ok } else { FerryStatus::InvalidArgument };
        check_eq!(st, want, "status_message({status}, len={len})");
        if len > 0 {
            let k = msg.len().min(len - 1);
            check!(
                buf[..k] == msg.as_bytes()[..k] && buf[k] == 0,
                "status_message({status}, len={len}) text"
            );
            check!(buf[k + 1..].iter().all(|&b| b == 0x7F), "status_message wrote past the NUL");
        }
        if !null_n {
            check_eq!(n, msg.len(), "status_message({status}) length");
        }
        Ok(())
    }

    /// Reads a live id's bytes through its view pointer and through copy_out, against the model.
    fn check_bytes(&self, id: u64) -> R {
        let e = &self.entries[&id];
        let want = self.range(e);
        let mut v = UNSET;
        check_eq!(ferry_buffer_view(id, &mut v), FerryStatus::Ok, "view({id:#x})");
        if v.len > 0 {
            // SAFETY: the view of a live id: `v.len` readable bytes at `v.ptr`.
            let got = unsafe { std::slice::from_raw_parts(v.ptr, v.len) };
            check!(got == want, "bytes of {id:#x} through its view differ from the model");
        } else {
            check!(v.ptr.is_null(), "an empty view has a non-NULL pointer");
        }
        let mut out = vec![0u8; want.len()];
        check_eq!(
            ferry_buffer_copy_out(id, 0, out.as_mut_ptr(), out.len()),
            FerryStatus::Ok,
            "copy_out({id:#x})"
        );
        check!(out == want, "bytes of {id:#x} through copy_out differ from the model");
        Ok(())
    }

    /// After every operation: stats and release callbacks agree with the model.
    fn after_op(&mut self, op: &Op) -> R {
        let back = handed_back();
        let want = std::mem::take(&mut self.expect_back);
        check_eq!(back, want, "release callbacks after {op:?} (token, data, len)");
        let s = stats();
        self.peak = self.peak.max(self.live_bytes);
        check_eq!(
            (s.live_ids, s.live_bytes, s.created, s.released, s.limit_bytes),
            (self.live_ids, self.live_bytes, self.created, self.released, self.limit),
            "stats (live_ids, live_bytes, created, released, limit) after {op:?}"
        );
        check_eq!(s.peak_bytes, self.peak, "peak after {op:?}");
        Ok(())
    }

    /// Releases every id the model holds, as the last step of a case.
    fn finish(&mut self) -> R {
        OPS.fetch_add(1, Ordering::Relaxed);
        let ids = self.live.clone();
        let mut n = 0usize;
        let st = ferry_buffer_release_many(ids.as_ptr(), ids.len(), &mut n);
        check_eq!((st, n), (FerryStatus::Ok, ids.len()), "final release_many of {} ids", ids.len());
        for id in ids {
            self.drop_id(id);
        }
        check!(self.allocs.is_empty(), "the model leaked an allocation");
        check_eq!(ferry_limit_set(0), FerryStatus::Ok, "limit_set(0)");
        self.limit = 0;
        self.after_op(&Op::StatsNull)
    }
}

impl Drop for Model {
    /// A failing case leaves ids behind; release them (ignoring statuses) so the next case, or the
    /// shrinking that follows, starts from a table that holds none of this model's memory.
    fn drop(&mut self) {
        let ids = self.live.clone();
        if !ids.is_empty() {
            ferry_buffer_release_many(ids.as_ptr(), ids.len(), ptr::null_mut());
            for id in ids {
                self.drop_id(id);
            }
        }
        handed_back();
        ferry_limit_set(0);
    }
}

fn range_status(off: usize, len: usize, have: usize) -> FerryStatus {
    match off.checked_add(len) {
        None => FerryStatus::Overflow,
        Some(end) if end > have => FerryStatus::OutOfRange,
        Some(_) => FerryStatus::Ok,
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .map(|v| v.replace('_', "").parse().unwrap_or_else(|_| panic!("{name}={v}: not a number")))
}

#[test]
fn c_abi_matches_the_model() {
    // `cargo test` (make test-rust) does a quick pass; `make test-reliability` runs the full million
    // (~15 s in a debug build).
    let default_ops = if cfg!(debug_assertions) { 200_000 } else { 1_000_000 };
    let target = env_u64("FERRY_MODEL_OPS").unwrap_or(default_ops);
    let seed = env_u64("FERRY_MODEL_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    println!("model: seed {seed} (rerun with FERRY_MODEL_SEED={seed}), target {target} operations");
    let strategy = prop::collection::vec(op(), 1..400);
    let started = std::time::Instant::now();
    let mut round = 0u64;
    let mut cases = 0u64;
    while OPS.load(Ordering::Relaxed) < target {
        let left = target - OPS.load(Ordering::Relaxed);
        let n = (left / 200).clamp(1, 1000) as u32;
        let config = Config {
            cases: n,
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(seed.wrapping_add(round)),
            // ChaCha, the default, is most of the run time in a debug build.
            rng_algorithm: RngAlgorithm::XorShift,
            max_shrink_iters: 20_000,
            ..Config::default()
        };
        round += 1;
        cases += u64::from(n);
        let mut runner = TestRunner::new(config);
        let result = runner.run(&strategy, |ops| {
            let mut m = Model::new();
            for op in &ops {
                m.run(op)?;
            }
            m.finish()
        });
        if let Err(e) = result {
            panic!("model divergence (seed {seed}, round {}): {e}", round - 1);
        }
    }
    let s = stats();
    assert_eq!((s.live_ids, s.live_bytes), (0, 0), "ids or bytes left live at the end");
    let mut t = TALLY.lock().unwrap().clone();
    t.sort_by_key(|&(f, s, _)| (f, s as u32));
    for (f, s, n) in t {
        println!("model:   {f:<26} {s:?}: {n}");
    }
    println!(
        "model: {} operations in {cases} cases, 0 divergences, {:.1} s",
        OPS.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
}
