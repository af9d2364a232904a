package ferry

/*
#include "shims.h"
*/
import "C"

import (
	"runtime"
	"sync/atomic"
	"unsafe"
)

// Buffer is one ferry id together with the view of its bytes: Rust memory that Go reads and writes
// in place, without a copy.
//
// A Buffer owns its id. Close releases it; a Buffer that becomes unreachable without Close has its
// id released by a cleanup (runtime.AddCleanup), batched with others into one crossing. Closing is
// still the rule: the cleanup is a backstop, and Go's collector cannot see the Rust bytes (ferry
// tracks them and triggers collections itself, see SetSoftLimit).
//
// All methods are safe for concurrent use, Close included. Methods that copy or hand the bytes to
// a function (View, CopyBytes, ReadAt, WriteAt, WriteTo) hold a lease for their duration: a Close
// that races them waits for none of them, but the id is released only when the last lease ends,
// so they never touch freed memory. After Close they return an error matching ErrClosed; Bytes,
// which returns memory without a lease, panics instead. A Buffer must not be copied by value.
type Buffer struct {
	// ptr is the first byte (nil for an empty buffer, and set to nil once the id is released, so a
	// closed Buffer never holds an address the Go collector could mistake for one of its own). It
	// is written plainly before the Buffer is shared and atomically after; read it with data().
	ptr unsafe.Pointer
	// state is the lease count in the low bits plus closedBit and releasedBit.
	state   atomic.Uint64
	id      uint64
	n       int
	cleanup runtime.Cleanup
	prof    *heapSample // the heap profile's record, set only if the Buffer was sampled (profile.go)
	// scope is the Scope that owns the Buffer (nil for none), and sidx its index there (scope.go).
	scope *Scope
	sidx  int
	// foreign is set for an adopted id: Close releases it at once (releaseNow).
	foreign bool
}

const (
	closedBit   = 1 << 62
	releasedBit = 1 << 61
)

// cleanupArg is what the GC backstop needs to release a Buffer's id: never the Buffer itself.
type cleanupArg struct {
	id   uint64
	n    int64
	prof *heapSample
}

// adoptView wraps an id and view that Rust just returned; the new Buffer owns the id. It starts the
// GC backstop and counts the bytes for memory pressure. Every Buffer is made here.
func adoptView(v C.FerryView) *Buffer {
	b := &Buffer{id: uint64(v.id), n: int(v.len), ptr: unsafe.Pointer(v.ptr)}
	profileAlloc(b)
	b.cleanup = runtime.AddCleanup(b, releaseFromCleanup, cleanupArg{id: b.id, n: int64(b.n), prof: b.prof})
	track(b)
	return b
}

// data returns the buffer's bytes without checking its state.
func (b *Buffer) data() []byte {
	return unsafe.Slice((*byte)(atomic.LoadPointer(&b.ptr)), b.n)
}

// New returns a zeroed buffer of n bytes in Rust memory.
//
// When the live-byte limit refuses the create, New collects garbage (so cleanups release the ids of
// unreachable Buffers) and retries a few times before it returns an error matching ErrLimitReached.
func New(n int) (*Buffer, error) {
	v, err := newView(n)
	if err != nil {
		return nil, err
	}
	return adoptView(v), nil
}

// newView makes and claims a zeroed buffer of n bytes, collecting and retrying while the live-byte
// limit refuses it: the Rust side of New and Scope.New.
func newView(n int) (C.FerryView, error) {
	if abiErr != nil {
		return C.FerryView{}, abiErr
	}
	if n < 0 {
		return C.FerryView{}, &Error{Status: StatusInvalidArgument, Msg: "negative buffer length"}
	}
	ensureConfig()
	for attempt := 0; ; attempt++ {
		r := C.ferry_go_new(C.size_t(n))
		if r.status == C.FERRY_STATUS_OK {
			return r.view, nil
		}
		if r.status != C.FERRY_STATUS_LIMIT_REACHED || !relieve(attempt, n) {
			return C.FerryView{}, statusErr(r.status)
		}
	}
}

// Copy returns a buffer in Rust memory holding a copy of p. ferry does not keep p.
// Like New, it collects and retries when the live-byte limit refuses the create.
func Copy(p []byte) (*Buffer, error) {
	v, err := copyView(p)
	if err != nil {
		return nil, err
	}
	return adoptView(v), nil
}

// copyView makes and claims a buffer holding a copy of p, collecting and retrying while the
// live-byte limit refuses it: the Rust side of Copy and Scope.Copy. p does not escape (the C
// function is marked noescape).
func copyView(p []byte) (C.FerryView, error) {
	if abiErr != nil {
		return C.FerryView{}, abiErr
	}
	ensureConfig()
	for attempt := 0; ; attempt++ {
		r := C.ferry_go_copy((*C.uint8_t)(unsafe.SliceData(p)), C.size_t(len(p)))
		runtime.KeepAlive(p)
		if r.status == C.FERRY_STATUS_OK {
			return r.view, nil
		}
		if r.status != C.FERRY_STATUS_LIMIT_REACHED || !relieve(attempt, len(p)) {
			return C.FerryView{}, statusErr(r.status)
		}
	}
}

