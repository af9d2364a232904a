//! The handle table: generational `u64` ids over sharded slot arrays.
//!
//! An id is `generation << 32 | shard << 28 | slot`. The generation starts at 1, so 0 is never a valid
//! id, and it is bumped each time the slot is freed, so an old id never answers again after its slot
//! is reused (no ABA). A slot whose generation would reach `u32::MAX` is retired rather than reused,
//! so `u64::MAX` is never valid either.
//!
//! Concurrency: the table is split into shards, each a `parking_lot::Mutex` over a slot vector and a
//! free list. A thread inserts into its own home shard (assigned round-robin on first use), and an id
//! names its shard, so lookups and releases lock exactly one shard. Two threads creating and
//! releasing their own buffers never touch the same lock. Locks are held only to read or move a slot:
//! buffers are dropped (and foreign release callbacks run) after the lock is released.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::buffer::{Buffer, BufferRef};
use crate::error::Error;
use crate::stats::{Counters, Stats};

/// Most shards a table can have (the id has 4 bits for the shard).
pub const MAX_SHARDS: usize = 16;
const SHARD_SHIFT: u32 = 28;
const SLOT_MASK: u64 = (1 << SHARD_SHIFT) - 1;
const GEN_SHIFT: u32 = 32;

/// An id together with the address and length of the bytes it names.
///
/// `ptr` is null exactly when `len` is 0. The bytes stay valid until the last id (or `BufferRef`)
/// over the same memory is released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    /// The id; never 0.
    pub id: u64,
    /// The first byte, or null for an empty view.
    pub ptr: *mut u8,
    /// The length in bytes.
    pub len: usize,
}

// SAFETY: a View is an id plus an address; it grants no access by itself.
unsafe impl Send for View {}
// SAFETY: as above, sharing the numbers between threads is harmless.
unsafe impl Sync for View {}

struct Slot {
    gen: u32,
    entry: Option<BufferRef>,
}

struct Shard {
    slots: Vec<Slot>,
    free: Vec<u32>,
    created: u64,
    released: u64,
}

impl Shard {
    const fn new() -> Shard {
        Shard { slots: Vec::new(), free: Vec::new(), created: 0, released: 0 }
    }

    fn entry(&self, slot: usize, gen: u32) -> Result<&BufferRef, Error> {
        match self.slots.get(slot) {
            Some(Slot { gen: g, entry: Some(e) }) if *g == gen => Ok(e),
            _ => Err(Error::InvalidHandle),
        }
    }
}

/// One shard on its own cache lines, so two threads on two shards never share a line.
#[repr(align(128))]
struct PaddedShard(Mutex<Shard>);

/// A table of ids over buffers. Most code uses the process-wide [`Table::global`].
///
/// Methods that create take `&'static self` because every buffer keeps a reference to its table's
/// counters for as long as it lives (make a test table with `Box::leak(Box::new(Table::new()))`).
pub struct Table {
    shards: [PaddedShard; MAX_SHARDS],
    nshards: usize,
    /// Slots a shard may hold: 2^28 (what the id has room for); lowered by tests.
    max_slots: usize,
    counters: Counters,
}

static GLOBAL: Table = Table::with_shards(MAX_SHARDS);
static NEXT_HOME: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static HOME: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// This thread's home shard number, before reduction modulo a table's shard count.
pub(crate) fn home() -> usize {
    HOME.try_with(|h| {
        let v = h.get();
        if v != usize::MAX {
            return v;
        }
        let v = NEXT_HOME.fetch_add(1, Ordering::Relaxed);
        h.set(v);
        v
    })
    .unwrap_or(0)
}

fn split(id: u64) -> (u32, usize, usize) {
    let gen = (id >> GEN_SHIFT) as u32;
    let shard = ((id >> SHARD_SHIFT) & (MAX_SHARDS as u64 - 1)) as usize;
    let slot = (id & SLOT_MASK) as usize;
    (gen, shard, slot)
}

impl Table {
    /// A table with [`MAX_SHARDS`] shards.
    pub const fn new() -> Table {
        Table::with_shards(MAX_SHARDS)
    }

    /// A table with `n` shards (clamped to 1..=16). One shard is a single mutex over one slab; the
    /// benches compare the two designs with this.
    pub const fn with_shards(n: usize) -> Table {
        let nshards = if n == 0 {
            1
        } else if n > MAX_SHARDS {
            MAX_SHARDS
        } else {
            n
        };
        Table {
            shards: [const { PaddedShard(Mutex::new(Shard::new())) }; MAX_SHARDS],
            nshards,
            max_slots: 1 << SHARD_SHIFT,
            counters: Counters::new(),
        }
    }

