//! Pages of their own for large buffers, so that released memory goes back to the system.
//!
//! A buffer of [`MAP_MIN`] bytes or more is a private anonymous mapping rather than a malloc block.
//! glibc's malloc keeps freed blocks in per-thread arenas, and after the first large free it raises
//! its mmap threshold (up to 32 MiB) so that later large blocks come from those arenas too: a Go
//! program that dropped 8 GiB of 1 MiB buffers at a 64 MiB soft limit held 128 MiB of live bytes
//! and 280-390 MiB of RSS. A mapping goes back to the system with `munmap`.
//!
//! A fresh mapping pays a page fault on the first touch of each page (30-40 times the cost of
//! reusing warm malloc memory on the machine this was measured on, `make bench-pages`), so a
//! mapping for a copy is faulted in whole when it is made (`MAP_POPULATE`, 0.6-0.75 times the cost
//! of faulting page by page), and released mappings are kept in a cache for reuse, within two
//! bounds:
//! - the cache holds at most [`CACHE_MIN`] bytes or half the bytes of the live mappings, whichever
//!   is larger (checked at every release, oldest mappings unmapped first), so the RSS of large
//!   buffers stays within 1.5 x their live bytes + [`CACHE_MIN`];
//! - a request that finds no cached mapping of its size first unmaps as many cached bytes as it is
//!   about to map, so a fresh mapping replaces cached bytes rather than adding to them, and the RSS
//!   of large buffers never exceeds the peak of their live bytes (plus the slack of reuse below).
//!
//! A request reuses a cached mapping of its own size up to a quarter larger. Mappings of
//! [`HUGE_MIN`] bytes or more start on a 2 MiB boundary and are advised for transparent huge pages
//! (`MADV_HUGEPAGE`), so that their first touch faults 2 MiB at a time.

use std::collections::VecDeque;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

/// Buffers of at least this many bytes get a mapping of their own; smaller ones come from malloc.
pub(crate) const MAP_MIN: usize = 256 << 10;
/// Mappings of at least this many bytes start on a [`HUGE_ALIGN`] boundary and are advised for
/// transparent huge pages.
pub(crate) const HUGE_MIN: usize = 2 << 20;
/// The size and alignment of a transparent huge page on x86-64 (and arm64 with 4 KiB pages).
const HUGE_ALIGN: usize = 2 << 20;
/// The cache may always hold this many bytes of released mappings (more while more is live).
pub(crate) const CACHE_MIN: usize = 32 << 20;
/// The most mappings the cache holds (a lookup scans them under the cache's lock).
const CACHE_ENTRIES: usize = 1024;

/// A mapping: its first byte and its length.
struct Map(*mut u8, usize);

// SAFETY: a Map is the address of pages that only the cache (or the one being unmapped) refers to;
// moving it to another thread moves nothing but the address.
unsafe impl Send for Map {}

/// Released mappings kept for reuse, oldest first, with their total length.
struct Cache {
    maps: VecDeque<Map>,
    bytes: usize,
}

/// The mappings handed out and the cache of released ones. The process has one ([`POOL`]); tests
/// make their own.
pub(crate) struct Pool {
    cache: Mutex<Cache>,
    /// Bytes of the mappings handed out by [`Pool::allocate`] and not yet released.
    live: AtomicUsize,
}

/// The process's mappings.
pub(crate) static POOL: Pool = Pool::new();

/// The system's page size.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// A private anonymous read-write mapping of `len` bytes (`len > 0`), zero-filled, or `None` when
/// the system refuses one. `populate` faults every page in at once (`MAP_POPULATE`), for memory
/// that is about to be written whole.
pub(crate) fn map(len: usize, populate: bool) -> Option<*mut u8> {
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | if populate { libc::MAP_POPULATE } else { 0 };
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches no memory
    // we own.
    let p = unsafe { libc::mmap(ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0) };
    (p != libc::MAP_FAILED).then_some(p.cast())
}

/// Unmaps `len` bytes at `p`.
///
/// # Safety
/// `p..p + len` must be whole pages of mappings made by [`map`] that nothing uses any more.
unsafe fn unmap(p: *mut u8, len: usize) {
    // SAFETY: forwarded from this function's contract. munmap fails only for a range the contract
    // excludes, so its result carries no information.
    unsafe { libc::munmap(p.cast(), len) };
}

impl Pool {
    const fn new() -> Pool {
        Pool {
            cache: parking_lot::const_mutex(Cache { maps: VecDeque::new(), bytes: 0 }),
            live: AtomicUsize::new(0),
        }
    }

