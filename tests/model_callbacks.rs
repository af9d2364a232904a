//! Model-based test of the callback, queue, async and pool functions of the C ABI, from several
//! threads at once (the buffer functions have theirs in tests/model.rs).
//!
//! Each thread runs random sequences of calls (register, unregister, invoke, queue new/close/wait/
//! post, submit, cancel, pool configure/shutdown, stats, thread_is_worker, abandon) with ids that
//! are live, stale (released by this thread), 0, `u64::MAX`, of another kind, or forged with a
//! generation no slot can have; NULL pointers; bad ops, tags and arguments. Every call is checked at
//! once against the thread's own model:
//!
//! - the status, exactly, or (where another thread can interfere) one of a stated set: a submit may
//!   find the pool shutting down (CLOSED) when another thread shuts it down, a cancel may find the
//!   job just finished (INVALID_HANDLE);
//! - every completion: its tag is one in flight on that queue (or posted), and its result is the
//!   operation's (echo's bytes, checksum's hash, the callback's value, failure detail or panic
//!   record, a sleep's value, the panic of FERRY_OP_PANIC), or CANCELLED after a cancel, or CLOSED
//!   after a pool shutdown that began after the submit; each tag completes exactly once, and none
//!   is lost (every case drains its queues);
//! - every callback's drop function runs exactly once, and not before it is unregistered and no
//!   job holds it; the status each call returns is one its `function_errors` entry lists.
//!
//! Callbacks do real work: some fail or report a panic, some return a new buffer, and some submit
//! async work and wait for it (from a worker too, where the pool starts an extra worker).
//!
//! At the end, with every thread joined, the process holds no callback, queue, job or buffer id of
//! the test's. Operation count: `FERRY_CB_MODEL_OPS` (all threads together; default 1,000,000),
//! seed `FERRY_MODEL_SEED` (default random, printed). `make rel-model` runs it.

use std::collections::HashMap;
use std::os::raw::c_void;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ferry::ffi::buffer::{ferry_buffer_copy, ferry_buffer_copy_out, ferry_buffer_release, ferry_stats_get};
use ferry::ffi::callback::*;
use ferry::ffi::status::may_return;
use ferry::ffi::{FerryStats, FerryStatus, FerryView};
use FerryStatus as S;

const THREADS: u64 = 4;

/// Pool shutdowns begun and finished, by any thread. Work submitted before a shutdown finished may
/// meet it: a submit, or a job's completion, may then be CLOSED.
static SHUTDOWNS: AtomicU64 = AtomicU64::new(0);
static SHUTDOWNS_DONE: AtomicU64 = AtomicU64::new(0);

/// The epoch to record when work starts: shutdowns finished by then.
fn epoch() -> u64 {
    SHUTDOWNS_DONE.load(Ordering::SeqCst)
}

/// Reports whether a shutdown may have met work that started at `epoch`.
fn shut_since(epoch: u64) -> bool {
    SHUTDOWNS.load(Ordering::SeqCst) > epoch
}
/// Calls made (each exported-function call counts one).
static CALLS: AtomicU64 = AtomicU64::new(0);
static STOP: AtomicBool = AtomicBool::new(false);
static TALLY: Mutex<Vec<(&'static str, FerryStatus, u64)>> = Mutex::new(Vec::new());

/// Records that `func` returned `st`; panics if its function_errors entry does not list it.
fn seen(func: &'static str, st: FerryStatus) -> FerryStatus {
    CALLS.fetch_add(1, Ordering::Relaxed);
    assert!(may_return(func, st), "{func} returned {st:?}, which its entry in function_errors does not list");
    let mut t = TALLY.lock().unwrap_or_else(|e| e.into_inner());
    match t.iter_mut().find(|(f, s, _)| *f == func && *s == st) {
        Some(e) => e.2 += 1,
        None => t.push((func, st, 1)),
    }
    st
}

// ---------------------------------------------------------------------------------------------
// The callbacks under test
// ---------------------------------------------------------------------------------------------

/// A registered callback's user data: what it does, and how often its drop function ran.
struct CbData {
    drops: AtomicUsize,
    /// 0: plain (see `callback`); 1: nested (submits work and waits for it).
    kind: u8,
}

/// The outcome a callback gives for `value` (and what FERRY_OP_CALL completes with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// OK, with this value and, when set, a new 1-byte buffer holding `value as u8`.
    Ok {
        value: u64,
        buffer: bool,
    },
    Failed(u64),
    Panicked(u64),
}

fn expected(kind: u8, value: u64) -> Outcome {
    if kind == 1 {
        return Outcome::Ok { value: value + 1, buffer: false };
    }
    match value % 4 {
        0 => Outcome::Ok { value: value.wrapping_mul(3), buffer: false },
        1 => Outcome::Ok { value, buffer: true },
        2 => Outcome::Failed(value),
        _ => Outcome::Panicked(value),
    }
}