    /// The process-wide table that the C ABI and the Go package use.
    pub fn global() -> &'static Table {
        &GLOBAL
    }

    fn shard(&self, ix: usize) -> &Mutex<Shard> {
        &self.shards[ix].0
    }

    /// Gives `r` an id in this thread's home shard. On error `r` is dropped (after the lock is let go).
    pub fn insert(&self, r: BufferRef) -> Result<View, Error> {
        self.try_insert(r).map_err(|(e, _)| e)
    }

    /// Like [`Table::insert`], but hands `r` back on error.
    fn try_insert(&self, r: BufferRef) -> Result<View, (Error, BufferRef)> {
        let shard_ix = home() % self.nshards;
        let (ptr, len) = (r.as_ptr(), r.len());
        let mut s = self.shard(shard_ix).lock();
        let slot_ix = match s.free.pop() {
            Some(i) => i as usize,
            None => {
                if s.slots.len() >= self.max_slots {
                    drop(s);
                    return Err((Error::TableFull, r));
                }
                s.slots.push(Slot { gen: 1, entry: None });
                s.slots.len() - 1
            }
        };
        let slot = &mut s.slots[slot_ix];
        slot.entry = Some(r);
        let gen = slot.gen;
        s.created += 1;
        drop(s);
        let id = (u64::from(gen) << GEN_SHIFT) | ((shard_ix as u64) << SHARD_SHIFT) | slot_ix as u64;
        Ok(View { id, ptr, len })
    }

    fn insert_buffer(&self, b: Buffer) -> Result<View, Error> {
        let len = b.len();
        self.insert(BufferRef { buf: Arc::new(b), off: 0, len })
    }

    /// A new zeroed buffer of `len` bytes that its holders may write.
    pub fn create_zeroed(&'static self, len: usize) -> Result<View, Error> {
        self.insert_buffer(Buffer::zeroed(len, &self.counters)?)
    }

    /// A new buffer holding a copy of `src`.
    pub fn create_copy(&'static self, src: &[u8]) -> Result<View, Error> {
        self.insert_buffer(Buffer::copied(src, &self.counters)?)
    }

    /// Lends a vector without copying: ferry owns it from now on and drops it when the last id over it
    /// is released. On error the vector is dropped.
    pub fn lend_vec(&'static self, v: Vec<u8>) -> Result<View, Error> {
        self.insert_buffer(Buffer::from_vec(v, &self.counters)?)
    }

    /// Lends a boxed slice without copying (see [`Table::lend_vec`]).
    pub fn lend_boxed(&'static self, b: Box<[u8]>) -> Result<View, Error> {
        self.lend_vec(b.into_vec())
    }

    /// Adopts memory that belongs to someone else. `release` runs exactly once, on whichever thread
    /// releases the last id over the memory, and never under a table lock.
    ///
    /// On error `release` is dropped without being called, and the caller still owns the memory.
    ///
    /// # Safety
    /// `ptr` must be valid for reads and writes of `len` bytes until `release` runs, and nothing else
    /// may free or move that memory before then. When `len` is 0, `ptr` is ignored.
    pub unsafe fn adopt_raw(
        &'static self,
        ptr: *mut u8,
        len: usize,
        release: impl FnOnce() + Send + 'static,
    ) -> Result<View, Error> {
        // SAFETY: forwarded from this function's own contract.
        let b = unsafe { Buffer::foreign(ptr, len, Box::new(release), &self.counters)? };
        let len = b.len();
        self.try_insert(BufferRef { buf: Arc::new(b), off: 0, len }).map_err(|(e, r)| {
            // Nobody else has seen the buffer, so the Arc is unique: hand the memory back unreleased.
            if let Ok(b) = Arc::try_unwrap(r.buf) {
                b.disown();
            }
            e
        })
    }

    /// The address and length that `id` names.
    pub fn view(&self, id: u64) -> Result<View, Error> {
        let (gen, shard, slot) = split(id);
        let s = self.shard(shard).lock();
        let e = s.entry(slot, gen)?;
        Ok(View { id, ptr: e.as_ptr(), len: e.len() })
    }

    /// A counted reference to the bytes `id` names; it keeps them alive on its own.
    pub fn get(&self, id: u64) -> Result<BufferRef, Error> {
        let (gen, shard, slot) = split(id);
        let s = self.shard(shard).lock();
        s.entry(slot, gen).cloned()
    }

    /// A second id over the same bytes. Either id can be released first.
    pub fn share(&self, id: u64) -> Result<View, Error> {
        self.insert(self.get(id)?)
    }

    /// An id over `len` bytes starting at `off` of `id`'s range, sharing its memory.
    pub fn slice(&self, id: u64, off: usize, len: usize) -> Result<View, Error> {
        let r = self.get(id)?;
        self.insert(r.slice(off, len)?)
    }

    /// Copies `dst.len()` bytes starting at `off` of `id`'s range into `dst`.
    pub fn copy_out(&self, id: u64, off: usize, dst: &mut [u8]) -> Result<(), Error> {
        let r = self.get(id)?.slice(off, dst.len())?;
        dst.copy_from_slice(r.as_bytes());
        Ok(())
    }

    fn take(&self, id: u64) -> Result<BufferRef, Error> {
        let (gen, shard, slot) = split(id);
        let mut s = self.shard(shard).lock();
        s.entry(slot, gen)?;
        let sl = &mut s.slots[slot];
        let e = sl.entry.take().expect("checked by entry()");
        sl.gen += 1;
        if sl.gen != u32::MAX {
            s.free.push(slot as u32);
        }
        s.released += 1;
        Ok(e)
    }

    /// Releases `id`. The memory goes when its last id (or `BufferRef`) goes.
    pub fn release(&self, id: u64) -> Result<(), Error> {
        // The entry is dropped here, after `take` let go of the shard lock.
        self.take(id).map(drop)
    }

    /// Releases every id in `ids` and returns how many were valid; invalid ids are skipped.
    pub fn release_many(&self, ids: &[u64]) -> usize {
        ids.iter().filter(|&&id| self.release(id).is_ok()).count()
    }

    /// Sets the live-byte limit (0 for none). Creates that would pass it fail with
    /// [`Error::LimitReached`]; bytes already live are not touched.
    pub fn set_limit(&self, bytes: u64) {
        self.counters.set_limit(bytes);
    }

    /// Starts peak tracking again from the current live bytes.
    pub fn reset_peak(&self) {
        self.counters.reset_peak();
    }

    /// Counters for the whole table.
    pub fn stats(&self) -> Stats {
        let mut st = self.counters.snapshot();
        for sh in &self.shards[..self.nshards] {
            let s = sh.0.lock();
            st.created += s.created;
            st.released += s.released;
        }
        st.live_ids = st.created - st.released;
        st
    }
}

