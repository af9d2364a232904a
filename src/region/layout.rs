//! Where everything lives in a region's mapping, computed from three numbers in the header.
//!
//! A process that maps a region reads the header once, checks it, computes the layout from the
//! ring size, the slots per seat and the arena size, and keeps that layout privately: nothing a
//! peer writes into the header afterwards changes where this process looks. Every later read of
//! shared memory is an atomic load at an offset inside this layout, and every value read is checked
//! before it is used.

use crate::sync::{AtomicU64, Ordering};

use super::ring::CTL_WORDS;

/// "FERRYRG1" in little-endian bytes.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"FERRYRG1");
/// The layout version this code writes and reads.
pub(crate) const VERSION: u64 = 1;
/// Seats (processes) a region has: the creator's and one peer's.
pub(crate) const SEATS: usize = 2;
/// The page size the layout aligns to.
pub(crate) const PAGE: u64 = 4096;
/// Words of one message entry: id, value, corr, tag | flags << 32.
pub(crate) const MSG_WORDS: usize = 4;
/// Words of one buffer descriptor: gen << 1 | live, offset, length, returned count.
pub(crate) const DESC_WORDS: usize = 4;
/// Bytes of the control block of a ring (its words on lines of their own, padded).
const CTL_BYTES: u64 = 512;
/// Most message-ring entries.
pub(crate) const MAX_RING: u64 = 1 << 16;
/// Most buffer slots per seat.
pub(crate) const MAX_SLOTS: u64 = 1 << 20;
/// Largest arena per seat: 1 TiB.
pub(crate) const MAX_ARENA: u64 = 1 << 40;

/// Header words (index in u64 words from the start of the mapping).
pub(crate) mod hdr {
    pub(crate) const MAGIC: usize = 0;
    pub(crate) const VERSION: usize = 1;
    pub(crate) const TOTAL: usize = 2;
    pub(crate) const RING: usize = 3;
    pub(crate) const SLOTS: usize = 4;
    pub(crate) const ARENA: usize = 5;
    pub(crate) const KEY: usize = 6;
    /// First word of seat `s`'s block: `SEAT + s * SEAT_STRIDE`.
    pub(crate) const SEAT: usize = 256;
    pub(crate) const SEAT_STRIDE: usize = 32;
}

/// Seat word: `epoch << 32 | state`. Seat states:
pub(crate) mod seat {
    /// Nobody holds the seat and nobody was offered it.
    pub(crate) const FREE: u64 = 0;
    /// The seat was offered to a peer (over a socket) that has not taken it yet.
    pub(crate) const OFFERED: u64 = 1;
    /// A process holds the seat.
    pub(crate) const ACTIVE: u64 = 2;
    /// The process that held the seat died or left; the survivor still holds leases on its arena.
    pub(crate) const DEAD: u64 = 3;
}

/// What a region is made of: the numbers that fix the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Message-ring entries per direction (a power of two, 2..=65536).
    pub ring: u64,
    /// Buffer slots per seat (1..=2^20): how many buffers a process can have allocated at once.
    pub slots: u64,
    /// Bytes of each seat's arena (a multiple of 4096, at most 1 TiB).
    pub arena: u64,
}

/// Byte offsets of everything, for one [`Params`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) params: Params,
    /// Entries of each hint ring (returned slots): the next power of two of `slots`.
    pub(crate) hints: u64,
    pub(crate) msg_ctl: [u64; SEATS],
    pub(crate) msg_slots: [u64; SEATS],
    pub(crate) hint_ctl: [u64; SEATS],
    pub(crate) hint_slots: [u64; SEATS],
    pub(crate) desc: [u64; SEATS],
    pub(crate) arena: [u64; SEATS],
    pub(crate) total: u64,
}

fn align(v: u64, a: u64) -> Option<u64> {
    Some(v.checked_add(a - 1)? & !(a - 1))
}

impl Layout {
    /// The layout for `p`, or `None` when a number is outside its domain or the total overflows.
    pub(crate) fn new(p: Params) -> Option<Layout> {
        let ok = p.ring.is_power_of_two()
            && (2..=MAX_RING).contains(&p.ring)
            && (1..=MAX_SLOTS).contains(&p.slots)
            && p.arena >= PAGE
            && p.arena <= MAX_ARENA
            && p.arena % PAGE == 0;
        if !ok {
            return None;
        }
        let hints = p.slots.next_power_of_two().max(2);
        let mut l = Layout {
            params: p,
            hints,
            msg_ctl: [0; SEATS],
            msg_slots: [0; SEATS],
            hint_ctl: [0; SEATS],
            hint_slots: [0; SEATS],
            desc: [0; SEATS],
            arena: [0; SEATS],
            total: 0,
        };
        let mut at = PAGE; // the header page
        for s in 0..SEATS {
            l.msg_ctl[s] = at;
            at += CTL_BYTES;
            l.msg_slots[s] = at;
            at += p.ring * MSG_WORDS as u64 * 8;
            l.hint_ctl[s] = at;
            at += CTL_BYTES;
            l.hint_slots[s] = at;
            at += hints * 8;
            l.desc[s] = align(at, 64)?;
            at = l.desc[s] + p.slots * DESC_WORDS as u64 * 8;
        }
        at = align(at, PAGE)?;
        for s in 0..SEATS {
            l.arena[s] = at;
            at = at.checked_add(p.arena)?;
        }
        l.total = at;
        // The whole mapping must be addressable and indexable in words.
        (usize::try_from(at).is_ok() && at <= isize::MAX as u64).then_some(l)
    }
}