// Adopt takes ownership of an id made elsewhere in the process, typically by a downstream Rust crate
// that lends its own data (ferry::lend) and hands Go the id and view through its own C function.
//
// ptr and n must be the view that came with the id. Adopt checks them against ferry's table with
// one crossing: for an unknown or released id it returns an error matching ErrInvalidHandle, and for
// a view that does not match ErrInvalidArgument; on error the Buffer is not made and the caller
// still owns the id. On success the Buffer owns the id: Close (or the cleanup) releases it.
//
// An id has one owner. Adopt claims the id in ferry's table, and fails with an error matching
// ErrInvalidHandle for an id that a live Buffer owns already (every Buffer's id is claimed:
// b.ID() of an open Buffer b, or an id adopted before), so that two Buffers never own one id, and
// closing one never frees memory the other still reads. Detach gives the claim up with the id.
func Adopt(id uint64, ptr unsafe.Pointer, n int) (*Buffer, error) {
	if abiErr != nil {
		return nil, abiErr
	}
	ensureConfig()
	r := C.ferry_go_claim(C.uint64_t(id))
	if r.status != C.FERRY_STATUS_OK {
		return nil, adoptErr(r.status)
	}
	if unsafe.Pointer(r.view.ptr) != ptr || int(r.view.len) != n {
		C.ferry_buffer_disclaim(C.uint64_t(id))
		return nil, &Error{Status: StatusInvalidArgument, Msg: "Adopt: ptr and length do not match the id's view"}
	}
	b := adoptView(r.view)
	b.foreign = true
	return b, nil
}

// AdoptID takes ownership of an id made elsewhere in the process and fetches its view (one
// crossing). Errors, ownership and the one-owner rule are as for Adopt.
func AdoptID(id uint64) (*Buffer, error) {
	if abiErr != nil {
		return nil, abiErr
	}
	ensureConfig()
	r := C.ferry_go_claim(C.uint64_t(id))
	if r.status != C.FERRY_STATUS_OK {
		return nil, adoptErr(r.status)
	}
	b := adoptView(r.view)
	b.foreign = true
	return b, nil
}

// adoptErr is the error of a failed claim: for INVALID_HANDLE it says both reasons.
func adoptErr(st C.FerryStatus) error {
	if st == C.FERRY_STATUS_INVALID_HANDLE {
		return &Error{Status: StatusInvalidHandle, Msg: "adopt: the id is unknown, released, or owned by a Buffer already"}
	}
	return statusErr(st)
}

// ID returns the buffer's id, or 0 (never a valid id) after Close. The Buffer still owns the id:
// code that passes it to Rust must keep the Buffer open, and alive, until Rust is done with it.
func (b *Buffer) ID() uint64 {
	if b.state.Load()&closedBit != 0 {
		return 0
	}
	return b.id
}

// Len returns the length of the buffer in bytes, or 0 after Close.
func (b *Buffer) Len() int {
	if b.state.Load()&closedBit != 0 {
		return 0
	}
	return b.n
}

// Bytes returns the buffer's bytes: Rust memory, not a copy, made without a cgo call.
//
// The slice may be read and written; it is valid until Close, and only while the Buffer is
// reachable: keep the Buffer (runtime.KeepAlive, or a later Close) for as long as the slice is in
// use, or use View, which does that for you. Using the slice after Close is a use after free (in a
// ferrydebug build it faults at once). Bytes panics with an error matching ErrClosed if the buffer
// is closed. An empty buffer gives a nil slice.
func (b *Buffer) Bytes() []byte {
	debugCollect()
	// The address is loaded before the state is checked: it is cleared only after closedBit is set.
	p := atomic.LoadPointer(&b.ptr)
	if b.state.Load()&closedBit != 0 || (p == nil && b.n != 0) {
		panic(&Error{Status: StatusClosed, Msg: "Bytes called on a closed Buffer"})
	}
	return unsafe.Slice((*byte)(p), b.n)
}

// View calls fn with the buffer's bytes (Rust memory, not a copy) and keeps the buffer open and
// alive until fn returns: a concurrent Close takes effect only then. fn must not keep the slice.
// View returns an error matching ErrClosed, without calling fn, if the buffer is closed.
func (b *Buffer) View(fn func([]byte)) error {
	debugCollect()
	if !b.acquire() {
		return errClosed
	}
	defer b.unlease()
	fn(b.data())
	return nil
}

// CopyBytes returns a copy of the buffer's bytes in Go memory (the copying accessor).
func (b *Buffer) CopyBytes() ([]byte, error) {
	debugCollect()
	if !b.acquire() {
		return nil, errClosed
	}
	out := make([]byte, b.n)
	copy(out, b.data())
	b.unlease()
	return out, nil
}

