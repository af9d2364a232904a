//! The one generational slot core: how every ferry id is laid out, issued, checked and retired.
//!
//! # Id layout
//!
//! ```text
//!  63            32 31  28 27  24 23                 0
//! +----------------+------+------+--------------------+
//! |   generation   | kind | shard|        slot        |
//! +----------------+------+------+--------------------+
//! ```
//!
//! - **kind** (4 bits) says which table issued the id ([`Kind`]). No other field uses these bits,
//!   and every table refuses an id of another kind, so a buffer id is never mistaken for a callback
//!   or a queue id however many threads or shards there are. Kind 0 is never issued, so 0 is never
//!   an id.
//! - **shard** (4 bits) names the shard that holds the slot ([`MAX_SHARDS`] = 16).
//! - **slot** (24 bits) indexes the shard: 16M live ids per shard.
//! - **generation** (32 bits) starts at 1 and moves on each time the slot is freed, so an old id
//!   never answers after its slot is reused (no ABA). A slot whose generation would reach
//!   `u32::MAX` is retired, never reused.
//!
//! Region buffers ([`Kind::RegionBuffer`], `src/region/`) give the shard and slot bits a meaning of
//! their own: the 4 shard bits name the *seat* (the arena of the process that allocated the buffer,
//! 0 or 1) and the 24 slot bits index that arena's descriptor table in the shared mapping; the
//! generation is the one published in that descriptor. Such an id is the same number in every
//! process that maps the region, and is resolved against a region handle, never globally. Region
//! handles ([`Kind::Region`]) are process-local ids of an ordinary [`Slots`] table.
//!
//! Tables with their own storage (the lock-free callback registry) use [`encode`], [`decode`] and
//! [`next_gen`] from here, so the layout and the generation rules live in one place. Tables of
//! values behind a lock (buffers, completion queues) use [`Slots`].
//!
//! # Slots
//!
//! [`Slots`] is split into shards, each a mutex over a slot vector and a free list. A thread inserts
//! into its own home shard ([`home`], assigned round-robin on first use) and falls back to the
//! others only when its home is full; an id names its shard, so lookups and removals lock exactly
//! one shard. Locks are held only to read or move a slot: values are dropped by the caller, after the
//! lock is let go.

use std::cell::Cell;

use crate::error::Error;
use crate::sync::{array_of, loom_const_fn, Mutex};

/// Most shards a [`Slots`] table has (the id has 4 bits for the shard).
pub const MAX_SHARDS: usize = 16;
const GEN_SHIFT: u32 = 32;
const KIND_SHIFT: u32 = 28;
const SHARD_SHIFT: u32 = 24;
/// Slots a shard can index: 2^24.
pub(crate) const SLOTS_PER_SHARD: usize = 1 << SHARD_SHIFT;
const SLOT_MASK: u64 = SLOTS_PER_SHARD as u64 - 1;
/// The generation of a slot that is never used again.
const RETIRED: u32 = u32::MAX;
/// The generation a fresh slot starts at.
pub(crate) const FIRST_GEN: u32 = 1;

/// Which table issued an id. The values are part of every id ferry has handed out: never
/// renumber them.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A buffer id ([`crate::Table`]).
    Buffer = 1,
    /// A callback id (the callback registry).
    Callback = 2,
    /// A completion-queue id.
    Queue = 3,
    /// A buffer inside a shared-memory region: `generation | kind | seat:4 | slot:24`, valid in
    /// every process that maps the region (`src/region/`).
    RegionBuffer = 4,
    /// A process-local handle of a shared-memory region.
    Region = 5,
}

/// The parts of an id of a known kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
    pub(crate) gen: u32,
    pub(crate) shard: usize,
    pub(crate) slot: usize,
}

