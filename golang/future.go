package ferry

/*
#include "shims.h"
*/
import "C"

import (
	"context"
	"sync"
	"sync/atomic"
)

// Future is the pending result of an asynchronous call.
//
// A Future may be used from several goroutines at once: Wait and Done are safe for concurrent
// use, and every Wait returns the same outcome. When that outcome holds a Buffer, every Wait
// returns the same *Buffer: it is closed once, by whichever goroutine the program makes its owner.
type Future struct {
	e   *engine
	tag uint64
	ctx context.Context
	// state is futPending, futWaiting (ch is made and someone may block on it), futDone (c is
	// set) or futCancelled (the context ended first; the consumer releases a late result).
	state atomic.Uint32
	mode  ResultMode
	// ch is made by the first Done or Wait that must block, and stored before state becomes
	// futWaiting. Whoever moves state from futWaiting to futDone or futCancelled closes it.
	ch atomic.Pointer[chan struct{}]
	// c is written by the engine's consumer before it sets futDone.
	c completion

	// mu guards the making of ch and x, and x's fields.
	mu sync.Mutex
	// x is made on first use, by Done's context watch or by a Wait that must settle more than a
	// value.
	x atomic.Pointer[futureExtra]
}

// futureExtra is the part of a Future that a value-only success never needs. Every submit
// allocates a Future: kept out of it, these fields take a call's allocation from 192 to 112 bytes
// (BenchmarkAsyncRoundTrip -benchmem), so a stream of small calls runs the GC less often.
type futureExtra struct {
	settled bool
	out     Result
	err     error
	// stopWatch stops the context watch that Done starts, once the result is in.
	stopWatch func() bool
}

// extra returns f.x, making it; f.mu must be held.
func (f *Future) extra() *futureExtra {
	x := f.x.Load()
	if x == nil {
		x = new(futureExtra)
		f.x.Store(x)
	}
	return x
}

const (
	futPending uint32 = iota
	futWaiting
	futDone
	futCancelled
)

type completion struct {
	status Status
	// inlined says that data holds the result's bytes, copied into Go memory in the delivery batch
	// (inline.go); the buffer id is then released and buffer is 0.
	inlined       bool
	buffer, value uint64
	data          []byte
}

// closedChan is returned by Done once the Future is settled.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// Done returns a channel that is closed when the result has arrived, or when the context given to
// Submit ends first (then Wait returns the cancellation).
func (f *Future) Done() <-chan struct{} {
	return f.done(true)
}

