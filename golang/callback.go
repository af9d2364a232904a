package ferry

/*
#include <stdint.h>
#include "ferry_go.h"

// The exported Go trampolines (callback_export.go). ferry stores an integer key as user_data; these
// shims turn it back into an integer before Go sees it, so no Go pointer and no fake pointer ever
// crosses.
extern uint32_t ferryGoCallback(uintptr_t key, uint64_t buffer, uint64_t value, FerryPayload *result_out);
extern void ferryGoDrop(uintptr_t key);

static uint32_t ferry_cb_call(void *user_data, uint64_t buffer, uint64_t value, FerryPayload *result_out) {
	return ferryGoCallback((uintptr_t)user_data, buffer, value, result_out);
}

static void ferry_cb_drop(void *user_data) {
	ferryGoDrop((uintptr_t)user_data);
}

typedef struct {
	uint64_t id;
	FerryStatus status;
} ferry_cb_registered;

static inline ferry_cb_registered ferry_cb_register(uintptr_t key) {
	ferry_cb_registered r = {0, 0};
	r.status = ferry_callback_register(ferry_cb_call, (void *)key, ferry_cb_drop, &r.id);
	return r;
}


// The result of an invoke by value, with the result buffer's view when there is one, so that Go
// needs neither an escaping out-parameter nor a second crossing to adopt the buffer.
typedef struct {
	FerryView view;
	uint64_t value;
	FerryStatus status;
} ferry_cb_result;

static inline ferry_cb_result ferry_cb_invoke(uint64_t id, uint64_t buffer, uint64_t value) {
	ferry_cb_result r = {{0, 0, 0}, 0, 0};
	FerryPayload out = {0, 0};
	r.status = ferry_callback_invoke(id, buffer, value, &out);
	r.value = out.value;
	if (r.status == FERRY_STATUS_OK && out.buffer != 0) {
		FerryStatus st = ferry_buffer_view(out.buffer, &r.view);
		if (st != FERRY_STATUS_OK) {
			ferry_buffer_release(out.buffer);
			r.status = st;
		}
	}
	return r;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// Payload is what a callback receives and returns: an optional buffer and a value.
//
// Passed to a callback, Buffer is borrowed: it is valid until the callback returns, and closed
// then (Share it to keep the bytes). Returned from a callback, Buffer is handed over: ferry takes
// its id (the Buffer is detached, as by Detach, or shared if it is in use) and the caller of the
// callback owns it. A nil Buffer means none.
type Payload struct {
	Buffer *Buffer
	Value  uint64
}

// CallbackFunc is a Go function that Rust, C or Go can call through ferry by callback id.
//
// It may run on any goroutine and on any thread (a Rust worker thread for CallAsync and
// FERRY_OP_CALL), concurrently with itself, and may call ferry again. To fail, return a non-nil
// error; a panic is recovered too. Either way the caller gets an error: a Go caller (Invoke,
// CallAsync) gets a *CallbackError holding the original error or panic value, never a re-panic.
type CallbackFunc func(in Payload) (Payload, error)

// Callback is a Go function registered with ferry. Only an integer key crosses into Rust; the
// function stays in a Go map until Rust lets go of it (after Close, and after every call or queued
// job still holding it returns), which the drop trampoline reports.
type Callback struct {
	id     uint64
	closed atomic.Bool
}

// goCallbacks holds the Go functions by key (the user_data ferry holds). See cbTable.
var goCallbacks cbTable

// cbTable maps keys to Go functions with a lock-free lookup, since every callback crossing does
// one (sync.Map costs several times more). A key is generation<<32 | slot+1, so 0 is never a key
// and a key whose slot was reused never finds the new function. Slots live in chunks that are
// allocated on demand and never freed; registering and dropping take the mutex.
type cbTable struct {
	mu     sync.Mutex
	chunks [cbChunks]atomic.Pointer[[cbChunkSize]atomic.Pointer[cbEntry]]
	gens   []uint32 // per slot, under mu
	free   []uint32 // free slots, under mu
	live   atomic.Int64
}

const (
	cbChunkSize = 1024
	cbChunks    = 4096 // at most 4M Go callbacks alive at once
)

type cbEntry struct {
	key uintptr
	fn  CallbackFunc
}

// add stores fn and returns its key, or 0 if the table is full.
func (t *cbTable) add(fn CallbackFunc) uintptr {
	t.mu.Lock()
	defer t.mu.Unlock()
	var slot uint32
	if n := len(t.free); n > 0 {
		slot = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		if len(t.gens) == cbChunks*cbChunkSize {
			return 0
		}
		slot = uint32(len(t.gens))
		t.gens = append(t.gens, 0)
		if slot%cbChunkSize == 0 {
			t.chunks[slot/cbChunkSize].Store(new([cbChunkSize]atomic.Pointer[cbEntry]))
		}
	}
	t.gens[slot]++
	key := uintptr(t.gens[slot])<<32 | uintptr(slot+1)
	t.chunks[slot/cbChunkSize].Load()[slot%cbChunkSize].Store(&cbEntry{key: key, fn: fn})
	t.live.Add(1)
	return key
}

func (t *cbTable) ref(key uintptr) *atomic.Pointer[cbEntry] {
	slot := uint32(key&0xFFFFFFFF) - 1
	if slot >= cbChunks*cbChunkSize {
		return nil
	}
	c := t.chunks[slot/cbChunkSize].Load()
	if c == nil {
		return nil
	}
	return &c[slot%cbChunkSize]
}

// get returns the function for key, or nil.
func (t *cbTable) get(key uintptr) CallbackFunc {
	if r := t.ref(key); r != nil {
		if e := r.Load(); e != nil && e.key == key {
			return e.fn
		}
	}
	return nil
}

// remove forgets key; it reports whether key was there.
func (t *cbTable) remove(key uintptr) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.ref(key)
	if r == nil {
		return false
	}
	if e := r.Load(); e == nil || e.key != key {
		return false
	}
	r.Store(nil)
	t.free = append(t.free, uint32(key&0xFFFFFFFF)-1)
	t.live.Add(-1)
	return true
}

// nextKey numbers the sink engines' keys.
var nextKey atomic.Uintptr

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
	key := goCallbacks.add(fn)
	if key == 0 {
		return nil, &Error{Status: StatusTableFull, Msg: "NewCallback: too many Go callbacks alive"}
	}
	r := C.ferry_cb_register(C.uintptr_t(key))
	if r.status != C.FERRY_STATUS_OK {
		// ferry kept nothing and will not call the drop trampoline.
		goCallbacks.remove(key)
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
// error matching ErrInvalidHandle.
func InvokeID(id uint64, in Payload) (Payload, error) {
	if abiErr != nil {
		return Payload{}, abiErr
	}
	var buf uint64
	if in.Buffer != nil {
		if !in.Buffer.acquire() {
			return Payload{}, errClosed
		}
		buf = in.Buffer.id
	}
	r := C.ferry_cb_invoke(C.uint64_t(id), C.uint64_t(buf), C.uint64_t(in.Value))
	if in.Buffer != nil {
		in.Buffer.unlease()
		runtime.KeepAlive(in.Buffer)
	}
	if r.status != C.FERRY_STATUS_OK {
		return Payload{}, resultErr(Status(r.status), uint64(r.value))
	}
	out := Payload{Value: uint64(r.value)}
	if r.view.id != 0 {
		out.Buffer = adoptView(r.view)
	}
	return out, nil
}

// CallbackError is the error a Go caller gets when a callback fails or panics. For a Go callback
// it carries the callback's own error or the recovered panic value and stack.
//
// errors.Is(err, ErrCallbackFailed) or errors.Is(err, ErrCallbackPanic) tells which; errors.Is and
// errors.As also see through to the callback's own error.
type CallbackError struct {
	// Status is StatusCallbackFailed or StatusCallbackPanic.
	Status Status
	// Err is the error a Go callback returned (nil for a panic, or for a C callback).
	Err error
	// Panic is the value a Go callback panicked with (nil otherwise).
	Panic any
	// Stack is the panicking goroutine's stack, taken in the trampoline.
	Stack []byte
	// Detail is the raw detail value from Rust: for a C callback, its own code.
	Detail uint64
}

// Error describes the failure.
func (e *CallbackError) Error() string {
	switch {
	case e.Status == StatusCallbackPanic && e.Panic != nil:
		return fmt.Sprintf("ferry: callback panicked: %v", e.Panic)
	case e.Err != nil:
		return "ferry: callback failed: " + e.Err.Error()
	default:
		return fmt.Sprintf("ferry: %s (detail %d)", e.Status.Message(), e.Detail)
	}
}

// Is reports whether target is the sentinel for e's Status (ErrCallbackFailed, ErrCallbackPanic).
func (e *CallbackError) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Status == e.Status
}

// Unwrap returns the callback's own error, if any.
func (e *CallbackError) Unwrap() error { return e.Err }

// resultErr turns a failed invoke or job (status and detail value) into an error; for a Go
// callback's failure it finds the record the trampoline left.
func resultErr(st Status, detail uint64) error {
	switch st {
	case StatusCallbackFailed, StatusCallbackPanic:
		e := &CallbackError{Status: st, Detail: detail}
		if r, ok := failures.take(detail); ok {
			e.Err, e.Panic, e.Stack = r.err, r.panic, r.stack
			if r.panic != nil {
				e.Status = StatusCallbackPanic
			}
		}
		return e
	}
	return statusErr(C.FerryStatus(st))
}

// failures holds what Go callbacks failed with, until the Go caller that gets the failure back
// claims it by token (the detail value that travels through Rust). A failure nobody claims (the
// caller was Rust or C) is overwritten after failureRing newer ones, so the ring never grows.
var failures failureRing

const failureRingSize = 1024

type failureRecord struct {
	token uint64
	err   error
	panic any
	stack []byte
}

type failureRing struct {
	mu   sync.Mutex
	next uint64
	recs [failureRingSize]failureRecord
}

// failureTokenTag marks the detail values that are Go failure tokens, so that a C callback's own
// detail code is not mistaken for one (a C callback would have to forge the tag on purpose).
const failureTokenTag = 0xFE77 << 48

// put stores a record and returns its token.
func (f *failureRing) put(r failureRecord) uint64 {
	f.mu.Lock()
	f.next++
	r.token = failureTokenTag | f.next&(1<<48-1)
	f.recs[f.next%failureRingSize] = r
	f.mu.Unlock()
	return r.token
}

// take returns and forgets the record for token, if it is still there.
func (f *failureRing) take(token uint64) (failureRecord, bool) {
	if token&^(1<<48-1) != failureTokenTag {
		return failureRecord{}, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r := &f.recs[(token&(1<<48-1))%failureRingSize]
	if r.token != token {
		return failureRecord{}, false
	}
	out := *r
	*r = failureRecord{}
	return out, true
}

// errUnknownCallback reports a call for a key that is not in the map, which ferry's drop ordering
// rules out; it is kept as a status rather than a crash.
var errUnknownCallback = errors.New("ferry: callback key not registered on the Go side")

// runCallback is the body of the invoke trampoline: it runs the Go function for key, recovering a
// panic, and stores the result (or a failure token) in *out for Rust.
func runCallback(key uintptr, buffer, value uint64, out *C.FerryPayload) (status C.uint32_t) {
	fn := goCallbacks.get(key)
	if fn == nil {
		out.value = C.uint64_t(failures.put(failureRecord{err: errUnknownCallback}))
		return C.FERRY_STATUS_CALLBACK_FAILED
	}
	var in Payload
	defer rescue(&status, out, &in)
	in.Value = value
	if buffer != 0 {
		r := C.ferry_go_share(C.uint64_t(buffer))
		if r.status != C.FERRY_STATUS_OK {
			out.value = C.uint64_t(failures.put(failureRecord{err: statusErr(r.status)}))
			return C.FERRY_STATUS_CALLBACK_FAILED
		}
		in.Buffer = adoptView(r.view)
	}
	res, err := fn(in)
	if in.Buffer == nil && res.Buffer == nil && err == nil {
		out.value = C.uint64_t(res.Value)
		return C.FERRY_STATUS_OK
	}
	var outBuf uint64
	if err == nil && res.Buffer != nil {
		outBuf, err = handOver(res.Buffer)
	}
	if in.Buffer != nil {
		in.Buffer.Close()
	}
	if err != nil {
		if outBuf != 0 {
			C.ferry_buffer_release(C.uint64_t(outBuf))
		}
		out.value = C.uint64_t(failures.put(failureRecord{err: err}))
		return C.FERRY_STATUS_CALLBACK_FAILED
	}
	out.buffer, out.value = C.uint64_t(outBuf), C.uint64_t(res.Value)
	return C.FERRY_STATUS_OK
}

// rescue is runCallback's deferred panic handler: a panic in a callback becomes
// FERRY_STATUS_CALLBACK_PANIC with a failure token, and never unwinds into Rust.
func rescue(status *C.uint32_t, out *C.FerryPayload, in *Payload) {
	if p := recover(); p != nil {
		if in.Buffer != nil {
			in.Buffer.Close()
		}
		out.buffer = 0
		out.value = C.uint64_t(failures.put(failureRecord{panic: p, stack: debug.Stack()}))
		*status = C.FERRY_STATUS_CALLBACK_PANIC
	}
}

// handOver gives b's id to the caller of a callback: b is detached (closed without releasing), or,
// if it is in use, shared and the share detached.
func handOver(b *Buffer) (uint64, error) {
	if id, err := b.Detach(); err == nil {
		return id, nil
	} else if errors.Is(err, ErrClosed) {
		return 0, fmt.Errorf("ferry: callback returned a closed Buffer: %w", err)
	}
	s, err := b.Share()
	if err != nil {
		return 0, err
	}
	return s.Detach()
}

// dropCallback is the body of the drop trampoline: Rust has let go of key.
func dropCallback(key uintptr) {
	goCallbacks.remove(key)
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
