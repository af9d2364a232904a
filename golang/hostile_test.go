package ferry

// Issue 10: legal programs that hung, aborted or faulted in callbacks and async work, and the Go
// API's promises about Futures. Each test names the item it covers and what it did before.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry/ferry/golang/internal/abitest"
)

// withPool runs the test with the pool configured as c (started afresh) and puts the default
// configuration back after.
func withPool(t *testing.T, c PoolConfig) {
	t.Helper()
	if err := ShutdownAsync(); err != nil {
		t.Fatal(err)
	}
	if err := ConfigurePool(c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ShutdownAsync(); err != nil {
			t.Error(err)
		}
		if err := ConfigurePool(PoolConfig{}); err != nil {
			t.Error(err)
		}
	})
}

// TestNestedAsyncWorkOnEveryWorkerCompletes is item 1: a Go callback running on a worker that
// waits for ferry async work. With 2 workers, two concurrent CallAsync of it used to hang for ever
// (InFlight 4, Workers 2): both workers waited, and nothing ran what they waited for. A submit made
// on a worker now starts an extra worker when none is free.
func TestNestedAsyncWorkOnEveryWorkerCompletes(t *testing.T) {
	withPool(t, PoolConfig{Workers: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	data := mustCopy(t, []byte("nested"))
	defer data.Close()
	want := fnv64a([]byte("nested"))
	var started sync.WaitGroup
	started.Add(2)
	c := mustCallback(t, func(in Payload) (Payload, error) {
		// Both callbacks hold their worker before either submits: every worker is busy.
		started.Done()
		started.Wait()
		sum, err := Checksum(ctx, data)
		if err != nil {
			return Payload{}, err
		}
		f, err := Submit(ctx, Request{Op: OpEcho, Value: sum})
		if err != nil {
			return Payload{}, err
		}
		out, err := f.Wait()
		return Payload{Value: out.Value}, err
	})
	defer c.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := c.CallAsync(ctx, Payload{})
			if err == nil && out.Value != want {
				err = fmt.Errorf("value %#x, want %#x", out.Value, want)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("nested async work from every worker: %v (%+v)", err, mustCallbackStats(t))
		}
	}
}

// TestNestedAsyncWorkPastTheCapSaysWouldDeadlock is item 1's limit: a chain of callbacks, each
// waiting on a worker for the next one's CallAsync, reaches the pool's most workers (its thread
// count plus 64), and the submit that would need one more fails with an error matching
// ErrWouldDeadlock instead of queueing work nobody may ever run.
func TestNestedAsyncWorkPastTheCapSaysWouldDeadlock(t *testing.T) {
	withPool(t, PoolConfig{Workers: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var depth atomic.Int64
	var self *Callback
	self = mustCallback(t, func(in Payload) (Payload, error) {
		depth.Store(max(depth.Load(), int64(in.Value)))
		if in.Value > 200 {
			return Payload{}, errors.New("no refusal after 200 nested waits")
		}
		return self.CallAsync(ctx, Payload{Value: in.Value + 1})
	})
	defer self.Close()
	_, err := self.CallAsync(ctx, Payload{Value: 1})
	if !errors.Is(err, ErrWouldDeadlock) {
		t.Fatalf("chain of %d nested CallAsync: %v", depth.Load(), err)
	}
	t.Logf("refused at depth %d", depth.Load())
	if d := depth.Load(); d < 60 || d > 70 {
		t.Fatalf("refused at depth %d, want the cap of 1 + 64 workers", d)
	}
}

// TestShutdownAsyncFromAWorkerChangesNothing is item 3: ShutdownAsync called from a callback on a
// worker returned ErrInvalidArgument only after it had closed the Go side, so the CallAsync that
// ran it and an unrelated job got ErrClosed, and the CallAsync returned before its callback ended.
func TestShutdownAsyncFromAWorkerChangesNothing(t *testing.T) {
	withPool(t, PoolConfig{Workers: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// An unrelated call in flight across the refused shutdown.
	unrelated, err := Submit(ctx, Request{Op: opSleep, Arg: 200_000, Value: 9})
	if err != nil {
		t.Fatal(err)
	}
	var finished atomic.Bool
	c := mustCallback(t, func(in Payload) (Payload, error) {
		err := ShutdownAsync()
		// Stay a little longer: the CallAsync must not come back before this returns.
		time.Sleep(20 * time.Millisecond)
		finished.Store(true)
		return Payload{Value: 7}, err
	})
	defer c.Close()
	out, err := c.CallAsync(ctx, Payload{})
	var ce *CallbackError
	if !errors.As(err, &ce) || !errors.Is(ce.Err, ErrInvalidArgument) {
		t.Fatalf("ShutdownAsync on a worker: %+v, %v", out, err)
	}
	if !finished.Load() {
		t.Fatal("CallAsync returned before its callback finished")
	}
	if out, err := unrelated.Wait(); err != nil || out.Value != 9 {
		t.Fatalf("an unrelated call across the refused shutdown: %+v, %v", out, err)
	}
	if out, err := Do(ctx, Request{Op: OpEcho, Value: 5}); err != nil || out.Value != 5 {
		t.Fatalf("after the refused shutdown: %+v, %v", out, err)
	}
}

// TestGoexitOnAWorkerIsACallbackError is item 4 on a Rust worker: runtime.Goexit in a callback run
// by CallAsync (t.FailNow in a helper does it) killed the process with "fatal error:
// runtime.Goexit called in a thread that was not created by the Go runtime". Now the CallAsync
// gets a *CallbackError that says so, nothing stays held, and the pool keeps its size.
func TestGoexitOnAWorkerIsACallbackError(t *testing.T) {
	withPool(t, PoolConfig{Workers: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base, cbase := baseStats(t), mustCallbackStats(t)
	in := mustCopy(t, []byte("lent to a callback that never returns"))
	var deferred atomic.Int64
	c := mustCallback(t, func(p Payload) (Payload, error) {
		defer deferred.Add(1)
		if p.Value == 1 {
			runtime.Goexit()
		}
		return Payload{Value: p.Value}, nil
	})
	for i := range 3 {
		_, err := c.CallAsync(ctx, Payload{Buffer: in, Value: 1})
		var ce *CallbackError
		if !errors.As(err, &ce) || !ce.Goexit || !errors.Is(err, ErrCallbackPanic) || len(ce.Stack) == 0 {
			t.Fatalf("Goexit %d on a worker: %v (%+v)", i, err, ce)
		}
		t.Logf("%v", err)
	}
	if deferred.Load() != 3 {
		t.Fatalf("%d deferred calls ran, want 3", deferred.Load())
	}
	// The pool replaced the workers it parked and works on.
	if out, err := c.CallAsync(ctx, Payload{Value: 4}); err != nil || out.Value != 4 {
		t.Fatalf("after Goexit: %+v, %v", out, err)
	}
	waitFor(t, 10*time.Second, "the pool back at 2 workers", func() bool { return mustCallbackStats(t).Workers == 2 })
	// Nothing is pinned: the callback goes when closed, the lent buffer when closed.
	c.Close()
	in.Close()
	waitFor(t, 10*time.Second, "the callback released", func() bool {
		s := mustCallbackStats(t)
		return s.Alive == cbase.Alive && s.GoFuncs == cbase.GoFuncs && s.InFlight == 0
	})
	waitLive(t, base.LiveIDs, 10*time.Second)
}

// TestGoexitInInvokeEndsTheGoroutineAndPinsNothing is item 4 on a thread Go created: a callback
// run by Invoke runs on the caller's goroutine, so runtime.Goexit ends that goroutine as it would
// a plain Go call. Before, the callback and the buffer lent to it stayed pinned for ever (its
// hazard and lease were in frames Go never returned to). Nested invokes and more Goexits on one
// thread than it has hazard slots are covered.
func TestGoexitInInvokeEndsTheGoroutineAndPinsNothing(t *testing.T) {
	base, cbase := baseStats(t), mustCallbackStats(t)
	in := mustCopy(t, []byte("lent"))
	inner := mustCallback(t, func(p Payload) (Payload, error) {
		runtime.Goexit()
		return p, nil
	})
	outer := mustCallback(t, func(p Payload) (Payload, error) {
		if p.Value == 2 {
			return inner.Invoke(Payload{Buffer: p.Buffer})
		}
		runtime.Goexit()
		return p, nil
	})
	for i := range 20 {
		var after atomic.Bool
		done := make(chan struct{})
		go func() {
			defer close(done)
			if i%2 == 0 {
				// Every call on one thread, so that its abandoned frames would add up.
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
			}
			_, _ = outer.Invoke(Payload{Buffer: in, Value: uint64(1 + i%2)})
			after.Store(true)
		}()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Fatal("the goroutine did not end")
		}
		if after.Load() {
			t.Fatal("Invoke returned after its callback called Goexit")
		}
	}
	// The goroutines are gone; the lent buffer's leases were let go and the callbacks are free.
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	inner.Close()
	outer.Close()
	waitFor(t, 10*time.Second, "both callbacks released", func() bool {
		s := mustCallbackStats(t)
		return s.Alive == cbase.Alive && s.GoFuncs == cbase.GoFuncs
	})
	waitLive(t, base.LiveIDs, 10*time.Second)
	// Invokes keep working, on every thread.
	echo := mustCallback(t, func(p Payload) (Payload, error) { return Payload{Value: p.Value + 1}, nil })
	defer echo.Close()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if out, err := echo.Invoke(Payload{Value: uint64(g*1000 + i)}); err != nil || out.Value != uint64(g*1000+i+1) {
					t.Errorf("invoke after Goexits: %+v, %v", out, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestDeepNestingFromAWorkerIsAnError is item 5: Invoke nested about 400 levels deep from a
// callback on a worker killed the process with SIGSEGV (the worker's 256 KiB stack cannot grow).
// Now the call that finds too little stack left fails with an error matching ErrNestedTooDeep,
// and a bigger stack (PoolConfig.StackSize) allows deeper nesting.
func TestDeepNestingFromAWorkerIsAnError(t *testing.T) {
	depthWith := func(stack int) int64 {
		withPool(t, PoolConfig{Workers: 2, StackSize: stack})
		var deepest atomic.Int64
		var self *Callback
		self = mustCallback(t, func(in Payload) (Payload, error) {
			deepest.Store(max(deepest.Load(), int64(in.Value)))
			return self.Invoke(Payload{Value: in.Value + 1})
		})
		defer self.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
		defer cancel()
		_, err := self.CallAsync(ctx, Payload{Value: 1})
		if !errors.Is(err, ErrNestedTooDeep) {
			t.Fatalf("stack %d: nesting to depth %d: %v", stack, deepest.Load(), err)
		}
		return deepest.Load()
	}
	small := depthWith(0)
	big := depthWith(4 << 20)
	t.Logf("nesting refused at depth %d (256 KiB workers), %d (4 MiB workers)", small, big)
	if small < 50 || big < 4*small {
		t.Fatalf("depths %d and %d: the stack size did not apply", small, big)
	}
	// From a goroutine (a thread Go made, 8 MiB of system stack) the rule is the same.
	var deepest atomic.Int64
	var self *Callback
	self = mustCallback(t, func(in Payload) (Payload, error) {
		deepest.Store(max(deepest.Load(), int64(in.Value)))
		return self.Invoke(Payload{Value: in.Value + 1})
	})
	defer self.Close()
	if _, err := self.Invoke(Payload{Value: 1}); !errors.Is(err, ErrNestedTooDeep) {
		t.Fatalf("nesting to depth %d from Go: %v", deepest.Load(), err)
	}
	t.Logf("from a goroutine: refused at depth %d", deepest.Load())
}

func TestConfigurePoolChecksAtOnce(t *testing.T) {
	for _, c := range []PoolConfig{
		{Workers: -1}, {Workers: MaxWorkers + 1}, {QueueCap: -1},
		{StackSize: MinStackSize - 1}, {StackSize: MaxStackSize + 1},
	} {
		if err := ConfigurePool(c); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("%+v: %v", c, err)
		}
	}
	withPool(t, PoolConfig{Workers: 3, QueueCap: 8, StackSize: 1 << 20})
	if err := SetWorkers(1); err != nil {
		t.Fatal(err)
	}
	if poolConfig.c != (PoolConfig{Workers: 1, QueueCap: 8, StackSize: 1 << 20}) {
		t.Fatalf("SetWorkers changed more than the workers: %+v", poolConfig.c)
	}
	if _, err := Do(context.Background(), Request{Op: OpEcho}); err != nil {
		t.Fatal(err)
	}
	if w := mustCallbackStats(t).Workers; w != 1 {
		t.Fatalf("%d workers, want 1", w)
	}
}

// TestFutureDoneClosesWhenItsContextEnds: Done used to stay open for ever after the context ended.
func TestFutureDoneClosesWhenItsContextEnds(t *testing.T) {
	base := baseStats(t)
	ctx, cancel := context.WithCancel(context.Background())
	f, queue, tag, err := NewFuture(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := f.Done()
	select {
	case <-done:
		t.Fatal("Done closed before anything happened")
	default:
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Done still open 10 s after the context ended")
	}
	if _, err := f.Wait(); !errors.Is(err, ErrCancelled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait after the context ended: %v", err)
	}
	// The result that comes later is released, not leaked.
	late := mustCopy(t, []byte("late"))
	id, _ := late.Detach()
	postCompletionOK(t, queue, tag, id, 1)
	waitLive(t, base.LiveIDs, 10*time.Second)

	// A result that is in before the context ends wins.
	ctx2, cancel2 := context.WithCancel(context.Background())
	f2, err := Submit(ctx2, Request{Op: OpEcho, Value: 3})
	if err != nil {
		t.Fatal(err)
	}
	<-f2.Done()
	cancel2()
	if out, err := f2.Wait(); err != nil || out.Value != 3 {
		t.Fatalf("a result in before the cancel: %+v, %v", out, err)
	}
}

// TestFutureWaitFromManyGoroutines: a Future may be waited on from several goroutines at once;
// each gets the same outcome, with one Buffer.
func TestFutureWaitFromManyGoroutines(t *testing.T) {
	src := mustCopy(t, []byte("shared result"))
	defer src.Close()
	for round := range 50 {
		f, err := Submit(context.Background(), Request{Op: OpEcho, Input: src, Value: uint64(round)})
		if err != nil {
			t.Fatal(err)
		}
		const waiters = 6
		outs := make([]Result, waiters)
		var wg sync.WaitGroup
		for w := range waiters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if w%2 == 0 {
					<-f.Done()
				}
				var err error
				if outs[w], err = f.Wait(); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		for w := range outs {
			if outs[w].Buffer != outs[0].Buffer || outs[w].Value != uint64(round) {
				t.Fatalf("round %d waiter %d: %+v, waiter 0: %+v", round, w, outs[w], outs[0])
			}
		}
		if string(outs[0].Buffer.Bytes()) != "shared result" {
			t.Fatal("result bytes")
		}
		outs[0].Buffer.Close()
	}
}

// postCompletionOK posts an OK completion with buffer and value for tag to queue, as a downstream
// producer would.
func postCompletionOK(t *testing.T, queue, tag, buffer, value uint64) {
	t.Helper()
	if st := abitest.PostCompletion(queue, tag, uint32(StatusOK), buffer, value); st != 0 {
		t.Fatal(Status(st))
	}
}

// TestEachWorkerKeepsOneGoroutineUntilShutdown checks what the package documentation says under
// "Goroutines and threads": each Rust worker that has run a Go callback keeps one goroutine while
// the pool runs, and ShutdownAsync returns the count to the baseline.
func TestEachWorkerKeepsOneGoroutineUntilShutdown(t *testing.T) {
	withPool(t, PoolConfig{Workers: 4})
	base := runtime.NumGoroutine()
	var started sync.WaitGroup
	started.Add(4)
	c := mustCallback(t, func(in Payload) (Payload, error) {
		// Hold the worker until all four run a callback: each on a worker of its own.
		started.Done()
		started.Wait()
		return in, nil
	})
	defer c.Close()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.CallAsync(context.Background(), Payload{}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// The poller, and one goroutine for each of the four workers.
	waitFor(t, 10*time.Second, "one goroutine per worker", func() bool { return runtime.NumGoroutine() == base+5 })
	if err := ShutdownAsync(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the baseline after ShutdownAsync", func() bool { return runtime.NumGoroutine() == base })
}
