//! The built-in async operations. Each is checked and its inputs are taken (as counted references,
//! so the submitter may release its ids at once) when it is submitted, and run later on a worker.

use std::mem::ManuallyDrop;
use std::time::{Duration, Instant};

use super::queue::CancelToken;
use super::registry::{self, Callback};
use super::{CallError, Payload};
use crate::buffer::BufferRef;
use crate::table::Table;

/// A built-in operation code. The values are part of the C ABI (FERRY_OP_*): never renumbered.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Returns the input buffer, zero-copy, under a new id (0 for no input), and `value` unchanged.
    Echo = 1,
    /// Returns the 64-bit FNV-1a hash of the input buffer's bytes as `value`, computed on the worker.
    Checksum = 2,
    /// Sleeps `arg` microseconds (at most 60 s), checking for cancellation every millisecond, then
    /// returns `value`. For tests and benchmarks of cancellation and load.
    Sleep = 3,
    /// Panics on the worker. For tests of panic recovery: the job completes with a PANIC error.
    Panic = 4,
    /// Invokes callback `arg` on the worker thread with the input buffer and `value`, and completes
    /// with its result: a callback run asynchronously on a Rust thread.
    Call = 5,
}

impl Op {
    /// The operation for a raw code, or `None` for an unknown one.
    pub fn from_u32(v: u32) -> Option<Op> {
        Some(match v {
            1 => Op::Echo,
            2 => Op::Checksum,
            3 => Op::Sleep,
            4 => Op::Panic,
            5 => Op::Call,
            _ => return None,
        })
    }
}

/// A request for a built-in operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The operation.
    pub op: Op,
    /// A buffer id, borrowed for the duration of the submit (0 for none).
    pub input: u64,
    /// The operation's argument (Sleep: microseconds; Call: the callback id).
    pub arg: u64,
    /// A value passed through (Echo, Sleep) or to the callback (Call).
    pub value: u64,
}

const MAX_SLEEP_US: u64 = 60_000_000;

/// A request whose inputs are held, ready to run on a worker.
pub(crate) enum Prepared {
    Echo(Option<BufferRef>, u64),
    Checksum(Option<BufferRef>),
    Sleep(Duration, u64),
    Panic,
    Call(Callback, Option<BufferRef>, u64),
}

impl Prepared {
    /// Checks `r` and takes its inputs. Errors: `Ferry(InvalidHandle)` for a bad input or callback
    /// id, `InvalidArgument` for a sleep over 60 s.
    pub(crate) fn new(r: Request) -> Result<Prepared, CallError> {
        let input = match r.input {
            0 => None,
            id => Some(Table::global().get(id)?),
        };
        Ok(match r.op {
            Op::Echo => Prepared::Echo(input, r.value),
            Op::Checksum => Prepared::Checksum(input),
            Op::Sleep if r.arg > MAX_SLEEP_US => return Err(CallError::InvalidArgument),
            Op::Sleep => Prepared::Sleep(Duration::from_micros(r.arg), r.value),
            Op::Panic => Prepared::Panic,
            Op::Call => Prepared::Call(registry::get(r.arg)?, input, r.value),
        })
    }

    pub(crate) fn run(self, cancel: &CancelToken) -> Result<Payload, CallError> {
        match self {
            Prepared::Echo(input, value) => {
                let buffer = match input {
                    Some(r) => Table::global().insert(r)?.id,
                    None => 0,
                };
                Ok(Payload { buffer, value })
            }
            Prepared::Checksum(input) => {
                let h = fnv1a64(input.as_ref().map_or(&[][..], |r| r.as_bytes()));
                Ok(Payload { buffer: 0, value: h })
            }
            Prepared::Sleep(d, value) => {
                let end = Instant::now() + d;
                loop {
                    if cancel.is_cancelled() {
                        return Err(CallError::Cancelled);
                    }
                    let now = Instant::now();
                    if now >= end {
                        return Ok(Payload { buffer: 0, value });
                    }
                    std::thread::sleep((end - now).min(Duration::from_millis(1)));
                }
            }
            Prepared::Panic => panic!("ferry: FERRY_OP_PANIC ran (a test of panic recovery)"),
            Prepared::Call(cb, input, value) => {
                // The callback gets an id of its own for the input, valid for the call.
                let id = match input {
                    Some(r) => Table::global().insert(r)?.id,
                    None => 0,
                };
                // Dropped after the call, on return and on unwind alike: the id goes, the hold too.
                let call = Lent { cb: ManuallyDrop::new(cb), id, once: Default::default() };
                super::frames::holding(&call, || {
                    crate::fault_point!("op.call.lent");
                    call.cb.call(Payload { buffer: id, value })
                })
            }
        }
    }
}

/// What a FERRY_OP_CALL job holds while its callback runs: the callback and the id lent to it.
/// Both are let go of once: when the call ends (or unwinds), or when it is abandoned.
struct Lent {
    cb: ManuallyDrop<Callback>,
    id: u64,
    once: super::frames::Once,
}

impl Lent {
    fn release_id(&self) {
        if self.id != 0 {
            let _ = Table::global().release(self.id);
        }
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if self.once.first() {
            self.release_id();
            // SAFETY: dropped once, here, and never used again.
            unsafe { ManuallyDrop::drop(&mut self.cb) };
        }
    }
}

impl super::frames::Abandon for Lent {
    fn abandon(&self, _detail: u64) {
        if self.once.first() {
            self.release_id();
            // SAFETY: `cb` is never dropped after this (`once` is spent), so the hold goes once.
            unsafe { self.cb.release_for_abandoned() };
        }
    }
}

/// The 64-bit FNV-1a hash of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_published_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn op_codes_round_trip() {
        for op in [Op::Echo, Op::Checksum, Op::Sleep, Op::Panic, Op::Call] {
            assert_eq!(Op::from_u32(op as u32), Some(op));
        }
        assert_eq!(Op::from_u32(0), None);
        assert_eq!(Op::from_u32(6), None);
    }
}