impl Default for Table {
    fn default() -> Self {
        Table::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> &'static Table {
        Box::leak(Box::new(Table::new()))
    }

    #[test]
    fn ids_are_never_zero_and_round_trip() {
        let t = table();
        let v = t.create_copy(b"abc").unwrap();
        assert_ne!(v.id, 0);
        assert_eq!(t.view(v.id).unwrap(), v);
        assert_eq!(t.view(0), Err(Error::InvalidHandle));
        assert_eq!(t.view(u64::MAX), Err(Error::InvalidHandle));
        t.release(v.id).unwrap();
    }

    #[test]
    fn released_id_never_answers_even_after_reuse() {
        let t = table();
        let a = t.create_zeroed(8).unwrap();
        t.release(a.id).unwrap();
        assert_eq!(t.release(a.id), Err(Error::InvalidHandle));
        let b = t.create_zeroed(8).unwrap();
        // Same slot (LIFO free list), new generation.
        assert_eq!(a.id & 0xFFFF_FFFF, b.id & 0xFFFF_FFFF);
        assert_ne!(a.id, b.id);
        assert_eq!(t.view(a.id), Err(Error::InvalidHandle));
        assert!(t.view(b.id).is_ok());
        t.release(b.id).unwrap();
    }

    #[test]
    fn share_and_slice_keep_memory_until_the_last_release() {
        let t = table();
        let a = t.create_copy(b"0123456789").unwrap();
        let s = t.slice(a.id, 2, 5).unwrap();
        let sh = t.share(a.id).unwrap();
        assert_eq!(s.ptr as usize, a.ptr as usize + 2);
        assert_eq!(s.len, 5);
        assert_eq!(sh.ptr, a.ptr);
        t.release(a.id).unwrap();
        assert_eq!(t.stats().live_bytes, 10);
        let mut out = [0u8; 5];
        t.copy_out(s.id, 0, &mut out).unwrap();
        assert_eq!(&out, b"23456");
        t.release(sh.id).unwrap();
        assert_eq!(t.stats().live_bytes, 10);
        t.release(s.id).unwrap();
        let st = t.stats();
        assert_eq!((st.live_ids, st.live_bytes, st.peak_bytes), (0, 0, 10));
        assert_eq!((st.created, st.released), (3, 3));
    }