unsafe extern "C" fn callback(ud: *mut c_void, _buffer: u64, value: u64, out: *mut FerryPayload) -> u32 {
    // SAFETY: registered with a pointer to a CbData that outlives the callback (freed after its drop
    // function ran); ferry passes a valid, zeroed `out`.
    let (d, out) = unsafe { (&*(ud as *const CbData), &mut *out) };
    if d.kind == 1 {
        return nested(value, out);
    }
    match expected(0, value) {
        Outcome::Ok { value: v, buffer } => {
            out.value = v;
            if buffer {
                let mut view = FerryView { id: 0, ptr: ptr::null_mut(), len: 0 };
                if ferry_buffer_copy(&(value as u8), 1, &mut view) != S::Ok {
                    out.value = u64::MAX;
                    return S::CallbackFailed as u32;
                }
                out.buffer = view.id;
            }
            S::Ok as u32
        }
        Outcome::Failed(v) => {
            out.value = v;
            S::CallbackFailed as u32
        }
        Outcome::Panicked(v) => {
            out.value = v;
            S::CallbackPanic as u32
        }
    }
}

/// A callback that submits an echo of `value + 1` on a queue of its own and waits for it: on a
/// worker, a nested wait. A failure's detail is the status that stopped it.
fn nested(value: u64, out: &mut FerryPayload) -> u32 {
    let mut q = 0;
    let fail = |out: &mut FerryPayload, st: FerryStatus| {
        out.value = st as u64;
        S::CallbackFailed as u32
    };
    let st = ferry_queue_new(&mut q);
    if st != S::Ok {
        return fail(out, st);
    }
    let st = ferry_async_submit(q, 1, FERRY_OP_ECHO, 0, 0, value + 1);
    let mut c = [FerryCompletion::default(); 1];
    let r = if st != S::Ok {
        fail(out, st)
    } else {
        let mut n = 0;
        let st = ferry_queue_wait(q, c.as_mut_ptr(), 1, 60_000_000_000, &mut n);
        if st != S::Ok || n != 1 {
            fail(out, if st == S::Ok { S::Cancelled } else { st })
        } else if c[0].status != 0 {
            fail(out, FerryStatus::from_u32(c[0].status).unwrap_or(S::Panic))
        } else {
            out.value = c[0].value;
            S::Ok as u32
        }
    };
    ferry_queue_close(q);
    r
}

unsafe extern "C" fn drop_cb(ud: *mut c_void) {
    // SAFETY: as in `callback`.
    let d = unsafe { &*(ud as *const CbData) };
    d.drops.fetch_add(1, Ordering::SeqCst);
}

// ---------------------------------------------------------------------------------------------
// A thread's model
// ---------------------------------------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

struct Cb {
    id: u64,
    data: *const CbData,
    registered: bool,
    /// Jobs in flight on a live queue that hold it (FERRY_OP_CALL).
    held: usize,
    /// Jobs that hold it on a queue since closed: they end at a time the model cannot see.
    orphaned: usize,
}

/// What a job in flight may complete with.
#[derive(Debug, Clone)]
struct Expect {
    result: Result<Outcome, FerryStatus>,
    /// The bytes an echo returns (None: no buffer).
    echo: Option<Vec<u8>>,
    /// SHUTDOWNS when submitted.
    epoch: u64,
    cancelled: bool,
    /// The callback it holds (FERRY_OP_CALL), by id.
    holds: Option<u64>,
    /// That callback submits work of its own and waits for it.
    nested: bool,
}

struct Q {
    id: u64,
    /// By tag: a tag can be submitted again once its job ended, before the model has seen its
    /// completion.
    inflight: HashMap<u64, Vec<Expect>>,
    next_tag: u64,
}

impl Q {
    fn push(&mut self, tag: u64, e: Expect) {
        self.inflight.entry(tag).or_default().push(e);
    }
}

struct Buf {
    id: u64,
    bytes: Vec<u8>,
}

struct Model {
    rng: Rng,
    cbs: Vec<Cb>,
    queues: Vec<Q>,
    bufs: Vec<Buf>,
    stale_cbs: Vec<u64>,
    stale_queues: Vec<u64>,
    stale_bufs: Vec<u64>,
    ops: u64,
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

impl Model {
    fn new(seed: u64) -> Model {
        Model {
            rng: Rng(seed | 1),
            cbs: Vec::new(),
            queues: Vec::new(),
            bufs: Vec::new(),
            stale_cbs: Vec::new(),
            stale_queues: Vec::new(),
            stale_bufs: Vec::new(),
            ops: 0,
        }
    }

