//! The measurements behind `src/pages.rs`: where large buffers should come from. For each size, in
//! one run: malloc (glibc, warm: the block freed by the previous iteration comes back), a fresh
//! private mapping (`mmap` + `munmap`, its pages faulted on first touch), a fresh mapping with
//! `MAP_POPULATE`, a 2 MiB-aligned mapping advised with `MADV_HUGEPAGE`, and a reused mapping (what
//! a cache hit costs: nothing but the zeroing or the copy). "zeroed" allocates zeroed memory and
//! leaves it untouched; "zeroed_touched" also writes one byte per 4 KiB page, as a user filling the
//! buffer would; "copy" fills it from another buffer.
//!
//! `make bench-pages` runs it.

use std::alloc::{self, Layout};
use std::hint::black_box;
use std::ptr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const PAGE: usize = 4096;
const HUGE: usize = 2 << 20;

fn touch(p: *mut u8, len: usize) {
    for off in (0..len).step_by(PAGE) {
        // SAFETY: every caller passes `len` writable bytes at `p`.
        unsafe { p.add(off).write_volatile(1) };
    }
}

/// A private anonymous mapping of `len` bytes with extra `flags`.
fn map(len: usize, flags: i32) -> *mut u8 {
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches no memory
    // we own.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | flags,
            -1,
            0,
        )
    };
    assert!(p != libc::MAP_FAILED, "mmap of {len} bytes failed");
    p.cast()
}

/// Unmaps what [`map`] or [`map_huge`] made.
fn unmap(p: *mut u8, len: usize) {
    // SAFETY: every caller passes a whole mapping it made and no longer uses.
    unsafe { libc::munmap(p.cast(), len) };
}

/// A mapping with `len` bytes starting on a 2 MiB boundary, advised for huge pages: (the mapping,
/// the aligned start, the mapping's length).
fn map_huge(len: usize) -> (*mut u8, *mut u8, usize) {
    let total = len + HUGE;
    let p = map(total, 0);
    let a = p.wrapping_add((HUGE - p as usize % HUGE) % HUGE);
    // SAFETY: `a..a + len` lies inside the mapping just made; the advice changes no contents.
    unsafe { libc::madvise(a.cast(), len, libc::MADV_HUGEPAGE) };
    (p, a, total)
}

fn strategies(c: &mut Criterion) {
    let src = vec![0x5Au8; 16 << 20];
    let mut g = c.benchmark_group("pages");
    g.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1)).sample_size(20);
    for (size, name) in
        [(64usize << 10, "64KiB"), (256 << 10, "256KiB"), (1 << 20, "1MiB"), (16 << 20, "16MiB")]
    {
        let layout = Layout::array::<u8>(size).unwrap();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::new("malloc_zeroed", name), |b| {
            b.iter(|| {
                // SAFETY: the layout has a non-zero size; the block is freed with the same layout.
                unsafe {
                    let p = alloc::alloc_zeroed(layout);
                    black_box(p);
                    alloc::dealloc(p, layout)
                }
            })
        });
        g.bench_function(BenchmarkId::new("malloc_zeroed_touched", name), |b| {
            b.iter(|| {
                // SAFETY: as above; `touch` writes inside the block.
                unsafe {
                    let p = alloc::alloc_zeroed(layout);
                    touch(p, size);
                    alloc::dealloc(p, layout)
                }
            })
        });
        g.bench_function(BenchmarkId::new("malloc_copy", name), |b| {
            b.iter(|| {
                // SAFETY: as above; the copy fills the fresh block from `src`, which is larger.
                unsafe {
                    let p = alloc::alloc(layout);
                    ptr::copy_nonoverlapping(src.as_ptr(), p, size);
                    black_box(p);
                    alloc::dealloc(p, layout)
                }
            })
        });
        g.bench_function(BenchmarkId::new("map_zeroed", name), |b| {
            b.iter(|| {
                let p = map(size, 0);
                black_box(p);
                unmap(p, size)
            })
        });
        g.bench_function(BenchmarkId::new("map_zeroed_touched", name), |b| {
            b.iter(|| {
                let p = map(size, 0);
                touch(p, size);
                unmap(p, size)
            })
        });
        g.bench_function(BenchmarkId::new("map_copy", name), |b| {
            b.iter(|| {
                let p = map(size, 0);
                // SAFETY: the fresh mapping has `size` writable bytes; `src` has more.
                unsafe { ptr::copy_nonoverlapping(src.as_ptr(), p, size) };
                black_box(p);
                unmap(p, size)
            })
        });
        g.bench_function(BenchmarkId::new("populate_copy", name), |b| {
            b.iter(|| {
                let p = map(size, libc::MAP_POPULATE);
                // SAFETY: as above.
                unsafe { ptr::copy_nonoverlapping(src.as_ptr(), p, size) };
                black_box(p);
                unmap(p, size)
            })
        });
        if size >= HUGE {
            g.bench_function(BenchmarkId::new("huge_zeroed_touched", name), |b| {
                b.iter(|| {
                    let (p, a, total) = map_huge(size);
                    touch(a, size);
                    unmap(p, total)
                })
            });
            g.bench_function(BenchmarkId::new("huge_copy", name), |b| {
                b.iter(|| {
                    let (p, a, total) = map_huge(size);
                    // SAFETY: `a` starts `size` writable bytes inside the mapping; `src` has more.
                    unsafe { ptr::copy_nonoverlapping(src.as_ptr(), a, size) };
                    black_box(a);
                    unmap(p, total)
                })
            });
        }
        let kept = map(size, libc::MAP_POPULATE);
        g.bench_function(BenchmarkId::new("reuse_zeroed", name), |b| {
            b.iter(|| {
                // SAFETY: `kept` is a live mapping of `size` bytes that only this bench uses.
                unsafe { ptr::write_bytes(kept, 0, size) };
                black_box(kept);
            })
        });
        g.bench_function(BenchmarkId::new("reuse_copy", name), |b| {
            b.iter(|| {
                // SAFETY: as above; `src` has more than `size` bytes.
                unsafe { ptr::copy_nonoverlapping(src.as_ptr(), kept, size) };
                black_box(kept);
            })
        });
        unmap(kept, size);
    }
    g.finish();
}

criterion_group!(benches, strategies);
criterion_main!(benches);
