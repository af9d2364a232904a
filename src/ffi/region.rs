//! Exported region functions (`ferry_region_*`): shared-memory regions between two processes,
//! buffers whose ids are valid in both, a message ring with wake-ups, and leases reclaimed when a
//! peer dies. Linux only. See `src/region/mod.rs` for the model and the layout.

use std::os::raw::c_int;

use super::boundary::run;
use super::buffer::FerryView;
use super::status::FerryStatus;
use super::{caller_bytes, nonnull_mut};
use crate::callback::{self, Payload};
use crate::region::{self, Config, Message, Region, RegionError};

/// Message flag: the message gives back the lease the sender held on one of the receiver's own
/// buffers (the sender used FERRY_REGION_SEND_MOVE on a buffer it had received).
pub const FERRY_REGION_MSG_RETURN: u32 = 1;
/// Message flag: the id failed validation (stale, forged, out of bounds); id, ptr and len are 0.
pub const FERRY_REGION_MSG_INVALID: u32 = 2;
/// Event: a peer attached to the region (only the process that offered the region sees it).
pub const FERRY_REGION_MSG_PEER_JOINED: u32 = 4;
/// Event: the peer closed the region or died; every lease it held was reclaimed. Messages it sent
/// before are delivered first.
pub const FERRY_REGION_MSG_PEER_GONE: u32 = 8;
/// Set with FERRY_REGION_MSG_PEER_GONE when the peer was disconnected for corrupting the region.
pub const FERRY_REGION_MSG_CORRUPT: u32 = 16;
/// Message flag: the sender marked the message as an error reply (FERRY_REGION_SEND_ERROR).
pub const FERRY_REGION_MSG_ERROR: u32 = 32;
/// Send flag: give up the caller's hold on the id with the message (its own reference, or the
/// lease it received), in the same call.
pub const FERRY_REGION_SEND_MOVE: u32 = 1;
/// Send flag: mark the message as an error reply.
pub const FERRY_REGION_SEND_ERROR: u32 = 2;

const _: () = assert!(FERRY_REGION_MSG_RETURN == region::MSG_RETURN);
const _: () = assert!(FERRY_REGION_MSG_INVALID == region::MSG_INVALID);
const _: () = assert!(FERRY_REGION_MSG_PEER_JOINED == region::MSG_PEER_JOINED);
const _: () = assert!(FERRY_REGION_MSG_PEER_GONE == region::MSG_PEER_GONE);
const _: () = assert!(FERRY_REGION_MSG_CORRUPT == region::MSG_CORRUPT);
const _: () = assert!(FERRY_REGION_MSG_ERROR == region::MSG_ERROR);
const _: () = assert!(FERRY_REGION_SEND_MOVE == region::SEND_MOVE);
const _: () = assert!(FERRY_REGION_SEND_ERROR == region::SEND_ERROR);

/// How to make a region; a zero field takes its default. Pass NULL for all defaults.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct FerryRegionConfig {
    /// Message-ring entries per direction: a power of two, 2..=65536 (default 1024).
    pub ring: u64,
    /// Buffers each process can have allocated at once: 1..=1048576 (default 4096).
    pub slots: u64,
    /// Bytes of each process's arena, rounded up to 4 KiB, at most 1 TiB (default 64 MiB). Pages
    /// take memory only once written.
    pub arena: u64,
    /// Permission bits of a named region's name: must include 0600 (default 0600). With no bits
    /// for group or others, the creator also refuses peers of another user id (root excepted).
    pub mode: u32,
}

/// A received message, or an event (FERRY_REGION_MSG_PEER_*; id 0).
///
/// Ownership: a non-zero `id` is held by the receiver, which releases it once
/// (ferry_region_release) or sends it on with FERRY_REGION_SEND_MOVE. `ptr`/`len` is the buffer in
/// this process's mapping, valid until that release or until the region is closed; `ptr` is NULL
/// when `len` is 0.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FerryRegionMsg {
    /// The buffer id, or 0 for none.
    pub id: u64,
    /// The buffer's first byte in this process, or NULL.
    pub ptr: *mut u8,
    /// The buffer's length.
    pub len: usize,
    /// The sender's value.
    pub value: u64,
    /// The sender's correlation number.
    pub corr: u64,
    /// The sender's tag.
    pub tag: u32,
    /// FERRY_REGION_MSG_* flags.
    pub flags: u32,
}

