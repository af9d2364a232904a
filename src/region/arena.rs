//! A seat's own arena, kept in private memory: which byte ranges are free, and for each buffer
//! slot its generation, range, local references and the leases lent to the peer.
//!
//! This is the authoritative state of the buffers a process allocated. The shared descriptor table
//! only *mirrors* it for the peer (written here, never read back), so nothing a peer writes can
//! change what this process believes about its own buffers. The one number the peer writes for
//! them, a slot's returned-lease count, is read as a hint and clamped to the leases actually lent.

use std::collections::{BTreeMap, BTreeSet};

use crate::slots::{next_gen, FIRST_GEN};

/// Allocation granularity (and alignment) inside an arena: one cache line.
pub(crate) const GRAIN: u64 = 64;

/// One buffer slot's private state.
#[derive(Debug, Clone, Default)]
pub(crate) struct SlotState {
    /// The slot's current generation; retired slots have `gen == u32::MAX`.
    pub(crate) gen: u32,
    /// Whether a buffer occupies the slot.
    pub(crate) live: bool,
    /// The buffer's first byte, from the arena's start.
    pub(crate) off: u64,
    /// The buffer's length as asked.
    pub(crate) len: u64,
    /// Bytes reserved for it (length rounded up to the grain; 0 for an empty buffer).
    pub(crate) size: u64,
    /// Ids this process holds over it (one per alloc or per message that brought it back).
    pub(crate) refs: u32,
    /// Leases the peer holds (one per message that carried it to the peer).
    pub(crate) lent: u32,
    /// The peer's returned count already taken into account.
    pub(crate) ret_base: u64,
}

/// Why an allocation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AllocError {
    /// No free range is large enough.
    NoSpace,
    /// Every slot holds a buffer (or is retired).
    NoSlot,
}

/// The private allocator and slot table of one seat.
pub(crate) struct Arena {
    len: u64,
    by_off: BTreeMap<u64, u64>,
    by_size: BTreeSet<(u64, u64)>,
    pub(crate) slots: Vec<SlotState>,
    free_slots: Vec<u32>,
    pub(crate) used: u64,
    /// Slots whose buffer is live (refs or lent above 0).
    pub(crate) live: u64,
}

impl Arena {
    /// An empty arena of `len` bytes with `nslots` slots whose generations start at `gens[i]`
    /// (the generation to use next for each slot).
    pub(crate) fn new(len: u64, gens: impl Iterator<Item = u32>) -> Arena {
        let slots: Vec<SlotState> = gens
            .map(|g| SlotState { gen: if g < FIRST_GEN { FIRST_GEN } else { g }, ..SlotState::default() })
            .collect();
        let free_slots =
            (0..slots.len() as u32).rev().filter(|&i| slots[i as usize].gen != u32::MAX).collect();
        let mut a = Arena {
            len,
            by_off: BTreeMap::new(),
            by_size: BTreeSet::new(),
            slots,
            free_slots,
            used: 0,
            live: 0,
        };
        if len > 0 {
            a.insert_free(0, len);
        }
        a
    }

    fn insert_free(&mut self, off: u64, size: u64) {
        self.by_off.insert(off, size);
        self.by_size.insert((size, off));
    }

    fn remove_free(&mut self, off: u64, size: u64) {
        self.by_off.remove(&off);
        self.by_size.remove(&(size, off));
    }

    /// Reserves `len` bytes in a free slot; returns the slot index. The caller publishes it.
    pub(crate) fn alloc(&mut self, len: u64) -> Result<usize, AllocError> {
        let size =
            if len == 0 { 0 } else { len.div_ceil(GRAIN).checked_mul(GRAIN).ok_or(AllocError::NoSpace)? };
        if size > self.len {
            return Err(AllocError::NoSpace);
        }
        let Some(&slot) = self.free_slots.last() else {
            return Err(AllocError::NoSlot);
        };
        let off = if size == 0 {
            0
        } else {
            // Best fit: the smallest free range that holds `size`.
            let Some(&(fsize, foff)) = self.by_size.range((size, 0)..).next() else {
                return Err(AllocError::NoSpace);
            };
            self.remove_free(foff, fsize);
            if fsize > size {
                self.insert_free(foff + size, fsize - size);
            }
            foff
        };
        self.free_slots.pop();
        let s = &mut self.slots[slot as usize];
        s.live = true;
        s.off = off;
        s.len = len;
        s.size = size;
        s.refs = 1;
        s.lent = 0;
        self.used += size;
        self.live += 1;
        Ok(slot as usize)
    }