    #[test]
    fn slice_and_copy_out_check_ranges() {
        let t = table();
        let a = t.create_zeroed(10).unwrap();
        assert_eq!(t.slice(a.id, 11, 0), Err(Error::OutOfRange));
        assert_eq!(t.slice(a.id, 5, 6), Err(Error::OutOfRange));
        assert_eq!(t.slice(a.id, usize::MAX, 2), Err(Error::Overflow));
        let empty = t.slice(a.id, 10, 0).unwrap();
        assert!(empty.ptr.is_null());
        let mut big = [0u8; 11];
        assert_eq!(t.copy_out(a.id, 0, &mut big), Err(Error::OutOfRange));
        assert_eq!(t.release_many(&[a.id, empty.id, a.id, 0]), 2);
        assert_eq!(t.stats().live_ids, 0);
    }

    #[test]
    fn limit_refuses_creates_past_it() {
        let t = table();
        t.set_limit(100);
        let a = t.create_zeroed(60).unwrap();
        assert_eq!(t.create_zeroed(41), Err(Error::LimitReached));
        assert_eq!(t.lend_vec(vec![0; 41]), Err(Error::LimitReached));
        t.set_limit(50); // now below what is live: empty buffers hold nothing, so they still pass
        let e1 = t.create_zeroed(0).unwrap();
        let e2 = t.lend_vec(Vec::with_capacity(8)).unwrap();
        t.release_many(&[e1.id, e2.id]);
        t.set_limit(100);
        let b = t.create_zeroed(40).unwrap();
        t.release_many(&[a.id, b.id]);
        t.set_limit(0);
        let c = t.create_zeroed(1000).unwrap();
        t.release(c.id).unwrap();
        assert_eq!(t.stats().live_bytes, 0);
    }

    #[test]
    fn failed_adopt_hands_memory_back_without_releasing() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static RELEASED: AtomicUsize = AtomicUsize::new(0);
        let mut t = Table::with_shards(1);
        t.max_slots = 1;
        let t: &'static Table = Box::leak(Box::new(t));
        let first = t.create_zeroed(8).unwrap();
        let mut mem = vec![1u8; 32];
        // SAFETY: `mem` outlives the call; on error ferry keeps nothing.
        let r = unsafe {
            t.adopt_raw(mem.as_mut_ptr(), 32, || {
                RELEASED.fetch_add(1, Ordering::SeqCst);
            })
        };
        assert_eq!(r, Err(Error::TableFull));
        assert_eq!(RELEASED.load(Ordering::SeqCst), 0, "a failed adopt must not release");
        assert_eq!(t.stats().live_bytes, 8);
        t.release(first.id).unwrap();
        drop(mem);
    }

    #[test]
    fn retired_slots_are_not_reused() {
        let t = table();
        let a = t.create_zeroed(1).unwrap();
        let (_, shard, slot) = split(a.id);
        t.shard(shard).lock().slots[slot].gen = u32::MAX - 1;
        let forged = (u64::from(u32::MAX - 1) << GEN_SHIFT) | (a.id & 0xFFFF_FFFF);
        t.release(a.id).unwrap_err();
        t.release(forged).unwrap();
        let b = t.create_zeroed(1).unwrap();
        assert_ne!(split(b.id).2, slot, "a slot at the last generation must be retired");
        t.release(b.id).unwrap();
    }

    #[test]
    fn many_threads_create_share_and_release() {
        let t = table();
        let threads: Vec<_> = (0..8)
            .map(|i| {
                std::thread::spawn(move || {
                    let mut ids = Vec::new();
                    for n in 0..2000usize {
                        let v = t.create_copy(&[(i + n) as u8; 16]).unwrap();
                        ids.push(t.share(v.id).unwrap().id);
                        ids.push(v.id);
                        if n % 3 == 0 {
                            for id in ids.drain(..) {
                                t.release(id).unwrap();
                            }
                        }
                    }
                    t.release_many(&ids)
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        let st = t.stats();
        assert_eq!((st.live_ids, st.live_bytes), (0, 0));
        assert_eq!(st.created, 8 * 2000 * 2);
    }
}
