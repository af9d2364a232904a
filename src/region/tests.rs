//! In-process tests of the region protocol: both seats in one process, linked by a socketpair.

use std::os::fd::AsRawFd;

use super::*;

fn pair(cfg: Config) -> (Region, Region) {
    let a = Region::create(&cfg, None).unwrap();
    let (s1, s2) = sys::seqpacket_pair().unwrap();
    a.share(s1.as_raw_fd()).unwrap();
    let b = Region::from_socket(s2.as_raw_fd(), 1000).unwrap();
    (a, b)
}

fn small() -> Config {
    Config { ring: 8, slots: 16, arena: 1 << 16, mode: 0o600 }
}

fn recv1(r: &Region) -> Message {
    let mut m = [Message::default(); 1];
    loop {
        let n = r.recv(&mut m, 2000).unwrap();
        assert_eq!(n, 1, "nothing arrived in 2 s");
        if m[0].flags & MSG_PEER_JOINED == 0 {
            return m[0];
        }
    }
}

fn bytes<'a>(ptr: usize, len: u64) -> &'a mut [u8] {
    // SAFETY: test helper over a view ferry returned and that the test holds.
    unsafe { std::slice::from_raw_parts_mut(ptr as *mut u8, len as usize) }
}

#[test]
fn a_buffer_crosses_and_comes_back_in_place() {
    let (a, b) = pair(small());
    let (id, p, n) = a.alloc(100).unwrap();
    bytes(p, n).copy_from_slice(&[7u8; 100]);
    a.send(id, 5, 42, 1, SEND_MOVE).unwrap();
    assert_eq!(a.view(id), Err(RegionError::InvalidHandle), "moved: a holds it no more");
    let m = recv1(&b);
    assert_eq!((m.id, m.tag, m.value, m.corr, m.len), (id, 5, 42, 1, 100));
    assert_eq!(bytes(m.ptr, m.len), &[7u8; 100][..]);
    assert_eq!(b.view(id).unwrap(), (m.ptr, 100));
    bytes(m.ptr, m.len)[0] = 9;
    b.send(id, 6, 0, 1, SEND_MOVE).unwrap();
    assert_eq!(b.release(id), Err(RegionError::InvalidHandle), "b gave its lease back");
    let r = recv1(&a);
    assert_eq!((r.id, r.flags & MSG_RETURN), (id, MSG_RETURN));
    assert_eq!(bytes(r.ptr, r.len)[0], 9);
    assert_eq!(a.stats().lent, 0);
    a.release(id).unwrap();
    assert_eq!(a.release(id), Err(RegionError::InvalidHandle));
    assert_eq!(a.stats().own_buffers, 0);
}

#[test]
fn leases_keep_memory_until_released_and_ids_never_answer_again() {
    let (a, b) = pair(small());
    let (id, _, _) = a.alloc(1 << 15).unwrap();
    a.send(id, 0, 0, 0, 0).unwrap();
    a.release(id).unwrap();
    assert_eq!(a.stats().own_buffers, 1, "the lease keeps it");
    assert!(a.alloc(1 << 15).is_ok_and(|(id2, _, _)| a.release(id2).is_ok()));
    let m = recv1(&b);
    assert_eq!(b.stats().held, 1);
    b.release(m.id).unwrap();
    assert_eq!(b.release(m.id), Err(RegionError::InvalidHandle));
    assert_eq!(a.largest_free(), 1 << 16, "returned lease frees the buffer");
    assert_eq!(a.stats().own_buffers, 0);
    let (id3, _, _) = a.alloc(8).unwrap();
    assert_ne!(id3, id);
    assert_eq!(a.view(id), Err(RegionError::InvalidHandle));
    a.release(id3).unwrap();
}

#[test]
fn forged_and_foreign_ids_are_invalid() {
    let (a, b) = pair(small());
    let (id, _, _) = a.alloc(8).unwrap();
    assert_eq!(b.view(id), Err(RegionError::InvalidHandle), "b holds no lease");
    assert_eq!(b.release(id), Err(RegionError::InvalidHandle));
    assert_eq!(b.send(id, 0, 0, 0, 0), Err(RegionError::InvalidHandle));
    for bad in [0u64, 1, u64::MAX, id ^ (1 << 32), id | 0xFF_FFFF, id + (1 << 24) * 3] {
        assert_eq!(a.view(bad), Err(RegionError::InvalidHandle), "{bad:#x}");
    }
    a.release(id).unwrap();
}

