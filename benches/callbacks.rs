//! Criterion benches for the callback machinery on the Rust side: the cost ferry adds to a sync call
//! (registry lookup, Arc clone, panic guard) over a direct call, the C ABI entry over the Rust API,
//! completion delivery one by one against batches, and the async round trip through the pool.

use std::hint::black_box;
use std::os::raw::c_void;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferry::callback::{self, queue, Completion, Op, Payload, Request};
use ferry::ffi::callback::{
    ferry_callback_invoke, ferry_callback_register, ferry_callback_unregister, FerryPayload,
};

unsafe extern "C" fn c_add(_ud: *mut c_void, _buffer: u64, value: u64, out: *mut FerryPayload) -> u32 {
    // SAFETY: ferry passes a valid, writable result.
    unsafe { (*out).value = value + 1 };
    0
}

/// A sync call: a direct Rust call, the Rust API over a Rust closure, and the C ABI over a C function.
fn sync_invoke(c: &mut Criterion) {
    let mut g = c.benchmark_group("sync_invoke");
    g.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1)).sample_size(20);
    let f = |p: Payload| Ok::<_, callback::CallError>(Payload { buffer: 0, value: p.value + 1 });
    g.bench_function("direct_closure", |b| b.iter(|| black_box(f)(black_box(Payload::default()))));
    let id = callback::register(f).unwrap();
    g.bench_function("invoke_rust_closure", |b| {
        b.iter(|| callback::invoke(black_box(id), Payload::default()))
    });
    // The alternative design for the lookup (issue 9, defect 4): a per-slot reference count, taken
    // and dropped around each call (what a queued job's hold does), against the hazard slots above.
    g.bench_function("hold_and_call_rust_closure", |b| {
        b.iter(|| callback::get(black_box(id)).unwrap().call(Payload::default()))
    });
    g.bench_function("hold_and_call_rust_closure_4_threads", |b| {
        b.iter_custom(|iters| {
            let t0 = Instant::now();
            thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        for _ in 0..iters {
                            black_box(callback::get(id).unwrap().call(Payload::default()).unwrap());
                        }
                    });
                }
            });
            t0.elapsed() / 4
        })
    });
    let mut cid = 0;
    assert_eq!(ferry_callback_register(Some(c_add), std::ptr::null_mut(), None, &mut cid) as u32, 0);
    let mut out = FerryPayload::default();
    g.bench_function("ffi_invoke_c_function", |b| {
        b.iter(|| ferry_callback_invoke(black_box(cid), 0, 1, &mut out))
    });
    // The same lookups with 4 threads invoking the same callback (measured per call on this thread).
    g.bench_function("invoke_rust_closure_4_threads", |b| {
        b.iter_custom(|iters| {
            let t0 = Instant::now();
            thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        for _ in 0..iters {
                            black_box(callback::invoke(id, Payload::default()).unwrap());
                        }
                    });
                }
            });
            t0.elapsed() / 4
        })
    });
    g.finish();
    callback::unregister(id).unwrap();
    ferry_callback_unregister(cid);
}

/// Delivery of `n` completions from a producer thread to one consumer: one wait per completion
/// against waits that take up to `batch` at once.
fn delivery(c: &mut Criterion) {
    let mut g = c.benchmark_group("completion_delivery");
    g.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1)).sample_size(20);
    const N: u64 = 20_000;
    g.throughput(Throughput::Elements(N));
    for batch in [1usize, 16, 256, 1024] {
        g.bench_function(BenchmarkId::new("wait_batch", batch), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let q = queue::create().unwrap();
                    let qref = queue::get(q).unwrap();
                    let t0 = Instant::now();
                    let producer = thread::spawn(move || {
                        for tag in 0..N {
                            queue::post(q, [Completion { tag, result: Ok(Payload::default()) }]).unwrap();
                        }
                    });
                    let mut got = 0;
                    while got < N {
                        got += qref
                            .wait_into(batch, None, |c| {
                                black_box(c);
                            })
                            .unwrap() as u64;
                    }
                    total += t0.elapsed();
                    producer.join().unwrap();
                    queue::close(q).unwrap();
                }
                total
            })
        });
    }
    g.finish();
}

/// Async round trips through the worker pool (echo with no buffer), `window` in flight.
fn round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("async_round_trip");
    g.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2)).sample_size(10);
    const N: u64 = 20_000;
    g.throughput(Throughput::Elements(N));
    for window in [1u64, 256] {
        g.bench_function(BenchmarkId::new("echo_window", window), |b| {
            let q = queue::create().unwrap();
            let qref = queue::get(q).unwrap();
            let req = Request { op: Op::Echo, input: 0, arg: 0, value: 0 };
            b.iter(|| {
                let (mut sent, mut got) = (0u64, 0u64);
                while got < N {
                    while sent < N && sent - got < window {
                        callback::submit(q, sent, req).unwrap();
                        sent += 1;
                    }
                    got += qref
                        .wait_into(256, None, |c| {
                            black_box(c);
                        })
                        .unwrap() as u64;
                }
            });
            queue::close(q).unwrap();
        });
    }
    // The same with 256 in flight, submitted 64 per call (ferry_async_submit_batch).
    g.bench_function(BenchmarkId::new("echo_window_batch64", 256), |b| {
        let q = queue::create().unwrap();
        let qref = queue::get(q).unwrap();
        let req = Request { op: Op::Echo, input: 0, arg: 0, value: 0 };
        b.iter(|| {
            let (mut sent, mut got) = (0u64, 0u64);
            while got < N {
                while sent < N && sent - got + 64 <= 256 {
                    let n = (N - sent).min(64);
                    let (taken, r) = callback::pool::submit_batch(q, (sent..sent + n).map(|t| (t, req)));
                    r.unwrap();
                    sent += taken as u64;
                }
                got += qref
                    .wait_into(256, None, |c| {
                        black_box(c);
                    })
                    .unwrap() as u64;
            }
        });
        queue::close(q).unwrap();
    });
    g.finish();
    callback::shutdown().unwrap();
}

criterion_group!(benches, sync_invoke, delivery, round_trip);
criterion_main!(benches);