    /// An id to call with: `live` (one of ours, or 0 when we have none), or one no table can know.
    fn pick(&mut self, live: &[u64], stale: &[u64], other_kind: u64) -> (u64, bool) {
        let r = self.rng.below(40);
        let some_live =
            |rng: &mut Rng| if live.is_empty() { 0 } else { live[rng.below(live.len() as u64) as usize] };
        match r {
            0 => (0, false),
            1 => (u64::MAX, false),
            2 | 3 => match stale.get(self.rng.below(stale.len() as u64) as usize) {
                Some(&s) => (s, false),
                None => (0, false),
            },
            // Generation 0 is never issued.
            4 => (some_live(&mut self.rng) & 0xFFFF_FFFF, false),
            // The next generation of a live id's slot: not live while that id is.
            5 => {
                let id = some_live(&mut self.rng);
                (if id == 0 { 0 } else { id.wrapping_add(1 << 32) }, false)
            }
            // The same slot under a kind never issued.
            6 => (some_live(&mut self.rng) | (0xF << 28), false),
            // An id of another kind.
            7 => (other_kind, false),
            _ => {
                let id = some_live(&mut self.rng);
                (id, id != 0)
            }
        }
    }

    fn live_cb_ids(&self) -> Vec<u64> {
        self.cbs.iter().filter(|c| c.registered).map(|c| c.id).collect()
    }

    fn pick_cb(&mut self) -> (u64, Option<usize>) {
        let live = self.live_cb_ids();
        let other = self.queues.first().map_or(0, |q| q.id);
        let stale = self.stale_cbs.clone();
        let (id, ok) = self.pick(&live, &stale, other);
        (id, if ok { self.cbs.iter().position(|c| c.id == id && c.registered) } else { None })
    }

    fn pick_queue(&mut self) -> (u64, Option<usize>) {
        let live: Vec<u64> = self.queues.iter().map(|q| q.id).collect();
        let other = self.bufs.first().map_or(0, |b| b.id);
        let stale = self.stale_queues.clone();
        let (id, ok) = self.pick(&live, &stale, other);
        (id, if ok { self.queues.iter().position(|q| q.id == id) } else { None })
    }

    fn pick_buf(&mut self) -> (u64, Option<usize>) {
        if self.rng.one_in(4) {
            return (0, None);
        }
        let live: Vec<u64> = self.bufs.iter().map(|b| b.id).collect();
        let other = self.cbs.first().map_or(0, |c| c.id);
        let stale = self.stale_bufs.clone();
        let (id, ok) = self.pick(&live, &stale, other);
        (id, if ok { self.bufs.iter().position(|b| b.id == id) } else { None })
    }

    fn step(&mut self) {
        self.ops += 1;
        match self.rng.below(100) {
            0..=5 => self.register(),
            6..=9 => self.unregister(),
            10..=24 => self.invoke(),
            25..=27 => self.queue_new(),
            28..=29 => self.queue_close(),
            30..=54 => self.submit(),
            55..=59 => self.cancel(),
            60..=79 => self.wait(false),
            80..=83 => self.post(),
            84..=88 => self.buffer(),
            89 => self.configure(),
            90 if self.rng.one_in(40) => self.shutdown(),
            91..=93 => self.misc(),
            _ => self.wait(false),
        }
    }

    fn register(&mut self) {
        let kind = u8::from(self.rng.one_in(6));
        let data = Box::into_raw(Box::new(CbData { drops: AtomicUsize::new(0), kind }));
        let mut id = 0u64;
        let (null_f, null_out) = (self.rng.one_in(30), self.rng.one_in(30));
        let f: FerryCallbackFn = if null_f { None } else { Some(callback) };
        let out = if null_out { ptr::null_mut() } else { &mut id as *mut u64 };
        let st = seen("ferry_callback_register", ferry_callback_register(f, data.cast(), Some(drop_cb), out));
        if null_f || null_out {
            assert_eq!(st, S::NullPointer);
            // SAFETY: ferry kept nothing on error and never calls the drop function.
            let d = unsafe { Box::from_raw(data) };
            assert_eq!(d.drops.load(Ordering::SeqCst), 0, "a refused register ran the drop function");
            return;
        }
        assert_eq!(st, S::Ok);
        assert!(id != 0 && !self.cbs.iter().any(|c| c.id == id), "register gave id {id:#x}");
        self.cbs.push(Cb { id, data, registered: true, held: 0, orphaned: 0 });
    }

    fn unregister(&mut self) {
        let (id, ix) = self.pick_cb();
        let st = seen("ferry_callback_unregister", ferry_callback_unregister(id));
        match ix {
            Some(i) => {
                assert_eq!(st, S::Ok, "unregister of live callback {id:#x}");
                let c = &mut self.cbs[i];
                c.registered = false;
                // SAFETY: `data` lives until the callback is forgotten (`reap`).
                let drops = unsafe { (*c.data).drops.load(Ordering::SeqCst) };
                assert!(drops <= 1, "callback {id:#x} dropped {drops} times");
                if c.held == 0 && c.orphaned == 0 && drops == 0 {
                    // Held by no job: dropped now, unless an invoke on another thread was looking
                    // its slot up (with a stale id of the slot); that one drops it as it leaves.
                    let deadline = Instant::now() + Duration::from_secs(60);
                    // SAFETY: as above.
                    while unsafe { (*c.data).drops.load(Ordering::SeqCst) } == 0 {
                        assert!(
                            Instant::now() < deadline,
                            "unregister of {id:#x}, held by no job: never dropped"
                        );
                        std::thread::yield_now();
                    }
                }
                self.stale_cbs.push(id);
                self.reap();
            }
            None => assert_eq!(st, S::InvalidHandle, "unregister({id:#x}) of no live callback"),
        }
    }