/// The id for `key` in a table of `kind`.
#[inline]
pub(crate) fn encode(kind: Kind, key: Key) -> u64 {
    debug_assert!(key.shard < MAX_SHARDS && key.slot < SLOTS_PER_SHARD && key.gen >= FIRST_GEN);
    (u64::from(key.gen) << GEN_SHIFT)
        | (u64::from(kind as u8) << KIND_SHIFT)
        | ((key.shard as u64) << SHARD_SHIFT)
        | key.slot as u64
}

/// The parts of `id`, or `None` if it was not issued by a table of `kind` (0 and every id of
/// another kind included).
///
/// Generation 0 decodes too: no slot ever holds it, so such an id never matches a live value.
#[inline(always)]
pub(crate) fn decode(id: u64, kind: Kind) -> Option<Key> {
    if (id >> KIND_SHIFT) & 0xF != u64::from(kind as u8) {
        return None;
    }
    Some(Key {
        gen: (id >> GEN_SHIFT) as u32,
        shard: ((id >> SHARD_SHIFT) & 0xF) as usize,
        slot: (id & SLOT_MASK) as usize,
    })
}

/// The generation a freed slot moves on to, or `None` when the slot must be retired (its next
/// generation would be the last one).
#[inline]
pub(crate) fn next_gen(gen: u32) -> Option<u32> {
    let next = gen.wrapping_add(1);
    (next != RETIRED && next >= FIRST_GEN).then_some(next)
}

#[cfg(not(loom))]
mod home_imp {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub(super) static NEXT_HOME: AtomicUsize = AtomicUsize::new(0);

    thread_local! {
        // No destructor: safe to touch from any thread at any time, exiting threads included.
        pub(super) static HOME: Cell<usize> = const { Cell::new(usize::MAX) };
    }

    pub(super) fn next() -> usize {
        NEXT_HOME.fetch_add(1, Ordering::Relaxed)
    }
}

#[cfg(loom)]
mod home_imp {
    use std::cell::Cell;

    use crate::sync::{AtomicUsize, Ordering};

    loom::lazy_static! {
        pub(super) static ref NEXT_HOME: AtomicUsize = AtomicUsize::new(0);
    }

    loom::thread_local! {
        pub(super) static HOME: Cell<usize> = Cell::new(usize::MAX);
    }

    pub(super) fn next() -> usize {
        NEXT_HOME.fetch_add(1, Ordering::Relaxed)
    }
}

/// This thread's home number (before reduction modulo a table's shard count): the shard it
/// inserts into and the counter slot it adds to. Assigned round-robin on a thread's first use.
#[inline]
pub(crate) fn home() -> usize {
    home_imp::HOME
        .try_with(|h: &Cell<usize>| {
            let v = h.get();
            if v != usize::MAX {
                return v;
            }
            let v = home_imp::next();
            h.set(v);
            v
        })
        .unwrap_or(0)
}

struct Slot<T> {
    gen: u32,
    /// Set by [`Slots::claim`] while one owner holds the id; cleared when the value goes.
    claimed: bool,
    val: Option<T>,
}

struct Shard<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    created: u64,
    released: u64,
}

/// A value on cache lines of its own, so two threads on two shards never share a line.
#[repr(align(128))]
struct Padded<T>(T);

/// A table of generational ids of one [`Kind`] over values of type `T` (an `Arc` or a counted
/// reference in practice): insert gives an id, `with` looks it up, `remove` takes the value out and
/// makes the id invalid forever.
pub struct Slots<T> {
    shards: [Padded<Mutex<Shard<T>>>; MAX_SHARDS],
    nshards: usize,
    /// Slots a shard may hold: [`SLOTS_PER_SHARD`]; lowered by tests.
    max_slots: usize,
    kind: Kind,
}