// done returns the channel, making it if needed; with watch, it also arranges for the channel to
// close when the context ends (Wait watches the context itself).
func (f *Future) done(watch bool) <-chan struct{} {
	if p := f.ch.Load(); p != nil && (!watch || f.ctx.Done() == nil || f.watched()) {
		return *p
	}
	if s := f.state.Load(); s == futDone || s == futCancelled {
		return closedChan
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.ch.Load()
	if p == nil {
		ch := make(chan struct{})
		p = &ch
		f.ch.Store(p)
		if !f.state.CompareAndSwap(futPending, futWaiting) {
			// Settled meanwhile, before anyone could see the channel: close it ourselves.
			close(ch)
			return ch
		}
	}
	if watch && f.ctx.Done() != nil {
		if x := f.extra(); x.stopWatch == nil {
			x.stopWatch = context.AfterFunc(f.ctx, f.cancel)
			if f.state.Load() == futDone {
				x.stopWatch()
			}
		}
	}
	return *p
}

// watched reports whether Done started a context watch (or is starting one).
func (f *Future) watched() bool {
	x := f.x.Load()
	if x == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return x.stopWatch != nil
}

// resolve hands c to the Future (the consumer's side); it reports false if the Future was
// cancelled, in which case the caller releases c's buffer.
func (f *Future) resolve(c completion) bool {
	f.c = c
	for {
		switch s := f.state.Load(); s {
		case futCancelled:
			return false
		case futPending:
			if f.state.CompareAndSwap(s, futDone) {
				return true
			}
		case futWaiting:
			if f.state.CompareAndSwap(s, futDone) {
				close(*f.ch.Load())
				if f.x.Load() != nil {
					f.unwatch()
				}
				return true
			}
		default:
			return true
		}
	}
}

// unwatch stops the context watch, if Done started one, so that a long-lived context does not
// keep settled Futures. resolve calls it only when x is made: it settles the state before it loads
// x, and done makes x and sets the watch before it loads the state, so one of the two always sees
// the other and stops the watch; a Wait that only waits takes no lock here (the poller would
// otherwise hold f.mu just as the woken waiter takes it).
func (f *Future) unwatch() {
	f.mu.Lock()
	stop := f.x.Load().stopWatch
	f.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// cancel gives the Future up because its context ended, unless the result is in already. Rust is
// told, so that a job that has not started is skipped and a running one can see the flag; the
// consumer releases a result that arrives later.
func (f *Future) cancel() {
	for {
		s := f.state.Load()
		if s == futDone || s == futCancelled {
			return
		}
		if f.state.CompareAndSwap(s, futCancelled) {
			if s == futWaiting {
				close(*f.ch.Load())
			}
			C.ferry_async_cancel(C.uint64_t(f.e.queue), C.uint64_t(f.tag))
			return
		}
	}
}

// Wait waits for the result or for the context given to Submit to end, whichever comes first.
//
// On success the result's Buffer, if any, is owned by the caller. When the context ends first,
// Wait returns at once with an error matching both ErrCancelled and the context's error
// (context.Canceled or context.DeadlineExceeded); Rust is told, so a job that has not started is
// skipped and a running one can see the cancellation, and a result that arrives later is released.
// A result that arrived before the context ended is returned. Later calls, from any goroutine,
// return the same outcome.
func (f *Future) Wait() (Result, error) {
	if s := f.state.Load(); s != futDone && s != futCancelled {
		select {
		case <-f.done(false):
		case <-f.ctx.Done():
			f.cancel()
		}
	}
	return f.outcome()
}

// outcome settles the Future once (adopting the result's buffer) and returns the outcome.
func (f *Future) outcome() (Result, error) {
	// A value-only success is the same for every waiter and claims nothing: no lock. (f.c was
	// written before the state became futDone, and the load of the state orders this read after.)
	if f.state.Load() == futDone && f.c.status == StatusOK && f.c.buffer == 0 && !f.c.inlined {
		return Result{Payload: Payload{Value: f.c.value}}, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	x := f.extra()
	if !x.settled {
		x.settled = true
		if f.state.Load() == futCancelled {
			x.err = &cancelError{f.ctx.Err()}
		} else {
			x.out, x.err = f.c.result(f.mode)
		}
	}
	return x.out, x.err
}

// result turns a completion into the caller's result, claiming its buffer id, or copying and
// releasing it for a result that mode wants in Go memory and the delivery batch did not copy.
func (c completion) result(mode ResultMode) (Result, error) {
	if c.status != StatusOK {
		return Result{}, resultErr(c.status, c.value)
	}
	out := Result{Payload: Payload{Value: c.value}}
	if c.inlined {
		out.Data = c.data
		return out, nil
	}
	if c.buffer != 0 && mode == ResultInline {
		data, err := copyOutAndRelease(c.buffer)
		out.Data = data
		return out, err
	}
	if c.buffer != 0 {
		r := C.ferry_go_claim(C.uint64_t(c.buffer))
		if r.status != C.FERRY_STATUS_OK {
			return Result{}, adoptErr(r.status)
		}
		out.Buffer = adoptView(r.view)
	}
	return out, nil
}

// cancelError is what Wait returns when its context ends first.
type cancelError struct{ ctxErr error }

func (e *cancelError) Error() string { return "ferry: async call cancelled: " + e.ctxErr.Error() }

// Is reports whether target is ErrCancelled.
func (e *cancelError) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Status == StatusCancelled
}

// Unwrap returns the context's error.
func (e *cancelError) Unwrap() error { return e.ctxErr }