    /// Forgets unregistered callbacks that no job holds, once their drop function ran once.
    fn reap(&mut self) {
        self.cbs.retain(|c| {
            if c.registered || c.held > 0 || c.orphaned > 0 {
                return true;
            }
            // SAFETY: the drop function ran (checked), so ferry no longer uses `data`.
            let d = unsafe { Box::from_raw(c.data.cast_mut()) };
            assert_eq!(d.drops.load(Ordering::SeqCst), 1, "callback {:#x}: drop function runs", c.id);
            false
        });
        if self.stale_cbs.len() > 32 {
            self.stale_cbs.remove(0);
        }
    }

    fn check_outcome(&self, what: &str, got: Result<(u64, u64), (FerryStatus, u64)>, want: Outcome) {
        match (got, want) {
            (Ok((buffer, value)), Outcome::Ok { value: v, buffer: b }) => {
                assert_eq!((value, buffer != 0), (v, b), "{what}");
                if buffer != 0 {
                    let mut byte = [0u8; 1];
                    assert_eq!(
                        ferry_buffer_copy_out(buffer, 0, byte.as_mut_ptr(), 1),
                        S::Ok,
                        "{what}: result bytes"
                    );
                    assert_eq!(byte[0], v as u8, "{what}: result byte");
                    assert_eq!(seen("ferry_buffer_release", ferry_buffer_release(buffer)), S::Ok);
                }
            }
            (Err((S::CallbackFailed, d)), Outcome::Failed(v)) => assert_eq!(d, v, "{what}: failure detail"),
            (Err((S::CallbackPanic, d)), Outcome::Panicked(v)) => assert_eq!(d, v, "{what}: panic record"),
            (got, want) => panic!("{what}: got {got:?}, model says {want:?}"),
        }
    }

    fn invoke(&mut self) {
        let (id, ix) = self.pick_cb();
        let value = self.rng.below(1000);
        let (buffer, _) = self.pick_buf();
        let null_out = self.rng.one_in(20);
        let mut r = FerryPayload { buffer: 77, value: 77 };
        let out = if null_out { ptr::null_mut() } else { &mut r as *mut FerryPayload };
        let epoch = epoch();
        let st = seen("ferry_callback_invoke", ferry_callback_invoke(id, buffer, value, out));
        let Some(i) = ix else {
            assert_eq!(st, S::InvalidHandle, "invoke({id:#x}) of no live callback");
            return;
        };
        // SAFETY: `data` of a registered callback is live.
        let kind = unsafe { (*self.cbs[i].data).kind };
        let want = expected(kind, value);
        if kind == 1 && st == S::CallbackFailed && r.value == S::Closed as u64 {
            // The nested submit met a pool shutdown by another thread.
            assert!(shut_since(epoch), "nested submit CLOSED with no shutdown");
            return;
        }
        if null_out && kind == 1 && st == S::CallbackFailed && shut_since(epoch) {
            return; // as above, with the detail unseen
        }
        if null_out {
            // The result buffer, if any, was released by ferry.
            let ok = matches!((st, want), (S::Ok, Outcome::Ok { .. }))
                || matches!(
                    (st, want),
                    (S::CallbackFailed, Outcome::Failed(_)) | (S::CallbackPanic, Outcome::Panicked(_))
                );
            assert!(ok, "invoke({id:#x}, {value}) with NULL result: {st:?}, model says {want:?}");
            return;
        }
        let got = if st == S::Ok { Ok((r.buffer, r.value)) } else { Err((st, r.value)) };
        if st != S::Ok {
            assert_eq!(r.buffer, 0, "a failed invoke's result buffer");
        }
        self.check_outcome(&format!("invoke({id:#x}, {value})"), got, want);
    }

    fn queue_new(&mut self) {
        let null_out = self.rng.one_in(20);
        let mut q = 0u64;
        let out = if null_out { ptr::null_mut() } else { &mut q as *mut u64 };
        let st = seen("ferry_queue_new", ferry_queue_new(out));
        if null_out {
            assert_eq!(st, S::NullPointer);
            return;
        }
        assert_eq!(st, S::Ok);
        self.queues.push(Q { id: q, inflight: HashMap::new(), next_tag: 1 });
    }