impl<T> Slots<T> {
    loom_const_fn! {
        /// An empty table of `kind` with `nshards` shards (clamped to 1..=16).
        pub fn new(kind: Kind, nshards: usize) -> Slots<T> {
            let nshards = if nshards == 0 {
                1
            } else if nshards > MAX_SHARDS {
                MAX_SHARDS
            } else {
                nshards
            };
            Slots {
                shards: array_of!(
                    MAX_SHARDS,
                    Padded(Mutex::new(Shard { slots: Vec::new(), free: Vec::new(), created: 0, released: 0 }))
                ),
                nshards,
                max_slots: SLOTS_PER_SHARD,
                kind,
            }
        }
    }

    #[inline(always)]
    fn shard(&self, ix: usize) -> &Mutex<Shard<T>> {
        &self.shards[ix].0
    }

    /// Stores `v` and returns its new id, in this thread's home shard, or in another one if the
    /// home shard is full. Hands `v` back with [`Error::TableFull`] when every shard is full.
    pub fn insert(&self, v: T) -> Result<u64, (Error, T)> {
        let home = home() % self.nshards;
        let mut v = v;
        for i in 0..self.nshards {
            let shard = (home + i) % self.nshards;
            match self.insert_in(shard, v) {
                Ok(id) => return Ok(id),
                Err(back) => v = back,
            }
        }
        Err((Error::TableFull, v))
    }

    fn insert_in(&self, shard_ix: usize, v: T) -> Result<u64, T> {
        let mut s = self.shard(shard_ix).lock();
        let slot = match s.free.pop() {
            Some(i) => i as usize,
            None if s.slots.len() < self.max_slots => {
                s.slots.push(Slot { gen: FIRST_GEN, claimed: false, val: None });
                s.slots.len() - 1
            }
            None => return Err(v),
        };
        let sl = &mut s.slots[slot];
        sl.val = Some(v);
        sl.claimed = false;
        let gen = sl.gen;
        s.created += 1;
        Ok(encode(self.kind, Key { gen, shard: shard_ix, slot }))
    }

    /// Calls `f` with the value `id` names, under its shard's lock: keep `f` short (clone an `Arc`
    /// out, read a field). Errors: [`Error::InvalidHandle`] for an id of another kind, a stale or
    /// forged one.
    #[inline(always)]
    pub fn with<R>(&self, id: u64, f: impl FnOnce(&T) -> R) -> Result<R, Error> {
        let k = self.key(id)?;
        let s = self.shard(k.shard).lock();
        match s.slots.get(k.slot) {
            Some(Slot { gen, val: Some(v), .. }) if *gen == k.gen => Ok(f(v)),
            _ => Err(Error::InvalidHandle),
        }
    }

    /// Like [`Slots::with`], and marks the id claimed: a second claim of it fails until
    /// [`Slots::disclaim`] or its removal. Errors: [`Error::InvalidHandle`] for an id of another
    /// kind, a stale or forged one, or one claimed already.
    pub fn claim<R>(&self, id: u64, f: impl FnOnce(&T) -> R) -> Result<R, Error> {
        let k = self.key(id)?;
        let mut s = self.shard(k.shard).lock();
        match s.slots.get_mut(k.slot) {
            Some(Slot { gen, claimed: claimed @ false, val: Some(v) }) if *gen == k.gen => {
                *claimed = true;
                Ok(f(v))
            }
            _ => Err(Error::InvalidHandle),
        }
    }

    /// Clears the claim on `id`. Errors: [`Error::InvalidHandle`] for an id of another kind, a
    /// stale or forged one, or one not claimed.
    pub fn disclaim(&self, id: u64) -> Result<(), Error> {
        let k = self.key(id)?;
        let mut s = self.shard(k.shard).lock();
        match s.slots.get_mut(k.slot) {
            Some(Slot { gen, claimed: claimed @ true, val: Some(_) }) if *gen == k.gen => {
                *claimed = false;
                Ok(())
            }
            _ => Err(Error::InvalidHandle),
        }
    }

    /// Takes the value out: `id` is invalid from now on, and its slot is reused under a new
    /// generation (or retired). The caller drops the value, after the lock is let go.
    pub fn remove(&self, id: u64) -> Result<T, Error> {
        let k = self.key(id)?;
        let mut s = self.shard(k.shard).lock();
        Self::take(&mut s, k).ok_or(Error::InvalidHandle)
    }

