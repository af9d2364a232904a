//! Regions across real processes: a peer killed with SIGKILL at random points (either seat), and
//! a hostile peer that writes random bytes over the region while the survivor keeps working.
//! The test binary runs itself again as the peer (FERRY_SHM_PEER says what to do).
//!
//! Bounded for `make test` (FERRY_SHM_KILLS kills, default 40; FERRY_SHM_CORRUPT_OPS survivor
//! operations against the scribbler, default 4000); `make bench-shm` runs 1,000 kills. Under
//! `make asan` the same tests run with AddressSanitizer.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use ferry::region::{Config, Message, Region, RegionError, MSG_PEER_GONE, MSG_PEER_JOINED, SEND_MOVE};

/// A small deterministic generator (xorshift64*), seeded per round and printed on failure.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The tests count the process's descriptors and mappings: they run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn cfg() -> Config {
    Config { ring: 64, slots: 256, arena: 1 << 20, mode: 0o600 }
}

fn count_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn count_maps() -> usize {
    std::fs::read_to_string("/proc/self/maps").unwrap().lines().filter(|l| l.contains("ferry-region")).count()
}

/// A peer process, killed when dropped (so a failing test leaves no process behind).
struct Peer(Child);

impl Peer {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts this test binary as the peer, with `sock` as its descriptor 3.
fn spawn_peer(mode: &str, sock: &UnixStream, seed: u64) -> Peer {
    let fd = sock.as_raw_fd();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "peer_process", "--nocapture", "--test-threads=1"])
        .env("FERRY_SHM_PEER", mode)
        .env("FERRY_SHM_SEED", seed.to_string());
    // SAFETY: dup2 and fcntl are async-signal-safe, and the closure touches nothing else.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Peer(cmd.spawn().unwrap())
}

/// What the peer does, in the child process: never returns normally (killed by the parent).
#[test]
fn peer_process() {
    let Ok(mode) = std::env::var("FERRY_SHM_PEER") else { return };
    let mut rng = Rng(env_num("FERRY_SHM_SEED", 1) | 1);
    // SAFETY: the parent put the socket at descriptor 3 for this process.
    let sock = unsafe { OwnedFd::from_raw_fd(3) };
    let r = match mode.as_str() {
        "attach" | "scribble" => Region::from_socket(sock.as_raw_fd(), 10_000).unwrap(),
        "create" => {
            let r = Region::create(&cfg(), None).unwrap();
            r.share(sock.as_raw_fd()).unwrap();
            r
        }
        _ => panic!("unknown peer mode {mode}"),
    };
    if mode == "scribble" {
        eprintln!("peer: scribbling over {:?}", r.mapping());
        scribble(&r, &mut rng);
    }
    busy_peer(&r, &mut rng);
}

/// Random traffic until killed: receive, keep some, release some, allocate and send, send back.
fn busy_peer(r: &Region, rng: &mut Rng) -> ! {
    let mut held: Vec<u64> = Vec::new();
    let mut ms = [Message::default(); 16];
    loop {
        if let Ok(n) = r.recv(&mut ms, 1) {
            for m in &ms[..n] {
                if m.id != 0 {
                    held.push(m.id);
                }
            }
        }
        match rng.below(4) {
            0 if !held.is_empty() => {
                let id = held.swap_remove(rng.below(held.len() as u64) as usize);
                let _ = r.release(id);
            }
            1 if !held.is_empty() => {
                let id = held.swap_remove(rng.below(held.len() as u64) as usize);
                if r.send(id, 2, 0, 0, SEND_MOVE).is_err() {
                    let _ = r.release(id);
                }
            }
            _ => {
                if let Ok((id, p, n)) = r.alloc(1 + rng.below(4096)) {
                    if n > 0 {
                        // SAFETY: the buffer was just allocated here and is held.
                        unsafe { *(p as *mut u8) = 1 };
                    }
                    if r.send(id, 1, 0, 0, SEND_MOVE).is_err() {
                        let _ = r.release(id);
                    }
                }
            }
        }
    }
}