    fn queue_close(&mut self) {
        let (id, ix) = self.pick_queue();
        let st = seen("ferry_queue_close", ferry_queue_close(id));
        match ix {
            Some(i) => {
                assert_eq!(st, S::Ok);
                let q = self.queues.remove(i);
                // The jobs in flight are cancelled; their completions are discarded with their
                // buffers, and they let go of their callbacks when they end (`finish_case` waits).
                for cb in q.inflight.into_values().flatten().filter_map(|e| e.holds) {
                    let c = self.cbs.iter_mut().find(|c| c.id == cb).expect("a held callback is known");
                    c.held -= 1;
                    c.orphaned += 1;
                }
                self.stale_queues.push(id);
                if self.stale_queues.len() > 32 {
                    self.stale_queues.remove(0);
                }
            }
            None => assert_eq!(st, S::InvalidHandle, "close({id:#x}) of no live queue"),
        }
    }
}

impl Model {
    fn submit(&mut self) {
        let (qid, qix) = self.pick_queue();
        let (input, bix) = self.pick_buf();
        let op = match self.rng.below(20) {
            0..=5 => FERRY_OP_ECHO,
            6..=10 => FERRY_OP_CHECKSUM,
            11..=16 => FERRY_OP_CALL,
            17 => FERRY_OP_SLEEP,
            18 => FERRY_OP_PANIC,
            _ => [0, 6, 99, u32::MAX][self.rng.below(4) as usize],
        };
        let value = self.rng.below(1000);
        let (mut arg, mut cbix) = (self.rng.below(500), None);
        if op == FERRY_OP_CALL {
            (arg, cbix) = self.pick_cb();
        } else if op == FERRY_OP_SLEEP && self.rng.one_in(10) {
            arg = 60_000_001;
        }
        // A tag in flight on the queue now and then (refused), else a fresh one.
        let dup = qix
            .and_then(|i| self.queues[i].inflight.keys().copied().find(|t| t & POSTED == 0))
            .filter(|_| self.rng.one_in(15));
        let tag = match (dup, qix) {
            (Some(t), _) => t,
            (None, Some(i)) => {
                self.queues[i].next_tag += 1;
                self.queues[i].next_tag
            }
            (None, None) => self.rng.below(100),
        };
        let epoch = epoch();
        let st = seen("ferry_async_submit", ferry_async_submit(qid, tag, op, input, arg, value));
        let input_live = input == 0 || bix.is_some();
        let want = if !(FERRY_OP_ECHO..=FERRY_OP_CALL).contains(&op) {
            S::Unsupported
        } else if !input_live {
            S::InvalidHandle
        } else if op == FERRY_OP_SLEEP && arg > 60_000_000 {
            S::InvalidArgument
        } else if (op == FERRY_OP_CALL && cbix.is_none()) || qix.is_none() {
            S::InvalidHandle
        } else if dup.is_some() && st != S::Ok {
            // Refused while the job runs; accepted once it ended (its completion not yet taken).
            S::InvalidArgument
        } else {
            S::Ok
        };
        if st == S::Closed && (want == S::Ok || (dup.is_some() && want == S::InvalidArgument)) {
            // The pool was shutting down (the queue and the tag were fine).
            assert!(shut_since(epoch), "submit CLOSED with no shutdown");
            return;
        }
        assert_eq!(st, want, "submit(q={qid:#x}, tag={tag}, op={op}, input={input:#x}, arg={arg:#x})");
        if st != S::Ok {
            return;
        }
        let bytes = bix.map(|i| self.bufs[i].bytes.clone()).unwrap_or_default();
        let (result, echo, holds, nested) = match op {
            FERRY_OP_ECHO => {
                (Ok(Outcome::Ok { value, buffer: false }), (input != 0).then_some(bytes), None, false)
            }
            FERRY_OP_CHECKSUM => (Ok(Outcome::Ok { value: fnv1a(&bytes), buffer: false }), None, None, false),
            FERRY_OP_SLEEP => (Ok(Outcome::Ok { value, buffer: false }), None, None, false),
            FERRY_OP_PANIC => (Err(S::Panic), None, None, false),
            _ => {
                let c = &mut self.cbs[cbix.expect("checked")];
                c.held += 1;
                // SAFETY: `data` of a registered callback is live.
                let kind = unsafe { (*c.data).kind };
                (Ok(expected(kind, value)), None, Some(c.id), kind == 1)
            }
        };
        let q = &mut self.queues[qix.expect("checked")];
        q.push(tag, Expect { result, echo, epoch, cancelled: false, holds, nested });
    }

    fn cancel(&mut self) {
        let (qid, qix) = self.pick_queue();
        let known = qix.and_then(|i| self.queues[i].inflight.keys().copied().find(|t| t & POSTED == 0));
        let tag = match known {
            Some(t) if !self.rng.one_in(5) => t,
            _ => 1 << 40 | self.rng.below(100),
        };
        let st = seen("ferry_async_cancel", ferry_async_cancel(qid, tag));
        match (qix, known == Some(tag)) {
            (Some(i), true) => {
                // The job may have just finished: then its completion stands.
                assert!(st == S::Ok || st == S::InvalidHandle, "cancel of a tag in flight: {st:?}");
                if st == S::Ok {
                    // The newest job with that tag is the one in flight in ferry.
                    let v = self.queues[i].inflight.get_mut(&tag).expect("in flight");
                    v.last_mut().expect("one at least").cancelled = true;
                }
            }
            _ => assert_eq!(st, S::InvalidHandle, "cancel(q={qid:#x}, tag={tag:#x}) of nothing in flight"),
        }
    }