impl From<Message> for FerryRegionMsg {
    fn from(m: Message) -> FerryRegionMsg {
        FerryRegionMsg {
            id: m.id,
            ptr: m.ptr as *mut u8,
            len: m.len as usize,
            value: m.value,
            corr: m.corr,
            tag: m.tag,
            flags: m.flags,
        }
    }
}

/// Counters of one region handle.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct FerryRegionStats {
    /// This process's seat: 0 for the creator, 1 for the peer.
    pub seat: u32,
    /// The peer: 0 none yet, 1 offered (not attached yet), 2 attached, 3 gone.
    pub peer: u32,
    /// Buffers of this process's arena that are live (held here or lent to the peer).
    pub own_buffers: u64,
    /// Holds this process has on its own buffers.
    pub own_refs: u64,
    /// Leases the peer holds on this process's buffers.
    pub lent: u64,
    /// Leases this process holds on the peer's buffers.
    pub held: u64,
    /// Bytes of this process's arena in use.
    pub used_bytes: u64,
    /// Bytes of each process's arena.
    pub arena_bytes: u64,
    /// Peers that closed the region or died, and whose leases were reclaimed.
    pub peers_gone: u64,
    /// Checks of shared metadata that failed.
    pub corrupt: u64,
    /// Received ids that failed validation.
    pub invalid_ids: u64,
}

impl From<RegionError> for FerryStatus {
    fn from(e: RegionError) -> FerryStatus {
        match e {
            RegionError::InvalidHandle => FerryStatus::InvalidHandle,
            RegionError::InvalidArgument => FerryStatus::InvalidArgument,
            RegionError::Full => FerryStatus::RegionFull,
            RegionError::QueueFull => FerryStatus::QueueFull,
            RegionError::PeerGone => FerryStatus::PeerGone,
            RegionError::Corrupt => FerryStatus::Corrupt,
            RegionError::Busy => FerryStatus::Busy,
            RegionError::NotFound => FerryStatus::NotFound,
            RegionError::PermissionDenied => FerryStatus::PermissionDenied,
            RegionError::System(_) => FerryStatus::SystemError,
        }
    }
}

fn config(cfg: *const FerryRegionConfig) -> Config {
    if cfg.is_null() {
        return Config::default();
    }
    // SAFETY: non-null, and the caller promised a readable FerryRegionConfig.
    let c = unsafe { cfg.read() };
    let d = Config::default();
    Config { ring: c.ring, slots: c.slots, arena: c.arena, mode: if c.mode == 0 { d.mode } else { c.mode } }
}

/// The name at `p`: INVALID_ARGUMENT when empty or longer than any allowed name (so never
/// TOO_LARGE), NULL_POINTER when `p` is NULL.
fn name<'a>(p: *const u8, len: usize) -> Result<&'a str, FerryStatus> {
    if len == 0 || len > region::sys::MAX_NAME {
        return Err(FerryStatus::InvalidArgument);
    }
    // SAFETY: the caller promised `len` readable bytes at `p` for this call.
    let b = unsafe { caller_bytes(p, len)? };
    std::str::from_utf8(b).map_err(|_| FerryStatus::InvalidArgument)
}

fn publish(r: Region, out: *mut u64) -> Result<(), FerryStatus> {
    let id = region::insert(r)?;
    // SAFETY: `out` was checked non-null by the caller, who promised a writable uint64_t.
    unsafe { out.write(id) };
    Ok(())
}

fn write<T>(out: *mut T, v: T) -> Result<(), FerryStatus> {
    let out = nonnull_mut(out)?;
    // SAFETY: non-null, and the caller promised a writable T there.
    unsafe { out.write(v) };
    Ok(())
}

/// Creates a region in a new sealed memfd (shared later with ferry_region_share) and stores its
/// handle in `*region_out`.
///
/// `cfg` may be NULL for the defaults. The caller owns the handle and closes it once
/// (ferry_region_close). Errors: NULL_POINTER (`region_out`), INVALID_ARGUMENT (a config field out
/// of its domain), SYSTEM_ERROR (a system call failed: out of descriptors, of memory for the
/// mapping), TABLE_FULL.
#[no_mangle]
pub extern "C" fn ferry_region_create(cfg: *const FerryRegionConfig, region_out: *mut u64) -> FerryStatus {
    run("ferry_region_create", || {
        let out = nonnull_mut(region_out)?;
        publish(Region::create(&config(cfg), None)?, out)
    })
}

