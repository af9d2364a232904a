//! A single-producer single-consumer ring of fixed-width entries in shared memory, with the
//! wake-up handshake that lets either side sleep without losing a wake-up.
//!
//! The ring is a slice of control words and a slice of entry words, both `AtomicU64`s that live in
//! the region's mapping (or, in the loom model, in ordinary memory: the code is the same). Each
//! side keeps its own position privately ([`Producer`], [`Consumer`]) and only *publishes* it to
//! the shared control words; what it reads of the other side's position is checked (`0 <= tail -
//! head <= capacity`), so a peer that scribbles over the control words makes the ring report
//! [`RingError::Corrupt`], never index outside the entry slice. Entry words are read with atomic
//! loads: their values are the caller's to validate.
//!
//! # Wake-ups (no lost wake-up)
//!
//! A consumer about to sleep stores `consumer_waiting = 1`, issues a SeqCst fence and looks at
//! `tail` once more ([`Ring::arm_consumer`]); a producer publishes `tail`, issues a SeqCst fence and
//! swaps `consumer_waiting` to 0 ([`Ring::take_consumer_waiter`]): if it was 1, the producer rings
//! the consumer's doorbell. With a fence between each side's store and load, at least one of them
//! sees the other's store: either the consumer sees the new entry and does not sleep, or the
//! producer sees the flag and rings. A producer waiting for space does the same with `head` and
//! `producer_waiting`. The loom model (`tests/loom_model/tests/ring.rs`) checks this protocol in
//! every interleaving.

use crate::sync::{fence, AtomicU64, Ordering};

/// Control word: the producer's published position (entries pushed since the start).
pub(crate) const CTL_TAIL: usize = 0;
/// Control word: the consumer's published position (entries popped since the start).
pub(crate) const CTL_HEAD: usize = 8;
/// Control word: 1 while the consumer may be asleep waiting for entries.
pub(crate) const CTL_CONSUMER_WAITING: usize = 16;
/// Control word: 1 while the producer may be asleep waiting for space.
pub(crate) const CTL_PRODUCER_WAITING: usize = 24;
/// Control word: set by a producer that found the ring full and dropped an entry (hint rings).
pub(crate) const CTL_OVERFLOW: usize = 32;
/// Control words a ring needs (each one on a 64-byte line of its own).
pub(crate) const CTL_WORDS: usize = 40;

/// Why a ring operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingError {
    /// No room for another entry.
    Full,
    /// The other side's published position is impossible: the shared words were overwritten.
    Corrupt,
}

/// The producer's private position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Producer {
    /// Entries pushed since the start.
    pub tail: u64,
}

/// The consumer's private position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Consumer {
    /// Entries popped since the start.
    pub head: u64,
}

/// A view of one ring: its control words and its entries (`capacity * width` words).
#[derive(Clone, Copy)]
pub struct Ring<'a> {
    ctl: &'a [AtomicU64],
    slots: &'a [AtomicU64],
    width: usize,
    cap: u64,
}

