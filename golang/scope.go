package ferry

/*
#include "shims.h"
*/
import "C"

import (
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Scope owns a group of Buffers that end together, such as the buffers of one request: Close
// releases every Buffer of the scope that is still open in one crossing into Rust.
//
// Buffers made by a Scope (New, Copy, Adopt) are ordinary Buffers in every way but three: they
// carry no cleanup of their own (one GC cleanup per Scope is the backstop, and it releases the
// scope's open Buffers once the Scope and all of them are unreachable), their structs are
// allocated in blocks by the Scope, and the Scope's Close closes them. A scoped Buffer may still be
// closed early with its own Close, or detached; the Scope then leaves it alone. After the Scope is
// closed its Buffers behave exactly as after their own Close: methods return an error matching
// ErrClosed and Bytes panics.
//
// A Scope is safe for concurrent use. Its Buffers keep it reachable, so the backstop never releases
// a Buffer that is still in use.
type Scope struct {
	rec *scopeRec
	// blocks hold the Buffer structs; used counts those taken from the last. Guarded by rec.mu.
	blocks [][]Buffer
	used   int
}

// scopeRec is what the scope's GC backstop needs: never the Scope or its Buffers.
type scopeRec struct {
	mu     sync.Mutex
	closed bool
	// ids[i] is the id of the scope's i-th Buffer, 0 once that Buffer no longer belongs to the
	// scope (closed early or detached); bytes is the length of those still open.
	ids   []uint64
	bytes int64
	// profs holds the heap profile's records of the scope's sampled Buffers, by index.
	profs map[int]*heapSample
	// cleanup is the GC backstop; Close stops it.
	cleanup runtime.Cleanup
}

// The Buffer structs of a scope are allocated in blocks as large as all before them together, from
// scopeFirstBlock to scopeMaxBlock structs: a scope of 2^k Buffers (k >= 3) wastes none.
const (
	scopeFirstBlock = 8
	scopeMaxBlock   = 64
)

var errScopeClosed error = &Error{Status: StatusClosed, Msg: "scope is closed"}

// NewScope returns an empty Scope. It makes no cgo call.
func NewScope() *Scope {
	s := &Scope{rec: &scopeRec{}}
	s.rec.cleanup = runtime.AddCleanup(s, releaseScopeFromCleanup, s.rec)
	return s
}

// New returns a zeroed buffer of n bytes in Rust memory, owned by the scope. Errors are as for the
// package's New, and one matching ErrClosed after the scope is closed.
func (s *Scope) New(n int) (*Buffer, error) {
	v, err := newView(n)
	if err != nil {
		return nil, err
	}
	return s.adopt(v, false)
}

// Copy returns a buffer in Rust memory holding a copy of p, owned by the scope. ferry does not
// keep p. Errors are as for New.
func (s *Scope) Copy(p []byte) (*Buffer, error) {
	v, err := copyView(p)
	if err != nil {
		return nil, err
	}
	return s.adopt(v, false)
}

// Adopt takes ownership of an id made elsewhere in the process, as the package's Adopt does, for
// the scope. On error (the package Adopt's, or one matching ErrClosed after the scope is closed)
// the caller still owns the id.
func (s *Scope) Adopt(id uint64, ptr unsafe.Pointer, n int) (*Buffer, error) {
	if abiErr != nil {
		return nil, abiErr
	}
	ensureConfig()
	if s.isClosed() {
		return nil, errScopeClosed
	}
	r := C.ferry_go_claim(C.uint64_t(id))
	if r.status != C.FERRY_STATUS_OK {
		return nil, adoptErr(r.status)
	}
	if unsafe.Pointer(r.view.ptr) != ptr || int(r.view.len) != n {
		C.ferry_buffer_disclaim(C.uint64_t(id))
		return nil, &Error{Status: StatusInvalidArgument, Msg: "Adopt: ptr and length do not match the id's view"}
	}
	return s.adopt(r.view, true)
}

func (s *Scope) isClosed() bool {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	return s.rec.closed
}

// adopt makes the scope's Buffer for an id and view that Rust just returned, claimed. If the scope
// is closed already it gives the id back: released if ferry made it (foreign false), disclaimed
// for the caller if it was adopted.
func (s *Scope) adopt(v C.FerryView, foreign bool) (*Buffer, error) {
	r := s.rec
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		if foreign {
			C.ferry_buffer_disclaim(v.id)
		} else {
			C.ferry_buffer_release(v.id)
		}
		return nil, errScopeClosed
	}
	if len(s.blocks) == 0 || s.used == len(s.blocks[len(s.blocks)-1]) {
		size := min(max(len(r.ids), scopeFirstBlock), scopeMaxBlock) // 8, 8, 16, 32, 64, 64, ...
		if len(r.ids) == 0 {
			r.ids = make([]uint64, 0, scopeMaxBlock)
		}
		s.blocks = append(s.blocks, make([]Buffer, size))
		s.used = 0
	}
	b := &s.blocks[len(s.blocks)-1][s.used]
	s.used++
	b.id, b.n, b.ptr = uint64(v.id), int(v.len), unsafe.Pointer(v.ptr)
	b.scope, b.sidx, b.foreign = s, len(r.ids), foreign
	r.ids = append(r.ids, b.id)
	r.bytes += int64(b.n)
	profileAlloc(b)
	if b.prof != nil {
		if r.profs == nil {
			r.profs = make(map[int]*heapSample)
		}
		r.profs[b.sidx] = b.prof
	}
	r.mu.Unlock()
	track(b)
	return b, nil
}