    /// Takes what is ready on a queue (waiting up to `timeout` for the first), checking each
    /// completion against the model; `drain` waits until the queue has nothing in flight.
    fn wait(&mut self, _drain: bool) {
        let (qid, qix) = self.pick_queue();
        let cap = [0usize, 1, 4, 64][self.rng.below(4) as usize];
        let null = self.rng.one_in(30);
        let mut out = vec![FerryCompletion { tag: 0xEE, ..Default::default() }; cap.max(1)];
        let mut n = 0xDEADusize;
        let p = if null { ptr::null_mut() } else { out.as_mut_ptr() };
        let st = seen("ferry_queue_wait", ferry_queue_wait(qid, p, cap, 0, &mut n));
        let want = if null {
            S::NullPointer
        } else if qix.is_none() {
            S::InvalidHandle
        } else if cap == 0 {
            S::InvalidArgument
        } else {
            S::Ok
        };
        assert_eq!(st, want, "wait(q={qid:#x}, cap={cap}, null={null})");
        if st == S::Ok {
            let i = qix.expect("checked");
            for c in &out[..n] {
                self.complete(i, c);
            }
        }
    }

    /// Checks one completion taken from queue `i` and ends what it completes. A tag may be in flight
    /// twice (resubmitted once its job ended, before the model saw its completion). ferry queues a
    /// job's completion before its tag is free again, so the completions of one tag come in the
    /// order the jobs were accepted: the completion must be the oldest job's. (When it could be
    /// either's, a newer job's CLOSED taken for the older job's left the older one's real result
    /// matching nothing.)
    fn complete(&mut self, i: usize, c: &FerryCompletion) {
        let q = &self.queues[i];
        let all = q.inflight.get(&c.tag).unwrap_or_else(|| {
            panic!(
                "completion for tag {:#x} on queue {:#x}, which is not in flight (lost or duplicated)",
                c.tag, q.id
            )
        });
        assert!(
            accepts(&all[0], c),
            "completion {c:?} is not that of the oldest job in flight with its tag: {all:?}"
        );
        let e = self.queues[i].inflight.get_mut(&c.tag).expect("found").remove(0);
        if self.queues[i].inflight[&c.tag].is_empty() {
            self.queues[i].inflight.remove(&c.tag);
        }
        if c.buffer != 0 {
            assert_eq!(seen("ferry_buffer_release", ferry_buffer_release(c.buffer)), S::Ok);
        }
        if let Some(cb) = e.holds {
            let cb = self.cbs.iter_mut().find(|x| x.id == cb).expect("held callback");
            cb.held -= 1;
        }
        self.reap();
    }
}

/// Reports whether completion `c` is a possible end of the job `e` expects (reading the bytes of
/// its result buffer, which stays the caller's).
fn accepts(e: &Expect, c: &FerryCompletion) -> bool {
    let Some(status) = FerryStatus::from_u32(c.status) else { return false };
    let shut = shut_since(e.epoch);
    if status != S::Ok && c.buffer != 0 {
        return false;
    }
    if (status == S::Cancelled && e.cancelled) || (status == S::Closed && shut) {
        return true;
    }
    if e.nested && shut && status == S::CallbackFailed && c.value == S::Closed as u64 {
        return true; // a nested callback whose own submit met a shutdown by another thread
    }
    let bytes_are = |want: &[u8]| {
        let mut got = vec![0u8; want.len()];
        c.buffer != 0
            && ferry_buffer_copy_out(c.buffer, 0, got.as_mut_ptr(), got.len()) == S::Ok
            && got == want
    };
    if let Some(echo) = &e.echo {
        return status == S::Ok && bytes_are(echo);
    }
    match e.result {
        Err(want) => status == want,
        Ok(Outcome::Ok { value, buffer }) => {
            status == S::Ok
                && c.value == value
                && (c.buffer != 0) == buffer
                && (!buffer || bytes_are(&[value as u8]))
        }
        Ok(Outcome::Failed(d)) => status == S::CallbackFailed && c.value == d,
        Ok(Outcome::Panicked(d)) => status == S::CallbackPanic && c.value == d,
    }
}

/// Posted completions carry tags with this bit, which submits never use.
const POSTED: u64 = 1 << 62;

impl Model {
    /// Posts ready-made completions: OK ones (some with a buffer id of ours, which passes to the
    /// queue), and now and then a batch with a status no completion can carry (nothing is posted).
    fn post(&mut self) {
        let (qid, qix) = self.pick_queue();
        let k = self.rng.below(4) as usize;
        let bad = self.rng.one_in(8);
        let mut items = Vec::new();
        let mut expects = Vec::new();
        for j in 0..k {
            let tag = POSTED | self.rng.next() >> 3;
            let value = self.rng.below(1000);
            let buffer = if self.rng.one_in(3) {
                let mut v = FerryView { id: 0, ptr: ptr::null_mut(), len: 0 };
                assert_eq!(seen("ferry_buffer_copy", ferry_buffer_copy(&(value as u8), 1, &mut v)), S::Ok);
                v.id
            } else {
                0
            };
            let status =
                if bad && j == 0 { [S::NullPointer as u32, 1000][self.rng.below(2) as usize] } else { 0 };
            items.push(FerryCompletion { tag, buffer, value, status, reserved: 0 });
            expects.push((tag, Outcome::Ok { value, buffer: buffer != 0 }));
        }
        let st = seen("ferry_queue_post", ferry_queue_post(qid, items.as_ptr(), items.len()));
        let refused = bad && k > 0;
        let want = if refused {
            S::InvalidArgument
        } else if qix.is_none() && k > 0 {
            S::InvalidHandle
        } else {
            S::Ok
        };
        // An empty batch to no queue: nothing to post, nothing to look up.
        let want = if k == 0 && qix.is_none() { st } else { want };
        assert_eq!(st, want, "post of {k} to {qid:#x} (bad={bad})");
        if let (S::Ok, Some(i)) = (st, qix) {
            let q = &mut self.queues[i];
            for (tag, want) in expects {
                let e = Expect {
                    result: Ok(want),
                    echo: None,
                    epoch: 0,
                    cancelled: false,
                    holds: None,
                    nested: false,
                };
                assert!(!q.inflight.contains_key(&tag), "posted tag reused");
                q.push(tag, e);
            }
        } else if refused {
            // Nothing was posted: the buffer ids are still ours.
            for it in &items {
                if it.buffer != 0 {
                    assert_eq!(seen("ferry_buffer_release", ferry_buffer_release(it.buffer)), S::Ok);
                }
            }
        }
    }

