//! One process's handle on a region: its mapping, its doorbells and wait set, its own arena and
//! the leases it holds on the peer's buffers. See the module docs of [`crate::region`].

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::arena::{AllocError, Arena};
use super::layout::{read_header, seat, Layout, Params, Shm, SEATS};
use super::ring::{Consumer, Producer, RingError};
use super::sys;
use crate::slots::{self, Key, Kind, FIRST_GEN};
use crate::sync::{AtomicU64, Mutex, Ordering};

/// Why a region operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegionError {
    /// The id is not one this process holds in this region (never issued, stale, released,
    /// forged, of another kind or of another region).
    InvalidHandle,
    /// An argument is outside its documented domain.
    InvalidArgument,
    /// The region's arena has no room (or no free slot) for the buffer.
    Full,
    /// The message ring towards the peer is full; try again once the peer has received.
    QueueFull,
    /// There is no peer: none attached yet, or it closed the region or died.
    PeerGone,
    /// Shared metadata failed a check: the peer wrote something impossible. The peer is
    /// disconnected; this process's own state is intact.
    Corrupt,
    /// The region already has a peer (or the seat is still in use by a dead peer's leases).
    Busy,
    /// No region has that name.
    NotFound,
    /// The name exists but this user may not open it.
    PermissionDenied,
    /// A system call failed with this errno.
    System(i32),
}

impl RegionError {
    /// A short, stable, human-readable description: the message of the status the C layer maps
    /// the error to (`status_table!` in `src/error.rs`).
    pub fn message(self) -> &'static str {
        use crate::error::msg;
        match self {
            RegionError::InvalidHandle => msg::InvalidHandle,
            RegionError::InvalidArgument => msg::InvalidArgument,
            RegionError::Full => msg::RegionFull,
            RegionError::QueueFull => msg::QueueFull,
            RegionError::PeerGone => msg::PeerGone,
            RegionError::Corrupt => msg::Corrupt,
            RegionError::Busy => msg::Busy,
            RegionError::NotFound => msg::NotFound,
            RegionError::PermissionDenied => msg::PermissionDenied,
            RegionError::System(_) => msg::SystemError,
        }
    }
}

impl std::fmt::Display for RegionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegionError::System(errno) => write!(f, "{} (errno {errno})", self.message()),
            _ => f.write_str(self.message()),
        }
    }
}

impl std::error::Error for RegionError {}

/// A failed system call is [`RegionError::System`], whatever its errno: an EINVAL or EPERM from
/// `mmap` or `sendmsg` says nothing about the caller's arguments or rights. The calls on a region's
/// name, whose errno does say that, map it with [`name_error`].
impl From<io::Error> for RegionError {
    fn from(e: io::Error) -> RegionError {
        RegionError::System(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

/// The error of a call on a region's name file (`shm_open` under `/dev/shm`): a name that is not
/// allowed is `InvalidArgument`, a name this user may not open or create is `PermissionDenied`,
/// and, with `missing_is_not_found`, a name that does not exist is `NotFound`.
fn name_error(e: io::Error, missing_is_not_found: bool) -> RegionError {
    match e.raw_os_error() {
        Some(libc::ENOENT) if missing_is_not_found => RegionError::NotFound,
        Some(libc::EACCES) | Some(libc::EPERM) => RegionError::PermissionDenied,
        Some(libc::EINVAL) => RegionError::InvalidArgument,
        _ => e.into(),
    }
}

/// A message entry's flag, set by the sender: the message gives back the lease the sender held on
/// one of the receiver's own buffers (sent with [`SEND_MOVE`] by a lease holder).
pub const MSG_RETURN: u32 = 1;
/// Set on a received message whose id failed validation (stale, forged, out of bounds): the id,
/// pointer and length are zeroed; tag, value and corr are as sent.
pub const MSG_INVALID: u32 = 2;
/// An event, not a message: a peer took the region's other seat.
pub const MSG_PEER_JOINED: u32 = 4;
/// An event, not a message: the peer closed the region or died; every lease it held was reclaimed.
pub const MSG_PEER_GONE: u32 = 8;
/// Set with [`MSG_PEER_GONE`] when the peer was disconnected because it corrupted shared metadata.
pub const MSG_CORRUPT: u32 = 16;

/// Set on a received message that its sender marked as an error reply ([`SEND_ERROR`]).
pub const MSG_ERROR: u32 = 32;

/// Send flag: give up the caller's id with the message (its own reference, or its lease).
pub const SEND_MOVE: u32 = 1;
/// Send flag: mark the message as an error reply (the receiver sees [`MSG_ERROR`]).
pub const SEND_ERROR: u32 = 2;

/// Longest busy-poll a region accepts: 10 ms.
pub const MAX_SPIN_NS: u64 = 10_000_000;

/// How long opening a region waits for the handshake.
const HANDSHAKE_TIMEOUT_MS: u64 = 5_000;

const TOKEN_BELL: u64 = 1;
const TOKEN_LINK: u64 = 2;
const TOKEN_LISTEN: u64 = 3;

const HS_MAGIC: u64 = u64::from_le_bytes(*b"FERRYHS1");
const HS_REFUSE: u64 = u64::from_le_bytes(*b"FERRYNO1");
const HS_WORDS: usize = 6;
const REFUSE_BUSY: u64 = 1;
const REFUSE_DENIED: u64 = 2;
const NAME_PREFIX: &str = "ferry-region-rendezvous-v1 ";

/// A received message (or event): the buffer it carries, if any, already resolved in this
/// process's mapping, and the tag, value and correlation number the sender chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Message {
    /// The buffer id (0 for none); the receiver now holds it and releases it once.
    pub id: u64,
    /// The buffer's first byte in this process's mapping (null when `len` is 0).
    pub ptr: usize,
    /// The buffer's length.
    pub len: u64,
    /// The sender's value.
    pub value: u64,
    /// The sender's correlation number (request/response matching).
    pub corr: u64,
    /// The sender's tag.
    pub tag: u32,
    /// `MSG_*` flags.
    pub flags: u32,
}

/// How a region is made; zeroes mean the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Message-ring entries per direction (power of two, 2..=65536; default 1024).
    pub ring: u64,
    /// Buffers each process can have allocated at once (1..=2^20; default 4096).
    pub slots: u64,
    /// Bytes of each process's arena (rounded up to 4 KiB; default 64 MiB). Pages are only used
    /// once written.
    pub arena: u64,
    /// Permission bits of a named region's name (default 0600).
    pub mode: u32,
}

impl Default for Config {
    fn default() -> Config {
        Config { ring: 1024, slots: 4096, arena: 64 << 20, mode: 0o600 }
    }
}

impl Config {
    fn params(&self) -> Result<Params, RegionError> {
        let d = Config::default();
        let pick = |v: u64, d: u64| if v == 0 { d } else { v };
        let arena = pick(self.arena, d.arena).checked_next_multiple_of(super::layout::PAGE);
        Ok(Params {
            ring: pick(self.ring, d.ring),
            slots: pick(self.slots, d.slots),
            arena: arena.ok_or(RegionError::InvalidArgument)?,
        })
    }
}

/// Counters of one region handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RegionStats {
    /// This process's seat (0 for the creator).
    pub seat: u32,
    /// The peer: 0 none yet, 1 offered (not attached yet), 2 attached, 3 gone.
    pub peer: u32,
    /// Buffers of this process's arena that are live (held locally or lent).
    pub own_buffers: u64,
    /// Ids this process holds over its own buffers.
    pub own_refs: u64,
    /// Leases the peer holds on this process's buffers.
    pub lent: u64,
    /// Leases this process holds on the peer's buffers.
    pub held: u64,
    /// Bytes of this process's arena in use.
    pub used_bytes: u64,
    /// Bytes of each process's arena.
    pub arena_bytes: u64,
    /// Peers that went away (closed or died) and whose leases were reclaimed.
    pub peers_gone: u64,
    /// Checks of shared metadata that failed.
    pub corrupt: u64,
    /// Received messages whose id failed validation.
    pub invalid_ids: u64,
}

