//! Owned byte storage with a stable address.
//!
//! A [`Buffer`] never moves or reallocates its bytes: the address handed out with an id stays valid
//! until the buffer is dropped, which happens when the last id (or [`BufferRef`]) over it goes away.
//! An empty buffer has a null pointer; nothing ever hands out a dangling non-null pointer.

use std::alloc::{self, Layout};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Error;
use crate::pages;
use crate::refcount::RefCount;
use crate::stats::Counters;

/// Largest buffer ferry creates or adopts: 1 TiB. Anything larger is [`Error::TooLarge`]; the bound
/// keeps every length well inside what Go's `unsafe.Slice` and C's `ptrdiff_t` accept.
pub const MAX_LEN: usize = 1 << 40;

/// Byte poured over a lent `Vec<u8>` before ferry frees it in guard mode (see [`set_guard_mode`]).
pub const POISON: u8 = 0xA5;

static GUARD_MODE: AtomicBool = AtomicBool::new(false);

/// Turns guard mode on or off for buffers created from now on.
///
/// In guard mode ferry allocates each zeroed or copied buffer with its own `mmap`, and when the last
/// id over it is released the pages are made inaccessible (`PROT_NONE`) and never reused, so a view
/// used after release faults at once instead of reading recycled memory. A lent `Vec<u8>` is
/// overwritten with [`POISON`] before ferry frees it. Adopted memory (`Table::adopt_raw`,
/// `ferry_buffer_adopt`) belongs to someone else and is never written by ferry, in guard mode or
/// not: it goes back to its owner (or stays where it is, without a release function) exactly as
/// the last holder left it, and a refused adoption leaves it untouched. Guard mode leaks address
/// space by design; it is for debugging (Go's `ferrydebug` tag).
pub fn set_guard_mode(on: bool) {
    GUARD_MODE.store(on, Ordering::SeqCst);
}

/// Reports whether guard mode is on.
pub fn guard_mode() -> bool {
    GUARD_MODE.load(Ordering::Relaxed)
}

/// Where a buffer's bytes came from, and so how they go back.
enum Storage {
    /// Length 0: no memory at all.
    Empty,
    /// In the same allocation as the buffer's reference count (a [`BufferRef`] block): one
    /// allocation per buffer for every size below [`pages::MAP_MIN`]. Freed with the block.
    Inline,
    /// Allocated by ferry with the global allocator, `Layout::array::<u8>(len)` (below
    /// [`pages::MAP_MIN`] bytes).
    Heap,
    /// Allocated by ferry as pages of its own (from [`pages::MAP_MIN`] bytes up): a mapping of
    /// `map_len` bytes from [`pages::POOL`], given back to it on drop.
    Mapped { map_len: usize },
    /// An adopted `Vec<u8>`: the bytes go back through `Vec::from_raw_parts(ptr, len, cap)`.
    /// `poison` records whether guard mode was on at creation.
    Vec { cap: usize, poison: bool },
    /// Guard mode: a private anonymous mapping of `map_len` bytes, protected (not unmapped) on drop.
    Guarded { map_len: usize },
    /// Memory that belongs to someone else; the closure hands it back and runs exactly once. ferry
    /// never writes these bytes itself (they may be read-only), in guard mode or not.
    Foreign { release: Option<Box<dyn FnOnce() + Send>> },
}

/// Owned bytes at a stable address, shared by counted [`BufferRef`]s.
///
/// Writers and readers outside Rust (Go, C) reach the bytes through the raw pointer; Rust code reads
/// them through [`BufferRef::as_bytes`]. Like any shared memory, a write that races a read is the
/// writer's bug: ferry hands out the address, it does not arbitrate access to the bytes.
pub struct Buffer {
    ptr: *mut u8,
    len: usize,
    storage: Storage,
    counters: &'static Counters,
}

// SAFETY: the buffer exclusively owns its allocation (or the foreign owner promised it stays valid
// until the release closure runs, and that closure is `Send`); the raw pointer is just an address.
unsafe impl Send for Buffer {}
// SAFETY: `&Buffer` only exposes the address and length; byte access goes through `BufferRef`, whose
// contract (no concurrent foreign writes while reading) is documented above.
unsafe impl Sync for Buffer {}

impl Buffer {
    fn empty(counters: &'static Counters) -> Buffer {
        Buffer { ptr: ptr::null_mut(), len: 0, storage: Storage::Empty, counters }
    }

