package ferry

/*
#include "ferry.h"
*/
import "C"

import (
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Close without a crossing. Close stops counting a Buffer's bytes at once (TrackedBytes and the
// soft limit stay exact) but does not call Rust: the id joins a close batch, and a batch goes to
// Rust in one ferry_buffer_release_many crossing when it holds closeBatch ids, or closeDelay after
// the first id of a quiet period arrived, whichever comes first. Anything that reads or depends on
// the core's live bytes flushes the batches first (flushCloses): ReadStats, a create that the
// live-byte limit refused (relieve retries after the flush before it collects), the memory budget
// (coreLiveBytes) and ferry's collections. A ferrydebug build releases at once, so that guard mode
// faults on the first use after Close.
//
// The batches are sharded like the byte counts (by the Buffer's address), so that goroutines on
// different Ps do not fight over one lock on every Close.
const (
	closeBatch = 64
	closeDelay = time.Millisecond
)

type closeShard struct {
	mu    sync.Mutex
	ids   []uint64
	spare []uint64
	_     [64]byte
}

var (
	closeShards [trackShards]closeShard
	// closePending counts the ids waiting in the close batches (changed under the shard's lock).
	closePending atomic.Int64
	closeArmed   atomic.Bool
	closeTimer   = time.AfterFunc(time.Hour, func() { flushCloses() })
	// closeCrossings counts the ferry_buffer_release_many calls made for close batches.
	closeCrossings atomic.Uint64
)

func init() { closeTimer.Stop() }

// releaseClosed releases the id of b, closed by its owner: now in a ferrydebug build, else through
// a close batch. It returns an error only for a release made now that Rust refused.
func releaseClosed(b *Buffer) error {
	if debugMode {
		return statusErr(C.ferry_buffer_release(C.uint64_t(b.id)))
	}
	s := &closeShards[(uintptr(unsafe.Pointer(b))>>13)%trackShards]
	s.mu.Lock()
	if s.ids == nil {
		s.ids, s.spare = s.spare, nil
		if s.ids == nil {
			s.ids = make([]uint64, 0, closeBatch)
		}
	}
	s.ids = append(s.ids, b.id)
	if len(s.ids) >= closeBatch {
		ids := s.ids
		s.ids = nil
		closePending.Add(-int64(len(ids) - 1))
		releasesInFlight.Add(1)
		s.mu.Unlock()
		s.sendCloses(ids)
		return nil
	}
	closePending.Add(1)
	s.mu.Unlock()
	if !closeArmed.Load() && closeArmed.CompareAndSwap(false, true) {
		closeTimer.Reset(closeDelay)
	}
	return nil
}

// sendCloses releases a batch taken from s (releasesInFlight counts it until then) and gives the
// slice back for reuse.
func (s *closeShard) sendCloses(ids []uint64) {
	C.ferry_buffer_release_many((*C.uint64_t)(unsafe.Pointer(&ids[0])), C.size_t(len(ids)), nil)
	closeCrossings.Add(1)
	releasesInFlight.Add(-1)
	s.mu.Lock()
	if s.spare == nil {
		s.spare = ids[:0]
	}
	s.mu.Unlock()
}

// flushCloses sends every close batch to Rust now and returns how many ids it released. When it
// returns, every id closed before the call is released, except ids of a batch that another
// goroutine took and is still sending (collect waits for those through releasesInFlight).
func flushCloses() int {
	closeArmed.Store(false)
	if closePending.Load() == 0 {
		return 0
	}
	n := 0
	for i := range closeShards {
		s := &closeShards[i]
		s.mu.Lock()
		ids := s.ids
		if len(ids) == 0 {
			s.mu.Unlock()
			continue
		}
		s.ids = nil
		closePending.Add(-int64(len(ids)))
		releasesInFlight.Add(1)
		s.mu.Unlock()
		n += len(ids)
		s.sendCloses(ids)
	}
	return n
}