enum Peer {
    None,
    Offered(OwnedFd),
    Active(OwnedFd),
    Gone,
}

impl Peer {
    fn link(&self) -> Option<RawFd> {
        match self {
            Peer::Offered(l) | Peer::Active(l) => Some(l.as_raw_fd()),
            _ => None,
        }
    }
}

struct Lease {
    ptr: usize,
    len: u64,
    count: u32,
}

struct State {
    arena: Arena,
    leases: HashMap<u64, Lease>,
    out: Producer,
    inp: Consumer,
    hint_out: Producer,
    hint_in: Consumer,
    peer: Peer,
    epoch: u32,
    armed: bool,
    pending: VecDeque<Message>,
    stats: RegionStats,
}

/// One process's handle on a shared-memory region.
pub struct Region {
    base: *mut u8,
    map_len: usize,
    pub(crate) l: Layout,
    key: u64,
    me: usize,
    memfd: OwnedFd,
    bells: [OwnedFd; SEATS],
    epoll: OwnedFd,
    listener: Option<OwnedFd>,
    name: Option<String>,
    restricted: bool,
    spin_ns: AtomicU64,
    /// The consumer's head as of the last receive, for spinning without the lock.
    spin_head: AtomicU64,
    st: Mutex<State>,
}

// SAFETY: `base` points at a shared mapping owned by the Region for its whole life; all access to
// it goes through atomics (metadata) or is handed out as addresses (payload), and the private state
// is behind a mutex.
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

fn words_of(base: *mut u8, len: usize) -> &'static [AtomicU64] {
    // SAFETY: `base` is a page-aligned shared mapping of `len` bytes that the Region keeps mapped
    // for as long as any reference derived from it is used (the Region owns both, and these slices
    // never outlive `&self`); AtomicU64 has u64's size and the mapping is 8-aligned. Another process
    // may write the words at any time, which is why every access is atomic.
    unsafe { std::slice::from_raw_parts(base.cast::<AtomicU64>(), len / 8) }
}

fn new_key() -> Result<u64, RegionError> {
    let mut b = [0u8; 8];
    sys::random(&mut b)?;
    Ok(u64::from_le_bytes(b) | 1)
}

