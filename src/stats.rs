//! Byte accounting shared by a table and every buffer it created: live bytes, their peak, and an
//! exact live-byte limit.
//!
//! # The limit is exact
//!
//! Every live byte was *granted* from one global budget, `granted`, which never passes the limit:
//! it only grows by a compare-and-swap that checks the limit. So live bytes never exceed the limit,
//! across all threads, and a create is refused only when the live bytes, plus the bytes that
//! creates running at the same moment hold, plus its own size exceed the limit.
//!
//! One global counter touched on every create and release costs ~150 ns per pair once two threads
//! contend for its cache line (`benches/buffers.rs`, contended_create_release). So a create below
//! [`GRAIN`] takes a grain of *credit* with it into its thread's padded slot, and the next small
//! creates on that slot spend the credit with no shared cache line; a release puts its bytes back
//! as credit on the releasing thread's slot, and a slot that holds more than two grains hands the
//! excess back. Credit is granted budget, so it counts against the limit while it is parked; when a
//! create does not fit, it first takes back the credit parked in every slot (exited threads'
//! included) and tries again, so idle credit never causes a refusal. Buffers of a grain or more go
//! to the global budget directly.
//!
//! # Live bytes and the peak
//!
//! Each slot also keeps its running change in live bytes and folds it into the global total when it
//! passes ±[`GRAIN`]. Reading the stats sums everything and is exact (and raises the peak to that
//! exact figure). The running peak is raised at each fold and each create, from the global total
//! plus the creating thread's own slot, so it can trail the truth by less than a grain per *other*
//! slot; buffers of a grain or more fold at once and are counted exactly everywhere. The peak never
//! exceeds the limit.

use crate::error::Error;
use crate::slots::home;
use crate::sync::{array_of, loom_const_fn, AtomicI64, AtomicU64, Ordering};

/// Bytes a slot may spend or hold back before it touches the global counters: 256 KiB.
#[cfg(not(loom))]
pub const GRAIN: u64 = 256 << 10;
/// A tiny grain under loom, so that a model of a few creates crosses it.
#[cfg(loom)]
pub const GRAIN: u64 = 4;

#[cfg(not(loom))]
const SLOTS: usize = crate::slots::MAX_SHARDS;
#[cfg(loom)]
const SLOTS: usize = 2;

/// One thread-slot's counters, on cache lines of their own.
#[repr(align(128))]
struct Slot {
    /// Granted budget parked here, not used by any buffer.
    credit: AtomicU64,
    /// Live bytes added (or, negative, removed) here and not folded into `Counters::live` yet.
    delta: AtomicI64,
}

/// Live-byte counters: current, peak and the optional limit. One per [`crate::Table`].
///
/// Bytes are counted once per piece of memory, however many ids share it.
pub struct Counters {
    /// Budget handed out: live bytes plus the credit parked in slots. Never above the limit.
    granted: AtomicU64,
    /// Live bytes folded in from the slots.
    live: AtomicI64,
    peak_bytes: AtomicU64,
    /// 0 means no limit.
    limit: AtomicU64,
    slots: [Slot; SLOTS],
}

/// A snapshot of a table's counters. Each field is read atomically; the fields are not read as one
/// transaction, so under concurrent use they can be a few operations apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Ids issued and not yet released.
    pub live_ids: u64,
    /// Bytes of memory held alive by live ids (or by a `BufferRef`), counted once per allocation.
    pub live_bytes: u64,
    /// The highest `live_bytes` seen since the table was made (or since `reset_peak`); see the
    /// module docs for its precision.
    pub peak_bytes: u64,
    /// Ids issued since the table was made.
    pub created: u64,
    /// Ids released since the table was made.
    pub released: u64,
    /// The live-byte limit, 0 for none.
    pub limit_bytes: u64,
}

impl Counters {
    loom_const_fn! {
        /// Fresh counters: nothing live, no limit.
        pub fn new() -> Counters {
            Counters {
                granted: AtomicU64::new(0),
                live: AtomicI64::new(0),
                peak_bytes: AtomicU64::new(0),
                limit: AtomicU64::new(0),
                slots: array_of!(SLOTS, Slot { credit: AtomicU64::new(0), delta: AtomicI64::new(0) }),
            }
        }
    }

