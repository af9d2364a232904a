package ferry

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"hash/fnv"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/ferry/ferry/golang/internal/abitest"
)

// The test-only operations of the C ABI, which the package does not export.
var (
	opSleep = Op(abitest.OpSleep)
	opPanic = Op(abitest.OpPanic)
)

func fnv64a(p []byte) uint64 {
	h := fnv.New64a()
	h.Write(p)
	return h.Sum64()
}

// osThreads returns the process's OS thread count from /proc/self/status.
func osThreads(tb testing.TB) int {
	tb.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("Threads:")); ok {
			n, err := strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil {
				tb.Fatal(err)
			}
			return n
		}
	}
	tb.Fatal("no Threads line in /proc/self/status")
	return 0
}

// goThreads returns the number of OS threads the Go runtime owns.
func goThreads() int {
	s := []metrics.Sample{{Name: "/sched/threads/total:threads"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

func TestEchoIsZeroCopyAndChecksumIsFNV1a(t *testing.T) {
	base := baseStats(t)
	ctx := context.Background()
	src := mustCopy(t, []byte("hello from Go, hashed in Rust"))
	out, err := Echo(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if &out.Bytes()[0] != &src.Bytes()[0] || out.ID() == src.ID() {
		t.Fatal("echo must return the same memory under a new id")
	}
	sum, err := Checksum(ctx, src)
	if err != nil || sum != fnv64a(src.Bytes()) {
		t.Fatalf("Checksum = %#x, %v; want %#x", sum, err, fnv64a(src.Bytes()))
	}
	big := mustNew(t, 1<<20)
	bb := big.Bytes()
	for i := range bb {
		bb[i] = byte(i * 7)
	}
	if sum, err := Checksum(ctx, big); err != nil || sum != fnv64a(big.Bytes()) {
		t.Fatalf("1 MiB checksum = %#x, %v", sum, err)
	}
	// Request.Input is lent for the submit only: closing it at once does not disturb the job.
	f, err := Submit(ctx, Request{Op: OpEcho, Input: src, Value: 9})
	if err != nil {
		t.Fatal(err)
	}
	src.Close()
	p, err := f.Wait()
	if err != nil || p.Value != 9 || string(p.Buffer.Bytes()) != "hello from Go, hashed in Rust" {
		t.Fatalf("%+v, %v", p, err)
	}
	if p2, err2 := f.Wait(); p2.Buffer != p.Buffer || p2.Value != p.Value || err2 != err {
		t.Fatal("a second Wait must return the same outcome")
	}
	p.Buffer.Close()
	out.Close()
	big.Close()
	if empty, err := Echo(ctx, nil); err != nil || empty != nil {
		t.Fatalf("echo of nothing: %v, %v", empty, err)
	}
	waitLive(t, base.LiveIDs, 5*time.Second)
}

func TestAsyncErrorsAndRustPanics(t *testing.T) {
	ctx := context.Background()
	if _, err := Do(ctx, Request{Op: 99}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("unknown op: %v", err)
	}
	if _, err := Do(ctx, Request{Op: OpCall, Arg: 12345}); !errors.Is(err, ErrInvalidHandle) {
		t.Fatalf("bad callback id: %v", err)
	}
	if _, err := Do(ctx, Request{Op: opSleep, Arg: 61_000_000}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("oversize sleep: %v", err)
	}
	b := mustNew(t, 1)
	b.Close()
	if _, err := Echo(ctx, b); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed input: %v", err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Do(done, Request{Op: OpEcho}); !errors.Is(err, ErrCancelled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("done context: %v", err)
	}
	// Rust panics on the workers fail their own calls and nothing else.
	var wg sync.WaitGroup
	var bad atomic.Int64
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			op := OpEcho
			if i%2 == 0 {
				op = opPanic
			}
			out, err := Do(ctx, Request{Op: op, Value: uint64(i)})
			if (op == opPanic && !errors.Is(err, ErrPanic)) || (op == OpEcho && (err != nil || out.Value != uint64(i))) {
				bad.Add(1)
			}
		}()
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d calls got the wrong outcome", bad.Load())
	}
}

func TestCancelStopsTheWaitAndTheRunningJob(t *testing.T) {
	base := mustCallbackStats(t)
	ctx, cancel := context.WithCancel(context.Background())
	f, err := Submit(ctx, Request{Op: opSleep, Arg: 20_000_000, Value: 1})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "the sleep job starts", func() bool { return mustCallbackStats(t).InFlight > base.InFlight })
	time.Sleep(5 * time.Millisecond)
	t0 := time.Now()
	cancel()
	_, err = f.Wait()
	if waited := time.Since(t0); waited > 50*time.Millisecond {
		t.Fatalf("Wait took %v after cancel", waited)
	}
	if !errors.Is(err, ErrCancelled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	// The running job saw the flag: it ends long before its 20 s.
	waitFor(t, 2*time.Second, "the running job observes the cancel", func() bool {
		return mustCallbackStats(t).InFlight == base.InFlight
	})
	// A deadline works the same way.
	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer dcancel()
	if _, err := Do(dctx, Request{Op: opSleep, Arg: 20_000_000}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline: %v", err)
	}
}

func TestCancelSkipsJobsNotYetStarted(t *testing.T) {
	resetPool(t, 1)
	var ran atomic.Int64
	c := mustCallback(t, func(in Payload) (Payload, error) {
		ran.Add(1)
		return in, nil
	})
	bg := context.Background()
	blocker, err := Submit(bg, Request{Op: opSleep, Arg: 100_000})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	var fs []*Future
	for range 20 {
		f, err := Submit(ctx, Request{Op: OpCall, Arg: c.ID()})
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	cancel()
	for _, f := range fs {
		if _, err := f.Wait(); !errors.Is(err, ErrCancelled) {
			t.Fatalf("got %v", err)
		}
	}
	if _, err := blocker.Wait(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "the cancelled jobs complete", func() bool { return mustCallbackStats(t).InFlight == 0 })
	if n := ran.Load(); n != 0 {
		t.Fatalf("%d cancelled jobs ran anyway", n)
	}
	resetPool(t, 0)
}

// resetPool restarts the worker pool with n threads (0: default) at the next call.
func resetPool(tb testing.TB, n int) {
	tb.Helper()
	if err := ShutdownAsync(); err != nil {
		tb.Fatal(err)
	}
	if err := SetWorkers(n); err != nil {
		tb.Fatal(err)
	}
}

func TestCancelUnderLoadLeaksNothing(t *testing.T) {
	base := baseStats(t)
	src := mustCopy(t, bytes.Repeat([]byte("x"), 4096))
	n := 20000
	if testing.Short() || raceEnabled {
		n = 4000
	}
	const goroutines = 8
	var cancelled, completed atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n / goroutines {
				ctx, cancel := context.WithCancel(context.Background())
				f, err := Submit(ctx, Request{Op: OpEcho, Input: src})
				if err != nil {
					t.Error(err)
					cancel()
					return
				}
				if (g+i)%3 != 0 {
					cancel() // races the completion: sometimes before, sometimes after
				}
				out, err := f.Wait()
				cancel()
				switch {
				case err == nil:
					completed.Add(1)
					out.Buffer.Close()
				case errors.Is(err, ErrCancelled):
					cancelled.Add(1)
				default:
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	src.Close()
	t.Logf("%d completed, %d cancelled", completed.Load(), cancelled.Load())
	if cancelled.Load() == 0 || completed.Load() == 0 {
		t.Fatalf("want both outcomes under load: %d completed, %d cancelled", completed.Load(), cancelled.Load())
	}
	// Every late result's buffer was released, and Rust holds no job.
	waitLive(t, base.LiveIDs, 5*time.Second)
	waitFor(t, 2*time.Second, "no job in flight", func() bool { return mustCallbackStats(t).InFlight == 0 })
	// A job Rust skipped has posted its CANCELLED completion, but the poller may not have drained
	// it yet: the Go entry goes when it does, so wait for that rather than sample once.
	e, _ := defaultEngine()
	waitFor(t, 2*time.Second, "no call pending in Go", func() bool { return e.calls.live.Load() == 0 })
}

// TestMillionCompletions runs 1M async calls (fewer under -race or -short) through 4 Rust worker
// threads and checks that every result arrives once, in order per submitter, and that after
// ShutdownAsync the goroutines and the OS threads are back to their baseline.
//
// Go's runtime keeps the threads (Ms) it made while goroutines were blocked in cgo calls: it never
// exits an idle M. So the baseline is taken after a first run of the same size, which lets the
// runtime make the Ms this load needs. After the second run every thread that is not Go's must be
// gone (ferry's workers and delivery threads; /sched/threads/total counts Go's own), exactly; Go's
// idle-M cache may still grow by one now and then (about one run in six here), so the total may be
// above the baseline by at most goMSlack.
func TestMillionCompletions(t *testing.T) {
	n := 1_000_000
	if testing.Short() || raceEnabled {
		n = 50_000
	}
	const submitters, goMSlack = 4, 2
	resetPool(t, 4)
	runCompletions(t, n, submitters)
	resetPool(t, 4)
	runtime.GC()
	threads0, goThreads0, goroutines0 := osThreads(t), goThreads(), runtime.NumGoroutine()

	t0 := time.Now()
	maxWorkers := runCompletions(t, n, submitters)
	elapsed := time.Since(t0)
	if maxWorkers != 4 {
		t.Fatalf("saw %d worker threads, want 4", maxWorkers)
	}
	peak, peakGo := osThreads(t), goThreads()
	if err := ShutdownAsync(); err != nil {
		t.Fatal(err)
	}
	if err := SetWorkers(0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		th, gth, g := osThreads(t), goThreads(), runtime.NumGoroutine()
		if th-gth == threads0-goThreads0 && th <= threads0+goMSlack && g <= goroutines0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after shutdown: %d OS threads of which %d Go's (baseline %d, %d Go's), %d goroutines (baseline %d)",
				th, gth, threads0, goThreads0, g, goroutines0)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if s := mustCallbackStats(t); s.Workers != 0 || s.InFlight != 0 {
		t.Fatalf("after shutdown: %+v", s)
	}
	t.Logf("%d completions in %v (%.0f ns each); threads: baseline %d (%d Go's), peak %d (%d Go's), after %d",
		n, elapsed, float64(elapsed.Nanoseconds())/float64(n), threads0, goThreads0, peak, peakGo, osThreads(t))
}

// runCompletions makes n echo calls from `submitters` goroutines, each keeping up to 512 calls in
// flight and checking its results in order; it returns the most worker threads it saw.
func runCompletions(t *testing.T, n, submitters int) uint64 {
	const window = 512
	var wg sync.WaitGroup
	var failed, seen atomic.Int64
	var maxWorkers atomic.Uint64
	for range submitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			ring := make([]*Future, window)
			next := uint64(0)
			check := func(f *Future) {
				out, err := f.Wait()
				if err != nil || out.Value != next {
					failed.Add(1)
				}
				next++
				seen.Add(1)
			}
			per := n / submitters
			for i := range per {
				f, err := Submit(ctx, Request{Op: OpEcho, Value: uint64(i)})
				if err != nil {
					failed.Add(1)
					return
				}
				if old := ring[i%window]; old != nil {
					check(old)
				}
				ring[i%window] = f
				if i%10000 == 0 {
					w := mustCallbackStats(t).Workers
					for cur := maxWorkers.Load(); w > cur && !maxWorkers.CompareAndSwap(cur, w); cur = maxWorkers.Load() {
					}
				}
			}
			for i := max(per-window, 0); i < per; i++ {
				check(ring[i%window])
			}
		}()
	}
	wg.Wait()
	if failed.Load() != 0 || seen.Load() != int64(n/submitters*submitters) {
		t.Fatalf("%d failures, %d of %d results", failed.Load(), seen.Load(), n)
	}
	return maxWorkers.Load()
}

func TestShutdownAsyncFailsWaitersAndRestarts(t *testing.T) {
	g0 := runtime.NumGoroutine()
	f, err := Submit(context.Background(), Request{Op: opSleep, Arg: 10_000_000})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := ShutdownAsync(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Wait(); !errors.Is(err, ErrClosed) {
		t.Fatalf("waiter after shutdown: %v", err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("shutdown took %v: the running sleep did not see the close", d)
	}
	if s := mustCallbackStats(t); s.Workers != 0 || s.InFlight != 0 || s.Queues != 0 {
		t.Fatalf("after shutdown: %+v", s)
	}
	waitFor(t, 2*time.Second, "the poller goroutine exits", func() bool { return runtime.NumGoroutine() <= g0 })
	if out, err := Do(context.Background(), Request{Op: OpEcho, Value: 3}); err != nil || out.Value != 3 {
		t.Fatalf("after restart: %+v, %v", out, err)
	}
}

func TestNewFutureForDownstreamWork(t *testing.T) {
	ctx := context.Background()
	f, queue, tag, err := NewFuture(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := mustCopy(t, []byte("from downstream"))
	id, err := b.Detach()
	if err != nil {
		t.Fatal(err)
	}
	// What a downstream crate's Completer does, from another thread.
	go abitest.PostCompletion(queue, tag, uint32(StatusOK), id, 77)
	out, err := f.Wait()
	if err != nil || out.Value != 77 || string(out.Buffer.Bytes()) != "from downstream" {
		t.Fatalf("%+v, %v", out, err)
	}
	out.Buffer.Close()

	f, queue, tag, err = NewFuture(ctx)
	if err != nil {
		t.Fatal(err)
	}
	go abitest.PostCompletion(queue, tag, uint32(StatusCallbackFailed), 0, 5)
	if _, err := f.Wait(); !errors.Is(err, ErrCallbackFailed) {
		t.Fatalf("failure: %v", err)
	}
	// A completion for a tag nobody waits for is released, not leaked.
	base := baseStats(t)
	late := mustCopy(t, []byte("late"))
	lateID, _ := late.Detach()
	if st := abitest.PostCompletion(queue, 1<<60, uint32(StatusOK), lateID, 0); st != 0 {
		t.Fatal(Status(st))
	}
	waitLive(t, base.LiveIDs, 5*time.Second)
}

// TestFutureStaysSmall: every submit allocates a Future, so its size is a per-call cost; what only
// some calls need lives in futureExtra, made on first use.
func TestFutureStaysSmall(t *testing.T) {
	if n := unsafe.Sizeof(Future{}); n > 112 {
		t.Fatalf("Future is %d bytes, over the 112-byte size class: move the new field to futureExtra", n)
	}
	e, err := newEngine(pollBatch)
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	f, err := e.submit(context.Background(), Request{Op: OpEcho, Value: 7})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := f.Wait(); err != nil || p.Value != 7 {
		t.Fatalf("Wait = %+v, %v", p, err)
	}
	if f.x.Load() != nil {
		t.Fatal("a value-only success made the Future's extra part")
	}
}
