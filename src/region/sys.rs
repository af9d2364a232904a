//! The Linux system calls behind regions: memfd and seals, shared mappings, eventfd doorbells,
//! epoll, Unix sockets with SCM_RIGHTS, and the 0600 name file. Every `unsafe` call of the region
//! code that is not an atomic over the mapping is here, each wrapped into a safe function that
//! returns an `io::Result` and owns what it opens (`OwnedFd`).

use std::ffi::CString;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned(r: libc::c_int) -> io::Result<OwnedFd> {
    let fd = cvt(r)?;
    // SAFETY: the call just returned `fd` as a new descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Retries `f` while it fails with EINTR.
fn retry(mut f: impl FnMut() -> libc::ssize_t) -> io::Result<usize> {
    loop {
        let r = f();
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A new memfd of `len` bytes, sealed so that nobody (the peer included) can shrink or grow it:
/// a truncated shared file would make every mapper fault (SIGBUS) on access.
pub(crate) fn memfd_sealed(len: u64) -> io::Result<OwnedFd> {
    let name = c"ferry-region";
    // SAFETY: a valid NUL-terminated name and flags; the result is checked.
    let fd =
        owned(unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) })?;
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    // SAFETY: `fd` is a memfd we own.
    cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), len) })?;
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    // SAFETY: F_ADD_SEALS on our own memfd, which allows sealing.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
    Ok(fd)
}

/// Whether `fd` is a memfd that can neither shrink nor take new seals, and its size.
pub(crate) fn sealed_size(fd: &OwnedFd) -> io::Result<(bool, u64)> {
    // SAFETY: F_GET_SEALS only reads the descriptor's seals.
    let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    let ok = seals >= 0 && seals & libc::F_SEAL_SHRINK != 0 && seals & libc::F_SEAL_SEAL != 0;
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is a writable stat buffer.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded, so it filled `st`.
    let st = unsafe { st.assume_init() };
    Ok((ok, st.st_size as u64))
}

/// A shared read-write mapping of the first `len` bytes of `fd`.
pub(crate) fn map_shared(fd: &OwnedFd, len: usize) -> io::Result<*mut u8> {
    // SAFETY: a fresh mapping chosen by the kernel; nothing existing is replaced.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p.cast())
}

/// Unmaps a mapping made by [`map_shared`].
///
/// # Safety
/// `p` and `len` must be exactly one mapping from [`map_shared`], and nothing may use it after.
pub(crate) unsafe fn unmap(p: *mut u8, len: usize) {
    // SAFETY: forwarded from the contract.
    unsafe { libc::munmap(p.cast(), len) };
}

/// A non-blocking eventfd (a doorbell).
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain flags; the result is checked.
    owned(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })
}

/// Adds 1 to an eventfd's counter, waking whoever waits on it.
pub(crate) fn eventfd_ring(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64; an error (a full counter, a closed fd) only means
    // the wake-up is already pending or nobody waits any more.
    let _ = retry(|| unsafe { libc::write(fd, (&one as *const u64).cast(), 8) });
}

/// Resets an eventfd's counter to 0 (non-blocking).
pub(crate) fn eventfd_drain(fd: RawFd) {
    let mut v: u64 = 0;
    // SAFETY: reads at most 8 bytes into a live u64; EAGAIN (already 0) is fine.
    let _ = retry(|| unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) });
}

/// A new epoll instance, non-blocking so that Go's netpoller can wait on it.
pub(crate) fn epoll() -> io::Result<OwnedFd> {
    // SAFETY: plain flags; the result is checked.
    let fd = owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    set_nonblock(fd.as_raw_fd())?;
    Ok(fd)
}

fn set_nonblock(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a descriptor we own.
    let fl = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) })?;
    Ok(())
}

/// Watches `fd` for input (level-triggered) in `ep`, reporting `token`.
pub(crate) fn epoll_add(ep: &OwnedFd, fd: RawFd, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events: (libc::EPOLLIN | libc::EPOLLRDHUP) as u32, u64: token };
    // SAFETY: a valid event struct; both descriptors are open.
    cvt(unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })?;
    Ok(())
}

/// Stops watching `fd` in `ep` (errors ignored: the fd may already be gone from the set).
pub(crate) fn epoll_del(ep: &OwnedFd, fd: RawFd) {
    // SAFETY: EPOLL_CTL_DEL ignores the event pointer on current kernels; a dummy is passed.
    let mut ev = libc::epoll_event { events: 0, u64: 0 };
    // SAFETY: as above.
    unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut ev) };
}