    #[inline]
    fn slot(&self) -> &Slot {
        &self.slots[home() % SLOTS]
    }

    fn limit(&self) -> u64 {
        match self.limit.load(Ordering::Relaxed) {
            0 => u64::MAX,
            l => l,
        }
    }

    /// Counts `n` more live bytes, or refuses with [`Error::LimitReached`] if that would take live
    /// bytes past the limit.
    pub fn reserve(&self, n: usize) -> Result<(), Error> {
        if n == 0 {
            return Ok(()); // nothing to hold, so nothing the limit could refuse
        }
        let n = n as u64; // n <= MAX_LEN = 2^40
        let s = self.slot();
        if n >= GRAIN || !self.spend(s, n) {
            self.grant(s, n)?;
        }
        self.add_live(s, n as i64);
        Ok(())
    }

    /// Takes `n` bytes of the slot's credit, if it has that much and the budget is within the
    /// limit (a limit lowered below the live bytes makes every create take the checked path).
    #[inline]
    fn spend(&self, s: &Slot, n: u64) -> bool {
        if self.granted.load(Ordering::Relaxed) > self.limit() {
            return false;
        }
        let mut c = s.credit.load(Ordering::Relaxed);
        while c >= n {
            match s.credit.compare_exchange_weak(c, c - n, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => c = now,
            }
        }
        false
    }

    /// Takes `n` bytes (plus a grain of credit for slot `s` when `n` is small and the limit leaves
    /// room) from the global budget. When `n` does not fit, takes back every slot's parked credit
    /// once and tries again before refusing.
    #[cold]
    fn grant(&self, s: &Slot, n: u64) -> Result<(), Error> {
        let want_credit = if n < GRAIN { GRAIN } else { 0 };
        let mut reclaimed = false;
        let mut g = self.granted.load(Ordering::Relaxed);
        loop {
            let limit = self.limit();
            let Some(room) = limit.checked_sub(g).and_then(|r| r.checked_sub(n)) else {
                if !reclaimed {
                    reclaimed = true;
                    self.reclaim_credit();
                    g = self.granted.load(Ordering::Relaxed);
                    continue;
                }
                return Err(Error::LimitReached);
            };
            let credit = want_credit.min(room);
            match self.granted.compare_exchange_weak(g, g + n + credit, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    if credit > 0 {
                        s.credit.fetch_add(credit, Ordering::Relaxed);
                    }
                    return Ok(());
                }
                Err(now) => g = now,
            }
        }
    }

    /// Hands every slot's parked credit back to the global budget.
    #[cold]
    fn reclaim_credit(&self) {
        for s in &self.slots {
            let c = s.credit.swap(0, Ordering::Relaxed);
            if c > 0 {
                self.granted.fetch_sub(c, Ordering::Relaxed);
            }
        }
    }

    /// Adds `d` to slot `s`'s live-byte change, folding it into the global total past a grain, and
    /// raises the peak when bytes were added.
    #[inline]
    fn add_live(&self, s: &Slot, d: i64) {
        let mine = s.delta.fetch_add(d, Ordering::Relaxed) + d;
        if mine >= GRAIN as i64 || mine <= -(GRAIN as i64) {
            let folded = s.delta.swap(0, Ordering::Relaxed);
            let now = self.live.fetch_add(folded, Ordering::Relaxed) + folded;
            if d > 0 {
                self.raise_peak(now);
            }
        } else if d > 0 {
            // Without a fold, the peak sees the global total plus this thread's own slot.
            self.raise_peak(self.live.load(Ordering::Relaxed) + mine);
        }
    }

    /// Raises the peak to `now` live bytes, clamped to what was ever granted (so it never reports
    /// more than the limit allowed).
    fn raise_peak(&self, now: i64) {
        let now = (now.max(0) as u64).min(self.granted.load(Ordering::Relaxed));
        if now > self.peak_bytes.load(Ordering::Relaxed) {
            self.peak_bytes.fetch_max(now, Ordering::Relaxed);
        }
    }

    /// Gives back `n` bytes counted by `reserve` (from any thread).
    pub fn unreserve(&self, n: usize) {
        if n == 0 {
            return;
        }
        let n = n as u64;
        let s = self.slot();
        self.add_live(s, -(n as i64));
        if n >= GRAIN || self.granted.load(Ordering::Relaxed) > self.limit() {
            // Large buffers, and any bytes while the budget is over a lowered limit, go straight
            // back: credit is only parked while the budget is within the limit.
            self.granted.fetch_sub(n, Ordering::Relaxed);
            return;
        }
        let c = s.credit.fetch_add(n, Ordering::Relaxed) + n;
        if c > 2 * GRAIN {
            // Keep one grain parked here and hand the rest back.
            let mut c = c;
            while c > 2 * GRAIN {
                match s.credit.compare_exchange_weak(c, GRAIN, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => {
                        self.granted.fetch_sub(c - GRAIN, Ordering::Relaxed);
                        break;
                    }
                    Err(now) => c = now,
                }
            }
        }
    }

    fn live_now(&self) -> u64 {
        let mut sum = self.live.load(Ordering::Relaxed);
        for s in &self.slots {
            sum += s.delta.load(Ordering::Relaxed);
        }
        sum.max(0) as u64
    }

    /// Sets the live-byte limit; 0 removes it. Bytes already live are not touched: with a limit
    /// below them, creates are refused until enough is released.
    pub fn set_limit(&self, bytes: u64) {
        self.limit.store(bytes, Ordering::Relaxed);
        if bytes != 0 {
            // Parked credit is budget under the old limit; take it back so only live bytes count.
            self.reclaim_credit();
        }
    }

    /// Starts peak tracking again from the current live bytes.
    pub fn reset_peak(&self) {
        self.peak_bytes.store(self.live_now(), Ordering::Relaxed);
    }

    /// The byte fields of a [`Stats`]; the table fills in the id counts. Reading also raises the
    /// peak to the exact current total.
    pub fn snapshot(&self) -> Stats {
        let live = self.live_now();
        self.raise_peak(live as i64);
        Stats {
            live_bytes: live,
            peak_bytes: self.peak_bytes.load(Ordering::Relaxed),
            limit_bytes: self.limit.load(Ordering::Relaxed),
            ..Stats::default()
        }
    }

    /// Budget handed out (live bytes plus parked credit); never above the limit. For tests and the
    /// model checker.
    #[doc(hidden)]
    pub fn granted(&self) -> u64 {
        self.granted.load(Ordering::Relaxed)
    }
}