#[test]
fn full_ring_and_full_arena_are_errors_not_waits() {
    let (a, b) = pair(small());
    for i in 0..8 {
        a.send(0, 0, i, 0, 0).unwrap();
    }
    assert_eq!(a.send(0, 0, 9, 0, 0), Err(RegionError::QueueFull));
    let mut ms = [Message::default(); 16];
    let n = b.recv(&mut ms, 1000).unwrap();
    assert_eq!(n, 8);
    assert_eq!(ms[..8].iter().map(|m| m.value).collect::<Vec<_>>(), (0..8).collect::<Vec<_>>());
    a.send(0, 0, 9, 0, 0).unwrap();
    assert_eq!(a.alloc((1 << 16) + 1), Err(RegionError::Full));
}

#[test]
fn peer_death_reclaims_every_lease_and_keeps_sent_messages() {
    let (a, b) = pair(small());
    let mut ids = Vec::new();
    for i in 0..4 {
        let (id, _, _) = a.alloc(1000).unwrap();
        a.send(id, 0, i, 0, SEND_MOVE).unwrap();
        ids.push(id);
    }
    let m = recv1(&b);
    let (bid, bp, _) = b.alloc(10).unwrap();
    bytes(bp, 10).fill(3);
    b.send(bid, 1, 0, 0, 0).unwrap();
    b.send(m.id, 2, 0, 0, SEND_MOVE).unwrap();
    assert_eq!(a.stats().lent, 4);
    drop(b); // the peer goes: its link closes
    let mut got = Vec::new();
    let mut ms = [Message::default(); 8];
    while got.iter().all(|m: &Message| m.flags & MSG_PEER_GONE == 0) {
        let n = a.recv(&mut ms, 2000).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&ms[..n]);
    }
    let from_b: Vec<_> = got.iter().filter(|m| m.flags & (MSG_PEER_JOINED | MSG_PEER_GONE) == 0).collect();
    assert_eq!(from_b.len(), 2);
    assert_eq!(
        bytes(from_b[0].ptr, from_b[0].len),
        &[3u8; 10][..],
        "the dead peer's buffer is still readable"
    );
    assert_eq!(from_b[1].id, ids[0], "the returned buffer survives the reclaim");
    let st = a.stats();
    assert_eq!((st.lent, st.own_buffers, st.held, st.peer), (0, 1, 1, 3));
    a.release(ids[0]).unwrap();
    a.release(bid).unwrap();
    assert_eq!(a.stats().own_buffers, 0);
    assert_eq!(a.send(0, 0, 0, 0, 0), Err(RegionError::PeerGone));
    // The seat is free again: a new peer can attach and talk.
    let (s1, s2) = sys::seqpacket_pair().unwrap();
    a.share(s1.as_raw_fd()).unwrap();
    let c = Region::from_socket(s2.as_raw_fd(), 1000).unwrap();
    let (cid, _, _) = c.alloc(10).unwrap();
    assert_ne!(cid, bid, "generations carried on");
    c.send(cid, 7, 0, 0, SEND_MOVE).unwrap();
    let m = recv1(&a);
    assert_eq!((m.id, m.tag), (cid, 7));
    a.release(cid).unwrap();
}

#[test]
fn the_seat_stays_busy_while_the_survivor_holds_the_dead_peers_buffers() {
    let (a, b) = pair(small());
    let (bid, _, _) = b.alloc(10).unwrap();
    b.send(bid, 0, 0, 0, 0).unwrap();
    let m = recv1(&a);
    drop(b);
    let mut ms = [Message::default(); 4];
    while a.recv(&mut ms, 2000).unwrap() > 0 && ms[0].flags & MSG_PEER_GONE == 0 {}
    let (s1, _s2) = sys::seqpacket_pair().unwrap();
    assert_eq!(a.share(s1.as_raw_fd()), Err(RegionError::Busy));
    a.release(m.id).unwrap();
    assert!(a.share(s1.as_raw_fd()).is_ok());
}

