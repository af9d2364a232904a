//! Criterion benches for the core: copy-out against zero-copy view across sizes, the create/view/
//! release round trip, create and release across sizes (where large buffers change allocator),
//! lookups, and the table's concurrency design (one mutex against 16 shards, with two threads
//! contending).

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferry::Table;

const SIZES: [(usize, &str); 6] = [
    (64, "64B"),
    (4 << 10, "4KiB"),
    (64 << 10, "64KiB"),
    (1 << 20, "1MiB"),
    (16 << 20, "16MiB"),
    (64 << 20, "64MiB"),
];

fn leak_table(shards: usize) -> &'static Table {
    Box::leak(Box::new(Table::with_shards(shards)))
}

/// Copy-out (the bytes move) against view (only the address moves), at every size.
fn copy_vs_view(c: &mut Criterion) {
    let t = Table::global();
    let mut g = c.benchmark_group("copy_vs_view");
    g.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1)).sample_size(20);
    for (size, name) in SIZES {
        let v = t.create_zeroed(size).unwrap();
        let mut dst = vec![0u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::new("copy_out", name), |b| {
            b.iter(|| t.copy_out(black_box(v.id), 0, &mut dst).unwrap())
        });
        g.bench_function(BenchmarkId::new("view", name), |b| b.iter(|| t.view(black_box(v.id)).unwrap()));
        t.release(v.id).unwrap();
    }
    g.finish();
}

/// One create, one view and one release: the lifecycle of a short-lived buffer.
fn lifecycle(c: &mut Criterion) {
    let t = Table::global();
    let mut g = c.benchmark_group("lifecycle");
    g.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    for (size, name) in [(64usize, "64B"), (4 << 10, "4KiB")] {
        g.bench_function(BenchmarkId::new("create_view_release", name), |b| {
            b.iter(|| {
                let v = t.create_zeroed(black_box(size)).unwrap();
                black_box(t.view(v.id).unwrap());
                t.release(v.id).unwrap();
            })
        });
    }
    let data = [7u8; 64];
    g.bench_function("lend_vec_release/64B", |b| {
        b.iter(|| {
            let v = t.lend_vec(data.to_vec()).unwrap();
            t.release(v.id).unwrap();
        })
    });
    g.finish();
}

/// Create and release at sizes on both sides of the large-buffer threshold: zeroed, copied, and
/// zeroed then written on every page (a fresh mapping pays its page faults on first touch, which
/// the untouched create does not show).
fn create_release(c: &mut Criterion) {
    const PAGE: usize = 4096;
    let t = Table::global();
    let src = vec![0x5Au8; 16 << 20];
    let mut g = c.benchmark_group("create_release");
    g.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1)).sample_size(20);
    for (size, name) in [
        (64usize, "64B"),
        (4 << 10, "4KiB"),
        (64 << 10, "64KiB"),
        (256 << 10, "256KiB"),
        (1 << 20, "1MiB"),
        (16 << 20, "16MiB"),
    ] {
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::new("zeroed", name), |b| {
            b.iter(|| {
                let v = t.create_zeroed(black_box(size)).unwrap();
                t.release(black_box(v.id)).unwrap();
            })
        });
        g.bench_function(BenchmarkId::new("zeroed_touched", name), |b| {
            b.iter(|| {
                let v = t.create_zeroed(black_box(size)).unwrap();
                for off in (0..size).step_by(PAGE) {
                    // SAFETY: `off < v.len` and the buffer lives until the release below.
                    unsafe { v.ptr.add(off).write_volatile(1) };
                }
                t.release(black_box(v.id)).unwrap();
            })
        });
        g.bench_function(BenchmarkId::new("copy", name), |b| {
            b.iter(|| {
                let v = t.create_copy(black_box(&src[..size])).unwrap();
                t.release(black_box(v.id)).unwrap();
            })
        });
    }
    g.finish();
}

/// Hot-id lookup in a table that holds 100k live ids.
fn lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookup");
    g.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    for shards in [1usize, 16] {
        let t = leak_table(shards);
        let ids: Vec<u64> = (0..100_000).map(|_| t.create_zeroed(16).unwrap().id).collect();
        let hot = ids[50_000];
        g.bench_function(BenchmarkId::new("hot_view", format!("{shards}shard")), |b| {
            b.iter(|| t.view(black_box(hot)).unwrap())
        });
        let mut i = 0usize;
        g.bench_function(BenchmarkId::new("scattered_view", format!("{shards}shard")), |b| {
            b.iter(|| {
                i = (i + 7919) % ids.len();
                t.view(black_box(ids[i])).unwrap()
            })
        });
        t.release_many(&ids);
    }
    g.finish();
}

/// Create+release pairs per thread, `threads` threads at once, on a table of `shards` shards.
/// Reports the wall time per pair per thread (so perfect scaling keeps it equal to one thread's).
fn contended_pairs(t: &'static Table, threads: usize, iters: u64) -> Duration {
    let start = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let start = start.clone();
            thread::spawn(move || {
                start.wait();
                for _ in 0..iters {
                    let v = t.create_zeroed(black_box(64)).unwrap();
                    t.release(v.id).unwrap();
                }
            })
        })
        .collect();
    start.wait();
    let t0 = Instant::now();
    for h in handles {
        h.join().unwrap();
    }
    t0.elapsed()
}

fn contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("contended_create_release");
    g.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2)).sample_size(20);
    for shards in [1usize, 16] {
        let t = leak_table(shards);
        for threads in [1usize, 2] {
            g.bench_function(BenchmarkId::new(format!("{shards}shard"), format!("{threads}thread")), |b| {
                b.iter_custom(|iters| contended_pairs(t, threads, iters))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, copy_vs_view, lifecycle, create_release, lookup, contended);
criterion_main!(benches);
