//! A small generational handle table for callbacks and queues (the buffer table's scheme, generic).
//!
//! An id is `generation << 32 | kind << 28 | shard << 24 | slot`. The generation starts at 1 and is
//! bumped when a slot is freed, so 0 is never an id and an old id never answers after its slot is
//! reused; a slot whose generation would reach `u32::MAX` is retired. `kind` differs per table, so an
//! id handed to the wrong table (a buffer id as a callback id, say) is almost always refused.
//!
//! Lookups clone the value (an `Arc`) out under the shard lock; callers use it after the lock is gone.

use parking_lot::Mutex;

use crate::error::Error;

const SHARDS: usize = 8;
const SLOT_BITS: u32 = 24;
const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;
const SHARD_SHIFT: u32 = SLOT_BITS;
const KIND_SHIFT: u32 = 28;
const GEN_SHIFT: u32 = 32;

struct Slot<T> {
    gen: u32,
    val: Option<T>,
}

struct Shard<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    live: usize,
}

#[repr(align(128))]
struct Padded<T>(Mutex<Shard<T>>);

/// Generational ids over values of type `T` (in practice `Arc<...>`).
pub(crate) struct Handles<T> {
    shards: [Padded<T>; SHARDS],
    kind: u64,
}

impl<T: Clone> Handles<T> {
    /// An empty table whose ids carry `kind` (1..=15).
    pub(crate) const fn new(kind: u8) -> Handles<T> {
        Handles {
            shards: [const { Padded(Mutex::new(Shard { slots: Vec::new(), free: Vec::new(), live: 0 })) };
                SHARDS],
            kind: (kind & 0xF) as u64,
        }
    }

    fn split(&self, id: u64) -> Option<(u32, usize, usize)> {
        if (id >> KIND_SHIFT) & 0xF != self.kind {
            return None;
        }
        let gen = (id >> GEN_SHIFT) as u32;
        let shard = ((id >> SHARD_SHIFT) & (SHARDS as u64 - 1)) as usize;
        Some((gen, shard, (id & SLOT_MASK) as usize))
    }

    /// Stores `v` and returns its new id.
    pub(crate) fn insert(&self, v: T) -> Result<u64, Error> {
        let shard_ix = crate::table::home() % SHARDS;
        let mut s = self.shards[shard_ix].0.lock();
        let slot_ix = match s.free.pop() {
            Some(i) => i as usize,
            None => {
                if s.slots.len() as u64 > SLOT_MASK {
                    return Err(Error::TableFull);
                }
                s.slots.push(Slot { gen: 1, val: None });
                s.slots.len() - 1
            }
        };
        let slot = &mut s.slots[slot_ix];
        slot.val = Some(v);
        let gen = slot.gen;
        s.live += 1;
        Ok((u64::from(gen) << GEN_SHIFT)
            | (self.kind << KIND_SHIFT)
            | ((shard_ix as u64) << SHARD_SHIFT)
            | slot_ix as u64)
    }

    /// A clone of the value `id` names.
    pub(crate) fn get(&self, id: u64) -> Result<T, Error> {
        let (gen, shard, slot) = self.split(id).ok_or(Error::InvalidHandle)?;
        let s = self.shards[shard].0.lock();
        match s.slots.get(slot) {
            Some(Slot { gen: g, val: Some(v) }) if *g == gen => Ok(v.clone()),
            _ => Err(Error::InvalidHandle),
        }
    }

    /// Takes the value out; `id` is invalid from now on. The caller drops the value, after the lock.
    pub(crate) fn remove(&self, id: u64) -> Result<T, Error> {
        let (gen, shard, slot) = self.split(id).ok_or(Error::InvalidHandle)?;
        let mut s = self.shards[shard].0.lock();
        let sl = match s.slots.get_mut(slot) {
            Some(sl) if sl.gen == gen && sl.val.is_some() => sl,
            _ => return Err(Error::InvalidHandle),
        };
        let v = sl.val.take().expect("checked above");
        sl.gen += 1;
        let retire = sl.gen == u32::MAX;
        if !retire {
            s.free.push(slot as u32);
        }
        s.live -= 1;
        Ok(v)
    }

    /// How many ids are live.
    pub(crate) fn live(&self) -> usize {
        self.shards.iter().map(|s| s.0.lock().live).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_generational_and_kind_checked() {
        let h: Handles<u32> = Handles::new(3);
        let other: Handles<u32> = Handles::new(4);
        let a = h.insert(7).unwrap();
        assert_ne!(a, 0);
        assert_eq!(h.get(a), Ok(7));
        assert_eq!(other.get(a), Err(Error::InvalidHandle));
        assert_eq!(h.get(0), Err(Error::InvalidHandle));
        assert_eq!(h.get(u64::MAX), Err(Error::InvalidHandle));
        assert_eq!(h.remove(a), Ok(7));
        assert_eq!(h.remove(a), Err(Error::InvalidHandle));
        let b = h.insert(8).unwrap();
        assert_eq!(a & SLOT_MASK, b & SLOT_MASK, "LIFO free list reuses the slot");
        assert_ne!(a, b);
        assert_eq!(h.get(a), Err(Error::InvalidHandle));
        assert_eq!(h.live(), 1);
        h.remove(b).unwrap();
        assert_eq!(h.live(), 0);
    }

    #[test]
    fn last_generation_retires_the_slot() {
        let h: Handles<u8> = Handles::new(1);
        let a = h.insert(1).unwrap();
        let (_, shard, slot) = h.split(a).unwrap();
        h.shards[shard].0.lock().slots[slot].gen = u32::MAX - 1;
        let forged = (u64::from(u32::MAX - 1) << GEN_SHIFT) | (a & 0xFFFF_FFFF);
        h.remove(forged).unwrap();
        let b = h.insert(2).unwrap();
        assert_ne!(h.split(b).unwrap().2, slot);
        h.remove(b).unwrap();
    }
}
