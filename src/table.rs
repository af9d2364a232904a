//! The buffer table: generational `u64` ids over counted buffer references, on the one slot core
//! ([`crate::slots`]), with the byte accounting of [`crate::stats`].
//!
//! Ids are of kind [`Kind::Buffer`], so no buffer function accepts a callback or queue id, and the
//! other way round. A thread inserts into its own home shard, so two threads creating and releasing
//! their own buffers never touch the same lock. Locks are held only to read or move a slot: buffers
//! are dropped (and foreign release callbacks run) after the lock is released.

use crate::buffer::{Buffer, BufferRef};
use crate::error::Error;
use crate::slots::{Kind, Slots};
use crate::stats::{Counters, Stats};

pub use crate::slots::MAX_SHARDS;

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

/// A table of ids over buffers. Most code uses the process-wide [`Table::global`].
///
/// Methods that create take `&'static self` because every buffer keeps a reference to its table's
/// counters for as long as it lives (make a test table with `Box::leak(Box::new(Table::new()))`).
pub struct Table {
    slots: Slots<BufferRef>,
    counters: Counters,
}

static GLOBAL: Table = Table::with_shards(MAX_SHARDS);

impl Table {
    /// A table with [`MAX_SHARDS`] shards.
    pub const fn new() -> Table {
        Table::with_shards(MAX_SHARDS)
    }

    /// A table with `n` shards (clamped to 1..=16). One shard is a single mutex over one slab; the
    /// benches compare the two designs with this.
    pub const fn with_shards(n: usize) -> Table {
        Table { slots: Slots::new(Kind::Buffer, n), counters: Counters::new() }
    }

    /// The process-wide table that the C ABI and the Go package use.
    pub fn global() -> &'static Table {
        &GLOBAL
    }

    /// Gives `r` an id in this thread's home shard. On error `r` is dropped (after the lock is let go).
    pub fn insert(&self, r: BufferRef) -> Result<View, Error> {
        self.try_insert(r).map_err(|(e, _)| e)
    }

    /// Like [`Table::insert`], but hands `r` back on error.
    fn try_insert(&self, r: BufferRef) -> Result<View, (Error, BufferRef)> {
        let (ptr, len) = (r.as_ptr(), r.len());
        let id = self.slots.insert(r)?;
        Ok(View { id, ptr, len })
    }
    fn insert_buffer(&self, b: Buffer) -> Result<View, Error> {
        self.insert(BufferRef::new(b))
    }

    /// A new zeroed buffer of `len` bytes that its holders may write.
    pub fn create_zeroed(&'static self, len: usize) -> Result<View, Error> {
        self.insert(BufferRef::zeroed(len, &self.counters)?)
    }

    /// A new buffer holding a copy of `src`.
    pub fn create_copy(&'static self, src: &[u8]) -> Result<View, Error> {
        self.insert(BufferRef::copied(src, &self.counters)?)
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
        self.try_insert(BufferRef::new(b)).map_err(|(e, r)| {
            // Nobody else has seen the buffer, so the reference is unique: hand the memory back
            // unreleased.
            r.disown();
            e
        })
    }

    /// The address and length that `id` names.
    #[inline]
    pub fn view(&self, id: u64) -> Result<View, Error> {
        self.slots.with(id, |e| View { id, ptr: e.as_ptr(), len: e.len() })
    }

    /// The view of `id`, which is marked claimed: one owner (a language binding's buffer object)
    /// holds it, and a second claim fails with [`Error::InvalidHandle`] until [`Table::disclaim`]
    /// or the release of `id`. A claim changes nothing else: the id is released, shared and sliced
    /// as any other, and its shares and slices are new, unclaimed ids.
    pub fn claim(&self, id: u64) -> Result<View, Error> {
        self.slots.claim(id, |e| View { id, ptr: e.as_ptr(), len: e.len() })
    }

    /// Gives up the claim on `id`. Errors: [`Error::InvalidHandle`] for a bad or unclaimed id.
    pub fn disclaim(&self, id: u64) -> Result<(), Error> {
        self.slots.disclaim(id)
    }

    /// A counted reference to the bytes `id` names; it keeps them alive on its own.
    pub fn get(&self, id: u64) -> Result<BufferRef, Error> {
        self.slots.with(id, BufferRef::clone)
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

    /// Releases `id`. The memory goes when its last id (or `BufferRef`) goes.
    pub fn release(&self, id: u64) -> Result<(), Error> {
        // The entry is dropped here, after `take` let go of the shard lock.
        self.slots.remove(id).map(drop)
    }

    /// Releases every id in `ids` and returns how many were valid; invalid ids are skipped.
    pub fn release_many(&self, ids: &[u64]) -> usize {
        // One lock per run of ids in the same shard; the buffers are dropped after the locks.
        self.slots.remove_many(ids).len()
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
        (st.created, st.released) = self.slots.counts();
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

    /// Issue 10, item 6: an id has at most one claimant, so two Go Buffers never own one id.
    #[test]
    fn an_id_is_claimed_once_until_disclaimed_or_released() {
        let t = table();
        let v = t.create_zeroed(8).unwrap();
        assert_eq!(t.claim(v.id), Ok(v));
        assert_eq!(t.claim(v.id), Err(Error::InvalidHandle), "a second claim");
        assert_eq!(t.view(v.id), Ok(v), "a claimed id works as any other");
        let s = t.share(v.id).unwrap();
        assert_eq!(t.claim(s.id).map(|c| c.ptr), Ok(v.ptr), "a share is a new, unclaimed id");
        assert_eq!(t.disclaim(v.id), Ok(()));
        assert_eq!(t.disclaim(v.id), Err(Error::InvalidHandle), "not claimed any more");
        assert_eq!(t.claim(v.id), Ok(v));
        t.release(v.id).unwrap();
        assert_eq!(t.claim(v.id), Err(Error::InvalidHandle));
        assert_eq!(t.disclaim(v.id), Err(Error::InvalidHandle));
        t.release(s.id).unwrap();
        // The freed slots come back unclaimed.
        let (a, b) = (t.create_zeroed(1).unwrap(), t.create_zeroed(1).unwrap());
        assert!(t.claim(a.id).is_ok() && t.claim(b.id).is_ok());
        assert_eq!(t.claim(0), Err(Error::InvalidHandle));
        // Released, not left to the leaked table: a live buffer points back at the table, and in
        // that cycle valgrind may name the buffer rather than the table as the lost block.
        assert_eq!(t.release_many(&[a.id, b.id]), 2);
        assert_eq!(t.stats().live_ids, 0);
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
        t.slots.set_max_slots(1);
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
