//! Byte accounting shared by a table and every buffer it created.
//!
//! A single global atomic counter costs ~150 ns per create/release pair once two threads contend for
//! its cache line (measured by `benches/buffers.rs`, contended_create_release). So each thread adds
//! and subtracts in a padded slot of its own, and a slot folds its running sum into the global total
//! only when it passes ±[`GRAIN`]. Reading the stats sums everything and is exact; the limit check
//! and the peak see the global total plus the caller's own slot, so they can trail the truth by less
//! than `GRAIN` per *other* active thread (one thread alone is tracked exactly). A buffer of `GRAIN` bytes or more always folds at once, so
//! large buffers are counted exactly everywhere.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::error::Error;

/// Bytes a slot may hold back from the global total before it folds them in: 256 KiB.
pub const GRAIN: i64 = 256 << 10;
const SLOTS: usize = crate::table::MAX_SHARDS;

#[repr(align(128))]
struct Slot(AtomicI64);

/// Live-byte counters: current, peak and the optional limit. One per [`crate::Table`].
///
/// Bytes are counted once per piece of memory, however many ids share it.
pub struct Counters {
    global: AtomicI64,
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
    /// Fresh counters: nothing live, no limit.
    pub const fn new() -> Counters {
        Counters {
            global: AtomicI64::new(0),
            peak_bytes: AtomicU64::new(0),
            limit: AtomicU64::new(0),
            slots: [const { Slot(AtomicI64::new(0)) }; SLOTS],
        }
    }

    fn slot(&self) -> &AtomicI64 {
        &self.slots[crate::table::home() % SLOTS].0
    }

    /// Folds a slot's running sum into the global total and raises the peak if it was passed.
    fn fold(&self, slot: &AtomicI64) {
        let d = slot.swap(0, Ordering::Relaxed);
        if d != 0 {
            let now = self.global.fetch_add(d, Ordering::Relaxed) + d;
            self.raise_peak(now);
        }
    }

    fn raise_peak(&self, now: i64) {
        let now = now.max(0) as u64;
        if now > self.peak_bytes.load(Ordering::Relaxed) {
            self.peak_bytes.fetch_max(now, Ordering::Relaxed);
        }
    }

    /// Counts `n` more live bytes, or refuses with [`Error::LimitReached`] if that would pass the limit.
    pub(crate) fn reserve(&self, n: usize) -> Result<(), Error> {
        if n == 0 {
            return Ok(()); // nothing to hold, so nothing the limit could refuse
        }
        let n = n as i64; // n <= MAX_LEN = 2^40
        let slot = self.slot();
        let limit = self.limit.load(Ordering::Relaxed);
        if limit != 0 {
            let estimate = self.global.load(Ordering::Relaxed) + slot.load(Ordering::Relaxed);
            if estimate.saturating_add(n) > limit.min(i64::MAX as u64) as i64 {
                return Err(Error::LimitReached);
            }
        }
        let mine = slot.fetch_add(n, Ordering::Relaxed) + n;
        if mine >= GRAIN {
            self.fold(slot);
        } else {
            // Without a fold, the peak still sees the global total plus this thread's own slot.
            self.raise_peak(self.global.load(Ordering::Relaxed) + mine);
        }
        Ok(())
    }

    /// Gives back `n` bytes counted by `reserve` (from any thread).
    pub(crate) fn unreserve(&self, n: usize) {
        if n != 0 {
            let n = n as i64;
            let slot = self.slot();
            if slot.fetch_sub(n, Ordering::Relaxed) - n <= -GRAIN {
                self.fold(slot);
            }
        }
    }

    fn live(&self) -> u64 {
        let mut sum = self.global.load(Ordering::Relaxed);
        for s in &self.slots {
            sum += s.0.load(Ordering::Relaxed);
        }
        sum.max(0) as u64
    }

    /// Sets the live-byte limit; 0 removes it. Bytes already live are not touched.
    pub fn set_limit(&self, bytes: u64) {
        self.limit.store(bytes, Ordering::Relaxed);
    }

    /// Starts peak tracking again from the current live bytes.
    pub fn reset_peak(&self) {
        self.peak_bytes.store(self.live(), Ordering::Relaxed);
    }

    /// The byte fields of a [`Stats`]; the table fills in the id counts. Reading also raises the
    /// peak to the exact current total.
    pub fn snapshot(&self) -> Stats {
        let live = self.live();
        self.raise_peak(live as i64);
        Stats {
            live_bytes: live,
            peak_bytes: self.peak_bytes.load(Ordering::Relaxed),
            limit_bytes: self.limit.load(Ordering::Relaxed),
            ..Stats::default()
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_reservations_fold_at_once_and_peak_follows() {
        let c = Counters::new();
        c.reserve(GRAIN as usize).unwrap();
        assert_eq!(c.global.load(Ordering::Relaxed), GRAIN);
        assert_eq!(c.peak_bytes.load(Ordering::Relaxed), GRAIN as u64);
        c.unreserve(GRAIN as usize);
        assert_eq!(c.snapshot().live_bytes, 0);
        assert_eq!(c.snapshot().peak_bytes, GRAIN as u64);
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

    #[test]
    fn limit_counts_the_callers_own_slot() {
        let c = Counters::new();
        c.set_limit(1000);
        c.reserve(900).unwrap();
        assert_eq!(c.reserve(101), Err(Error::LimitReached));
        c.reserve(100).unwrap();
        c.set_limit(0);
        c.reserve(1 << 20).unwrap();
    }
}
