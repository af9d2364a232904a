package ferry

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"

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
		if err := invokeLoop(c.ID(), b.N); err != nil {
			b.Fatal(err)
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

// deliveryModes are the designs compared: "percall" is one Go callback per completion (a sink with
// batch 1); "sink/B" a Rust delivery thread calling Go with batches of up to B; "poll/B" the Go
// poller goroutine taking up to B per ferry_queue_wait.
var deliveryModes = []struct {
	name  string
	mode  deliveryMode
	batch int
}{
	{"percall", modeSink, 1},
	{"sink/16", modeSink, 16},
	{"sink/256", modeSink, 256},
	{"sink/1024", modeSink, 1024},
	{"poll/1", modePoll, 1},
	{"poll/16", modePoll, 16},
	{"poll/256", modePoll, 256},
	{"poll/1024", modePoll, 1024},
}

// BenchmarkCompletionDelivery measures the delivery path alone: b.N completions are posted from C
// (in batches of 256) and delivered to Go. One op is one completion.
//
//   - futures/<mode>: each completion resolves one of b.N Futures made beforehand (the real path:
//     find the call by tag, hand the result over; then Wait reads it).
//   - crossing/<mode>: the Go side only counts what arrives: the bare cost of getting completions
//     across, one per crossing or many.
func BenchmarkCompletionDelivery(b *testing.B) {
	for _, m := range deliveryModes {
		b.Run("futures/"+m.name, func(b *testing.B) {
			e, err := newEngine(m.mode, m.batch)
			if err != nil {
				b.Fatal(err)
			}
			defer e.close()
			ctx := context.Background()
			fs := make([]*Future, b.N)
			for i := range fs {
				if fs[i], err = e.expect(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			// Tags are consecutive slots of generation 1 in a fresh engine.
			if err := postRange(e.queue, fs[0].tag, b.N, 1); err != nil {
				b.Fatal(err)
			}
			for _, f := range fs {
				if out, err := f.Wait(); err != nil || out.Value != 1 {
					b.Fatalf("bad result %+v, %v", out, err)
				}
			}
		})
	}
	for _, m := range deliveryModes {
		b.Run("crossing/"+m.name, func(b *testing.B) {
			e, err := startEngine(&engine{mode: m.mode, batch: m.batch, countOnly: true})
			if err != nil {
				b.Fatal(err)
			}
			defer e.close()
			b.ResetTimer()
			if err := postRange(e.queue, 1, b.N, 1); err != nil {
				b.Fatal(err)
			}
			for e.counted.Load() < int64(b.N) {
				runtime.Gosched()
			}
		})
	}
}

// BenchmarkAsyncRoundTrip measures whole calls: Submit (cgo), the job on a Rust worker, delivery,
// and the waiting goroutine waking up, with `window` calls in flight per submitting goroutine. One
// op is one call.
func BenchmarkAsyncRoundTrip(b *testing.B) {
	for _, submitters := range []int{1, 2} {
		for _, m := range deliveryModes {
			b.Run(fmt.Sprintf("submitters=%d/%s", submitters, m.name), func(b *testing.B) {
				benchRoundTrip(b, m.mode, m.batch, submitters, 256)
			})
		}
	}
}

func benchRoundTrip(b *testing.B, mode deliveryMode, batch, submitters, window int) {
	e, err := newEngine(mode, batch)
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
				f, err := e.submit(ctx, Request{Op: OpEcho, Value: uint64(i)})
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