// Slice returns a new Buffer, with an id of its own, over n bytes starting at off. It shares the
// memory: writes through one are seen through the other, and the memory lives until both are
// closed. Errors match ErrOutOfRange, ErrOverflow or ErrClosed.
func (b *Buffer) Slice(off, n int) (*Buffer, error) {
	debugCollect()
	if off < 0 || n < 0 {
		return nil, &Error{Status: StatusOutOfRange, Msg: "negative offset or length"}
	}
	if !b.acquire() {
		return nil, errClosed
	}
	r := C.ferry_go_slice(C.uint64_t(b.id), C.size_t(off), C.size_t(n))
	b.unlease()
	runtime.KeepAlive(b)
	if r.status != C.FERRY_STATUS_OK {
		return nil, statusErr(r.status)
	}
	return adoptView(r.view), nil
}

// Share returns a new Buffer, with an id of its own, over the same bytes. Either may be closed
// first; the memory lives until both are.
func (b *Buffer) Share() (*Buffer, error) {
	debugCollect()
	if !b.acquire() {
		return nil, errClosed
	}
	r := C.ferry_go_share(C.uint64_t(b.id))
	b.unlease()
	runtime.KeepAlive(b)
	if r.status != C.FERRY_STATUS_OK {
		return nil, statusErr(r.status)
	}
	return adoptView(r.view), nil
}

// Close releases the buffer's id and stops its cleanup. Close can be called more than once, from
// any goroutine; only the first call releases, and later calls return nil. If a View, CopyBytes,
// ReadAt, WriteAt or WriteTo is running, the id is released when the last of them returns.
// Slices obtained with Bytes are invalid once Close returns. The id of a Buffer that ferry made
// is released in a batch with others, without a crossing of its own (its bytes leave
// TrackedBytes at once, and ReadStats and the limits flush the batch first); an adopted id is
// released at once, and Close then returns an error if ferry refused the release, which means
// someone else released the id (an ownership bug).
func (b *Buffer) Close() error {
	if b.state.CompareAndSwap(0, closedBit|releasedBit) {
		// The common case, no lease and not closed yet: close and claim the release at once.
		b.cleanup.Stop()
		atomic.StorePointer(&b.ptr, nil)
		err := releaseNow(b)
		runtime.KeepAlive(b)
		return err
	}
	for {
		s := b.state.Load()
		if s&closedBit != 0 {
			return nil
		}
		if b.state.CompareAndSwap(s, s|closedBit) {
			break
		}
	}
	b.cleanup.Stop()
	return b.finish()
}

// Detach closes the Buffer without releasing its id and returns the id: the caller owns it from
// now on and must release it (for example by handing it to Rust code that does, or to Adopt). It
// fails with an error matching ErrClosed after Close, and with ErrInvalidArgument while a View or
// another leased method is running.
func (b *Buffer) Detach() (uint64, error) {
	id, err := b.detach()
	if err == nil {
		// The id is no longer a Buffer's: whoever gets it may adopt it.
		C.ferry_buffer_disclaim(C.uint64_t(id))
	}
	return id, err
}

// detach is Detach without giving the claim up, for the callback trampoline: the C shim that
// called it does that once the result is handed over (shims.c).
func (b *Buffer) detach() (uint64, error) {
	if !b.state.CompareAndSwap(0, closedBit|releasedBit) {
		if b.state.Load()&closedBit != 0 {
			return 0, errClosed
		}
		return 0, &Error{Status: StatusInvalidArgument, Msg: "Detach: the buffer is in use by a View or a copy"}
	}
	b.cleanup.Stop()
	atomic.StorePointer(&b.ptr, nil)
	untrack(b)
	profileFree(b)
	if b.scope != nil {
		b.scope.forget(b)
	}
	runtime.KeepAlive(b)
	return b.id, nil
}

// acquire takes a lease that keeps the id and its memory alive until unlease; it returns false,
// holding nothing, if the buffer is closed. Code in this package that passes b.id to Rust holds a
// lease for the call and then calls runtime.KeepAlive(b).
func (b *Buffer) acquire() bool {
	if b.state.Add(1)&closedBit != 0 {
		b.unlease()
		return false
	}
	return true
}

// unlease ends a lease taken by acquire; the last lease on a closed buffer releases its id.
func (b *Buffer) unlease() {
	if b.state.Add(^uint64(0)) == closedBit {
		_ = b.finish() // nobody to report to: the Close that deferred the release has returned
	}
}

// finish releases the id once the buffer is closed and holds no lease; exactly one caller wins.
func (b *Buffer) finish() error {
	if !b.state.CompareAndSwap(closedBit, closedBit|releasedBit) {
		return nil
	}
	atomic.StorePointer(&b.ptr, nil)
	err := releaseNow(b)
	runtime.KeepAlive(b)
	return err
}