    /// A mapping of at least `len` bytes (`len > 0`), zero-filled when `zeroed`: its address and
    /// length, to be handed to [`Pool::release`]. `None` when the system refuses a mapping (out of
    /// memory, or out of mappings: `vm.max_map_count`).
    pub(crate) fn allocate(&self, len: usize, zeroed: bool) -> Option<(*mut u8, usize)> {
        let page = page_size();
        let map_len = len.checked_add(page - 1)? / page * page;
        let (p, map_len) = match self.take_cached(map_len) {
            Ok((p, got)) => {
                if zeroed {
                    // SAFETY: the cached mapping has `got >= len` writable bytes, and it is ours alone.
                    unsafe { ptr::write_bytes(p, 0, len) };
                }
                (p, got)
            }
            Err(evicted) => {
                unmap_all(evicted);
                // A copy writes every page at once: faulting them in with the mapping costs less
                // (0.6-0.75x). A zeroed buffer is left to fault on first touch, page by page.
                let p = if map_len >= HUGE_MIN { map_huge(map_len)? } else { map(map_len, !zeroed)? };
                (p, map_len)
            }
        };
        self.live.fetch_add(map_len, Ordering::Relaxed);
        Some((p, map_len))
    }

    /// Gives back a mapping made by [`Pool::allocate`]: keeps it in the cache (unmapping the oldest
    /// cached mappings past the cache's bound) or unmaps it.
    ///
    /// # Safety
    /// `p` and `map_len` must come from one `allocate` call on this pool, and nothing may use the
    /// memory after.
    pub(crate) unsafe fn release(&self, p: *mut u8, map_len: usize) {
        let live = self.live.fetch_sub(map_len, Ordering::Relaxed) - map_len;
        let bound = CACHE_MIN.max(live / 2);
        let mut evicted = Vec::new();
        if map_len <= bound {
            let mut c = self.cache.lock();
            c.maps.push_back(Map(p, map_len));
            c.bytes += map_len;
            while c.bytes > bound || c.maps.len() > CACHE_ENTRIES {
                let Some(m) = c.maps.pop_front() else { break };
                c.bytes -= m.1;
                evicted.push(m);
            }
        } else {
            evicted.push(Map(p, map_len));
        }
        unmap_all(evicted);
    }

    /// Takes the most recently cached mapping of `map_len` bytes up to a quarter more out of the cache.
    /// When there is none, takes out the oldest mappings until they hold `map_len` bytes (or the cache
    /// is empty) and returns them to be unmapped.
    fn take_cached(&self, map_len: usize) -> Result<(*mut u8, usize), Vec<Map>> {
        let most = map_len + map_len / 4;
        let mut c = self.cache.lock();
        if let Some(i) = c.maps.iter().rposition(|m| m.1 >= map_len && m.1 <= most) {
            if let Some(Map(p, n)) = c.maps.remove(i) {
                c.bytes -= n;
                return Ok((p, n));
            }
        }
        let mut evicted = Vec::new();
        let mut freed = 0;
        while freed < map_len {
            let Some(m) = c.maps.pop_front() else { break };
            c.bytes -= m.1;
            freed += m.1;
            evicted.push(m);
        }
        Err(evicted)
    }

    /// The bytes the cache holds and the bytes handed out.
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        (self.cache.lock().bytes, self.live.load(Ordering::Relaxed))
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let c = self.cache.get_mut();
        c.bytes = 0;
        unmap_all(c.maps.drain(..).collect());
    }
}

/// A fresh mapping of `len` bytes (whole pages) that starts on a [`HUGE_ALIGN`] boundary, advised
/// for transparent huge pages.
fn map_huge(len: usize) -> Option<*mut u8> {
    // Map one huge page more than needed, then cut away the unaligned head and the rest of the tail.
    let total = len.checked_add(HUGE_ALIGN)?;
    let p = map(total, false)?;
    let head = (HUGE_ALIGN - p as usize % HUGE_ALIGN) % HUGE_ALIGN;
    // SAFETY: `head < HUGE_ALIGN` and both `head` and `len` are whole pages (`p` is page-aligned and
    // so is HUGE_ALIGN), so `p + head .. p + head + len` lies inside the mapping of `total` bytes,
    // and the head and tail cut away are whole pages of it that nothing has seen.
    unsafe {
        let a = p.add(head);
        if head > 0 {
            unmap(p, head);
        }
        unmap(a.add(len), HUGE_ALIGN - head);
        // Advice only: where transparent huge pages are off the range keeps its small pages.
        libc::madvise(a.cast(), len, libc::MADV_HUGEPAGE);
        Some(a)
    }
}