    /// The live slot `slot` if its generation is `gen`.
    pub(crate) fn get(&mut self, slot: usize, gen: u32) -> Option<&mut SlotState> {
        self.slots.get_mut(slot).filter(|s| s.live && s.gen == gen)
    }

    /// Frees `slot` if nothing holds it any more (no local reference, no lease lent); returns
    /// true when it was freed (its generation moved on: the caller publishes that).
    pub(crate) fn free_if_unused(&mut self, slot: usize) -> bool {
        let s = &mut self.slots[slot];
        if !s.live || s.refs > 0 || s.lent > 0 {
            return false;
        }
        let (off, size) = (s.off, s.size);
        s.live = false;
        match next_gen(s.gen) {
            Some(g) => {
                s.gen = g;
                self.free_slots.push(slot as u32);
            }
            None => s.gen = u32::MAX,
        }
        self.used -= size;
        self.live -= 1;
        if size > 0 {
            self.release_range(off, size);
        }
        true
    }

    fn release_range(&mut self, mut off: u64, mut size: u64) {
        // Merge with the free range just before and just after.
        if let Some((&poff, &psize)) = self.by_off.range(..off).next_back() {
            if poff + psize == off {
                self.remove_free(poff, psize);
                off = poff;
                size += psize;
            }
        }
        if let Some(&nsize) = self.by_off.get(&(off + size)) {
            self.remove_free(off + size, nsize);
            size += nsize;
        }
        self.insert_free(off, size);
    }

    /// Slots that have leases lent to the peer.
    pub(crate) fn lent_slots(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots.iter().enumerate().filter(|(_, s)| s.live && s.lent > 0).map(|(i, _)| i)
    }

    /// Leases lent to the peer, in all.
    pub(crate) fn lent_total(&self) -> u64 {
        self.slots.iter().filter(|s| s.live).map(|s| u64::from(s.lent)).sum()
    }

    /// Local references held, in all.
    pub(crate) fn refs_total(&self) -> u64 {
        self.slots.iter().filter(|s| s.live).map(|s| u64::from(s.refs)).sum()
    }

    /// The largest free range, in bytes.
    pub(crate) fn largest_free(&self) -> u64 {
        self.by_size.iter().next_back().map_or(0, |&(s, _)| s)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn alloc_free_coalesces_and_reuses_slots_with_new_generations() {
        let mut a = Arena::new(4096, std::iter::repeat(1).take(4));
        let x = a.alloc(100).unwrap();
        let y = a.alloc(1000).unwrap();
        let z = a.alloc(0).unwrap();
        assert_eq!(a.slots[x].size, 128);
        assert_eq!(a.slots[z].size, 0);
        assert_eq!(a.used, 128 + 1024);
        assert_eq!(a.alloc(4096), Err(AllocError::NoSpace));
        let gy = a.slots[y].gen;
        a.slots[y].refs = 0;
        assert!(a.free_if_unused(y));
        assert!(a.get(y, gy).is_none());
        a.slots[x].refs = 0;
        a.slots[x].lent = 1;
        assert!(!a.free_if_unused(x), "a lease lent keeps it");
        a.slots[x].lent = 0;
        assert!(a.free_if_unused(x));
        a.slots[z].refs = 0;
        assert!(a.free_if_unused(z));
        assert_eq!(a.largest_free(), 4096, "all ranges merged back");
        let w = a.alloc(4096).unwrap();
        assert_eq!(w, z, "LIFO slot reuse");
        assert_eq!(a.slots[w].gen, 2);
        assert_eq!(a.live, 1);
    }

    #[test]
    fn running_out_of_slots() {
        let mut a = Arena::new(1 << 20, std::iter::repeat(1).take(2));
        a.alloc(1).unwrap();
        a.alloc(1).unwrap();
        assert_eq!(a.alloc(1), Err(AllocError::NoSlot));
    }
}