impl Region {
    pub(crate) fn shm(&self) -> Shm<'_> {
        Shm { words: words_of(self.base, self.map_len), l: self.l }
    }

    fn other(&self) -> usize {
        1 - self.me
    }

    /// Creates a region in a new sealed memfd. With `name`, also creates the name file
    /// `/dev/shm/<name>` with `cfg.mode` (0600 by default), through which a process of a user
    /// allowed by the mode can [`Region::open`] it.
    pub fn create(cfg: &Config, name: Option<&str>) -> Result<Region, RegionError> {
        let l = Layout::new(cfg.params()?).ok_or(RegionError::InvalidArgument)?;
        if cfg.mode & !0o777 != 0 || cfg.mode & 0o600 != 0o600 {
            return Err(RegionError::InvalidArgument);
        }
        let memfd = sys::memfd_sealed(l.total)?;
        let map_len = l.total as usize;
        let base = sys::map_shared(&memfd, map_len)?;
        let guard = MapGuard(base, map_len);
        let key = new_key()?;
        let shm = Shm { words: words_of(base, map_len), l };
        shm.init_header(key);
        shm.seat(0)[1].store(u64::from(sys::pid()), Ordering::Relaxed);
        shm.seat(0)[0].store(1 << 32 | seat::ACTIVE, Ordering::Release);
        let bells = [sys::eventfd()?, sys::eventfd()?];
        let epoll = sys::epoll()?;
        sys::epoll_add(&epoll, bells[0].as_raw_fd(), TOKEN_BELL)?;
        let (listener, name) = match name {
            Some(n) => {
                let lis = publish_name(n, cfg.mode)?;
                sys::epoll_add(&epoll, lis.as_raw_fd(), TOKEN_LISTEN).inspect_err(|_| sys::name_unlink(n))?;
                (Some(lis), Some(n.to_owned()))
            }
            None => (None, None),
        };
        std::mem::forget(guard);
        let arena = Arena::new(l.params.arena, std::iter::repeat(FIRST_GEN).take(l.params.slots as usize));
        Ok(Region {
            base,
            map_len,
            l,
            key,
            me: 0,
            memfd,
            bells,
            epoll,
            listener,
            name,
            restricted: cfg.mode & 0o077 == 0,
            spin_ns: AtomicU64::new(0),
            spin_head: AtomicU64::new(0),
            st: Mutex::new(State::new(arena, 0)),
        })
    }

    /// Opens the region published under `name` by [`Region::create`]: reads the name file (which
    /// enforces its mode), connects to the creator and attaches as its peer.
    pub fn open(name: &str) -> Result<Region, RegionError> {
        let mut buf = [0u8; 256];
        let n = sys::name_read(name, &mut buf).map_err(|e| name_error(e, true))?;
        let (token, _) = parse_name(&buf[..n]).ok_or(RegionError::NotFound)?;
        let conn = sys::connect_abstract(token.as_bytes()).map_err(|e| match e.raw_os_error() {
            // The name outlived its creator.
            Some(libc::ECONNREFUSED) | Some(libc::ENOENT) => RegionError::PeerGone,
            _ => e.into(),
        })?;
        sys::set_recv_timeout(conn.as_raw_fd(), HANDSHAKE_TIMEOUT_MS)?;
        let mut hs = [0u8; HS_WORDS * 8];
        let (got, fds) = sys::recv_fds(conn.as_raw_fd(), &mut hs)?;
        Region::attach(&hs[..got], fds, Some(conn))
    }

    /// Receives a region that a peer shared over the Unix socket `sock` with [`Region::share`],
    /// waiting up to `timeout_ms` (-1: forever) for it.
    pub fn from_socket(sock: RawFd, timeout_ms: i32) -> Result<Region, RegionError> {
        if sock < 0 || timeout_ms < -1 {
            return Err(RegionError::InvalidArgument);
        }
        if !sys::poll_in(sock, timeout_ms)? {
            return Err(RegionError::PeerGone);
        }
        let mut hs = [0u8; HS_WORDS * 8];
        let (got, fds) = sys::recv_fds(sock, &mut hs)?;
        Region::attach(&hs[..got], fds, None)
    }

    /// Takes the seat a handshake offers. `link` is the connection the handshake came on (named
    /// regions); otherwise the link is the fourth descriptor of the handshake.
    fn attach(hs: &[u8], mut fds: Vec<OwnedFd>, link: Option<OwnedFd>) -> Result<Region, RegionError> {
        if hs.is_empty() {
            return Err(RegionError::PeerGone);
        }
        if hs.len() != HS_WORDS * 8 {
            return Err(RegionError::Corrupt);
        }
        let w = |i: usize| u64::from_le_bytes(hs[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        // Only a creator of a named region refuses; on a shared socket a refusal is no handshake.
        if w(0) == HS_REFUSE && link.is_some() {
            return Err(if w(1) == REFUSE_DENIED {
                RegionError::PermissionDenied
            } else {
                RegionError::Busy
            });
        }
        let (me, epoch, total, key) = (w(2), w(3), w(4), w(5));
        if w(0) != HS_MAGIC
            || w(1) != super::layout::VERSION
            || me >= SEATS as u64
            || epoch > u64::from(u32::MAX)
        {
            return Err(RegionError::Corrupt);
        }
        let want = if link.is_some() { 3 } else { 4 };
        if fds.len() != want {
            return Err(RegionError::Corrupt);
        }
        let link = match link {
            Some(l) => l,
            None => fds.pop().expect("four descriptors"),
        };
        let bell1 = fds.pop().expect("three descriptors");
        let bell0 = fds.pop().expect("three descriptors");
        let memfd = fds.pop().expect("three descriptors");
        // An unsealed file could be truncated under us, and every access would then fault.
        let (sealed, size) = sys::sealed_size(&memfd)?;
        if !sealed || size != total || usize::try_from(size).is_err() {
            return Err(RegionError::Corrupt);
        }
        let map_len = size as usize;
        let base = sys::map_shared(&memfd, map_len)?;
        let guard = MapGuard(base, map_len);
        let words = words_of(base, map_len);
        let (l, hkey) = read_header(words, size).ok_or(RegionError::Corrupt)?;
        if hkey != key {
            return Err(RegionError::Corrupt);
        }
        let me = me as usize;
        let shm = Shm { words, l };
        let offered = epoch << 32 | seat::OFFERED;
        shm.seat(me)[0]
            .compare_exchange(offered, epoch << 32 | seat::ACTIVE, Ordering::AcqRel, Ordering::Acquire)
            .map_err(|_| RegionError::Busy)?;
        shm.seat(me)[1].store(u64::from(sys::pid()), Ordering::Relaxed);
        // Take over the positions the previous holder of the seat (if any) left.
        let ring_in = shm.msg_ring(me);
        let (head, _) = ring_in.published();
        let inp = Consumer { head };
        ring_in.pending(&inp).map_err(|_| RegionError::Corrupt)?;
        ring_in.disarm_consumer();
        let out = Producer { tail: shm.msg_ring(1 - me).published().1 };
        let hint_in = Consumer { head: shm.hint_ring(me).published().1 };
        shm.hint_ring(me).publish_head(&hint_in);
        let hint_out = Producer { tail: shm.hint_ring(1 - me).published().1 };
        // Generations carry on from what the seat's table shows, so no old id answers again.
        let gens: Vec<u32> = (0..l.params.slots as usize)
            .map(|i| {
                let g = (shm.desc(me, i)[0].load(Ordering::Acquire) >> 1) as u32;
                if g < FIRST_GEN {
                    FIRST_GEN
                } else {
                    slots::next_gen(g).unwrap_or(u32::MAX)
                }
            })
            .collect();
        for (i, g) in gens.iter().enumerate() {
            shm.desc(me, i)[0].store(u64::from(*g) << 1, Ordering::Release);
        }
        let arena = Arena::new(l.params.arena, gens.into_iter());
        let epoll = sys::epoll()?;
        let bells = [bell0, bell1];
        sys::epoll_add(&epoll, bells[me].as_raw_fd(), TOKEN_BELL)?;
        sys::epoll_add(&epoll, link.as_raw_fd(), TOKEN_LINK)?;
        std::mem::forget(guard);
        let mut st = State::new(arena, me);
        st.out = out;
        st.inp = inp;
        st.hint_in = hint_in;
        st.hint_out = hint_out;
        st.peer = Peer::Active(link);
        st.stats.peer = 2;
        let head0 = st.inp.head;
        let r = Region {
            base,
            map_len,
            l,
            key,
            me,
            memfd,
            bells,
            epoll,
            listener: None,
            name: None,
            restricted: true,
            spin_ns: AtomicU64::new(0),
            spin_head: AtomicU64::new(head0),
            st: Mutex::new(st),
        };
        sys::eventfd_ring(r.bells[r.other()].as_raw_fd());
        Ok(r)
    }

    /// Offers the peer seat over a new link; returns the handshake bytes to send.
    fn offer(&self, st: &mut State, link: OwnedFd) -> Result<[u8; HS_WORDS * 8], RegionError> {
        if !self.seat_free(st) {
            return Err(RegionError::Busy);
        }
        let epoch = st.epoch.checked_add(1).ok_or(RegionError::Busy)?;
        sys::epoll_add(&self.epoll, link.as_raw_fd(), TOKEN_LINK)?;
        st.epoch = epoch;
        let peer = self.other();
        let shm = self.shm();
        shm.msg_ring(self.me).reset(st.inp.head);
        shm.hint_ring(self.me).reset(st.hint_in.head);
        shm.msg_ring(peer).reset(st.out.tail);
        shm.hint_ring(peer).reset(st.hint_out.tail);
        shm.seat(peer)[0].store(u64::from(epoch) << 32 | seat::OFFERED, Ordering::Release);
        st.peer = Peer::Offered(link);
        st.stats.peer = 1;
        let words = [HS_MAGIC, super::layout::VERSION, peer as u64, u64::from(epoch), self.l.total, self.key];
        let mut hs = [0u8; HS_WORDS * 8];
        for (i, v) in words.iter().enumerate() {
            hs[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        Ok(hs)
    }

    /// Whether the peer seat can be offered: nobody holds it, and nothing of a previous peer is
    /// left (its leases released, its messages delivered).
    fn seat_free(&self, st: &State) -> bool {
        match st.peer {
            Peer::None => true,
            // What the old peer sent was drained into `pending` when it went.
            Peer::Gone => st.leases.is_empty() && st.pending.is_empty(),
            _ => false,
        }
    }

    /// Shares the region with the process at the other end of the Unix socket `sock`, which
    /// receives it with [`Region::from_socket`]: sends the mapping, the doorbells and one end of a
    /// new link (SCM_RIGHTS).
    pub fn share(&self, sock: RawFd) -> Result<(), RegionError> {
        if sock < 0 {
            return Err(RegionError::InvalidArgument);
        }
        let mut st = self.st.lock();
        let (mine, theirs) = sys::seqpacket_pair()?;
        let link_fd = mine.as_raw_fd();
        let hs = self.offer(&mut st, mine)?;
        let fds = [
            self.memfd.as_raw_fd(),
            self.bells[0].as_raw_fd(),
            self.bells[1].as_raw_fd(),
            theirs.as_raw_fd(),
        ];
        if let Err(e) = sys::send_fds(sock, &hs, &fds) {
            sys::epoll_del(&self.epoll, link_fd);
            st.peer = Peer::None;
            st.stats.peer = 0;
            self.shm().seat(self.other())[0].store(u64::from(st.epoch) << 32 | seat::FREE, Ordering::Release);
            return Err(e.into());
        }
        Ok(())
    }

    /// The descriptor to wait on for messages and peer events: an epoll set, readable when a
    /// receive would find something (after a receive that returned nothing).
    pub fn wait_fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }

    /// Sets the busy-poll budget: a receive that finds nothing spins up to `ns` nanoseconds
    /// (at most [`MAX_SPIN_NS`]) before it arms the doorbell.
    pub fn set_spin(&self, ns: u64) -> Result<(), RegionError> {
        if ns > MAX_SPIN_NS {
            return Err(RegionError::InvalidArgument);
        }
        self.spin_ns.store(ns, Ordering::Relaxed);
        Ok(())
    }

    fn id_of(&self, seat: usize, slot: usize, gen: u32) -> u64 {
        slots::encode(Kind::RegionBuffer, Key { gen, shard: seat, slot })
    }

    fn key_of(&self, id: u64) -> Option<Key> {
        slots::decode(id, Kind::RegionBuffer)
            .filter(|k| k.shard < SEATS && (k.slot as u64) < self.l.params.slots)
    }

    fn ptr_at(&self, seat: usize, off: u64, len: u64) -> usize {
        if len == 0 {
            0
        } else {
            self.base as usize + (self.l.arena[seat] + off) as usize
        }
    }

    /// Mirrors slot `slot` of this process's arena into the shared descriptor table.
    fn publish(&self, st: &State, slot: usize) {
        let s = &st.arena.slots[slot];
        let d = self.shm().desc(self.me, slot);
        d[1].store(s.off, Ordering::Relaxed);
        d[2].store(s.len, Ordering::Relaxed);
        d[0].store(u64::from(s.gen) << 1 | u64::from(s.live), Ordering::Release);
    }

    /// Allocates `len` zeroed-or-reused bytes in this process's arena; returns (id, ptr, len).
    /// The caller holds the id and releases it once. The bytes are not cleared on reuse.
    pub fn alloc(&self, len: u64) -> Result<(u64, usize, u64), RegionError> {
        if len > self.l.params.arena {
            return Err(RegionError::Full);
        }
        let mut st = self.st.lock();
        self.drain_hints(&mut st);
        let slot = st.arena.alloc(len).map_err(|e| match e {
            AllocError::NoSpace | AllocError::NoSlot => RegionError::Full,
        })?;
        st.arena.slots[slot].ret_base = self.shm().desc(self.me, slot)[3].load(Ordering::Acquire);
        self.publish(&st, slot);
        let s = &st.arena.slots[slot];
        Ok((self.id_of(self.me, slot, s.gen), self.ptr_at(self.me, s.off, s.len), s.len))
    }

    /// The address and length of a buffer this process holds (its own, or leased from the peer).
    pub fn view(&self, id: u64) -> Result<(usize, u64), RegionError> {
        let k = self.key_of(id).ok_or(RegionError::InvalidHandle)?;
        let mut st = self.st.lock();
        if k.shard == self.me {
            let s = st.arena.get(k.slot, k.gen).filter(|s| s.refs > 0).ok_or(RegionError::InvalidHandle)?;
            Ok((self.ptr_at(self.me, s.off, s.len), s.len))
        } else {
            let l = st.leases.get(&id).ok_or(RegionError::InvalidHandle)?;
            Ok((l.ptr, l.len))
        }
    }

    /// Releases one hold on `id`: a reference to this process's own buffer, or a lease on the
    /// peer's (which goes back to the peer through the shared returned count).
    pub fn release(&self, id: u64) -> Result<(), RegionError> {
        let k = self.key_of(id).ok_or(RegionError::InvalidHandle)?;
        let mut st = self.st.lock();
        if k.shard == self.me {
            let s = st.arena.get(k.slot, k.gen).filter(|s| s.refs > 0).ok_or(RegionError::InvalidHandle)?;
            s.refs -= 1;
            if st.arena.free_if_unused(k.slot) {
                self.publish(&st, k.slot);
            }
            Ok(())
        } else {
            let l = st.leases.get_mut(&id).ok_or(RegionError::InvalidHandle)?;
            l.count -= 1;
            if l.count == 0 {
                st.leases.remove(&id);
            }
            self.return_lease(&mut st, k.slot);
            Ok(())
        }
    }

    /// Tells the peer that one lease on slot `slot` of its arena is over.
    fn return_lease(&self, st: &mut State, slot: usize) {
        let peer = self.other();
        self.shm().desc(peer, slot)[3].fetch_add(1, Ordering::Release);
        if matches!(st.peer, Peer::Gone | Peer::None) {
            return;
        }
        let ring = self.shm().hint_ring(peer);
        match ring.push(&mut st.hint_out, &[slot as u64]) {
            Ok(()) => {}
            Err(RingError::Full) => ring.set_overflow(),
            Err(RingError::Corrupt) => self.disconnect(st, true),
        }
    }

    /// Takes the peer's returned leases into account, freeing buffers nobody holds any more.
    fn drain_hints(&self, st: &mut State) {
        if matches!(st.peer, Peer::Gone | Peer::None) {
            return;
        }
        let ring = self.shm().hint_ring(self.me);
        let mut word = [0u64];
        let mut any = false;
        loop {
            match ring.pop(&mut st.hint_in, &mut word) {
                Ok(true) => {
                    any = true;
                    if word[0] < self.l.params.slots {
                        self.sync_returns(st, word[0] as usize);
                    }
                }
                Ok(false) => break,
                Err(_) => {
                    self.disconnect(st, true);
                    return;
                }
            }
        }
        if any {
            ring.publish_head(&st.hint_in);
        }
        if ring.take_overflow() {
            let lent: Vec<usize> = st.arena.lent_slots().collect();
            for slot in lent {
                self.sync_returns(st, slot);
            }
        }
    }

    fn sync_returns(&self, st: &mut State, slot: usize) {
        let returned = self.shm().desc(self.me, slot)[3].load(Ordering::Acquire);
        let s = &mut st.arena.slots[slot];
        if !s.live || s.lent == 0 {
            return;
        }
        let d = returned.wrapping_sub(s.ret_base).min(u64::from(s.lent));
        s.lent -= d as u32;
        s.ret_base = s.ret_base.wrapping_add(d);
        if st.arena.free_if_unused(slot) {
            self.publish(st, slot);
        }
    }

    /// Sends a message to the peer: `id` (0 for none) travels with a lease (or, for the peer's own
    /// buffer, a reference) that the receiver must release; `SEND_MOVE` gives up the caller's own
    /// hold at the same time.
    pub fn send(&self, id: u64, tag: u32, value: u64, corr: u64, flags: u32) -> Result<(), RegionError> {
        if flags & !(SEND_MOVE | SEND_ERROR) != 0 {
            return Err(RegionError::InvalidArgument);
        }
        let mv = flags & SEND_MOVE != 0;
        let mut st = self.st.lock();
        if matches!(st.peer, Peer::None | Peer::Gone) {
            return Err(RegionError::PeerGone);
        }
        let mut eflags = if flags & SEND_ERROR != 0 { MSG_ERROR } else { 0 };
        let key = if id == 0 { None } else { Some(self.key_of(id).ok_or(RegionError::InvalidHandle)?) };
        match key {
            None => {}
            Some(k) if k.shard == self.me => {
                let s =
                    st.arena.get(k.slot, k.gen).filter(|s| s.refs > 0).ok_or(RegionError::InvalidHandle)?;
                s.lent = s.lent.checked_add(1).ok_or(RegionError::InvalidArgument)?;
            }
            Some(_) => {
                st.leases.get(&id).ok_or(RegionError::InvalidHandle)?;
                if mv {
                    eflags |= MSG_RETURN;
                }
            }
        }
        let ring = self.shm().msg_ring(self.other());
        let entry = [id, value, corr, u64::from(tag) | u64::from(eflags) << 32];
        if let Err(e) = ring.push(&mut st.out, &entry) {
            if let Some(k) = key.filter(|k| k.shard == self.me) {
                if let Some(s) = st.arena.get(k.slot, k.gen) {
                    s.lent -= 1;
                }
            }
            return Err(match e {
                RingError::Corrupt => {
                    self.disconnect(&mut st, true);
                    RegionError::Corrupt
                }
                RingError::Full => {
                    if st.peer.link().is_some_and(sys::hung_up) {
                        self.peer_gone(&mut st, false);
                        RegionError::PeerGone
                    } else {
                        RegionError::QueueFull
                    }
                }
            });
        }
        if let (true, Some(k)) = (mv, key) {
            if k.shard == self.me {
                if let Some(s) = st.arena.get(k.slot, k.gen) {
                    s.refs -= 1;
                }
            } else if let Some(l) = st.leases.get_mut(&id) {
                l.count -= 1;
                if l.count == 0 {
                    st.leases.remove(&id);
                }
            }
        }
        let wake = ring.take_consumer_waiter();
        drop(st);
        if wake {
            sys::eventfd_ring(self.bells[self.other()].as_raw_fd());
        }
        Ok(())
    }

    /// Announces a wait for room in the ring towards the peer: true when the ring is still full
    /// (the caller may wait on [`Region::wait_fd`]: the peer rings when it makes room).
    pub fn arm_send(&self) -> Result<bool, RegionError> {
        let st = self.st.lock();
        let ring = self.shm().msg_ring(self.other());
        ring.arm_producer(&st.out).map_err(|_| RegionError::Corrupt)
    }

    /// Turns one ring entry into a message, taking the hold it carries.
    fn accept_entry(&self, st: &mut State, e: [u64; 4]) -> Message {
        let mut m = Message { id: e[0], value: e[1], corr: e[2], tag: e[3] as u32, flags: 0, ptr: 0, len: 0 };
        // Events are never sent: a sender cannot fake one.
        let sent = (e[3] >> 32) as u32;
        m.flags = sent & MSG_ERROR;
        if m.id == 0 {
            return m;
        }
        let ok = match self.key_of(m.id) {
            Some(k) if k.shard == self.me => match st.arena.get(k.slot, k.gen) {
                Some(s) => {
                    s.refs = s.refs.saturating_add(1);
                    if sent & MSG_RETURN != 0 {
                        s.lent = s.lent.saturating_sub(1);
                    }
                    m.flags |= sent & MSG_RETURN;
                    let (off, len) = (s.off, s.len);
                    m.ptr = self.ptr_at(self.me, off, len);
                    m.len = len;
                    true
                }
                None => false,
            },
            Some(k) => match self.check_desc(k) {
                Some((off, len)) => {
                    let ptr = self.ptr_at(k.shard, off, len);
                    let l = st.leases.entry(m.id).or_insert(Lease { ptr, len, count: 0 });
                    if l.ptr == ptr && l.len == len && l.count < u32::MAX {
                        l.count += 1;
                        m.ptr = ptr;
                        m.len = len;
                        true
                    } else {
                        false
                    }
                }
                None => false,
            },
            None => false,
        };
        if !ok {
            st.stats.invalid_ids += 1;
            m.id = 0;
            m.ptr = 0;
            m.len = 0;
            m.flags |= MSG_INVALID;
        }
        m
    }

    /// The peer's descriptor for `k`, if it shows that generation live and in bounds.
    fn check_desc(&self, k: Key) -> Option<(u64, u64)> {
        let d = self.shm().desc(k.shard, k.slot);
        let g = d[0].load(Ordering::Acquire);
        if g != u64::from(k.gen) << 1 | 1 {
            return None;
        }
        let (off, len) = (d[1].load(Ordering::Relaxed), d[2].load(Ordering::Relaxed));
        let end = off.checked_add(len)?;
        (end <= self.l.params.arena).then_some((off, len))
    }

    /// The peer closed the region or died (or broke the protocol): reclaim every lease it held,
    /// keep what it sent, and free the seat once nothing of it is left.
    fn peer_gone(&self, st: &mut State, corrupt: bool) {
        let link = match std::mem::replace(&mut st.peer, Peer::Gone) {
            Peer::Active(l) | Peer::Offered(l) => l,
            other => {
                st.peer = other;
                return;
            }
        };
        sys::epoll_del(&self.epoll, link.as_raw_fd());
        drop(link);
        st.stats.peer = 3;
        st.stats.peers_gone += 1;
        // Messages it sent before it went are kept (and their holds taken) before anything is
        // reclaimed: a buffer it gave back must not be freed under them.
        let ring = self.shm().msg_ring(self.me);
        let mut e = [0u64; 4];
        while let Ok(true) = ring.pop(&mut st.inp, &mut e) {
            let m = self.accept_entry(st, e);
            st.pending.push_back(m);
        }
        ring.publish_head(&st.inp);
        let lent: Vec<usize> = st.arena.lent_slots().collect();
        for slot in lent {
            let s = &mut st.arena.slots[slot];
            s.lent = 0;
            s.ret_base = self.shm().desc(self.me, slot)[3].load(Ordering::Acquire);
            if st.arena.free_if_unused(slot) {
                self.publish(st, slot);
            }
        }
        let peer = self.other();
        self.shm().msg_ring(peer).discard(&st.out);
        self.shm().seat(peer)[0].store(u64::from(st.epoch) << 32 | seat::DEAD, Ordering::Release);
        let flags = MSG_PEER_GONE | if corrupt { MSG_CORRUPT } else { 0 };
        st.pending.push_back(Message { flags, ..Message::default() });
        // The event may have been found by a send or an alloc while a receiver waits: wake it.
        sys::eventfd_ring(self.bells[self.me].as_raw_fd());
    }

    fn disconnect(&self, st: &mut State, corrupt: bool) {
        if corrupt {
            st.stats.corrupt += 1;
        }
        self.peer_gone(st, corrupt);
    }

    /// Handles what the wait set reports: doorbell, link hang-up, new connections.
    fn handle_events(&self, st: &mut State) -> Result<(), RegionError> {
        for (token, _) in sys::epoll_wait(self.epoll.as_raw_fd(), 0)? {
            match token {
                TOKEN_BELL => sys::eventfd_drain(self.bells[self.me].as_raw_fd()),
                TOKEN_LINK => {
                    if st.peer.link().is_some_and(sys::hung_up) {
                        self.peer_gone(st, false);
                    } else if let Some(l) = st.peer.link() {
                        // The link carries nothing after the handshake: read and drop.
                        let mut b = [0u8; 64];
                        if let Ok((0, _)) = sys::recv_fds(l, &mut b) {
                            self.peer_gone(st, false);
                        }
                    }
                }
                TOKEN_LISTEN => self.accept_peers(st),
                _ => {}
            }
        }
        Ok(())
    }

    fn accept_peers(&self, st: &mut State) {
        let Some(lis) = &self.listener else { return };
        while let Ok(Some(conn)) = sys::accept(lis.as_raw_fd()) {
            let refuse = |reason: u64| {
                let mut b = [0u8; HS_WORDS * 8];
                b[..8].copy_from_slice(&HS_REFUSE.to_le_bytes());
                b[8..16].copy_from_slice(&reason.to_le_bytes());
                let _ = sys::send_fds(conn.as_raw_fd(), &b, &[]);
            };
            if self.restricted && sys::peer_uid(conn.as_raw_fd()).map_or(true, |u| u != sys::euid() && u != 0)
            {
                refuse(REFUSE_DENIED);
                continue;
            }
            if !self.seat_free(st) {
                refuse(REFUSE_BUSY);
                continue;
            }
            let fd = conn.as_raw_fd();
            let Ok(hs) = self.offer(st, conn) else { continue };
            let fds = [self.memfd.as_raw_fd(), self.bells[0].as_raw_fd(), self.bells[1].as_raw_fd()];
            if sys::send_fds(fd, &hs, &fds).is_err() {
                self.peer_gone(st, false);
            }
        }
    }

    /// Receives up to `out.len()` messages without blocking. With `arm`, a receive that finds
    /// nothing arms the doorbell, so that [`Region::wait_fd`] becomes readable when something
    /// arrives; returns 0 then. `Corrupt` when the peer was disconnected for corrupting the
    /// region (its `MSG_PEER_GONE` event follows).
    pub fn try_recv(&self, out: &mut [Message], arm: bool) -> Result<usize, RegionError> {
        if out.is_empty() {
            return Err(RegionError::InvalidArgument);
        }
        let spin = self.spin_ns.load(Ordering::Relaxed);
        let start = if spin > 0 { Some(Instant::now()) } else { None };
        loop {
            let mut st = self.st.lock();
            let corrupt_before = st.stats.corrupt;
            if st.armed {
                // Woken (or called again after an arm). Messages first: the events (doorbell,
                // hang-up, connections) are looked at before the next arm in any case.
                st.armed = false;
                self.shm().msg_ring(self.me).disarm_consumer();
                let ready = st.peer.link().is_some()
                    && self.shm().msg_ring(self.me).pending(&st.inp).is_ok_and(|n| n > 0);
                if !ready {
                    self.handle_events(&mut st)?;
                }
            }
            let n = self.drain(&mut st, out);
            if st.stats.corrupt != corrupt_before {
                return Err(RegionError::Corrupt);
            }
            if n > 0 || !arm {
                return Ok(n);
            }
            if let Some(t0) = start {
                if t0.elapsed() < Duration::from_nanos(spin) {
                    drop(st);
                    // Look at the ring without the lock for a while, and let other threads run now
                    // and then: on a busy machine the peer may need this very core to answer.
                    let ring = self.shm().msg_ring(self.me);
                    for i in 0..256u32 {
                        if ring
                            .pending(&Consumer { head: self.spin_head.load(Ordering::Relaxed) })
                            .map_or(true, |n| n > 0)
                        {
                            break;
                        }
                        if i % 64 == 63 {
                            std::thread::yield_now();
                        } else {
                            std::hint::spin_loop();
                        }
                    }
                    continue;
                }
            }
            if st.peer.link().is_some() {
                match self.shm().msg_ring(self.me).arm_consumer(&st.inp) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(_) => {
                        self.disconnect(&mut st, true);
                        return Err(RegionError::Corrupt);
                    }
                }
            }
            st.armed = true;
            // Whatever happened before the arm (a hang-up, a connection, a ring already drained by
            // an earlier wake) is looked at now: the wait that follows only sees later events.
            self.handle_events(&mut st)?;
            let progressed = !st.pending.is_empty()
                || (st.peer.link().is_some()
                    && self.shm().msg_ring(self.me).pending(&st.inp).map_or(true, |n| n > 0));
            if !progressed {
                return Ok(0);
            }
            st.armed = false;
            self.shm().msg_ring(self.me).disarm_consumer();
        }
    }

    fn drain(&self, st: &mut State, out: &mut [Message]) -> usize {
        let mut n = 0;
        if let Peer::Offered(_) = st.peer {
            let w = self.shm().seat(self.other())[0].load(Ordering::Acquire);
            if w == u64::from(st.epoch) << 32 | seat::ACTIVE {
                if let Peer::Offered(l) = std::mem::replace(&mut st.peer, Peer::None) {
                    st.peer = Peer::Active(l);
                }
                st.stats.peer = 2;
                st.pending.push_back(Message { flags: MSG_PEER_JOINED, ..Message::default() });
            }
        }
        while n < out.len() {
            match st.pending.pop_front() {
                Some(m) => {
                    out[n] = m;
                    n += 1;
                }
                None => break,
            }
        }
        if matches!(st.peer, Peer::Gone | Peer::None) {
            return n;
        }
        let ring = self.shm().msg_ring(self.me);
        let mut e = [0u64; 4];
        let mut popped = false;
        while n < out.len() {
            match ring.pop(&mut st.inp, &mut e) {
                Ok(true) => {
                    popped = true;
                    out[n] = self.accept_entry(st, e);
                    n += 1;
                }
                Ok(false) => break,
                Err(_) => {
                    self.disconnect(st, true);
                    break;
                }
            }
        }
        if popped {
            ring.publish_head(&st.inp);
            self.spin_head.store(st.inp.head, Ordering::Relaxed);
            if ring.take_producer_waiter() {
                sys::eventfd_ring(self.bells[self.other()].as_raw_fd());
            }
        }
        self.drain_hints(st);
        n
    }

    /// Receives up to `out.len()` messages, waiting up to `timeout_ms` (-1: forever, 0: not at
    /// all) for the first. Returns 0 on timeout.
    pub fn recv(&self, out: &mut [Message], timeout_ms: i32) -> Result<usize, RegionError> {
        if timeout_ms < -1 {
            return Err(RegionError::InvalidArgument);
        }
        let deadline = (timeout_ms > 0).then(|| Instant::now() + Duration::from_millis(timeout_ms as u64));
        loop {
            let n = self.try_recv(out, timeout_ms != 0)?;
            if n > 0 || timeout_ms == 0 {
                return Ok(n);
            }
            let wait = match deadline {
                None => -1,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(0);
                    }
                    left.as_millis().clamp(1, i32::MAX as u128) as i32
                }
            };
            sys::poll_in(self.epoll.as_raw_fd(), wait)?;
        }
    }

    /// Serves requests: waits up to `timeout_ms` for messages (at most `max`), and for each one
    /// calls `f` with it and sends `f`'s reply with the same tag and corr. The request's buffer is
    /// lent to `f` for the call and released after it, unless `f` replies with that same buffer
    /// (an in-place reply). A reply buffer from `f` is owned by this function, which moves it to
    /// the peer. `Err(detail)` from `f` sends an error reply (`MSG_ERROR`, value = detail, no
    /// buffer). Events are skipped. Returns how many requests were served; `PeerGone` when the
    /// peer is gone and nothing was served; the first error of a reply that could not be sent
    /// (`QueueFull`, or `InvalidHandle` for a reply buffer `f` does not hold) once every request of
    /// the batch has been handled.
    pub fn serve(
        &self,
        max: usize,
        timeout_ms: i32,
        mut f: impl FnMut(&Message) -> Result<(u64, u64), u64>,
    ) -> Result<usize, RegionError> {
        if max == 0 {
            return Err(RegionError::InvalidArgument);
        }
        let mut ms = [Message::default(); 32];
        let cap = max.min(ms.len());
        let n = self.recv(&mut ms[..cap], timeout_ms)?;
        let mut served = 0;
        let mut gone = false;
        // A reply that cannot be sent (a full ring) does not stop the batch: the requests after it
        // are still served, or at least their buffers released, before the error is returned.
        let mut failed = None;
        for m in &ms[..n] {
            if m.flags & (MSG_PEER_GONE | MSG_PEER_JOINED) != 0 {
                gone |= m.flags & MSG_PEER_GONE != 0;
                continue;
            }
            let r = f(m);
            let sent = match r {
                Ok((reply, value)) => {
                    if m.id != 0 && reply != m.id {
                        let _ = self.release(m.id);
                    }
                    let flags = if reply != 0 { SEND_MOVE } else { 0 };
                    let s = self.send(reply, m.tag, value, m.corr, flags);
                    if s.is_err() && reply != 0 {
                        let _ = self.release(reply);
                    }
                    s
                }
                Err(detail) => {
                    if m.id != 0 {
                        let _ = self.release(m.id);
                    }
                    self.send(0, m.tag, detail, m.corr, SEND_ERROR)
                }
            };
            served += 1;
            if let Err(e) = sent {
                if e == RegionError::PeerGone || e == RegionError::Corrupt {
                    gone = true;
                } else {
                    failed.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if served == 0 && gone {
            return Err(RegionError::PeerGone);
        }
        Ok(served)
    }

    /// The handle's counters.
    pub fn stats(&self) -> RegionStats {
        let st = self.st.lock();
        let mut s = st.stats;
        s.seat = self.me as u32;
        s.own_buffers = st.arena.live;
        s.own_refs = st.arena.refs_total();
        s.lent = st.arena.lent_total();
        s.held = st.leases.values().map(|l| u64::from(l.count)).sum();
        s.used_bytes = st.arena.used;
        s.arena_bytes = self.l.params.arena;
        s
    }

    /// The whole mapping, for tests that play a hostile peer: (address, length).
    pub fn mapping(&self) -> (usize, usize) {
        (self.base as usize, self.map_len)
    }

    /// Bytes of the largest free range of this process's arena.
    pub fn largest_free(&self) -> u64 {
        let mut st = self.st.lock();
        self.drain_hints(&mut st);
        st.arena.largest_free()
    }
}

impl State {
    fn new(arena: Arena, seat: usize) -> State {
        State {
            arena,
            leases: HashMap::new(),
            out: Producer::default(),
            inp: Consumer::default(),
            hint_out: Producer::default(),
            hint_in: Consumer::default(),
            peer: Peer::None,
            epoch: 0,
            armed: false,
            pending: VecDeque::new(),
            stats: RegionStats { seat: seat as u32, ..RegionStats::default() },
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if let Some(n) = &self.name {
            sys::name_unlink(n);
        }
        // SAFETY: the mapping was made by map_shared with this length and is used by nothing else
        // now: every reference into it borrows `self`.
        unsafe { sys::unmap(self.base, self.map_len) };
    }
}

/// Unmaps a mapping on an early return.
struct MapGuard(*mut u8, usize);

impl Drop for MapGuard {
    fn drop(&mut self) {
        // SAFETY: the guard owns the fresh mapping until it is forgotten.
        unsafe { sys::unmap(self.0, self.1) };
    }
}

/// Creates the name file for a new named region: a random rendezvous token behind the name's
/// permission bits, the creator's pid, and the listener on the token. A name whose creator is gone
/// (its pid no longer exists) is taken over; one whose creator lives is [`RegionError::Busy`].
fn publish_name(name: &str, mode: u32) -> Result<OwnedFd, RegionError> {
    let mut raw = [0u8; 16];
    sys::random(&mut raw)?;
    let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let token = format!("ferry-{token}");
    let lis = sys::listen_abstract(token.as_bytes())?;
    let content = format!("{NAME_PREFIX}{token} {}\n", sys::pid());
    for attempt in 0..2 {
        match sys::name_create(name, mode, content.as_bytes()) {
            Ok(()) => return Ok(lis),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) && attempt == 0 => {
                let mut buf = [0u8; 256];
                let stale = match sys::name_read(name, &mut buf) {
                    Ok(n) => parse_name(&buf[..n]).map_or(true, |(_, pid)| !sys::alive(pid)),
                    Err(_) => false,
                };
                if !stale {
                    return Err(RegionError::Busy);
                }
                sys::name_unlink(name);
            }
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => return Err(RegionError::Busy),
            Err(e) => return Err(name_error(e, false)),
        }
    }
    Err(RegionError::Busy)
}

/// The token and creator pid of a name file's content.
fn parse_name(b: &[u8]) -> Option<(&str, u32)> {
    let t = std::str::from_utf8(b).ok()?.strip_prefix(NAME_PREFIX)?.trim_end();
    let (token, pid) = t.split_once(' ')?;
    Some((token, pid.parse().ok()?))
}