#[test]
fn scribbled_metadata_gives_errors_not_crashes() {
    let (a, b) = pair(small());
    let (id, _, _) = a.alloc(64).unwrap();
    a.send(id, 0, 0, 0, 0).unwrap();
    let m = recv1(&b);
    assert_eq!(m.id, id);
    // b (the hostile one here) forges a descriptor: a huge offset for one of its own slots.
    let (bid, _, _) = b.alloc(64).unwrap();
    let k = crate::slots::decode(bid, crate::slots::Kind::RegionBuffer).unwrap();
    let shm = b.shm();
    shm.desc(k.shard, k.slot)[1].store(u64::MAX - 10, std::sync::atomic::Ordering::Relaxed);
    b.send(bid, 0, 0, 0, 0).unwrap();
    let got = recv1(&a);
    assert_eq!((got.id, got.flags & MSG_INVALID), (0, MSG_INVALID));
    // ... then the ring's tail.
    shm.msg_ring(0).published();
    let l = b.l;
    let tail_word = (l.msg_ctl[0] / 8) as usize + ring::CTL_TAIL;
    shm.words[tail_word].store(1 << 50, std::sync::atomic::Ordering::Relaxed);
    let mut ms = [Message::default(); 4];
    assert_eq!(a.recv(&mut ms, 100), Err(RegionError::Corrupt));
    let n = a.recv(&mut ms, 100);
    let n = n.unwrap();
    assert_eq!(ms[n - 1].flags, MSG_PEER_GONE | MSG_CORRUPT);
    assert_eq!(a.stats().lent, 0, "the disconnected peer's lease was reclaimed");
    a.release(id).unwrap();
    assert_eq!(a.stats().own_buffers, 0);
}

#[test]
fn named_regions_open_by_name_and_refuse_a_second_peer() {
    let name = format!("ferry-test-{}", std::process::id());
    let a = Region::create(&small(), Some(&name)).unwrap();
    assert_eq!(Region::create(&small(), Some(&name)).err(), Some(RegionError::Busy));
    let t = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn({
            let name = name.clone();
            move || Region::open(&name)
        })
        .unwrap();
    // The creator accepts while it waits for messages.
    let mut ms = [Message::default(); 2];
    let mut joined = false;
    while !joined {
        let n = a.recv(&mut ms, 2000).unwrap();
        assert!(n > 0);
        joined = ms[..n].iter().any(|m| m.flags & MSG_PEER_JOINED != 0);
    }
    let b = t.join().unwrap().unwrap();
    let t2 = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn({
            let name = name.clone();
            move || Region::open(&name)
        })
        .unwrap();
    while !t2.is_finished() {
        let _ = a.recv(&mut ms, 10);
    }
    assert_eq!(t2.join().unwrap().err(), Some(RegionError::Busy));
    b.send(0, 3, 4, 5, 0).unwrap();
    let m = recv1(&a);
    assert_eq!((m.tag, m.value, m.corr), (3, 4, 5));
    drop(a);
    assert_eq!(Region::open(&name).err(), Some(RegionError::NotFound), "the creator removed the name");
    assert_eq!(Region::open("no-such-ferry-region").err(), Some(RegionError::NotFound));
    assert_eq!(Region::open("../etc/passwd").err(), Some(RegionError::InvalidArgument));
}

#[test]
fn busy_poll_receives_without_arming() {
    let (a, b) = pair(small());
    b.set_spin(1_000_000).unwrap();
    assert_eq!(b.set_spin(MAX_SPIN_NS + 1), Err(RegionError::InvalidArgument));
    let mut ms = [Message::default(); 4];
    let _ = b.recv(&mut ms, 0);
    a.send(0, 1, 2, 3, 0).unwrap();
    let m = recv1(&b);
    assert_eq!(m.value, 2);
}

