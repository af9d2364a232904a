//! Shared-memory regions: ferry ids that stay valid in a peer process, message rings with
//! wake-ups, and leases that come back when a peer dies (Linux).
//!
//! # The model
//!
//! A region is one shared mapping with two *seats*: seat 0 for the process that created it and
//! seat 1 for one peer. Each seat owns an *arena* inside the mapping; a process allocates buffers
//! only in its own arena, and their ids ([`crate::slots::Kind::RegionBuffer`]) are
//! `generation:32 | kind:4 | seat:4 | slot:24`, the same number in both processes. A process
//! resolves an id against its region handle: its own buffers from its private allocator state,
//! the peer's from the lease it holds.
//!
//! Sending a message ([`Region::send`]) carries an id to the peer together with a *lease*: the
//! receiver holds it until it releases it once, and the owner does not reuse the memory while any
//! lease is out. A lease comes back through the owner's shared *returned* counter for the slot,
//! plus a hint ring so that the owner does not scan; a message can also carry a lease back to the
//! owner (an in-place response, [`SEND_MOVE`]). When the peer closes the region or dies, its end of
//! the *link* (a SOCK_SEQPACKET Unix socket between the two processes) closes; the survivor sees
//! the hang-up in its wait set, keeps the messages the peer had sent (and their holds), and
//! reclaims every lease the peer held. The seat can be offered to a new peer once the survivor has
//! released what it held of the old one.
//!
//! # What is trusted
//!
//! Nothing in shared memory. Each process keeps its own positions, allocator, slot generations,
//! references and leases in private memory and only mirrors them into the mapping for the peer.
//! Everything read from the mapping is read with atomic loads and checked: ring positions against
//! the capacity, descriptors against the generation in the id and the arena's bounds, returned
//! counts against the leases actually lent. A peer that scribbles over the region can make ferry
//! report `Corrupt` or `MSG_INVALID` (and disconnect it), never read or write outside the mapping.
//! The mapping is a memfd sealed against shrinking and growing, so a peer cannot truncate it under
//! the survivor (a truncated shared file makes every access fault). The payload bytes are shared
//! memory: two writers of one buffer race, as documented for in-process buffers.
//!
//! # Layout of the mapping (version 1)
//!
//! ```text
//! page 0      header: magic "FERRYRG1", version, total length, ring entries R, slots S,
//!             arena bytes A, random key; seat words (epoch << 32 | state, pid) for seats 0 and 1
//! per seat s  message ring *to* s: 512-byte control block (tail, head, consumer-waiting,
//!             producer-waiting, overflow; each on its own 64-byte line) + R entries of 32 bytes
//!             (id, value, corr, tag | flags << 32)
//!             hint ring *to* s (slots of s's arena whose leases came back): control + P words,
//!             P = next power of two of S
//!             descriptor table of s: S entries of 32 bytes (gen << 1 | live, offset, length,
//!             returned count), 64-byte aligned
//! arenas      A bytes for seat 0, then A bytes for seat 1, page-aligned
//! ```
//!
//! A process computes this layout from (R, S, A) once, when it maps the region, and never reads
//! the header again.
//!
//! # Wake-ups
//!
//! Each seat has a doorbell (an eventfd). A receiver that finds its ring empty arms it (see
//! [`ring`]) and waits on its handle's wait set ([`Region::wait_fd`], an epoll instance holding
//! the doorbell, the link and, for a named region's creator, the rendezvous listener), which Go
//! waits on in its netpoller: no OS thread is parked per receiver. A sender rings the doorbell only
//! when the receiver armed it, so a busy receiver costs no system call. [`Region::set_spin`] adds
//! bounded busy-polling before the arm.
//!
//! # Sharing
//!
//! - [`Region::share`] / [`Region::from_socket`]: the memfd, both doorbells and one end of a new
//!   link go over a Unix socket the caller already has (SCM_RIGHTS).
//! - [`Region::create`] with a name / [`Region::open`]: the name is a file in `/dev/shm` with mode
//!   0600 (by default) holding a random rendezvous token (an abstract Unix socket) and the
//!   creator's pid. Only a user allowed to read the file learns the token; the creator also checks
//!   the peer's uid (SO_PEERCRED) when the mode gives no access to others. The mapping itself is
//!   still a sealed memfd sent over the connection, which becomes the link.

mod arena;
mod core;
pub(crate) mod layout;
pub mod ring;
pub(crate) mod sys;
#[cfg(test)]
mod tests;

pub use self::core::{
    Config, Message, Region, RegionError, RegionStats, MAX_SPIN_NS, MSG_CORRUPT, MSG_ERROR, MSG_INVALID,
    MSG_PEER_GONE, MSG_PEER_JOINED, MSG_RETURN, SEND_ERROR, SEND_MOVE,
};
pub use layout::Params;

use std::sync::Arc;

use crate::slots::{Kind, Slots};

/// The process-local table of region handles (ids of kind [`Kind::Region`]).
static REGIONS: Slots<Arc<Region>> = Slots::new(Kind::Region, 4);

/// Gives `r` a process-local handle id; `TableFull` when the handle table has no free slot (`r`
/// is closed then).
pub fn insert(r: Region) -> Result<u64, crate::error::Error> {
    REGIONS.insert(Arc::new(r)).map_err(|(e, _)| e)
}

/// The region a handle id names.
pub fn get(id: u64) -> Result<Arc<Region>, RegionError> {
    REGIONS.with(id, Arc::clone).map_err(|_| RegionError::InvalidHandle)
}

/// Closes a handle: the region is unmapped once no call that uses it is running. The peer sees
/// the link close and reclaims its leases.
pub fn close(id: u64) -> Result<(), RegionError> {
    REGIONS.remove(id).map(drop).map_err(|_| RegionError::InvalidHandle)
}

/// Region handles open in this process.
pub fn open_count() -> u64 {
    REGIONS.live()
}