/// A mapped region's words, with the layout this process computed.
#[derive(Clone, Copy)]
pub(crate) struct Shm<'a> {
    pub(crate) words: &'a [AtomicU64],
    pub(crate) l: Layout,
}

impl<'a> Shm<'a> {
    fn at(&self, byte: u64, n: usize) -> &'a [AtomicU64] {
        let i = (byte / 8) as usize;
        &self.words[i..i + n]
    }

    /// The message ring that carries messages *to* seat `s`.
    pub(crate) fn msg_ring(&self, s: usize) -> super::ring::Ring<'a> {
        let n = self.l.params.ring as usize * MSG_WORDS;
        super::ring::Ring::new(
            self.at(self.l.msg_ctl[s], CTL_WORDS),
            self.at(self.l.msg_slots[s], n),
            MSG_WORDS,
        )
    }

    /// The hint ring that carries slots of seat `s`'s arena returned by the other seat.
    pub(crate) fn hint_ring(&self, s: usize) -> super::ring::Ring<'a> {
        super::ring::Ring::new(
            self.at(self.l.hint_ctl[s], CTL_WORDS),
            self.at(self.l.hint_slots[s], self.l.hints as usize),
            1,
        )
    }

    /// The descriptor of `slot` in seat `s`'s table (`slot < params.slots`).
    pub(crate) fn desc(&self, s: usize, slot: usize) -> &'a [AtomicU64] {
        self.at(self.l.desc[s] + slot as u64 * (DESC_WORDS as u64 * 8), DESC_WORDS)
    }

    /// Seat `s`'s words: state, pid.
    pub(crate) fn seat(&self, s: usize) -> &'a [AtomicU64] {
        let i = hdr::SEAT + s * hdr::SEAT_STRIDE;
        &self.words[i..i + 2]
    }

    /// Writes a fresh header for this layout.
    pub(crate) fn init_header(&self, key: u64) {
        let p = self.l.params;
        for (i, v) in [
            (hdr::VERSION, VERSION),
            (hdr::TOTAL, self.l.total),
            (hdr::RING, p.ring),
            (hdr::SLOTS, p.slots),
            (hdr::ARENA, p.arena),
            (hdr::KEY, key),
        ] {
            self.words[i].store(v, Ordering::Relaxed);
        }
        self.words[hdr::MAGIC].store(MAGIC, Ordering::Release);
    }
}

/// Reads and checks the header of a mapping of `len` bytes made of `words`; returns the layout
/// and the region's key. `None` for anything inconsistent.
pub(crate) fn read_header(words: &[AtomicU64], len: u64) -> Option<(Layout, u64)> {
    if words.len() < (PAGE / 8) as usize {
        return None;
    }
    let w = |i: usize| words[i].load(Ordering::Acquire);
    if w(hdr::MAGIC) != MAGIC || w(hdr::VERSION) != VERSION || w(hdr::TOTAL) != len {
        return None;
    }
    let l = Layout::new(Params { ring: w(hdr::RING), slots: w(hdr::SLOTS), arena: w(hdr::ARENA) })?;
    (l.total == len).then_some((l, w(hdr::KEY)))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn sections_do_not_overlap_and_are_aligned() {
        let l = Layout::new(Params { ring: 64, slots: 100, arena: 1 << 20 }).unwrap();
        let mut spans = vec![(0, PAGE)];
        for s in 0..SEATS {
            spans.push((l.msg_ctl[s], CTL_BYTES));
            spans.push((l.msg_slots[s], 64 * 32));
            spans.push((l.hint_ctl[s], CTL_BYTES));
            spans.push((l.hint_slots[s], l.hints * 8));
            spans.push((l.desc[s], 100 * 32));
            spans.push((l.arena[s], 1 << 20));
            assert_eq!(l.arena[s] % PAGE, 0);
            assert_eq!(l.desc[s] % 64, 0);
        }
        spans.sort();
        for w in spans.windows(2) {
            assert!(w[0].0 + w[0].1 <= w[1].0, "{w:?}");
        }
        assert_eq!(spans.last().map(|s| s.0 + s.1), Some(l.total));
        assert_eq!(l.hints, 128);
    }

    #[test]
    fn out_of_domain_params_have_no_layout() {
        let ok = Params { ring: 64, slots: 100, arena: PAGE };
        assert!(Layout::new(ok).is_some());
        for bad in [
            Params { ring: 63, ..ok },
            Params { ring: 1, ..ok },
            Params { ring: MAX_RING * 2, ..ok },
            Params { slots: 0, ..ok },
            Params { slots: MAX_SLOTS + 1, ..ok },
            Params { arena: 100, ..ok },
            Params { arena: MAX_ARENA + PAGE, ..ok },
        ] {
            assert!(Layout::new(bad).is_none(), "{bad:?}");
        }
    }
}