/// Waits up to `timeout_ms` (-1: forever, 0: just look) for events on `ep`; returns the tokens
/// and event bits, at most 8.
pub(crate) fn epoll_wait(ep: RawFd, timeout_ms: i32) -> io::Result<Vec<(u64, u32)>> {
    let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 8];
    let n = loop {
        // SAFETY: `evs` has room for 8 events.
        let r = unsafe { libc::epoll_wait(ep, evs.as_mut_ptr(), 8, timeout_ms) };
        if r >= 0 {
            break r as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
        if timeout_ms != 0 {
            // An interrupted wait returns early; the caller waits again if it wants to.
            return Ok(Vec::new());
        }
    };
    Ok(evs[..n].iter().map(|e| ({ e.u64 }, { e.events })).collect())
}

/// A connected pair of SOCK_SEQPACKET Unix sockets (a link: each end sees the other close).
pub(crate) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors.
    cvt(unsafe {
        libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr())
    })?;
    // SAFETY: socketpair returned two new descriptors that nobody else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Most descriptors one message carries.
pub(crate) const MAX_FDS: usize = 4;

/// Sends `data` with `fds` attached (SCM_RIGHTS) on a connected Unix socket.
pub(crate) fn send_fds(sock: RawFd, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    assert!(fds.len() <= MAX_FDS);
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut _, iov_len: data.len() };
    let mut cbuf = [0u64; 8]; // CMSG_SPACE(4 * 4) fits in 64 bytes, 8-aligned
                              // SAFETY: a zeroed msghdr is a valid empty one.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let fd_bytes = std::mem::size_of_val(fds) as u32;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE is a pure size computation.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(fd_bytes) } as usize;
        // SAFETY: msg_control points at `cbuf`, large enough for one header and 4 descriptors.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(fd_bytes) as usize;
            ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c).cast::<RawFd>(), fds.len());
        }
    }
    // SAFETY: `msg` points at live buffers for the whole call.
    let n = retry(|| unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) })?;
    if n != data.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "short send"));
    }
    Ok(())
}

/// Receives one message into `buf` with up to [`MAX_FDS`] descriptors; blocks unless the socket
/// is non-blocking. Returns the byte count (0 at end of stream) and the descriptors received.
pub(crate) fn recv_fds(sock: RawFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let mut cbuf = [0u64; 8];
    // SAFETY: a zeroed msghdr is a valid empty one.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf);
    // SAFETY: `msg` points at live buffers for the whole call; MSG_CMSG_CLOEXEC marks received fds.
    let n = retry(|| unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) })?;
    let mut fds = Vec::new();
    // SAFETY: walks the control messages the kernel wrote into `cbuf`, within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c).cast::<RawFd>();
                let count = ((*c).cmsg_len - libc::CMSG_LEN(0) as usize) / size_of::<RawFd>();
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "descriptors truncated"));
    }
    Ok((n, fds))
}

/// Whether a link socket has hung up (its peer closed or died), without blocking.
pub(crate) fn hung_up(sock: RawFd) -> bool {
    let mut p = libc::pollfd { fd: sock, events: libc::POLLIN | libc::POLLRDHUP, revents: 0 };
    // SAFETY: one valid pollfd, no wait.
    let r = unsafe { libc::poll(&mut p, 1, 0) };
    r > 0 && p.revents & (libc::POLLHUP | libc::POLLRDHUP | libc::POLLERR | libc::POLLNVAL) != 0
}