/// Creates a region and publishes it under `name` (`name_len` bytes, no NUL needed: letters,
/// digits, '-', '_', '.'), for unrelated processes to open with ferry_region_open.
///
/// The name is a file in /dev/shm created with `cfg->mode` (0600 by default, so only this user
/// can open it); it holds a random rendezvous token and is removed when the handle is closed. A
/// name left by a creator that died is taken over. The handle accepts its peer while it receives
/// (ferry_region_recv): wait on ferry_region_fd. Errors: NULL_POINTER (`region_out`, or `name_ptr`
/// with a length), INVALID_ARGUMENT (an empty name, one longer than 200 bytes or with another
/// character, or a config field out of its domain), BUSY (the name belongs to a live region),
/// PERMISSION_DENIED (this user may not create files in /dev/shm), SYSTEM_ERROR, TABLE_FULL.
#[no_mangle]
pub extern "C" fn ferry_region_create_named(
    name_ptr: *const u8,
    name_len: usize,
    cfg: *const FerryRegionConfig,
    region_out: *mut u64,
) -> FerryStatus {
    run("ferry_region_create_named", || {
        let out = nonnull_mut(region_out)?;
        let n = name(name_ptr, name_len)?;
        publish(Region::create(&config(cfg), Some(n))?, out)
    })
}

/// Opens the region published under `name` and attaches to it as the peer; stores the handle in
/// `*region_out`. Waits up to 5 s for the creator's answer (the creator answers while it receives).
///
/// Errors: NULL_POINTER, INVALID_ARGUMENT (a name ferry_region_create_named would refuse),
/// NOT_FOUND, PERMISSION_DENIED (the name's mode or the creator refused this user), BUSY (the
/// region already has a peer), PEER_GONE (the creator is gone), CORRUPT (the handshake or the
/// mapping failed a check), SYSTEM_ERROR (a system call failed, or the creator did not answer
/// within 5 s), TABLE_FULL.
#[no_mangle]
pub extern "C" fn ferry_region_open(
    name_ptr: *const u8,
    name_len: usize,
    region_out: *mut u64,
) -> FerryStatus {
    run("ferry_region_open", || {
        let out = nonnull_mut(region_out)?;
        let n = name(name_ptr, name_len)?;
        publish(Region::open(n)?, out)
    })
}

/// Shares the region with the process at the other end of the connected Unix socket `sock`
/// (which receives it with ferry_region_from_socket): sends the mapping, the doorbells and one end
/// of a new link with SCM_RIGHTS. ferry does not keep or close `sock`.
///
/// Errors: INVALID_HANDLE, INVALID_ARGUMENT (`sock` < 0), BUSY (the region has a peer, or still
/// holds buffers of one that is gone), SYSTEM_ERROR (the send failed, `sock` being no connected
/// Unix socket for instance; the region stays unshared).
#[no_mangle]
pub extern "C" fn ferry_region_share(region: u64, sock: c_int) -> FerryStatus {
    run("ferry_region_share", || Ok(region::get(region)?.share(sock)?))
}

/// Receives a region shared on the Unix socket `sock`, waiting up to `timeout_ms` (-1: forever),
/// attaches to it as the peer, and stores the handle in `*region_out`. ferry does not keep `sock`.
///
/// Errors: NULL_POINTER, INVALID_ARGUMENT (`sock` < 0 or `timeout_ms` < -1), PEER_GONE (nothing
/// came in time, or the socket closed), CORRUPT (not a ferry handshake, or the mapping failed a
/// check), BUSY (the handshake offers a seat that is no longer on offer: a replayed one),
/// SYSTEM_ERROR (the receive failed: `sock` is not a socket, say), TABLE_FULL.
#[no_mangle]
pub extern "C" fn ferry_region_from_socket(
    sock: c_int,
    timeout_ms: i32,
    region_out: *mut u64,
) -> FerryStatus {
    run("ferry_region_from_socket", || {
        let out = nonnull_mut(region_out)?;
        publish(Region::from_socket(sock, timeout_ms)?, out)
    })
}

/// Closes a region handle. Every id of the region held by this process and every pointer into the
/// mapping become invalid; the mapping and descriptors are released once no call using the handle
/// is running. The peer sees the link close and reclaims the leases this process held.
/// Errors: INVALID_HANDLE.
#[no_mangle]
pub extern "C" fn ferry_region_close(region: u64) -> FerryStatus {
    run("ferry_region_close", || Ok(region::close(region)?))
}