    /// A zeroed buffer of `len` bytes. Counts against the live-byte limit in `counters`.
    pub(crate) fn zeroed(len: usize, counters: &'static Counters) -> Result<Buffer, Error> {
        if len == 0 {
            return Ok(Buffer::empty(counters));
        }
        check_len(len)?;
        counters.reserve(len)?;
        let made = if guard_mode() { guarded(len) } else { heap_zeroed(len) };
        match made {
            Some((ptr, storage)) => Ok(Buffer { ptr, len, storage, counters }),
            None => {
                counters.unreserve(len);
                Err(Error::AllocFailed)
            }
        }
    }

    /// A buffer holding a copy of `src`.
    pub(crate) fn copied(src: &[u8], counters: &'static Counters) -> Result<Buffer, Error> {
        if src.is_empty() {
            return Ok(Buffer::empty(counters));
        }
        check_len(src.len())?;
        counters.reserve(src.len())?;
        let made = if guard_mode() { guarded(src.len()) } else { heap_uninit(src.len()) };
        match made {
            Some((ptr, storage)) => {
                // SAFETY: `ptr` is a fresh allocation of `src.len()` bytes that cannot overlap `src`.
                unsafe { ptr::copy_nonoverlapping(src.as_ptr(), ptr, src.len()) };
                Ok(Buffer { ptr, len: src.len(), storage, counters })
            }
            None => {
                counters.unreserve(src.len());
                Err(Error::AllocFailed)
            }
        }
    }

    /// Adopts a `Vec<u8>` without copying. On error the vector is dropped.
    pub(crate) fn from_vec(v: Vec<u8>, counters: &'static Counters) -> Result<Buffer, Error> {
        if v.is_empty() {
            return Ok(Buffer::empty(counters));
        }
        check_len(v.len())?;
        counters.reserve(v.len())?;
        let mut v = std::mem::ManuallyDrop::new(v);
        let (ptr, len, cap) = (v.as_mut_ptr(), v.len(), v.capacity());
        Ok(Buffer { ptr, len, storage: Storage::Vec { cap, poison: guard_mode() }, counters })
    }

    /// Adopts foreign memory; `release` runs once when the buffer is dropped. ferry never writes the
    /// bytes itself.
    ///
    /// On error `release` is dropped without being called: the caller still owns the memory.
    ///
    /// # Safety
    /// `ptr` must be valid for reads of `len` bytes (or anything if `len` is 0), and for writes if
    /// anyone writes through a view, until `release` runs, and nothing else may free it before then.
    pub(crate) unsafe fn foreign(
        ptr: *mut u8,
        len: usize,
        release: Box<dyn FnOnce() + Send>,
        counters: &'static Counters,
    ) -> Result<Buffer, Error> {
        check_len(len)?;
        counters.reserve(len)?;
        let ptr = if len == 0 { ptr::null_mut() } else { ptr };
        Ok(Buffer { ptr, len, storage: Storage::Foreign { release: Some(release) }, counters })
    }

    /// Takes the release closure out of adopted memory without calling it: when the buffer is
    /// dropped, its bytes go back to the counters and the adopter owns the memory again. Used when
    /// an adopt fails after the buffer was built.
    pub(crate) fn disown(&mut self) {
        if let Storage::Foreign { release } = &mut self.storage {
            drop(release.take());
        }
    }

    /// The first byte, or null when the buffer is empty.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Reports whether the buffer holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        let (ptr, len) = (self.ptr, self.len);
        match std::mem::replace(&mut self.storage, Storage::Empty) {
            Storage::Empty | Storage::Inline => {}
            Storage::Heap => {
                // SAFETY: `ptr` came from `alloc`/`alloc_zeroed` with exactly this layout (see heap_*).
                unsafe { alloc::dealloc(ptr, Layout::array::<u8>(len).expect("checked at creation")) }
            }
            Storage::Vec { cap, poison } => {
                if poison {
                    // SAFETY: we own the vector's `len` initialised bytes until it is rebuilt below.
                    unsafe { ptr::write_bytes(ptr, POISON, len) };
                }
                // SAFETY: these are the raw parts taken from a live Vec<u8> in `from_vec`, untouched since.
                drop(unsafe { Vec::from_raw_parts(ptr, len, cap) });
            }
            Storage::Mapped { map_len } => {
                // SAFETY: `ptr` and `map_len` came from one `pages::POOL.allocate` call, and the last owner
                // of the buffer is being dropped, so nothing uses the memory any more.
                unsafe { pages::POOL.release(ptr, map_len) }
            }
            Storage::Guarded { map_len } => unguard(ptr, map_len),
            Storage::Foreign { release } => {
                // Not poisoned, even in guard mode: the bytes are the owner's (see set_guard_mode).
                if let Some(release) = release {
                    release();
                }
            }
        }
        self.counters.unreserve(len);
    }
}