/// Waits up to `timeout_ms` (-1: forever) for `fd` to be readable. A signal that interrupts the
/// wait does not end it: poll is never restarted by the kernel (SA_RESTART or not), so the wait
/// resumes for the time left.
pub(crate) fn poll_in(fd: RawFd, timeout_ms: i32) -> io::Result<bool> {
    let deadline = (timeout_ms > 0)
        .then(|| std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms as u64));
    let mut wait = timeout_ms;
    loop {
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        match cvt(unsafe { libc::poll(&mut p, 1, wait) }) {
            Ok(r) => return Ok(r > 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                if let Some(d) = deadline {
                    let left = d.saturating_duration_since(std::time::Instant::now());
                    // Round up, so that the wait does not end early and report nothing.
                    wait = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// The abstract Unix-socket address for `token` (never a file: it goes when its listener does).
fn abstract_addr(token: &[u8]) -> (libc::sockaddr_un, libc::socklen_t) {
    // SAFETY: a zeroed sockaddr_un is valid.
    let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    a.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let n = token.len().min(a.sun_path.len() - 1);
    for (d, s) in a.sun_path[1..=n].iter_mut().zip(token) {
        *d = *s as libc::c_char;
    }
    let len = (size_of::<libc::sa_family_t>() + 1 + n) as libc::socklen_t;
    (a, len)
}

/// A non-blocking SOCK_SEQPACKET listener on the abstract address `token`.
pub(crate) fn listen_abstract(token: &[u8]) -> io::Result<OwnedFd> {
    // SAFETY: plain arguments; the result is checked.
    let fd = owned(unsafe {
        libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0)
    })?;
    let (a, len) = abstract_addr(token);
    // SAFETY: `a` is a valid address of `len` bytes.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), (&a as *const libc::sockaddr_un).cast(), len) })?;
    // SAFETY: listening on our own socket.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), 16) })?;
    Ok(fd)
}

/// A blocking connection to the abstract address `token`.
pub(crate) fn connect_abstract(token: &[u8]) -> io::Result<OwnedFd> {
    // SAFETY: plain arguments; the result is checked.
    let fd = owned(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) })?;
    let (a, len) = abstract_addr(token);
    // SAFETY: `a` is a valid address of `len` bytes.
    cvt(unsafe { libc::connect(fd.as_raw_fd(), (&a as *const libc::sockaddr_un).cast(), len) })?;
    Ok(fd)
}

/// Accepts one pending connection (non-blocking: `Ok(None)` when there is none).
pub(crate) fn accept(listener: RawFd) -> io::Result<Option<OwnedFd>> {
    // SAFETY: no address wanted; the result is checked.
    let r = unsafe { libc::accept4(listener, ptr::null_mut(), ptr::null_mut(), libc::SOCK_CLOEXEC) };
    match owned(r) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The user id of the process at the other end of a Unix socket.
pub(crate) fn peer_uid(sock: RawFd) -> io::Result<u32> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a writable ucred of `len` bytes.
    cvt(unsafe {
        libc::getsockopt(
            sock,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    })?;
    Ok(cred.uid)
}

/// Sets a blocking socket's receive timeout.
pub(crate) fn set_recv_timeout(sock: RawFd, ms: u64) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: (ms / 1000) as libc::time_t,
        tv_usec: ((ms % 1000) * 1000) as libc::suseconds_t,
    };
    // SAFETY: a valid timeval of the size given.
    cvt(unsafe {
        libc::setsockopt(
            sock,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// The longest region name, in bytes.
pub(crate) const MAX_NAME: usize = 200;

fn shm_name(name: &str) -> io::Result<CString> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !name.starts_with('.');
    if !ok {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    CString::new(format!("/{name}")).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Creates the name file `/dev/shm/<name>` with `mode`, exclusively, holding `content`.
pub(crate) fn name_create(name: &str, mode: u32, content: &[u8]) -> io::Result<()> {
    let c = shm_name(name)?;
    // SAFETY: a valid NUL-terminated name; the result is checked.
    let fd = owned(unsafe {
        libc::shm_open(
            c.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
            mode as libc::mode_t,
        )
    })?;
    // shm_open applies the umask: set the mode the caller asked for.
    // SAFETY: fchmod on our own descriptor.
    cvt(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) })?;
    // SAFETY: writes `content` from a live slice.
    let n = retry(|| unsafe { libc::write(fd.as_raw_fd(), content.as_ptr().cast(), content.len()) })?;
    if n != content.len() {
        name_unlink(name);
        return Err(io::Error::new(io::ErrorKind::WriteZero, "short write"));
    }
    Ok(())
}

/// Reads up to `buf.len()` bytes of the name file `name` (which enforces its mode: another user
/// gets EACCES).
pub(crate) fn name_read(name: &str, buf: &mut [u8]) -> io::Result<usize> {
    let c = shm_name(name)?;
    // SAFETY: a valid NUL-terminated name; the result is checked.
    let fd = owned(unsafe { libc::shm_open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC, 0) })?;
    // SAFETY: reads into a live buffer of the given size.
    retry(|| unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) })
}

/// Removes the name file (errors ignored).
pub(crate) fn name_unlink(name: &str) {
    if let Ok(c) = shm_name(name) {
        // SAFETY: a valid NUL-terminated name.
        unsafe { libc::shm_unlink(c.as_ptr()) };
    }
}

/// `n` random bytes from the kernel.
pub(crate) fn random(buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: writes into the unfilled tail of `buf`.
        let r = unsafe { libc::getrandom(buf[done..].as_mut_ptr().cast(), buf.len() - done, 0) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        done += r as usize;
    }
    Ok(())
}

/// This process's id.
pub(crate) fn pid() -> u32 {
    std::process::id()
}

/// Whether a process with this pid exists (a recycled pid counts as alive).
pub(crate) fn alive(pid: u32) -> bool {
    let Ok(p) = libc::pid_t::try_from(pid) else { return false };
    if p <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(p, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// This process's effective user id.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}
