package ferry

/*
#include "shims.h"
*/
import "C"

import "context"

// Op is a built-in asynchronous operation run on ferry's Rust worker pool.
type Op uint32

// The built-in operations (FERRY_OP_* in ferry.h).
const (
	// OpEcho completes with the input buffer under a new id, zero-copy, and Value unchanged.
	OpEcho Op = C.FERRY_OP_ECHO
	// OpChecksum completes with the 64-bit FNV-1a hash of the input buffer's bytes in Value.
	OpChecksum Op = C.FERRY_OP_CHECKSUM
	// OpCall invokes callback Arg on a Rust worker thread with Input and Value, and completes with
	// its result.
	OpCall Op = C.FERRY_OP_CALL
)

// Request is one asynchronous call: an operation, its input buffer (lent for the duration of Submit
// only: the job holds the bytes itself), its argument and a value.
type Request struct {
	Op    Op
	Input *Buffer
	Arg   uint64
	Value uint64
	// Result says how a result buffer reaches Go: lent as a Buffer (ResultLend, the zero value),
	// copied into Go memory (ResultInline), or either by size (ResultAuto). See ResultMode.
	Result ResultMode
}

// Submit starts req on ferry's worker pool (started on first use) and returns its Future.
//
// The first asynchronous call also starts one goroutine that waits in Rust for completions and
// hands them out, many per crossing; it keeps an OS thread blocked in that wait until
// ShutdownAsync.
//
// ctx governs the wait (see Future.Wait). While the pool's job queue is full, Submit retries until
// ctx ends. Errors: a bad op (ErrUnsupported), a closed input Buffer (ErrClosed), an unknown
// callback id (ErrInvalidHandle), ctx already done (ErrCancelled), and, from a callback running on
// a worker thread when the pool runs its most threads already, ErrWouldDeadlock (see "Nesting" in
// the package documentation).
func Submit(ctx context.Context, req Request) (*Future, error) {
	e, err := defaultEngine()
	if err != nil {
		return nil, err
	}
	return e.submit(ctx, req)
}

// Do runs req and waits for its result: Submit followed by Wait.
func Do(ctx context.Context, req Request) (Result, error) {
	f, err := Submit(ctx, req)
	if err != nil {
		return Result{}, err
	}
	return f.Wait()
}

// Echo returns b's bytes under a new Buffer, made on a Rust worker without a copy (the new Buffer
// shares b's memory). It exercises the whole async path.
func Echo(ctx context.Context, b *Buffer) (*Buffer, error) {
	out, err := Do(ctx, Request{Op: OpEcho, Input: b})
	return out.Buffer, err
}

// Checksum returns the 64-bit FNV-1a hash of b's bytes, computed on a Rust worker over the Rust
// memory.
func Checksum(ctx context.Context, b *Buffer) (uint64, error) {
	out, err := Do(ctx, Request{Op: OpChecksum, Input: b})
	return out.Value, err
}

// CallAsync runs the callback on a Rust worker thread with in and waits for its result, as Do.
// in.Buffer is lent for the duration of the submit only; a result Buffer is lent (ResultLend).
func (c *Callback) CallAsync(ctx context.Context, in Payload) (Payload, error) {
	out, err := Do(ctx, Request{Op: OpCall, Input: in.Buffer, Arg: c.id, Value: in.Value})
	return out.Payload, err
}

// NewFuture prepares a Future for a downstream Rust crate's own async work. Pass queue and tag to
// that crate; it makes a ferry::callback::Completer with them (Completer::new(queue, tag)) and
// completes it, from any thread, and the Future resolves exactly as for Submit. Cancelling ctx
// reaches the Completer (Completer::is_cancelled) once it exists.
func NewFuture(ctx context.Context) (f *Future, queue, tag uint64, err error) {
	e, err := defaultEngine()
	if err != nil {
		return nil, 0, 0, err
	}
	f, err = e.expect(ctx)
	if err != nil {
		return nil, 0, 0, err
	}
	return f, e.queue, f.tag, nil
}