// forget takes b out of the scope: it was closed early or detached, and its release (or new
// owner) is no longer the scope's business.
func (s *Scope) forget(b *Buffer) {
	r := s.rec
	r.mu.Lock()
	if !r.closed {
		r.ids[b.sidx] = 0
		r.bytes -= int64(b.n)
		if b.prof != nil {
			delete(r.profs, b.sidx)
		}
	}
	r.mu.Unlock()
}

// Close closes every Buffer of the scope that is still open and releases their ids in one
// crossing; it stops the scope's cleanup. A Buffer in use by a View or another leased method is
// released when that returns, as for its own Close. Close can be called more than once; only the
// first call releases, and later calls return nil. New, Copy and Adopt fail after Close. Close
// returns an error matching ErrInvalidHandle only if ferry refused to release some id, which means
// someone else released it (an ownership bug).
func (s *Scope) Close() error {
	r := s.rec
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.cleanup.Stop()
	ids := r.ids[:0] // reused: each open Buffer's id goes back at or below its own index
	var bytes int64
	for _, blk := range s.blocks {
		for i := range blk {
			b := &blk[i]
			if b.scope == nil || b.state.Load()&closedBit != 0 {
				continue // a struct not used yet, or a Buffer closed early
			}
			if !closeForScope(b) {
				continue // closed meanwhile, or leased: its last lease releases it
			}
			atomic.StorePointer(&b.ptr, nil)
			ids = append(ids, b.id)
			bytes += int64(b.n)
			profileFree(b)
		}
	}
	s.blocks, r.ids, r.profs = nil, nil, nil
	r.mu.Unlock()
	if len(ids) == 0 {
		return nil
	}
	var released C.size_t
	st := C.ferry_buffer_release_many((*C.uint64_t)(unsafe.Pointer(&ids[0])), C.size_t(len(ids)), &released)
	untrackScope(bytes)
	runtime.KeepAlive(s)
	return statusErr(st)
}

// closeForScope closes b for its scope's Close: it reports true if the scope must release b's id
// now, and false if b was closed meanwhile or is leased (its last lease then releases it, through
// releaseNow, which finds the scope closed).
func closeForScope(b *Buffer) bool {
	for {
		st := b.state.Load()
		if st&closedBit != 0 {
			return false
		}
		if st == 0 {
			if b.state.CompareAndSwap(0, closedBit|releasedBit) {
				return true
			}
			continue
		}
		if b.state.CompareAndSwap(st, st|closedBit) {
			return false
		}
	}
}

// untrackScope stops counting the n bytes of Buffers that a Scope's Close released.
func untrackScope(n int64) {
	if n != 0 {
		budgetCheck(trackedFolded.Add(-n))
	}
}

// releaseScopeFromCleanup is a Scope's GC backstop: it runs once the Scope and all its Buffers are
// unreachable without Close, and queues the ids of the Buffers still open for a batched release.
func releaseScopeFromCleanup(r *scopeRec) {
	r.mu.Lock()
	ids, bytes, profs := r.ids, r.bytes, r.profs
	r.closed, r.ids, r.profs = true, nil, nil
	r.mu.Unlock()
	for _, p := range profs {
		profileDropped(p)
	}
	relq.mu.Lock()
	n := 0
	for _, id := range ids {
		if id != 0 {
			relq.ids = append(relq.ids, id)
			n++
		}
	}
	cleanupsRun.Add(uint64(n))
	relq.bytes += bytes
	queuedLocked()
}