    /// Takes the value of slot `k` out of a locked shard, if `k` names it.
    #[inline]
    fn take(s: &mut Shard<T>, k: Key) -> Option<T> {
        let sl = match s.slots.get_mut(k.slot) {
            Some(sl) if sl.gen == k.gen && sl.val.is_some() => sl,
            _ => return None,
        };
        let v = sl.val.take();
        sl.claimed = false;
        match next_gen(sl.gen) {
            Some(g) => {
                sl.gen = g;
                s.free.push(k.slot as u32);
            }
            None => sl.gen = RETIRED,
        }
        s.released += 1;
        v
    }

    /// Removes every id in `ids` (see [`Slots::remove`]), locking each shard once per run of ids
    /// that fall in it, and returns the values taken, for the caller to drop after every lock is
    /// let go. Ids that name no live value are skipped.
    pub fn remove_many(&self, ids: &[u64]) -> Vec<T> {
        let mut out = Vec::with_capacity(ids.len());
        let mut i = 0;
        while i < ids.len() {
            let Ok(k) = self.key(ids[i]) else {
                i += 1;
                continue;
            };
            let mut s = self.shard(k.shard).lock();
            while i < ids.len() {
                match self.key(ids[i]) {
                    Ok(k2) if k2.shard == k.shard => {
                        if let Some(v) = Self::take(&mut s, k2) {
                            out.push(v);
                        }
                        i += 1;
                    }
                    Ok(_) => break,
                    Err(_) => i += 1,
                }
            }
        }
        out
    }

    /// The parts of `id` if it is of this table's kind. A shard past `nshards` needs no check of its
    /// own: it never holds a slot, so the lookup that follows fails.
    #[inline(always)]
    fn key(&self, id: u64) -> Result<Key, Error> {
        decode(id, self.kind).ok_or(Error::InvalidHandle)
    }

    /// Ids issued and ids removed since the table was made.
    pub fn counts(&self) -> (u64, u64) {
        self.shards[..self.nshards].iter().fold((0, 0), |(c, r), sh| {
            let s = sh.0.lock();
            (c + s.created, r + s.released)
        })
    }

    /// Ids issued and not yet removed.
    pub fn live(&self) -> u64 {
        let (c, r) = self.counts();
        c - r
    }

    /// Lowers the slots per shard, for tests of a full table.
    #[cfg(test)]
    pub(crate) fn set_max_slots(&mut self, n: usize) {
        self.max_slots = n.min(SLOTS_PER_SHARD);
    }