    /// Makes or releases an input buffer.
    fn buffer(&mut self) {
        if self.bufs.len() < 6 && !self.rng.one_in(3) {
            let n = self.rng.below(300) as usize;
            let bytes: Vec<u8> = (0..n).map(|_| self.rng.next() as u8).collect();
            let mut v = FerryView { id: 0, ptr: ptr::null_mut(), len: 0 };
            assert_eq!(seen("ferry_buffer_copy", ferry_buffer_copy(bytes.as_ptr(), n, &mut v)), S::Ok);
            self.bufs.push(Buf { id: v.id, bytes });
        } else if !self.bufs.is_empty() {
            let b = self.bufs.remove(self.rng.below(self.bufs.len() as u64) as usize);
            // Jobs submitted with it hold the bytes themselves: releasing the id is allowed.
            assert_eq!(seen("ferry_buffer_release", ferry_buffer_release(b.id)), S::Ok);
            self.stale_bufs.push(b.id);
            if self.stale_bufs.len() > 32 {
                self.stale_bufs.remove(0);
            }
        }
    }

    fn configure(&mut self) {
        let (threads, cap, stack, ok) = match self.rng.below(6) {
            0 => (1000, 0, 0, false),
            1 => (0, 0, 1024, false),
            2 => (0, 0, usize::MAX, false),
            _ => (self.rng.below(4) as u32 + 1, 0, [0, 256 << 10, 1 << 20][self.rng.below(3) as usize], true),
        };
        let st = seen("ferry_pool_configure", ferry_pool_configure(threads, cap, stack));
        assert_eq!(st, if ok { S::Ok } else { S::InvalidArgument }, "configure({threads}, {cap}, {stack})");
    }

    fn shutdown(&mut self) {
        SHUTDOWNS.fetch_add(1, Ordering::SeqCst);
        assert_eq!(seen("ferry_pool_shutdown", ferry_pool_shutdown()), S::Ok);
        SHUTDOWNS_DONE.fetch_add(1, Ordering::SeqCst);
    }

    fn misc(&mut self) {
        match self.rng.below(4) {
            0 => {
                let mut w = 9u32;
                let null = self.rng.one_in(4);
                let p = if null { ptr::null_mut() } else { &mut w as *mut u32 };
                let st = seen("ferry_thread_is_worker", ferry_thread_is_worker(p));
                assert_eq!((st, null || w == 0), (if null { S::NullPointer } else { S::Ok }, true));
            }
            1 => {
                let mut s = FerryCallbackStats::default();
                let null = self.rng.one_in(4);
                let p = if null { ptr::null_mut() } else { &mut s as *mut FerryCallbackStats };
                let st = seen("ferry_callback_stats", ferry_callback_stats(p));
                assert_eq!(st, if null { S::NullPointer } else { S::Ok });
            }
            // No ferry call is in progress on this thread: nothing to let go of.
            _ => assert_eq!(seen("ferry_callback_abandon", ferry_callback_abandon(self.rng.next())), S::Ok),
        }
    }