/// Stores in `*fd_out` the descriptor to wait on (poll/epoll for input): it becomes readable when a
/// receive that returned nothing would find something (a message, a peer joining or going).
///
/// The descriptor belongs to the handle: do not close it; it is valid until ferry_region_close.
/// Errors: INVALID_HANDLE, NULL_POINTER.
#[no_mangle]
pub extern "C" fn ferry_region_fd(region: u64, fd_out: *mut c_int) -> FerryStatus {
    run("ferry_region_fd", || write(fd_out, region::get(region)?.wait_fd()))
}

/// Sets the busy-poll budget of the handle: a receive that finds nothing spins for up to `ns`
/// nanoseconds (at most 10,000,000) before it arms the doorbell and waits. 0 turns spinning off.
/// Spinning holds the calling thread. Errors: INVALID_HANDLE, INVALID_ARGUMENT.
#[no_mangle]
pub extern "C" fn ferry_region_set_spin(region: u64, ns: u64) -> FerryStatus {
    run("ferry_region_set_spin", || Ok(region::get(region)?.set_spin(ns)?))
}

/// Allocates `len` bytes in this process's arena of the region and stores the id and view in
/// `*view_out`.
///
/// The id is valid in the peer too once sent to it. The caller holds it and releases it once; the
/// memory is reused only when the caller and every lease sent with it have let go. The bytes are
/// not cleared (a reused range holds old data). Errors: INVALID_HANDLE, NULL_POINTER, REGION_FULL.
#[no_mangle]
pub extern "C" fn ferry_region_alloc(region: u64, len: usize, view_out: *mut FerryView) -> FerryStatus {
    run("ferry_region_alloc", || {
        let out = nonnull_mut(view_out)?;
        let (id, ptr, len) = region::get(region)?.alloc(len as u64)?;
        write(out, FerryView { id, ptr: ptr as *mut u8, len: len as usize })
    })
}

/// Stores the view of `id` in `*view_out`: a buffer this process holds in the region (its own, or
/// one received from the peer). Errors: INVALID_HANDLE (not held here), NULL_POINTER.
#[no_mangle]
pub extern "C" fn ferry_region_view(region: u64, id: u64, view_out: *mut FerryView) -> FerryStatus {
    run("ferry_region_view", || {
        let out = nonnull_mut(view_out)?;
        let (ptr, len) = region::get(region)?.view(id)?;
        write(out, FerryView { id, ptr: ptr as *mut u8, len: len as usize })
    })
}

/// Releases one hold on `id`: the caller's own buffer, or a lease on the peer's (which goes back
/// to the peer). A second release of the same hold is INVALID_HANDLE. Errors: INVALID_HANDLE.
#[no_mangle]
pub extern "C" fn ferry_region_release(region: u64, id: u64) -> FerryStatus {
    run("ferry_region_release", || Ok(region::get(region)?.release(id)?))
}

/// Sends a message to the peer: `id` (0 for none; a buffer this process holds in the region),
/// `tag`, `value` and `corr`. The receiver gets its own hold on `id`; with FERRY_REGION_SEND_MOVE
/// the caller's hold is given up in the same call (on error it is kept). Wakes the peer if it
/// waits. Errors: INVALID_HANDLE, INVALID_ARGUMENT (unknown flags), QUEUE_FULL (try again once
/// the peer has received), PEER_GONE, CORRUPT (the peer was disconnected).
#[no_mangle]
pub extern "C" fn ferry_region_send(
    region: u64,
    id: u64,
    tag: u32,
    value: u64,
    corr: u64,
    flags: u32,
) -> FerryStatus {
    run("ferry_region_send", || Ok(region::get(region)?.send(id, tag, value, corr, flags)?))
}

/// Receives up to `cap` messages into `msgs_out` and stores how many in `*n_out`, waiting up to
/// `timeout_ms` for the first (-1: forever; 0: do not wait). A batch is everything that is ready,
/// up to `cap`.
///
/// With timeout 0 and nothing ready, the call also arms the doorbell, so that ferry_region_fd
/// becomes readable when something arrives: a caller with its own event loop receives with 0 and
/// waits on the descriptor when it gets 0 messages. Errors: INVALID_HANDLE, NULL_POINTER,
/// INVALID_ARGUMENT (`cap` is 0 or `timeout_ms` < -1), CORRUPT (the peer was disconnected; its
/// FERRY_REGION_MSG_PEER_GONE event comes with the next receive), SYSTEM_ERROR.
#[no_mangle]
pub extern "C" fn ferry_region_recv(
    region: u64,
    msgs_out: *mut FerryRegionMsg,
    cap: usize,
    timeout_ms: i32,
    n_out: *mut usize,
) -> FerryStatus {
    run("ferry_region_recv", || {
        let msgs = nonnull_mut(msgs_out)?;
        let n_out = nonnull_mut(n_out)?;
        if cap == 0 || timeout_ms < -1 {
            return Err(FerryStatus::InvalidArgument);
        }
        let r = region::get(region)?;
        let mut buf = [Message::default(); 64];
        let cap = cap.min(buf.len());
        let n = if timeout_ms == 0 {
            r.try_recv(&mut buf[..cap], true)?
        } else {
            r.recv(&mut buf[..cap], timeout_ms)?
        };
        for (i, m) in buf[..n].iter().enumerate() {
            // SAFETY: the caller promised `cap` writable messages at `msgs_out`; i < n <= cap.
            unsafe { msgs.add(i).write((*m).into()) };
        }
        write(n_out, n)
    })
}