    /// Sets the generation of the slot `id` names, for tests of retirement.
    #[cfg(test)]
    pub(crate) fn set_gen(&self, id: u64, gen: u32) {
        let k = decode(id, self.kind).expect("an id of this table");
        self.shard(k.shard).lock().slots[k.slot].gen = gen;
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_kind_in_bits_of_their_own() {
        let b: Slots<u32> = Slots::new(Kind::Buffer, MAX_SHARDS);
        let q: Slots<u32> = Slots::new(Kind::Queue, MAX_SHARDS);
        let id = b.insert(7).unwrap();
        assert_eq!(decode(id, Kind::Buffer).map(|k| k.gen), Some(FIRST_GEN));
        assert_eq!(decode(id, Kind::Queue), None);
        assert_eq!(decode(id, Kind::Callback), None);
        assert_eq!(q.with(id, |v| *v), Err(Error::InvalidHandle), "an id of another kind");
        assert_eq!(q.remove(id), Err(Error::InvalidHandle));
        for shard in 0..MAX_SHARDS {
            for kind in [Kind::Buffer, Kind::Callback, Kind::Queue] {
                let id = encode(kind, Key { gen: 5, shard, slot: SLOTS_PER_SHARD - 1 });
                for other in [Kind::Buffer, Kind::Callback, Kind::Queue] {
                    assert_eq!(decode(id, other).is_some(), other == kind, "{id:#x}");
                }
            }
        }
        assert_eq!(decode(0, Kind::Buffer), None);
        assert_eq!(decode(u64::MAX, Kind::Buffer), None);
        assert_eq!(b.remove(id), Ok(7));
    }

    #[test]
    fn removed_ids_never_answer_again_even_after_reuse() {
        let t: Slots<u32> = Slots::new(Kind::Buffer, 1);
        let a = t.insert(1).unwrap();
        assert_eq!(t.remove(a), Ok(1));
        assert_eq!(t.remove(a), Err(Error::InvalidHandle));
        let b = t.insert(2).unwrap();
        assert_eq!(a & 0xFFFF_FFFF, b & 0xFFFF_FFFF, "the LIFO free list reuses the slot");
        assert_ne!(a, b);
        assert_eq!(t.with(a, |v| *v), Err(Error::InvalidHandle));
        assert_eq!(t.with(b, |v| *v), Ok(2));
        assert_eq!(t.live(), 1);
        t.remove(b).unwrap();
        assert_eq!(t.counts(), (2, 2));
    }

    #[test]
    fn the_last_generation_retires_the_slot() {
        let t: Slots<u32> = Slots::new(Kind::Buffer, 1);
        let a = t.insert(1).unwrap();
        t.set_gen(a, u32::MAX - 1);
        let forged = (u64::from(u32::MAX - 1) << GEN_SHIFT) | (a & 0xFFFF_FFFF);
        assert_eq!(t.remove(a), Err(Error::InvalidHandle));
        assert_eq!(t.remove(forged), Ok(1));
        let b = t.insert(2).unwrap();
        assert_ne!(b & SLOT_MASK, a & SLOT_MASK, "a retired slot is never reused");
        assert_eq!(next_gen(u32::MAX - 1), None);
        assert_eq!(next_gen(u32::MAX), None);
        assert_eq!(next_gen(FIRST_GEN), Some(FIRST_GEN + 1));
    }

    #[test]
    fn a_full_home_shard_spills_into_the_others() {
        let mut t: Slots<u32> = Slots::new(Kind::Buffer, 2);
        t.set_max_slots(2);
        let ids: Vec<u64> = (0..4).map(|i| t.insert(i).unwrap()).collect();
        assert_eq!(t.insert(9), Err((Error::TableFull, 9)));
        let shards: std::collections::HashSet<usize> =
            ids.iter().map(|&id| decode(id, Kind::Buffer).unwrap().shard).collect();
        assert_eq!(shards.len(), 2);
        for (i, id) in ids.into_iter().enumerate() {
            assert_eq!(t.remove(id), Ok(i as u32));
        }
    }

    #[test]
    fn remove_many_takes_each_live_id_once_across_shards() {
        let t: Slots<u32> = Slots::new(Kind::Buffer, 4);
        let ids: Vec<u64> = (0..40).map(|i| t.insert(i).unwrap()).collect();
        let mut mixed = vec![0, ids[3], u64::MAX, ids[3]];
        mixed.extend(ids.iter().rev().copied());
        let mut got = t.remove_many(&mixed);
        got.sort();
        assert_eq!(
            got,
            (0..40).collect::<Vec<u32>>(),
            "each live id once; stale, repeated and forged skipped"
        );
        assert_eq!(t.live(), 0);
        assert!(t.remove_many(&ids).is_empty());
    }

    #[test]
    fn ids_naming_a_shard_the_table_does_not_have_are_refused() {
        let t: Slots<u32> = Slots::new(Kind::Buffer, 2);
        let id = encode(Kind::Buffer, Key { gen: FIRST_GEN, shard: 7, slot: 0 });
        assert_eq!(t.with(id, |v| *v), Err(Error::InvalidHandle));
    }
}