#[cfg(not(loom))]
impl Default for Counters {
    fn default() -> Self {
        Counters::new()
    }
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters").field("snapshot", &self.snapshot()).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::AtomicU64 as StdAtomicU64;
    use std::sync::Barrier;

    use super::*;

    #[test]
    fn large_reservations_are_exact_and_the_peak_follows() {
        let c = Counters::new();
        c.reserve(GRAIN as usize).unwrap();
        assert_eq!(c.live.load(Ordering::Relaxed), GRAIN as i64);
        assert_eq!(c.peak_bytes.load(Ordering::Relaxed), GRAIN);
        assert_eq!(c.granted(), GRAIN, "no credit taken for a large buffer");
        c.unreserve(GRAIN as usize);
        assert_eq!(c.snapshot().live_bytes, 0);
        assert_eq!(c.snapshot().peak_bytes, GRAIN);
        assert_eq!(c.granted(), 0);
    }

    #[test]
    fn frees_on_other_threads_sum_to_zero() {
        let c: &'static Counters = Box::leak(Box::new(Counters::new()));
        for _ in 0..1000 {
            c.reserve(100).unwrap();
        }
        std::thread::spawn(move || (0..1000).for_each(|_| c.unreserve(100))).join().unwrap();
        assert_eq!(c.snapshot().live_bytes, 0);
    }