fn check_len(len: usize) -> Result<(), Error> {
    if len > MAX_LEN {
        Err(Error::TooLarge)
    } else {
        Ok(())
    }
}

fn heap_zeroed(len: usize) -> Option<(*mut u8, Storage)> {
    if len >= pages::MAP_MIN {
        if let Some((p, map_len)) = pages::POOL.allocate(len, true) {
            return Some((p, Storage::Mapped { map_len }));
        } // out of mappings (vm.max_map_count), perhaps not of memory: malloc may still have some
    }
    let layout = Layout::array::<u8>(len).ok()?;
    // SAFETY: `len > 0`, so the layout has a non-zero size.
    let p = unsafe { alloc::alloc_zeroed(layout) };
    (!p.is_null()).then_some((p, Storage::Heap))
}

fn heap_uninit(len: usize) -> Option<(*mut u8, Storage)> {
    if len >= pages::MAP_MIN {
        if let Some((p, map_len)) = pages::POOL.allocate(len, false) {
            return Some((p, Storage::Mapped { map_len }));
        }
    }
    let layout = Layout::array::<u8>(len).ok()?;
    // SAFETY: `len > 0`, so the layout has a non-zero size; the caller initialises every byte.
    let p = unsafe { alloc::alloc(layout) };
    (!p.is_null()).then_some((p, Storage::Heap))
}

/// Guard mode: a fresh zero-filled mapping rounded up to whole pages.
fn guarded(len: usize) -> Option<(*mut u8, Storage)> {
    let page = pages::page_size();
    let map_len = len.checked_add(page - 1)? / page * page;
    Some((pages::map(map_len, false)?, Storage::Guarded { map_len }))
}

/// Guard mode release: give the pages back to the kernel, then make the range fault on any access.
/// The range stays reserved forever so no later allocation can land there.
fn unguard(ptr: *mut u8, map_len: usize) {
    // SAFETY: `ptr..ptr+map_len` is the mapping made in `guarded`, and no Rust reference points into it
    // any more (the last owner is being dropped).
    unsafe {
        libc::madvise(ptr.cast(), map_len, libc::MADV_DONTNEED);
        libc::mprotect(ptr.cast(), map_len, libc::PROT_NONE);
    }
}

/// A buffer and the count of its references, on the heap. For a buffer with [`Storage::Inline`]
/// the bytes follow in the same allocation ([`inline_layout`]).
#[repr(C)]
struct Block {
    refs: RefCount,
    buf: Buffer,
}

/// Alignment of inline bytes: what malloc gives a standalone allocation on 64-bit targets.
const INLINE_ALIGN: usize = 16;

/// The layout of a block with `len` inline bytes, and the offset of the bytes in it.
/// The largest block (header and bytes) that a zeroed create takes from malloc and zeroes itself:
/// glibc's per-thread cache holds chunks up to 1,032 bytes.
const SMALL_ZEROED: usize = 1024;

fn inline_layout(len: usize) -> Option<(Layout, usize)> {
    let (l, off) = Layout::new::<Block>().extend(Layout::from_size_align(len, INLINE_ALIGN).ok()?).ok()?;
    Some((l.pad_to_align(), off))
}

/// A counted reference to a range of a buffer, for Rust code that works on the bytes (a worker
/// hashing a buffer, say). It keeps the memory alive on its own: the bytes stay valid while the
/// `BufferRef` lives, even after every id over them is released.
///
/// It is a thin pointer to a block holding the buffer and its reference count (like an `Arc`,
/// whose protocol [`RefCount`] follows, model-checked in `tests/loom_model`); a buffer ferry
/// allocates below [`pages::MAP_MIN`] bytes lives in that same block, so creating it is one
/// allocation. Dropping the only reference frees the block without an atomic read-modify-write.
pub struct BufferRef {
    block: NonNull<Block>,
    pub(crate) off: usize,
    pub(crate) len: usize,
}

