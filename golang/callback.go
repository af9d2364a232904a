package ferry

/*
#include "shims.h"
*/
import "C"

import (
	"sync/atomic"
)

// Payload is what a callback receives and returns: an optional buffer and a value.
//
// Passed to a callback, Buffer is borrowed: it is valid until the callback returns, and closed
// then (Share it to keep the bytes). Returned from a callback, Buffer is handed over: ferry takes
// its id (the Buffer is detached, as by Detach, or shared if it is in use) and the caller of the
// callback owns it. A nil Buffer means none.
//
// Payload is two words on purpose: Go's compiler keeps a struct of at most four words in registers
// and copies a bigger one through memory, and every sync callback passes one in and returns one
// (so an async result's bytes are a field of Result, not of Payload).
type Payload struct {
	Buffer *Buffer
	Value  uint64
}

// Result is what an async call gives (Future.Wait, Do): the result's Payload and, when ferry copied
// the result into Go memory instead of lending it (Request.Result), its bytes in Data, with
// Payload.Buffer nil. Its fields are Payload's: out.Value and out.Buffer read as for a Payload.
type Result struct {
	Payload
	// Data holds the result's bytes in Go memory, or nil (always nil for ResultLend).
	Data []byte
}

// CallbackFunc is a Go function that Rust, C or Go can call through ferry by callback id.
//
// It may run on any goroutine and on any thread (a Rust worker thread for CallAsync and
// FERRY_OP_CALL), concurrently with itself, and may call ferry again. To fail, return a non-nil
// error; a panic is recovered too. Either way the caller gets an error: a Go caller (Invoke,
// CallAsync) gets a *CallbackError holding the original error or panic value, never a re-panic.
//
// runtime.Goexit (which t.FailNow and t.Fatal call) in a callback is contained where Go allows it:
// see "Callbacks and runtime.Goexit" in the package documentation.
type CallbackFunc func(in Payload) (Payload, error)

// Callback is a Go function registered with ferry. Only an integer key crosses into Rust; the
// function stays in a Go table until Rust lets go of it (after Close, and after every call or
// queued job still holding it returns), which the drop trampoline reports.
type Callback struct {
	id     uint64
	closed atomic.Bool
}

// NewCallback registers fn and returns it as a Callback with a ferry id that Rust and C can invoke.
// Close it when done: like a cgo.Handle, a Callback is not released by the garbage collector,
// since Rust code may hold its id.
func NewCallback(fn CallbackFunc) (*Callback, error) {
	if abiErr != nil {
		return nil, abiErr
	}
	if fn == nil {
		return nil, &Error{Status: StatusNullPointer, Msg: "NewCallback: nil function"}
	}
	key := registerGo(fn)
	if key == 0 {
		return nil, &Error{Status: StatusTableFull, Msg: "NewCallback: too many Go callbacks alive"}
	}
	r := C.ferry_go_cb_register(C.uintptr_t(key))
	if r.status != C.FERRY_STATUS_OK {
		// ferry kept nothing and will not call the drop trampoline.
		dropCallback(key)
		return nil, statusErr(r.status)
	}
	return &Callback{id: uint64(r.id)}, nil
}

// ID returns the callback id to hand to Rust or C (ferry_callback_invoke, FERRY_OP_CALL). It stays
// the same after Close, but is then invalid.
func (c *Callback) ID() uint64 { return c.id }

// Close unregisters the callback: its id is invalid from now on. The Go function is released when
// Rust lets go, at once unless a call or job is still running it. Close can be called more than
// once; only the first call unregisters, and later calls return nil.
func (c *Callback) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	return statusErr(C.ferry_callback_unregister(C.uint64_t(c.id)))
}

// Invoke calls the callback through ferry, on this goroutine's thread, and returns its result.
// See InvokeID.
func (c *Callback) Invoke(in Payload) (Payload, error) {
	return InvokeID(c.id, in)
}

// InvokeID calls callback id (registered from Go or C) through ferry on this goroutine's thread.
//
// in.Buffer is lent for the call and stays owned by the caller. On success the result's Buffer, if
// any, is a new Buffer owned by the caller. A failing or panicking Go callback gives a
// *CallbackError (matching ErrCallbackFailed or ErrCallbackPanic); an unknown or closed id gives an
// error matching ErrInvalidHandle; a call nested too deeply for the thread's stack gives an error
// matching ErrNestedTooDeep (see "Nesting" in the package documentation).
func InvokeID(id uint64, in Payload) (Payload, error) {
	if abiErr != nil {
		return Payload{}, abiErr
	}
	if in.Buffer != nil {
		return invokeLending(id, in)
	}
	r := C.ferry_go_cb_invoke(C.uint64_t(id), 0, C.uint64_t(in.Value))
	if r.status == C.FERRY_STATUS_OK && r.view.id == 0 {
		return Payload{Value: uint64(r.value)}, nil
	}
	return invokeResult(r)
}

// invokeLending is InvokeID with a Buffer to lend: apart, so that the plain call has no defer.
func invokeLending(id uint64, in Payload) (Payload, error) {
	if !in.Buffer.acquire() {
		return Payload{}, errClosed
	}
	// Deferred, so that a callback that ends this goroutine (runtime.Goexit) still lets go; the
	// deferred call also keeps in.Buffer reachable until the call is over.
	defer in.Buffer.unlease()
	return invokeResult(C.ferry_go_cb_invoke(C.uint64_t(id), C.uint64_t(in.Buffer.id), C.uint64_t(in.Value)))
}

// invokeResult turns what ferry_go_cb_invoke returned into InvokeID's result.
func invokeResult(r C.ferry_go_result) (Payload, error) {
	if r.status != C.FERRY_STATUS_OK {
		return Payload{}, resultErr(Status(r.status), uint64(r.value))
	}
	out := Payload{Value: uint64(r.value)}
	if r.view.id != 0 {
		out.Buffer = adoptView(r.view)
	}
	return out, nil
}

// CallbackStats is a snapshot of the callback machinery's counters, for leak checks.
type CallbackStats struct {
	// Registered is the number of callbacks registered in ferry (from Go or C) and not closed.
	Registered uint64
	// Alive is Registered plus closed callbacks still held by a running call or job.
	Alive uint64
	// Queues is the number of completion queues open.
	Queues uint64
	// InFlight is the number of async jobs submitted and not yet completed.
	InFlight uint64
	// Workers is the number of Rust worker threads running.
	Workers uint64
	// GoFuncs is the number of Go functions still held for Rust (released by the drop trampoline).
	GoFuncs int64
}

// ReadCallbackStats returns the callback machinery's counters.
func ReadCallbackStats() (CallbackStats, error) {
	if abiErr != nil {
		return CallbackStats{}, abiErr
	}
	var s C.FerryCallbackStats
	if err := statusErr(C.ferry_callback_stats(&s)); err != nil {
		return CallbackStats{}, err
	}
	return CallbackStats{
		Registered: uint64(s.registered),
		Alive:      uint64(s.alive),
		Queues:     uint64(s.queues),
		InFlight:   uint64(s.in_flight),
		Workers:    uint64(s.workers),
		GoFuncs:    goCallbacks.live.Load(),
	}, nil
}
