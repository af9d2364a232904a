package ferry

/*
#include "ferry.h"
*/
import "C"

import (
	"runtime"
	"sync/atomic"
	"unsafe"
)

// RegionBuffer is a buffer inside a Region: shared memory whose id is valid in the peer process
// too. It is either this process's own (from Alloc) or one the peer sent (a lease).
//
// Bytes returns the memory itself, not a copy; it is valid until Close (or until the region is
// closed). Close releases this process's hold: the memory is reused only once every hold on it,
// in either process, is released. A RegionBuffer that becomes unreachable without Close is
// released by a cleanup. All methods are safe for concurrent use.
type RegionBuffer struct {
	r       *Region
	id      uint64
	ptr     unsafe.Pointer
	n       int
	state   atomic.Uint64 // lease count | closedBit | releasedBit, as Buffer
	cleanup runtime.Cleanup
}

type regionCleanup struct {
	region, id uint64
}

func newRegionBuffer(r *Region, id uint64, ptr unsafe.Pointer, n int) *RegionBuffer {
	b := &RegionBuffer{r: r, id: id, ptr: ptr, n: n}
	b.cleanup = runtime.AddCleanup(b, func(a regionCleanup) {
		C.ferry_region_release(C.uint64_t(a.region), C.uint64_t(a.id))
	}, regionCleanup{r.id, id})
	return b
}

var errClosedBuf error = &Error{Status: StatusClosed, Msg: "region buffer is closed"}

// ID returns the buffer's id (the same number in the peer process), or 0 after Close.
func (b *RegionBuffer) ID() uint64 {
	if b.state.Load()&closedBit != 0 {
		return 0
	}
	return b.id
}

// Len returns the buffer's length, or 0 after Close.
func (b *RegionBuffer) Len() int {
	if b.state.Load()&closedBit != 0 {
		return 0
	}
	return b.n
}

// Bytes returns the buffer's bytes: shared memory, not a copy, valid until Close and while the
// region is open. The peer may read or write the same bytes; ordering the accesses (for example
// by messages) is the caller's job. Bytes panics with an error matching ErrClosed after Close.
func (b *RegionBuffer) Bytes() []byte {
	if b.state.Load()&closedBit != 0 {
		panic(errClosedBuf)
	}
	return unsafe.Slice((*byte)(b.ptr), b.n)
}

func (b *RegionBuffer) acquire() bool {
	for {
		s := b.state.Load()
		if s&closedBit != 0 {
			return false
		}
		if b.state.CompareAndSwap(s, s+1) {
			return true
		}
	}
}

func (b *RegionBuffer) unlease() {
	if b.state.Add(^uint64(0)) == closedBit {
		b.releaseOnce()
	}
}

func (b *RegionBuffer) releaseOnce() {
	for {
		s := b.state.Load()
		if s&releasedBit != 0 {
			return
		}
		if b.state.CompareAndSwap(s, s|releasedBit) {
			C.ferry_region_release(C.uint64_t(b.r.id), C.uint64_t(b.id))
			return
		}
	}
}

// forget marks the buffer closed without releasing: its hold moved to the peer with the message.
func (b *RegionBuffer) forget() {
	b.cleanup.Stop()
	for {
		s := b.state.Load()
		if b.state.CompareAndSwap(s, s|closedBit|releasedBit) {
			return
		}
	}
}

// Close releases this process's hold on the buffer. Close can be called more than once; only
// the first call releases (after any Send using the buffer has finished).
func (b *RegionBuffer) Close() error {
	for {
		s := b.state.Load()
		if s&closedBit != 0 {
			return nil
		}
		if b.state.CompareAndSwap(s, s|closedBit) {
			b.cleanup.Stop()
			if s == 0 {
				b.releaseOnce()
			}
			return nil
		}
	}
}