// SAFETY: a BufferRef is a counted reference to a `Buffer`, which is Send + Sync; the count is
// atomic, and the block is freed only by the holder that drops the last reference.
unsafe impl Send for BufferRef {}
// SAFETY: as above; `&BufferRef` only reads the block.
unsafe impl Sync for BufferRef {}

impl BufferRef {
    /// The first reference to `buf`, in a block of its own.
    pub(crate) fn new(buf: Buffer) -> BufferRef {
        let len = buf.len;
        let block = Box::new(Block { refs: RefCount::one(), buf });
        BufferRef { block: NonNull::from(Box::leak(block)), off: 0, len }
    }

    /// A zeroed buffer of `len` bytes; inline for sizes ferry allocates from the heap.
    pub(crate) fn zeroed(len: usize, counters: &'static Counters) -> Result<BufferRef, Error> {
        if len == 0 || len >= pages::MAP_MIN || guard_mode() {
            return Ok(BufferRef::new(Buffer::zeroed(len, counters)?));
        }
        BufferRef::inline(len, counters, None)
    }

    /// A buffer holding a copy of `src`; inline for sizes ferry allocates from the heap.
    pub(crate) fn copied(src: &[u8], counters: &'static Counters) -> Result<BufferRef, Error> {
        let len = src.len();
        if len == 0 || len >= pages::MAP_MIN || guard_mode() {
            return Ok(BufferRef::new(Buffer::copied(src, counters)?));
        }
        // SAFETY: `fill` gets the block's `len` fresh bytes, which cannot overlap `src`.
        BufferRef::inline(len, counters, Some(src))
    }

    /// A block with `len` inline bytes, a copy of `src` (which has `len` bytes) or zeroes, counted
    /// against `counters`.
    fn inline(len: usize, counters: &'static Counters, src: Option<&[u8]>) -> Result<BufferRef, Error> {
        check_len(len)?;
        counters.reserve(len)?;
        let Some((layout, off)) = inline_layout(len) else {
            counters.unreserve(len);
            return Err(Error::AllocFailed);
        };
        // Small blocks are zeroed here rather than by calloc: glibc's calloc skips the per-thread
        // cache that malloc and free use, and costs about 200 more instructions per create+release
        // pair at 64 B (callgrind). Larger ones keep calloc, which can skip zeroing fresh pages.
        let memset = src.is_some() || layout.size() <= SMALL_ZEROED;
        // SAFETY: the layout has a non-zero size (it holds a Block).
        let p = unsafe {
            if memset {
                alloc::alloc(layout)
            } else {
                alloc::alloc_zeroed(layout)
            }
        };
        let Some(block) = NonNull::new(p.cast::<Block>()) else {
            counters.unreserve(len);
            return Err(Error::AllocFailed);
        };
        // SAFETY: `p..p+layout.size()` is ours: the Block goes at its start, `len` bytes at `off`;
        // `src` is other memory of `len` bytes.
        unsafe {
            let bytes = p.add(off);
            match src {
                Some(src) => ptr::copy_nonoverlapping(src.as_ptr(), bytes, len),
                None if memset => ptr::write_bytes(bytes, 0, len),
                None => {}
            }
            block.as_ptr().write(Block {
                refs: RefCount::one(),
                buf: Buffer { ptr: bytes, len, storage: Storage::Inline, counters },
            });
        }
        Ok(BufferRef { block, off: 0, len })
    }

    fn buf(&self) -> &Buffer {
        // SAFETY: this reference keeps the block alive.
        unsafe { &self.block.as_ref().buf }
    }

    /// Takes the release closure out of adopted memory without calling it, and drops the buffer,
    /// giving its bytes back to the counters: the adopter owns the memory again. Used when an adopt
    /// fails after the buffer was built; `self` must be the only reference.
    pub(crate) fn disown(self) {
        // SAFETY: this reference keeps the block alive, and it is the only one (checked), so nobody
        // else reads the buffer while its release closure is taken out.
        let b = unsafe { &mut *self.block.as_ptr() };
        assert!(b.refs.is_unique(), "disown of a shared buffer");
        b.buf.disown();
    }

    /// The first byte of the range, or null when the range is empty.
    #[inline]
    pub fn as_ptr(&self) -> *mut u8 {
        if self.len == 0 {
            ptr::null_mut()
        } else {
            // SAFETY: `off + len <= buf.len()` is an invariant of every BufferRef, so this stays in bounds.
            unsafe { self.buf().as_ptr().add(self.off) }
        }
    }

