package ferry

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/ferry/ferry/golang/internal/abitest"
	"github.com/ferry/ferry/golang/internal/callbench"
)

// BenchmarkSyncCallback compares a sync ferry callback with a bare call from C into an exported Go
// function (the target is at most 1.3x):
//
//   - c-loop: a C loop makes b.N calls, so one op is one C-to-Go crossing (bare) or one
//     ferry_callback_invoke from C into a Go callback (ferry): the way Rust and C call Go.
//   - from-go: each op starts in Go: Go calls C, which calls Go (bare), against Callback.Invoke,
//     which goes Go to Rust to the Go callback and back.
func BenchmarkSyncCallback(b *testing.B) {
	c, err := NewCallback(func(in Payload) (Payload, error) { return Payload{Value: in.Value & 1}, nil })
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.Run("c-loop/bare", func(b *testing.B) {
		callbench.LoopC(b.N)
	})
	b.Run("c-loop/ferry", func(b *testing.B) {
		if st := abitest.InvokeLoop(c.ID(), b.N); st != 0 {
			b.Fatal(Status(st))
		}
	})
	b.Run("from-go/bare", func(b *testing.B) {
		for i := range b.N {
			callbench.Once(uint64(i))
		}
	})
	b.Run("from-go/ferry", func(b *testing.B) {
		for i := range b.N {
			if _, err := c.Invoke(Payload{Value: uint64(i)}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCompletionDelivery measures the delivery path alone: b.N completions are posted from C
// (in batches of 256) and delivered to Go. One op is one completion.
//
//   - futures/poll/<B>: the engine's own path: each completion resolves one of b.N Futures made
//     beforehand (find the call by tag, hand the result over; then Wait reads it), the poller
//     taking up to B per crossing.
//   - crossing/<design>: only the cost of getting completions across, counted and dropped (test
//     code in internal/abitest, not the engine): "percall" is one Go call per completion (a sink
//     with batch 1), "sink/B" a Rust delivery thread calling Go with up to B, "poll/B" a Go
//     goroutine taking up to B per ferry_queue_wait. The engine polls, for the figures in engine.go.
func BenchmarkCompletionDelivery(b *testing.B) {
	for _, batch := range []int{1, 16, 256, 1024} {
		b.Run(fmt.Sprintf("futures/poll/%d", batch), func(b *testing.B) {
			ctx := context.Background()
			// In rounds of at most 1M Futures, each on a fresh engine (whose tags are consecutive
			// slots of generation 1, posted as one range): an engine holds 4M calls in flight at
			// most, and b.N grows past that at -benchtime 1s.
			fs := make([]*Future, min(b.N, 1<<20))
			b.ResetTimer()
			for done := 0; done < b.N; done += len(fs) {
				b.StopTimer()
				fs = fs[:min(len(fs), b.N-done)]
				e, err := newEngine(batch)
				if err != nil {
					b.Fatal(err)
				}
				for i := range fs {
					if fs[i], err = e.expect(ctx); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				if st := abitest.PostRange(e.queue, fs[0].tag, len(fs), 1); st != 0 {
					b.Fatal(Status(st))
				}
				for _, f := range fs {
					if out, err := f.Wait(); err != nil || out.Value != 1 {
						b.Fatalf("bad result %+v, %v", out, err)
					}
				}
				b.StopTimer()
				e.close()
				b.StartTimer()
			}
		})
	}
	for _, batch := range []int{1, 16, 256, 1024} {
		name := fmt.Sprintf("crossing/sink/%d", batch)
		if batch == 1 {
			name = "crossing/percall"
		}
		b.Run(name, func(b *testing.B) {
			s, st := abitest.NewSink(batch)
			if st != 0 {
				b.Fatal(Status(st))
			}
			defer s.Close()
			b.ResetTimer()
			if st := abitest.PostRange(s.Queue, 1, b.N, 1); st != 0 {
				b.Fatal(Status(st))
			}
			for s.Count() < int64(b.N) {
				runtime.Gosched()
			}
		})
	}
	for _, batch := range []int{1, 16, 256, 1024} {
		b.Run(fmt.Sprintf("crossing/poll/%d", batch), func(b *testing.B) {
			q, st := abitest.NewQueue()
			if st != 0 {
				b.Fatal(Status(st))
			}
			defer abitest.CloseQueue(q)
			done := make(chan uint32)
			go func() { done <- abitest.PollCount(q, batch, b.N) }()
			if st := abitest.PostRange(q, 1, b.N, 1); st != 0 {
				b.Fatal(Status(st))
			}
			if st := <-done; st != 0 {
				b.Fatal(Status(st))
			}
		})
	}
}

// BenchmarkAsyncRoundTrip measures whole calls: Submit (cgo), the job on a Rust worker, delivery,
// and the waiting goroutine waking up, with `window` calls in flight per submitting goroutine. One
// op is one call. poll/256 is the default engine.
func BenchmarkAsyncRoundTrip(b *testing.B) {
	for _, submitters := range []int{1, 2} {
		for _, batch := range []int{1, 16, 256, 1024} {
			b.Run(fmt.Sprintf("submitters=%d/poll/%d", submitters, batch), func(b *testing.B) {
				benchRoundTrip(b, batch, submitters, 256, Request{Op: OpEcho})
			})
		}
	}
}

// BenchmarkCallAsyncRoundTrip is BenchmarkAsyncRoundTrip for a Go callback run on the workers
// (CallAsync's path: the job crosses from the Rust worker into Go and back).
func BenchmarkCallAsyncRoundTrip(b *testing.B) {
	c, err := NewCallback(func(in Payload) (Payload, error) { return Payload{Value: in.Value & 1}, nil })
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for _, submitters := range []int{1, 2} {
		b.Run(fmt.Sprintf("submitters=%d", submitters), func(b *testing.B) {
			benchRoundTrip(b, pollBatch, submitters, 256, Request{Op: OpCall, Arg: c.ID()})
		})
	}
}

func benchRoundTrip(b *testing.B, batch, submitters, window int, req Request) {
	e, err := newEngine(batch)
	if err != nil {
		b.Fatal(err)
	}
	defer e.close()
	ctx := context.Background()
	// Warm the pool up so thread start-up is not measured.
	if f, err := e.submit(ctx, Request{Op: OpEcho}); err != nil {
		b.Fatal(err)
	} else if _, err := f.Wait(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var wg sync.WaitGroup
	for s := range submitters {
		n := b.N / submitters
		if s == 0 {
			n += b.N % submitters
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ring := make([]*Future, window)
			wait := func(f *Future) bool {
				if _, err := f.Wait(); err != nil {
					b.Error(err)
					return false
				}
				return true
			}
			for i := range n {
				r := req
				r.Value = uint64(i)
				f, err := e.submit(ctx, r)
				if err != nil {
					b.Error(err)
					return
				}
				if old := ring[i%window]; old != nil && !wait(old) {
					return
				}
				ring[i%window] = f
			}
			for i := max(n-window, 0); i < n; i++ {
				if !wait(ring[i%window]) {
					return
				}
			}
		}()
	}
	wg.Wait()
}