/// Unmaps mappings taken out of the cache (or, from [`Pool::release`], the one being released).
fn unmap_all(maps: Vec<Map>) {
    for Map(p, n) in maps {
        // SAFETY: each mapping came from `allocate` and was taken out of the cache, its only user
        // (or is the one being released, which nothing uses any more).
        unsafe { unmap(p, n) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    fn bytes<'a>(p: *mut u8, len: usize) -> &'a mut [u8] {
        // SAFETY: every caller passes a mapping of at least `len` bytes that it holds.
        unsafe { std::slice::from_raw_parts_mut(p, len) }
    }

    #[test]
    fn zeroed_mappings_are_zero_also_when_reused() {
        let pool = Pool::new();
        let len = 300 << 10;
        let (p, n) = pool.allocate(len, true).unwrap();
        assert_eq!(n, len.div_ceil(page_size()) * page_size());
        assert!(bytes(p, len).iter().all(|&b| b == 0));
        bytes(p, n).fill(0xFF);
        // SAFETY: from this pool's allocate, not used after.
        unsafe { pool.release(p, n) };
        assert_eq!(pool.held(), (n, 0));
        let (q, m) = pool.allocate(len - 1000, true).unwrap();
        assert_eq!((q, m), (p, n), "the released mapping is reused");
        assert!(bytes(q, len - 1000).iter().all(|&b| b == 0));
        // SAFETY: as above.
        unsafe { pool.release(q, m) };
        // Uninitialised requests get the cached mapping as it is, and take it out of the cache.
        let (r, k) = pool.allocate(len, false).unwrap();
        assert_eq!((r, k), (p, n));
        assert_eq!(pool.held(), (0, n));
        // SAFETY: as above.
        unsafe { pool.release(r, k) };
    }

    #[test]
    fn only_a_close_size_is_reused() {
        let pool = Pool::new();
        let (p, n) = pool.allocate(MIB, false).unwrap();
        // SAFETY: from this pool's allocate, not used after.
        unsafe { pool.release(p, n) };
        // Over a quarter smaller: a fresh mapping, and the cached one is unmapped to make room.
        let (q, m) = pool.allocate(MIB / 2, false).unwrap();
        assert_eq!(m, MIB / 2);
        assert_eq!(pool.held(), (0, MIB / 2));
        // SAFETY: as above.
        unsafe { pool.release(q, m) };
    }

    #[test]
    fn the_cache_holds_at_most_its_minimum_or_half_the_live_bytes() {
        let pool = Pool::new();
        // 200 mappings of 1 MiB (never touched, so they cost address space only), then released
        // one by one: after every release the cache holds no more than the bound.
        let maps: Vec<_> = (0..200).map(|_| pool.allocate(MIB, false).unwrap()).collect();
        assert_eq!(pool.held(), (0, 200 * MIB));
        let mut most = 0;
        for (p, n) in maps {
            // SAFETY: from this pool's allocate, not used after.
            unsafe { pool.release(p, n) };
            let (cached, live) = pool.held();
            assert!(cached <= CACHE_MIN.max(live / 2), "{cached} cached with {live} live");
            most = most.max(cached);
        }
        // Half the live bytes was the larger bound for a while: at most 200/3 MiB were cached.
        assert!(most > CACHE_MIN && most <= 200 * MIB / 3 + MIB, "at most {most} cached");
        assert_eq!(pool.held(), (CACHE_MIN, 0));
    }

    #[test]
    fn a_fresh_mapping_replaces_cached_bytes() {
        let pool = Pool::new();
        let maps: Vec<_> = (0..8).map(|_| pool.allocate(MIB, false).unwrap()).collect();
        for (p, n) in maps {
            // SAFETY: from this pool's allocate, not used after.
            unsafe { pool.release(p, n) };
        }
        assert_eq!(pool.held(), (8 * MIB, 0));
        // No cached mapping fits 3 MiB: three cached ones are unmapped before it is mapped, so the
        // pool never holds more than the 8 MiB it held at its peak.
        let (p, n) = pool.allocate(3 * MIB, false).unwrap();
        assert_eq!(pool.held(), (5 * MIB, 3 * MIB));
        // SAFETY: as above.
        unsafe { pool.release(p, n) };
    }

    #[test]
    fn large_mappings_start_on_a_huge_page_boundary() {
        let pool = Pool::new();
        let len = HUGE_MIN + 3 * page_size();
        let (p, n) = pool.allocate(len, true).unwrap();
        assert_eq!(p as usize % HUGE_ALIGN, 0);
        assert_eq!(n, len, "the length is not rounded up to huge pages");
        let b = bytes(p, n);
        assert!(b[0] == 0 && b[n - 1] == 0);
        b[0] = 1;
        b[n - 1] = 1;
        // SAFETY: from this pool's allocate, not used after.
        unsafe { pool.release(p, n) };
    }
}