    /// The length of the range in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Reports whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes of the range. Writers outside Rust must not write them while this borrow lives.
    pub fn as_bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: the range is in bounds and initialised, and `self` keeps it alive for the borrow.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len) }
    }

    /// A reference to a sub-range, checked like [`crate::Table::slice`].
    pub fn slice(&self, off: usize, len: usize) -> Result<BufferRef, Error> {
        let end = off.checked_add(len).ok_or(Error::Overflow)?;
        if end > self.len {
            return Err(Error::OutOfRange);
        }
        let mut r = self.clone();
        (r.off, r.len) = (self.off + off, len);
        Ok(r)
    }
}

impl Clone for BufferRef {
    fn clone(&self) -> BufferRef {
        // SAFETY: this reference keeps the block alive.
        unsafe { self.block.as_ref() }.refs.acquire();
        BufferRef { block: self.block, off: self.off, len: self.len }
    }
}

impl Drop for BufferRef {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: this reference keeps the block alive until it is given up here.
        if unsafe { self.block.as_ref() }.refs.release() {
            free_block(self.block);
        }
    }
}

/// Drops the buffer in `block` (its storage and its bytes' count) and frees the block.
#[cold]
fn free_block(block: NonNull<Block>) {
    // SAFETY: the caller gave up the last reference: nobody else can reach the block. The layout
    // is the one it was allocated with (inline: from its length; otherwise a plain Box).
    unsafe {
        let b = block.as_ptr();
        let inline = matches!((*b).buf.storage, Storage::Inline);
        let len = (*b).buf.len;
        ptr::drop_in_place(b);
        let layout =
            if inline { inline_layout(len).expect("allocated with it").0 } else { Layout::new::<Block>() };
        alloc::dealloc(b.cast(), layout);
    }
}