#[test]
fn the_attached_peer_survives_the_creator() {
    let (a, b) = pair(small());
    let (id, _, _) = b.alloc(10).unwrap();
    b.send(id, 0, 0, 0, 0).unwrap();
    let _ = recv1(&a);
    drop(a);
    let mut ms = [Message::default(); 4];
    let n = b.recv(&mut ms, 2000).unwrap();
    assert_eq!(n, 1);
    assert_eq!(ms[0].flags, MSG_PEER_GONE);
    assert_eq!(b.stats().lent, 0);
    b.release(id).unwrap();
    assert_eq!(b.stats().own_buffers, 0);
}

static SIGNALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn note_signal(_: libc::c_int) {
    SIGNALLED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// A signal that interrupts a waiting receive (poll fails with EINTR, SA_RESTART or not) does not
/// end it with an error: the wait resumes, and the message sent afterwards is received.
#[test]
fn a_signal_does_not_end_a_wait() {
    use std::sync::atomic::{AtomicI64, Ordering::SeqCst};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    let (a, b) = pair(small());
    // SAFETY: installs a handler that only stores to an atomic, without SA_RESTART, for SIGUSR2
    // (which nothing else in this test binary uses); the sigaction struct is zeroed, then filled.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = note_signal as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR2, &sa, std::ptr::null_mut()), 0);
    }
    let tid = Arc::new(AtomicI64::new(0));
    let waiter = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn({
            let tid = Arc::clone(&tid);
            move || -> Result<usize, RegionError> {
                // SAFETY: gettid has no preconditions.
                tid.store(i64::from(unsafe { libc::gettid() }), SeqCst);
                let mut ms = [Message::default(); 4];
                // Skip the join event, then wait for the message.
                loop {
                    let n = b.recv(&mut ms, 60_000)?;
                    if ms[..n].iter().any(|m| m.tag == 9) {
                        return Ok(n);
                    }
                }
            }
        })
        .unwrap();
    // Signal the waiter once it sleeps in the wait, then send.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let t = tid.load(SeqCst);
        let state = std::fs::read_to_string(format!("/proc/self/task/{t}/stat"))
            .ok()
            .and_then(|st| st[st.rfind(')')? + 1..].trim_start().chars().next());
        if t != 0 && state == Some('S') {
            break;
        }
        assert!(Instant::now() < deadline, "the waiter never slept");
        std::thread::yield_now();
    }
    // SAFETY: signals a thread of this process that is still running (it waits for the send
    // below), with a signal whose handler only stores to an atomic.
    let r = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid.load(SeqCst), libc::SIGUSR2) };
    assert_eq!(r, 0);
    // The handler has run (so the wait saw EINTR) before the message goes.
    while !SIGNALLED.load(SeqCst) {
        assert!(Instant::now() < deadline, "the signal was not handled");
        std::thread::yield_now();
    }
    a.send(0, 9, 0, 0, 0).unwrap();
    assert_eq!(waiter.join().unwrap().map(|n| n > 0), Ok(true), "the interrupted wait failed");
}

/// A reply that finds the ring full does not strand the rest of the batch: every request's lease
/// goes back before serve reports the full ring.
#[test]
fn serve_hands_back_every_request_when_a_reply_cannot_be_sent() {
    let (a, b) = pair(Config { ring: 2, ..small() });
    // Fill the ring towards b, then b sends two requests with buffers of its own.
    a.send(0, 1, 0, 0, 0).unwrap();
    a.send(0, 2, 0, 0, 0).unwrap();
    for tag in [10, 11] {
        let (id, _, _) = b.alloc(32).unwrap();
        b.send(id, tag, 0, 0, SEND_MOVE).unwrap();
    }
    let mut seen = 0;
    let r = a.serve(4, 2000, |_| {
        seen += 1;
        Ok((0, 0))
    });
    assert_eq!(r, Err(RegionError::QueueFull));
    assert_eq!(seen, 2, "both requests were served");
    assert_eq!(a.stats().held, 0, "no lease on a request is left behind");
    // b gets its buffers back once it takes the leases' return into account.
    let mut ms = [Message::default(); 4];
    assert_eq!(b.recv(&mut ms, 0), Ok(2));
    assert_eq!(b.largest_free(), b.stats().arena_bytes);
}
