package ferry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/ferry/ferry/golang/internal/abitest"
)

func mustCallback(tb testing.TB, fn CallbackFunc) *Callback {
	tb.Helper()
	c, err := NewCallback(fn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func mustCallbackStats(tb testing.TB) CallbackStats {
	tb.Helper()
	s, err := ReadCallbackStats()
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// waitFor polls cond every few milliseconds until it holds or the timeout passes.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestCallbackInvokeSync(t *testing.T) {
	src := mustCopy(t, []byte("zero-copy payload"))
	defer src.Close()
	var sawPtr *byte
	c := mustCallback(t, func(in Payload) (Payload, error) {
		if in.Buffer == nil {
			return Payload{Value: in.Value * 2}, nil
		}
		b := in.Buffer.Bytes()
		sawPtr = &b[0]
		b[0] = 'Z' // the callback writes the caller's memory in place
		return Payload{Buffer: in.Buffer, Value: uint64(len(b))}, nil
	})
	out, err := c.Invoke(Payload{Value: 21})
	if err != nil || out.Value != 42 || out.Buffer != nil {
		t.Fatalf("Invoke = %+v, %v; want value 42, no buffer", out, err)
	}
	out, err = c.Invoke(Payload{Buffer: src, Value: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Buffer.Close()
	if sawPtr != &src.Bytes()[0] {
		t.Fatal("the callback did not see the caller's memory (a copy was made)")
	}
	if &out.Buffer.Bytes()[0] != &src.Bytes()[0] || string(src.Bytes()) != "Zero-copy payload" {
		t.Fatalf("result buffer %q is not the same memory", out.Buffer.Bytes())
	}
	if out.Buffer.ID() == src.ID() || out.Value != 17 {
		t.Fatalf("result id %d (src %d), value %d", out.Buffer.ID(), src.ID(), out.Value)
	}
	// The borrowed buffer is still the caller's.
	if _, err := src.CopyBytes(); err != nil {
		t.Fatal(err)
	}
}

func TestCallbackErrorsAndPanicsBecomeErrors(t *testing.T) {
	errMine := errors.New("mine")
	c := mustCallback(t, func(in Payload) (Payload, error) {
		switch in.Value {
		case 0:
			panic(fmt.Sprintf("boom %d", in.Value))
		case 1:
			return Payload{Value: 5}, fmt.Errorf("wrapped: %w", errMine)
		}
		return Payload{Value: in.Value}, nil
	})
	_, err := c.Invoke(Payload{Value: 1})
	var ce *CallbackError
	if !errors.Is(err, ErrCallbackFailed) || !errors.Is(err, errMine) || !errors.As(err, &ce) {
		t.Fatalf("failure: %v", err)
	}
	// Repeated panics: nothing stays locked, and ferry keeps working.
	for i := range 200 {
		_, err = c.Invoke(Payload{Value: 0})
		if !errors.Is(err, ErrCallbackPanic) || !errors.As(err, &ce) || ce.Panic != "boom 0" ||
			!strings.Contains(string(ce.Stack), "TestCallbackErrorsAndPanicsBecomeErrors") {
			t.Fatalf("panic %d: %v (%+v)", i, err, ce)
		}
		if out, err := c.Invoke(Payload{Value: 9}); err != nil || out.Value != 9 {
			t.Fatalf("after panic %d: %+v, %v", i, out, err)
		}
	}
}

func TestCallbackStaleAndForgedIDs(t *testing.T) {
	base := mustCallbackStats(t)
	c, err := NewCallback(func(in Payload) (Payload, error) { return in, nil })
	if err != nil {
		t.Fatal(err)
	}
	if s := mustCallbackStats(t); s.Registered != base.Registered+1 || s.GoFuncs != base.GoFuncs+1 {
		t.Fatalf("after register: %+v (base %+v)", s, base)
	}
	id := c.ID()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if s := mustCallbackStats(t); s.Registered != base.Registered || s.GoFuncs != base.GoFuncs || s.Alive != base.Alive {
		t.Fatalf("after Close the Go function must be released: %+v (base %+v)", s, base)
	}
	for _, bad := range []uint64{id, 0, id ^ 1<<32, id + 1, ^uint64(0), mustNewID(t)} {
		if _, err := InvokeID(bad, Payload{}); !errors.Is(err, ErrInvalidHandle) {
			t.Fatalf("InvokeID(%#x): %v, want ErrInvalidHandle", bad, err)
		}
	}
	if _, err := NewCallback(nil); err == nil {
		t.Fatal("NewCallback(nil) succeeded")
	}
	closed := mustNew(t, 4)
	closed.Close()
	c2 := mustCallback(t, func(in Payload) (Payload, error) { return in, nil })
	if _, err := c2.Invoke(Payload{Buffer: closed}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Invoke with a closed buffer: %v", err)
	}
}

// mustNewID returns the id of a live buffer (closed at the end of the test): a valid id of the
// wrong kind.
func mustNewID(t *testing.T) uint64 {
	b := mustNew(t, 1)
	t.Cleanup(func() { b.Close() })
	return b.ID()
}

func TestCallbackReturningAClosedBufferFails(t *testing.T) {
	c := mustCallback(t, func(in Payload) (Payload, error) {
		b := mustNew(t, 8)
		b.Close()
		return Payload{Buffer: b}, nil
	})
	if _, err := c.Invoke(Payload{}); !errors.Is(err, ErrCallbackFailed) || !errors.Is(err, ErrClosed) {
		t.Fatalf("got %v", err)
	}
}

func TestCallbackReentersFerry(t *testing.T) {
	base := baseStats(t)
	inner := mustCallback(t, func(in Payload) (Payload, error) {
		return Payload{Value: in.Value + 1}, nil
	})
	var self *Callback
	outer := mustCallback(t, func(in Payload) (Payload, error) {
		// Call ferry again from inside the callback: another callback, buffers, async work.
		r, err := inner.Invoke(Payload{Value: in.Value})
		if err != nil {
			return Payload{}, err
		}
		b, err := Copy([]byte("made inside a callback"))
		if err != nil {
			return Payload{}, err
		}
		sum, err := Checksum(context.Background(), b)
		if err != nil {
			return Payload{}, err
		}
		if sum != fnv64a(b.Bytes()) {
			return Payload{}, errors.New("checksum mismatch")
		}
		if in.Value == 100 {
			// Unregister itself while running: the call in progress finishes normally.
			if err := self.Close(); err != nil {
				return Payload{}, err
			}
		}
		return Payload{Buffer: b, Value: r.Value}, nil
	})
	self = outer
	for _, v := range []uint64{1, 2, 100} {
		out, err := outer.Invoke(Payload{Value: v})
		if err != nil || out.Value != v+1 || string(out.Buffer.Bytes()) != "made inside a callback" {
			t.Fatalf("v=%d: %+v, %v", v, out, err)
		}
		out.Buffer.Close()
	}
	if _, err := outer.Invoke(Payload{Value: 3}); !errors.Is(err, ErrInvalidHandle) {
		t.Fatalf("after closing itself: %v", err)
	}
	// Re-entrancy from a Rust worker thread too.
	out, err := inner.CallAsync(context.Background(), Payload{Value: 41})
	if err != nil || out.Value != 42 {
		t.Fatalf("CallAsync: %+v, %v", out, err)
	}
	waitLive(t, base.LiveIDs, 5*time.Second)
}

// threadName returns the name of the OS thread running the caller (Linux).
func threadName() string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/comm", syscall.Gettid()))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

func TestCallbackRunsOnRustWorkers(t *testing.T) {
	var onWorker, total atomic.Int64
	c := mustCallback(t, func(in Payload) (Payload, error) {
		total.Add(1)
		if strings.HasPrefix(threadName(), "ferry-worker") {
			onWorker.Add(1)
		}
		if in.Value%7 == 0 {
			panic("seven")
		}
		return Payload{Value: in.Value * 3}, nil
	})
	const goroutines, per = 4, 50
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				v := uint64(g*per + i)
				out, err := c.CallAsync(context.Background(), Payload{Value: v})
				var ce *CallbackError
				switch {
				case v%7 == 0 && (!errors.As(err, &ce) || ce.Panic != "seven"):
					errs <- fmt.Errorf("v=%d: want the panic as an error, got %v", v, err)
					return
				case v%7 != 0 && (err != nil || out.Value != 3*v):
					errs <- fmt.Errorf("v=%d: %+v, %v", v, out, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if total.Load() != goroutines*per || onWorker.Load() != total.Load() {
		t.Fatalf("%d of %d calls ran on ferry-worker threads", onWorker.Load(), total.Load())
	}
}

func TestClosedCallbackLivesUntilItsJobFinishes(t *testing.T) {
	base := mustCallbackStats(t)
	entered, release := make(chan struct{}), make(chan struct{})
	c, err := NewCallback(func(in Payload) (Payload, error) {
		close(entered)
		<-release
		return Payload{Value: 7}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := Submit(context.Background(), Request{Op: OpCall, Arg: c.ID()})
	if err != nil {
		t.Fatal(err)
	}
	<-entered
	c.Close()
	if s := mustCallbackStats(t); s.Registered != base.Registered || s.Alive != base.Alive+1 || s.GoFuncs != base.GoFuncs+1 {
		t.Fatalf("while its job runs a closed callback must stay alive: %+v (base %+v)", s, base)
	}
	close(release)
	if out, err := f.Wait(); err != nil || out.Value != 7 {
		t.Fatalf("%+v, %v", out, err)
	}
	waitFor(t, 5*time.Second, "the drop hook releases the Go function", func() bool {
		s := mustCallbackStats(t)
		return s.Alive == base.Alive && s.GoFuncs == base.GoFuncs
	})
}

func TestGoInvokesACCallback(t *testing.T) {
	id, st := abitest.RegisterC()
	if st != 0 {
		t.Fatal(Status(st))
	}
	if out, err := InvokeID(id, Payload{}); err != nil || out.Value != 1 {
		t.Fatalf("%+v, %v", out, err)
	}
	// Leave an unclaimed Go failure record around: a C callback's detail must never pick it up.
	goFail := mustCallback(t, func(in Payload) (Payload, error) { return Payload{}, errors.New("go") })
	if _, err := goFail.CallAsync(context.Background(), Payload{}); err == nil {
		t.Fatal("want the Go failure")
	}
	_, err := InvokeID(id, Payload{Value: 77})
	var ce *CallbackError
	if !errors.As(err, &ce) || ce.Detail != 77 || ce.Err != nil || !errors.Is(err, ErrCallbackFailed) {
		t.Fatalf("C failure: %v (%+v)", err, ce)
	}
	out, err := Do(context.Background(), Request{Op: OpCall, Arg: id, Value: 0})
	if err != nil || out.Value != 1 {
		t.Fatalf("C callback on a worker: %+v, %v", out, err)
	}
	if st := abitest.Unregister(id); st != 0 {
		t.Fatal(Status(st))
	}
	if _, err := InvokeID(id, Payload{}); !errors.Is(err, ErrInvalidHandle) {
		t.Fatalf("after unregister: %v", err)
	}
}

// TestPayloadStaysSmall keeps Payload within the four words that Go's compiler holds in registers:
// one more field (an async result's bytes were one) sends every sync callback's argument and result
// through memory: 36 to 90 more instructions per call (BenchmarkSyncCallback under callgrind).
func TestPayloadStaysSmall(t *testing.T) {
	if n := unsafe.Sizeof(Payload{}); n > 4*unsafe.Sizeof(uintptr(0)) {
		t.Fatalf("Payload is %d bytes, over four words: put the new field in Result instead", n)
	}
}