/// Serves requests with a registered ferry callback (ferry_callback_register): waits up to
/// `timeout_ms` for messages (at most `max` of them), and for each calls `callback` with the
/// message's buffer id and value, then sends the callback's result back with the request's tag and
/// corr, and stores how many were served in `*served_out` (may be NULL).
///
/// The request's buffer is lent to the callback for the call (view it with ferry_region_view) and
/// released after it, unless the callback returns that same id (an in-place reply). A different
/// buffer the callback returns must be one it allocated in the region; it is moved to the peer. A
/// failing callback sends an error reply (FERRY_REGION_MSG_ERROR, value = its detail code). Events
/// are skipped. A reply that cannot be sent does not stop the batch: every request is still
/// handled (its buffer released) before the first such error is returned. Errors: INVALID_HANDLE
/// (`region`, or a reply buffer the callback does not hold), INVALID_ARGUMENT (`max` is 0 or
/// `timeout_ms` < -1), PEER_GONE (the peer is gone and nothing was served), QUEUE_FULL (a reply
/// found the peer's ring full and was dropped), CORRUPT, SYSTEM_ERROR.
#[no_mangle]
pub extern "C" fn ferry_region_serve(
    region: u64,
    callback: u64,
    max: usize,
    timeout_ms: i32,
    served_out: *mut usize,
) -> FerryStatus {
    run("ferry_region_serve", || {
        let r = region::get(region)?;
        let n = r.serve(max, timeout_ms, |m| {
            callback::invoke(callback, Payload { buffer: m.id, value: m.value })
                .map(|p| (p.buffer, p.value))
                .map_err(|e| e.detail())
        })?;
        if !served_out.is_null() {
            write(served_out, n)?;
        }
        Ok(())
    })
}

/// Stores the handle's counters in `*stats_out`. Errors: INVALID_HANDLE, NULL_POINTER.
#[no_mangle]
pub extern "C" fn ferry_region_stats(region: u64, stats_out: *mut FerryRegionStats) -> FerryStatus {
    run("ferry_region_stats", || {
        let s = region::get(region)?.stats();
        write(
            stats_out,
            FerryRegionStats {
                seat: s.seat,
                peer: s.peer,
                own_buffers: s.own_buffers,
                own_refs: s.own_refs,
                lent: s.lent,
                held: s.held,
                used_bytes: s.used_bytes,
                arena_bytes: s.arena_bytes,
                peers_gone: s.peers_gone,
                corrupt: s.corrupt,
                invalid_ids: s.invalid_ids,
            },
        )
    })
}

/// Stores the number of region handles open in this process in `*n_out`. Errors: NULL_POINTER.
#[no_mangle]
pub extern "C" fn ferry_region_count(n_out: *mut u64) -> FerryStatus {
    run("ferry_region_count", || write(n_out, region::open_count()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_errors_share_their_statuses_messages() {
        for e in [
            RegionError::InvalidHandle,
            RegionError::InvalidArgument,
            RegionError::Full,
            RegionError::QueueFull,
            RegionError::PeerGone,
            RegionError::Corrupt,
            RegionError::Busy,
            RegionError::NotFound,
            RegionError::PermissionDenied,
            RegionError::System(libc::EMFILE),
        ] {
            assert_eq!(e.message(), FerryStatus::from(e).message(), "{e:?}");
        }
        assert_eq!(RegionError::Busy.to_string(), FerryStatus::Busy.message());
        assert!(RegionError::System(libc::EMFILE)
            .to_string()
            .ends_with(&format!("(errno {})", libc::EMFILE)));
    }
}