impl std::fmt::Debug for BufferRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferRef").field("ptr", &self.as_ptr()).field("len", &self.len).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Counters;

    fn counters() -> &'static Counters {
        Box::leak(Box::new(Counters::new()))
    }

    /// A reference to `len` bytes at `off` of `b`.
    fn sref(b: Buffer, off: usize, len: usize) -> BufferRef {
        let mut r = BufferRef::new(b);
        (r.off, r.len) = (off, len);
        r
    }

    /// Guard mode is process-wide: a test that turns it on, or that looks at which storage a buffer
    /// got, holds this lock.
    static GUARD_LOCK: parking_lot::Mutex<()> = parking_lot::const_mutex(());

    /// Guard mode on until dropped.
    struct GuardOn(#[allow(dead_code)] parking_lot::MutexGuard<'static, ()>);

    fn guard_on() -> GuardOn {
        let g = GuardOn(GUARD_LOCK.lock());
        set_guard_mode(true);
        g
    }

    impl Drop for GuardOn {
        fn drop(&mut self) {
            set_guard_mode(false);
        }
    }

    /// A buffer over `mem` with a release that only counts.
    fn adopted(mem: *mut u8, len: usize, released: &'static std::sync::atomic::AtomicUsize) -> Buffer {
        // SAFETY: every caller's memory outlives the buffer (it is static, or dropped after it).
        unsafe {
            Buffer::foreign(
                mem,
                len,
                Box::new(move || {
                    released.fetch_add(1, Ordering::SeqCst);
                }),
                counters(),
            )
        }
        .unwrap()
    }

    #[test]
    fn guard_mode_never_writes_adopted_memory() {
        use std::sync::atomic::AtomicUsize;
        static RELEASED: AtomicUsize = AtomicUsize::new(0);
        // An immutable static lives in read-only pages: a write to it would kill the process.
        static CONST_DATA: [u8; 8192] = [9; 8192];
        let _guard = guard_on();

        drop(adopted(CONST_DATA.as_ptr().cast_mut(), CONST_DATA.len(), &RELEASED));
        assert!(CONST_DATA.iter().all(|&b| b == 9));

        // Writable memory comes back as the last holder left it, to the release function...
        let mut mem = vec![7u8; 4096];
        let b = adopted(mem.as_mut_ptr(), mem.len(), &RELEASED);
        // SAFETY: the buffer holds 4096 bytes at `mem`, which outlives it.
        unsafe { *b.as_ptr().add(10) = 3 };
        drop(b);
        assert_eq!(RELEASED.load(Ordering::SeqCst), 2);
        assert!(mem.iter().enumerate().all(|(i, &b)| b == if i == 10 { 3 } else { 7 }));

        // ...and a refused adoption (the table disowns the buffer) leaves it untouched, unreleased.
        let mut b = adopted(mem.as_mut_ptr(), mem.len(), &RELEASED);
        b.disown();
        drop(b);
        assert_eq!(RELEASED.load(Ordering::SeqCst), 2);
        assert!(mem.iter().enumerate().all(|(i, &b)| b == if i == 10 { 3 } else { 7 }));
    }

    #[test]
    fn large_buffers_get_pages_of_their_own() {
        let _no_guard = GUARD_LOCK.lock();
        let c = counters();
        let small = Buffer::zeroed(pages::MAP_MIN - 1, c).unwrap();
        assert!(matches!(small.storage, Storage::Heap));
        for len in [pages::MAP_MIN, 1 << 20, pages::HUGE_MIN + 5] {
            let b = Buffer::zeroed(len, c).unwrap();
            assert!(matches!(b.storage, Storage::Mapped { map_len } if map_len >= len));
            let r = sref(b, 0, len);
            assert!(r.as_bytes().iter().all(|&b| b == 0));
            // SAFETY: the buffer holds `len` bytes, and `r` is the only reference to them.
            unsafe { ptr::write_bytes(r.as_ptr(), 0xEE, len) };
            drop(r);
            // The next one may reuse those pages: it is zeroed all the same.
            let again = sref(Buffer::zeroed(len, c).unwrap(), 0, len);
            assert!(again.as_bytes().iter().all(|&b| b == 0));
            let src: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let cp = Buffer::copied(&src, c).unwrap();
            assert!(matches!(cp.storage, Storage::Mapped { .. }));
            assert_eq!(sref(cp, 0, len).as_bytes(), &src[..]);
        }
        drop(small);
        assert_eq!(c.snapshot().live_bytes, 0);
    }

    #[test]
    fn empty_buffers_have_a_null_pointer() {
        let c = counters();
        for b in [
            Buffer::zeroed(0, c).unwrap(),
            Buffer::copied(&[], c).unwrap(),
            Buffer::from_vec(Vec::with_capacity(16), c).unwrap(),
        ] {
            assert!(b.as_ptr().is_null());
            assert_eq!(b.len(), 0);
        }
    }

    #[test]
    fn zeroed_and_copied_hold_the_right_bytes() {
        let c = counters();
        let z = Buffer::zeroed(1000, c).unwrap();
        let r = sref(z, 0, 1000);
        assert!(r.as_bytes().iter().all(|&b| b == 0));
        let cp = Buffer::copied(b"hello", c).unwrap();
        let r = sref(cp, 1, 3);
        assert_eq!(r.as_bytes(), b"ell");
        assert_eq!(r.slice(1, 2).unwrap().as_bytes(), b"ll");
        assert_eq!(r.slice(2, 2).unwrap_err(), Error::OutOfRange);
        assert_eq!(r.slice(usize::MAX, 2).unwrap_err(), Error::Overflow);
    }

    #[test]
    fn too_large_is_refused_before_allocating() {
        let c = counters();
        assert_eq!(Buffer::zeroed(MAX_LEN + 1, c).err(), Some(Error::TooLarge));
        assert_eq!(c.snapshot().live_bytes, 0);
    }

    #[test]
    fn vec_is_adopted_without_copy() {
        let c = counters();
        let v = vec![7u8; 300];
        let p = v.as_ptr();
        let b = Buffer::from_vec(v, c).unwrap();
        assert_eq!(b.as_ptr() as *const u8, p);
        assert_eq!(c.snapshot().live_bytes, 300);
        drop(b);
        assert_eq!(c.snapshot().live_bytes, 0);
    }

    #[test]
    fn foreign_release_runs_once_on_drop() {
        use std::sync::atomic::AtomicUsize;
        static RELEASED: AtomicUsize = AtomicUsize::new(0);
        let c = counters();
        let mut mem = vec![1u8; 64];
        // SAFETY: `mem` outlives the buffer, which is dropped below.
        let b = unsafe {
            Buffer::foreign(
                mem.as_mut_ptr(),
                64,
                Box::new(|| {
                    RELEASED.fetch_add(1, Ordering::SeqCst);
                }),
                c,
            )
        }
        .unwrap();
        assert_eq!(RELEASED.load(Ordering::SeqCst), 0);
        drop(b);
        assert_eq!(RELEASED.load(Ordering::SeqCst), 1);
        drop(mem);
    }
}