    /// The defects found from outside (issue 9), seen from one thread: a create larger than the
    /// limit passed, and one that fit was refused.
    #[test]
    fn the_limit_is_exact_for_one_thread() {
        let c = Counters::new();
        c.set_limit(64 << 10);
        assert_eq!(c.reserve(250 << 10), Err(Error::LimitReached), "250 KiB under a 64 KiB limit");
        c.reserve(60 << 10).unwrap();
        assert_eq!(c.reserve((4 << 10) + 1), Err(Error::LimitReached));
        c.reserve(4 << 10).unwrap();
        c.unreserve(64 << 10);
        c.set_limit(256 << 10);
        c.reserve(100 << 10).unwrap();
        c.reserve(156 << 10).unwrap();
        assert_eq!(c.reserve(1), Err(Error::LimitReached));
        c.unreserve(100 << 10);
        c.unreserve(156 << 10);
        c.set_limit(0);
        c.reserve(1 << 30).unwrap();
        c.unreserve(1 << 30);
        assert_eq!(c.snapshot().live_bytes, 0);
    }

    /// A limit lowered below the live bytes: releases must not turn into credit that lets later
    /// creates pass the new limit (the model test found this).
    #[test]
    fn a_lowered_limit_is_exact_as_bytes_are_released() {
        let c = Counters::new();
        for _ in 0..10 {
            c.reserve(10).unwrap();
        }
        c.set_limit(60);
        assert_eq!(c.reserve(7), Err(Error::LimitReached));
        for _ in 0..5 {
            c.unreserve(10);
        }
        c.reserve(7).unwrap();
        assert_eq!(c.reserve(4), Err(Error::LimitReached), "57 live under a limit of 60");
        c.reserve(3).unwrap();
        assert_eq!(c.snapshot().live_bytes, 60);
    }

    #[test]
    fn credit_parked_by_another_thread_never_causes_a_refusal() {
        let c: &'static Counters = Box::leak(Box::new(Counters::new()));
        c.set_limit(GRAIN + 1000);
        // Another thread takes a small buffer (and so a grain of credit), then exits.
        std::thread::spawn(move || c.reserve(10).unwrap()).join().unwrap();
        // This thread can still have everything but those 10 bytes.
        c.reserve((GRAIN + 990) as usize).unwrap();
        assert_eq!(c.reserve(1), Err(Error::LimitReached));
        assert_eq!(c.snapshot().live_bytes, GRAIN + 1000);
    }

    /// Two threads each take 60 KiB under a 64 KiB limit, one after the other: the second must be
    /// refused (it was not on today's main), and under 8 threads live bytes never pass the limit.
    #[test]
    fn the_limit_holds_across_threads() {
        let c: &'static Counters = Box::leak(Box::new(Counters::new()));
        c.set_limit(64 << 10);
        std::thread::spawn(move || c.reserve(60 << 10).unwrap()).join().unwrap();
        let second = std::thread::spawn(move || c.reserve(60 << 10)).join().unwrap();
        assert_eq!(second, Err(Error::LimitReached));
        c.unreserve(60 << 10);

        const LIMIT: u64 = 1 << 20;
        c.set_limit(LIMIT);
        // Locals borrowed by scoped threads (a leaked box is a definite leak under valgrind).
        let (held, most, start) = (&StdAtomicU64::new(0), &StdAtomicU64::new(0), &Barrier::new(8));
        std::thread::scope(|s| {
            for t in 0..8u64 {
                s.spawn(move || {
                    start.wait();
                    let mut mine = Vec::new();
                    let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                    for _ in 0..20_000 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let n = 1 + (x % (96 << 10)) as usize;
                        if c.reserve(n).is_ok() {
                            // Counted after the create succeeded and before its release, so `held`
                            // never exceeds the bytes the counters consider live.
                            let now = held.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
                            most.fetch_max(now, Ordering::SeqCst);
                            mine.push(n);
                        }
                        if mine.len() > 4 || (x & 1 == 0 && !mine.is_empty()) {
                            let n = mine.swap_remove((x as usize >> 3) % mine.len());
                            held.fetch_sub(n as u64, Ordering::SeqCst);
                            c.unreserve(n);
                        }
                        assert!(c.granted() <= LIMIT);
                    }
                    for n in mine {
                        held.fetch_sub(n as u64, Ordering::SeqCst);
                        c.unreserve(n);
                    }
                });
            }
        });
        assert!(most.load(Ordering::SeqCst) <= LIMIT, "live bytes reached {}", most.load(Ordering::SeqCst));
        assert!(c.snapshot().peak_bytes <= LIMIT);
        assert_eq!(c.snapshot().live_bytes, 0);
    }
}