/// A hostile peer: random 8-byte writes all over the mapping, metadata mostly. It makes no ferry
/// call after attaching (its own ferry would notice the garbage and hang up, and then the survivor
/// would have nothing left to read): it keeps the link open and only writes.
fn scribble(r: &Region, rng: &mut Rng) -> ! {
    let (base, len) = r.mapping();
    loop {
        for _ in 0..64 {
            // Nine writes in ten go to the metadata (header, rings, hint rings, descriptors: the
            // first 32 KiB with this configuration); the rest anywhere.
            let span = if rng.below(10) < 9 { (32 << 10).min(len) } else { len };
            let off = rng.below(span as u64 / 8) as usize * 8;
            // Small values as often as random ones: they pass more checks and reach further.
            let v = if rng.below(2) == 0 { rng.next() } else { rng.below(300) };
            // SAFETY: inside this process's own mapping of the region; the bytes are shared memory
            // and the point of this process is to write garbage into them.
            unsafe { std::ptr::write_volatile((base + off) as *mut u64, v) };
        }
        std::thread::yield_now();
    }
}

/// Receives until `flags` shows up (or the deadline passes); the buffers received are added to
/// `held`.
fn recv_until(r: &Region, held: &mut Vec<u64>, flag: u32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut ms = [Message::default(); 32];
    loop {
        // The event may have come in an earlier receive (survivor_ops): then drain what is left.
        let gone = r.stats().peer == 3;
        if (flag == MSG_PEER_GONE && gone)
            || (flag == MSG_PEER_JOINED && r.stats().peer == 2 && r.stats().seat == 1)
        {
            while let Ok(n @ 1..) = r.recv(&mut ms, 0) {
                held.extend(ms[..n].iter().filter(|m| m.id != 0).map(|m| m.id));
            }
            return;
        }
        let n = match r.recv(&mut ms, 100) {
            Ok(n) => n,
            Err(RegionError::Corrupt) => continue,
            Err(e) => panic!("{what}: recv: {e:?}"),
        };
        let mut seen = false;
        for m in &ms[..n] {
            if m.id != 0 {
                held.push(m.id);
            }
            seen |= m.flags & flag != 0;
        }
        if seen {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: no event {flag} in 20 s: {:?}", r.stats());
    }
}

/// Random survivor traffic: `ops` operations of every kind, tolerating any error status.
fn survivor_ops(r: &Region, rng: &mut Rng, held: &mut Vec<u64>, own: &mut Vec<u64>, ops: u64) {
    let mut ms = [Message::default(); 16];
    for _ in 0..ops {
        match rng.below(6) {
            0 | 1 => {
                if let Ok((id, p, n)) = r.alloc(1 + rng.below(8192)) {
                    if n > 0 {
                        // SAFETY: the buffer was just allocated here and is held.
                        unsafe { std::ptr::write_bytes(p as *mut u8, 0xAB, n as usize) };
                    }
                    if rng.below(2) == 0 {
                        if r.send(id, 1, 0, 0, SEND_MOVE).is_err() {
                            r.release(id).unwrap();
                        }
                    } else {
                        let _ = r.send(id, 1, 0, 0, 0);
                        own.push(id);
                    }
                }
            }
            2 => {
                if let Ok(n) = r.recv(&mut ms, 0) {
                    for m in &ms[..n] {
                        if m.id != 0 {
                            // The view is readable whatever the peer did.
                            if m.len > 0 {
                                // SAFETY: a received buffer this process now holds.
                                let b =
                                    unsafe { std::slice::from_raw_parts(m.ptr as *const u8, m.len as usize) };
                                std::hint::black_box(b.iter().fold(0u8, |a, x| a ^ x));
                            }
                            held.push(m.id);
                        }
                    }
                }
            }
            3 if !held.is_empty() => {
                let id = held.swap_remove(rng.below(held.len() as u64) as usize);
                assert!(r.view(id).is_ok(), "a held id views");
                r.release(id).unwrap();
            }
            4 if !own.is_empty() => {
                let id = own.swap_remove(rng.below(own.len() as u64) as usize);
                r.release(id).unwrap();
            }
            _ => {
                let _ = r.view(rng.next());
                let _ = r.release(rng.next());
            }
        }
    }
}

/// After the peer went: the survivor releases what it holds and finds nothing lent, held or live.
fn settle(r: &Region, held: &mut Vec<u64>, own: &mut Vec<u64>, what: &str) {
    let st = r.stats();
    assert_eq!(st.lent, 0, "{what}: leases of the dead peer were not all reclaimed: {st:?}");
    for id in held.drain(..).chain(own.drain(..)) {
        r.release(id).unwrap_or_else(|e| panic!("{what}: release {id:#x}: {e:?}"));
    }
    let st = r.stats();
    assert_eq!((st.lent, st.held, st.own_buffers, st.own_refs), (0, 0, 0, 0), "{what}: {st:?}");
}

#[test]
fn peers_killed_at_random_points_leak_nothing() {
    if std::env::var("FERRY_SHM_PEER").is_ok() {
        return;
    }
    let _serial = serial();
    let kills = env_num("FERRY_SHM_KILLS", 40);
    let seed0 = env_num("FERRY_SHM_SEED", 0x5eed);
    let (fds0, maps0) = (count_fds(), count_maps());
    let t0 = Instant::now();
    for round in 0..kills {
        let seed = seed0.wrapping_add(round.wrapping_mul(0x9E37_79B9));
        let what = format!("round {round} (seed {seed})");
        let mut rng = Rng(seed | 1);
        let (mine, theirs) = UnixStream::pair().unwrap();
        // Even rounds: the peer attaches to our region (seat 1 dies). Odd: the peer created the
        // region and we attached (seat 0, the creator, dies).
        let creator_dies = round % 2 == 1;
        let (r, mut child) = if creator_dies {
            let child = spawn_peer("create", &theirs, seed);
            drop(theirs);
            (Region::from_socket(mine.as_raw_fd(), 10_000).unwrap(), child)
        } else {
            let r = Region::create(&cfg(), None).unwrap();
            let child = spawn_peer("attach", &theirs, seed);
            drop(theirs);
            r.share(mine.as_raw_fd()).unwrap();
            (r, child)
        };
        let (mut held, mut own) = (Vec::new(), Vec::new());
        if !creator_dies {
            recv_until(&r, &mut held, MSG_PEER_JOINED, &what);
        }
        let before = rng.below(2000);
        survivor_ops(&r, &mut rng, &mut held, &mut own, before);
        let _ = child.0.kill();
        let after = rng.below(50);
        survivor_ops(&r, &mut rng, &mut held, &mut own, after);
        child.kill();
        recv_until(&r, &mut held, MSG_PEER_GONE, &what);
        settle(&r, &mut held, &mut own, &what);
        drop(r);
    }
    assert_eq!(count_fds(), fds0, "descriptors back to their start value");
    assert_eq!(count_maps(), maps0, "mappings back to their start value");
    eprintln!("shm: {kills} peers killed at random points: 0 leases leaked, 0 descriptors leaked, 0 mappings left, {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
fn a_peer_scribbling_over_the_region_gets_errors_not_a_crash() {
    if std::env::var("FERRY_SHM_PEER").is_ok() {
        return;
    }
    let _serial = serial();
    let ops = env_num("FERRY_SHM_CORRUPT_OPS", 4000);
    let (fds0, maps0) = (count_fds(), count_maps());
    for round in 0..8u64 {
        let seed = 0xbad5eed + round;
        let what = format!("scribble round {round} (seed {seed})");
        let mut rng = Rng(seed);
        let (mine, theirs) = UnixStream::pair().unwrap();
        let r = Region::create(&cfg(), None).unwrap();
        let mut child = spawn_peer("scribble", &theirs, seed);
        drop(theirs);
        r.share(mine.as_raw_fd()).unwrap();
        let (mut held, mut own) = (Vec::new(), Vec::new());
        // No wait for the join event: the scribbler may overwrite its seat word before this side
        // sees it, and then it never "joins" (an error it caused, which is allowed).
        // At least `ops` operations, and on until the scribbler has been noticed (20 s at most).
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut done = 0;
        while done < ops || (r.stats().corrupt + r.stats().invalid_ids == 0 && Instant::now() < deadline) {
            survivor_ops(&r, &mut rng, &mut held, &mut own, 200);
            done += 200;
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("{what}: the scribbler (ferry on its own garbage) exited on its own: {status:?}");
        }
        let st = r.stats();
        eprintln!("{what}: {done} operations, corrupt checks {}, invalid ids {}", st.corrupt, st.invalid_ids);
        assert!(st.corrupt + st.invalid_ids > 0, "{what}: the scribbler was never noticed");
        child.kill();
        recv_until(&r, &mut held, MSG_PEER_GONE, &what);
        settle(&r, &mut held, &mut own, &what);
    }
    assert_eq!((count_fds(), count_maps()), (fds0, maps0));
}