    /// Ends a case: waits for every completion the model expects (none may be lost), closes the
    /// queues, unregisters the callbacks (each drop function runs once), releases the buffers.
    fn finish_case(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        for i in 0..self.queues.len() {
            while !self.queues[i].inflight.is_empty() {
                assert!(Instant::now() < deadline, "lost completions: {:?}", self.queues[i].inflight.keys());
                let mut out = [FerryCompletion::default(); 64];
                let mut n = 0usize;
                let st = ferry_queue_wait(self.queues[i].id, out.as_mut_ptr(), 64, 100_000_000, &mut n);
                assert_eq!(seen("ferry_queue_wait", st), S::Ok);
                for c in &out[..n] {
                    self.complete(i, c);
                }
            }
        }
        for q in std::mem::take(&mut self.queues) {
            assert_eq!(seen("ferry_queue_close", ferry_queue_close(q.id)), S::Ok);
        }
        for c in &mut self.cbs {
            if c.registered {
                assert_eq!(seen("ferry_callback_unregister", ferry_callback_unregister(c.id)), S::Ok);
                c.registered = false;
            }
            // Jobs left on closed queues end soon (none runs for long): then the drop function runs.
            // SAFETY: `data` lives until `reap` forgets the callback.
            let drops = || unsafe { (*c.data).drops.load(Ordering::SeqCst) };
            while drops() == 0 {
                assert!(Instant::now() < deadline, "callback {:#x} never dropped", c.id);
                std::thread::sleep(Duration::from_micros(200));
            }
            assert_eq!(drops(), 1, "callback {:#x} dropped twice", c.id);
            c.held = 0;
            c.orphaned = 0;
        }
        self.reap();
        assert!(self.cbs.is_empty());
        for b in std::mem::take(&mut self.bufs) {
            assert_eq!(seen("ferry_buffer_release", ferry_buffer_release(b.id)), S::Ok);
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .map(|v| v.replace('_', "").parse().unwrap_or_else(|_| panic!("{name}={v}: not a number")))
}

fn stats() -> (FerryStats, FerryCallbackStats) {
    let (mut s, mut c) = (FerryStats::default(), FerryCallbackStats::default());
    assert_eq!(ferry_stats_get(&mut s), S::Ok);
    assert_eq!(ferry_callback_stats(&mut c), S::Ok);
    (s, c)
}

#[test]
fn callback_abi_matches_the_model_from_several_threads() {
    let target = env_u64("FERRY_CB_MODEL_OPS").unwrap_or(1_000_000);
    let seed = env_u64("FERRY_MODEL_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    println!("cb-model: seed {seed} (rerun with FERRY_MODEL_SEED={seed}), {target} calls, {THREADS} threads");
    // FERRY_OP_PANIC panics on purpose: keep its message out of the output.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let planned = info.payload().downcast_ref::<&str>().is_some_and(|m| m.contains("FERRY_OP_PANIC ran"));
        if !planned {
            default_hook(info);
        }
    }));
    // A small pool, so that work waits for workers and nested waits need extra ones.
    assert_eq!(ferry_pool_configure(2, 0, 0), S::Ok);
    let (s0, c0) = stats();
    let started = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::Builder::new()
                .name(format!("model-{t}"))
                .spawn(move || {
                    let mut m = Model::new(seed.wrapping_add(t.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
                    let mut cases = 0u64;
                    while CALLS.load(Ordering::Relaxed) < target && !STOP.load(Ordering::Relaxed) {
                        let len = 50 + m.rng.below(400);
                        for _ in 0..len {
                            m.step();
                        }
                        m.finish_case();
                        cases += 1;
                    }
                    (cases, m.ops)
                })
                .unwrap()
        })
        .collect();
    let mut cases = 0;
    let mut failed = None;
    for t in threads {
        match t.join() {
            Ok((c, _)) => cases += c,
            Err(e) => {
                STOP.store(true, Ordering::Relaxed);
                failed.get_or_insert(e);
            }
        }
    }
    if let Some(e) = failed {
        std::panic::resume_unwind(e);
    }
    assert_eq!(ferry_pool_shutdown(), S::Ok);
    let (s1, c1) = stats();
    assert_eq!((s1.live_ids, s1.live_bytes), (s0.live_ids, s0.live_bytes), "buffer ids left live");
    assert_eq!(
        (c1.registered, c1.alive, c1.queues, c1.in_flight),
        (c0.registered, c0.alive, c0.queues, c0.in_flight),
        "callbacks, queues or jobs left behind"
    );
    let mut t = TALLY.lock().unwrap().clone();
    t.sort_by_key(|&(f, s, _)| (f, s as u32));
    for (f, s, n) in t {
        println!("cb-model:   {f:<26} {s:?}: {n}");
    }
    println!(
        "cb-model: {} calls in {cases} cases on {THREADS} threads, {} pool shutdowns, 0 divergences, {:.1} s",
        CALLS.load(Ordering::Relaxed),
        SHUTDOWNS.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
}