impl<'a> Ring<'a> {
    /// A ring over `ctl` (at least [`CTL_WORDS`] words) and `slots`, whose length is a power-of-two
    /// number of entries times `width`.
    pub fn new(ctl: &'a [AtomicU64], slots: &'a [AtomicU64], width: usize) -> Ring<'a> {
        assert!(ctl.len() >= CTL_WORDS && width > 0 && slots.len() % width == 0);
        let cap = (slots.len() / width) as u64;
        assert!(cap.is_power_of_two());
        Ring { ctl, slots, width, cap }
    }

    /// Entries the ring holds at most.
    pub fn capacity(&self) -> u64 {
        self.cap
    }

    fn entry(&self, pos: u64) -> &'a [AtomicU64] {
        let i = (pos & (self.cap - 1)) as usize * self.width;
        &self.slots[i..i + self.width]
    }

    /// Appends `words` (exactly `width` of them) and publishes the new tail.
    pub fn push(&self, p: &mut Producer, words: &[u64]) -> Result<(), RingError> {
        debug_assert_eq!(words.len(), self.width);
        let head = self.ctl[CTL_HEAD].load(Ordering::Acquire);
        let used = p.tail.wrapping_sub(head);
        if used > self.cap {
            return Err(RingError::Corrupt);
        }
        if used == self.cap {
            return Err(RingError::Full);
        }
        for (w, v) in self.entry(p.tail).iter().zip(words) {
            w.store(*v, Ordering::Relaxed);
        }
        p.tail = p.tail.wrapping_add(1);
        self.ctl[CTL_TAIL].store(p.tail, Ordering::Release);
        Ok(())
    }

    /// Entries waiting for the consumer, checked against the capacity.
    pub fn pending(&self, c: &Consumer) -> Result<u64, RingError> {
        let tail = self.ctl[CTL_TAIL].load(Ordering::Acquire);
        let avail = tail.wrapping_sub(c.head);
        if avail > self.cap {
            return Err(RingError::Corrupt);
        }
        Ok(avail)
    }

    /// Copies the next entry into `out` (`width` words) and advances the private head; returns
    /// false when the ring is empty. The new head is published by [`Ring::publish_head`], once per
    /// batch.
    pub fn pop(&self, c: &mut Consumer, out: &mut [u64]) -> Result<bool, RingError> {
        if self.pending(c)? == 0 {
            return Ok(false);
        }
        for (o, w) in out.iter_mut().zip(self.entry(c.head)) {
            *o = w.load(Ordering::Relaxed);
        }
        c.head = c.head.wrapping_add(1);
        Ok(true)
    }

    /// Publishes the consumer's head, giving the popped entries' room back to the producer.
    pub fn publish_head(&self, c: &Consumer) {
        self.ctl[CTL_HEAD].store(c.head, Ordering::Release);
    }

    /// Consumer, before sleeping: announces the sleep and looks once more. Returns true when the
    /// ring is still empty (sleeping is safe: the next push will ring the doorbell), false when an
    /// entry arrived (the announcement is withdrawn).
    pub fn arm_consumer(&self, c: &Consumer) -> Result<bool, RingError> {
        self.ctl[CTL_CONSUMER_WAITING].store(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if self.pending(c)? == 0 {
            return Ok(true);
        }
        self.ctl[CTL_CONSUMER_WAITING].store(0, Ordering::Relaxed);
        Ok(false)
    }

    /// Consumer, awake: withdraws a sleep announcement.
    pub fn disarm_consumer(&self) {
        self.ctl[CTL_CONSUMER_WAITING].store(0, Ordering::Relaxed);
    }

    /// Producer, after publishing: true when the consumer announced a sleep, which this call
    /// takes back (the caller must ring the consumer's doorbell, exactly once).
    pub fn take_consumer_waiter(&self) -> bool {
        fence(Ordering::SeqCst);
        if self.ctl[CTL_CONSUMER_WAITING].load(Ordering::Relaxed) == 0 {
            return false;
        }
        self.ctl[CTL_CONSUMER_WAITING].swap(0, Ordering::Relaxed) != 0
    }

    /// Producer, before sleeping on a full ring: announces it and looks once more. Returns true
    /// when the ring is still full.
    pub fn arm_producer(&self, p: &Producer) -> Result<bool, RingError> {
        self.ctl[CTL_PRODUCER_WAITING].store(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let head = self.ctl[CTL_HEAD].load(Ordering::Acquire);
        let used = p.tail.wrapping_sub(head);
        if used > self.cap {
            return Err(RingError::Corrupt);
        }
        if used == self.cap {
            return Ok(true);
        }
        self.ctl[CTL_PRODUCER_WAITING].store(0, Ordering::Relaxed);
        Ok(false)
    }

    /// Consumer, after publishing its head: true when the producer announced a sleep for space,
    /// which this call takes back (the caller rings the producer's doorbell).
    pub fn take_producer_waiter(&self) -> bool {
        fence(Ordering::SeqCst);
        if self.ctl[CTL_PRODUCER_WAITING].load(Ordering::Relaxed) == 0 {
            return false;
        }
        self.ctl[CTL_PRODUCER_WAITING].swap(0, Ordering::Relaxed) != 0
    }

    /// Marks that an entry was dropped for want of room (hint rings).
    pub fn set_overflow(&self) {
        self.ctl[CTL_OVERFLOW].store(1, Ordering::Release);
    }

    /// Takes the overflow mark: true if an entry was dropped since the last call.
    pub fn take_overflow(&self) -> bool {
        self.ctl[CTL_OVERFLOW].load(Ordering::Relaxed) != 0
            && self.ctl[CTL_OVERFLOW].swap(0, Ordering::Acquire) != 0
    }

    /// The published positions `(head, tail)`, unchecked (for a new peer taking over a seat).
    pub fn published(&self) -> (u64, u64) {
        (self.ctl[CTL_HEAD].load(Ordering::Acquire), self.ctl[CTL_TAIL].load(Ordering::Acquire))
    }

    /// Sets both published positions to `pos` and clears the flags: an empty ring, for a seat
    /// about to be offered to a new peer (whatever the old one left there is ignored).
    pub fn reset(&self, pos: u64) {
        self.ctl[CTL_TAIL].store(pos, Ordering::Relaxed);
        self.ctl[CTL_HEAD].store(pos, Ordering::Relaxed);
        self.ctl[CTL_CONSUMER_WAITING].store(0, Ordering::Relaxed);
        self.ctl[CTL_PRODUCER_WAITING].store(0, Ordering::Relaxed);
        self.ctl[CTL_OVERFLOW].store(0, Ordering::Release);
    }

    /// Forgets every entry not consumed yet, by publishing `head = tail` (the consumer is gone).
    pub fn discard(&self, p: &Producer) {
        self.ctl[CTL_HEAD].store(p.tail, Ordering::Release);
        self.ctl[CTL_CONSUMER_WAITING].store(0, Ordering::Relaxed);
        self.ctl[CTL_PRODUCER_WAITING].store(0, Ordering::Relaxed);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn words(n: usize) -> Vec<AtomicU64> {
        (0..n).map(|_| AtomicU64::new(0)).collect()
    }

    #[test]
    fn fifo_full_and_empty() {
        let (ctl, slots) = (words(CTL_WORDS), words(4 * 2));
        let r = Ring::new(&ctl, &slots, 2);
        let (mut p, mut c) = (Producer::default(), Consumer::default());
        for i in 0..4 {
            r.push(&mut p, &[i, i * 10]).unwrap();
        }
        assert_eq!(r.push(&mut p, &[9, 9]), Err(RingError::Full));
        let mut out = [0; 2];
        assert!(r.pop(&mut c, &mut out).unwrap());
        assert_eq!(out, [0, 0]);
        assert_eq!(r.push(&mut p, &[9, 9]), Err(RingError::Full), "room comes back only when published");
        r.publish_head(&c);
        r.push(&mut p, &[4, 40]).unwrap();
        for i in 1..5 {
            assert!(r.pop(&mut c, &mut out).unwrap());
            assert_eq!(out, [i, i * 10]);
        }
        assert!(!r.pop(&mut c, &mut out).unwrap());
    }

    #[test]
    fn scribbled_positions_are_reported_not_followed() {
        let (ctl, slots) = (words(CTL_WORDS), words(8));
        let r = Ring::new(&ctl, &slots, 1);
        let (mut p, mut c) = (Producer::default(), Consumer::default());
        ctl[CTL_TAIL].store(1 << 40, Ordering::Relaxed);
        let mut out = [0; 1];
        assert_eq!(r.pop(&mut c, &mut out), Err(RingError::Corrupt));
        ctl[CTL_HEAD].store(100, Ordering::Relaxed);
        assert_eq!(r.push(&mut p, &[1]), Err(RingError::Corrupt));
        ctl[CTL_TAIL].store(5, Ordering::Relaxed);
        assert_eq!(r.pending(&c), Ok(5), "any tail within capacity is believed: entries are validated");
    }

    #[test]
    fn wake_flags_hand_over_once() {
        let (ctl, slots) = (words(CTL_WORDS), words(8));
        let r = Ring::new(&ctl, &slots, 1);
        let (mut p, c) = (Producer::default(), Consumer::default());
        assert!(r.arm_consumer(&c).unwrap());
        r.push(&mut p, &[1]).unwrap();
        assert!(r.take_consumer_waiter());
        assert!(!r.take_consumer_waiter(), "one ring per sleep");
        assert!(!r.arm_consumer(&c).unwrap(), "an entry is pending: no sleep");
        assert!(!r.take_consumer_waiter());
    }
}
