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

// Releases from the GC backstop are batched: a cleanup only queues its id, and the queue goes to
// Rust in one ferry_buffer_release_many crossing when it holds releaseBatch ids, or releaseDelay
// after its first id arrived, whichever comes first. No goroutine runs while the queue is empty.
const (
	releaseBatch = 256
	releaseDelay = time.Millisecond
)

var relq struct {
	mu    sync.Mutex
	ids   []uint64
	bytes int64
	armed bool
	timer *time.Timer
}

var (
	// cleanupsRun counts cleanups that have run (each queued one id).
	cleanupsRun atomic.Uint64
	// releaseCrossings counts ferry_buffer_release_many calls made for the queue.
	releaseCrossings atomic.Uint64
	// releasesInFlight counts batches taken from the queue and not yet released.
	releasesInFlight atomic.Int64
)

// releaseNow releases b's id for Close and stops counting its bytes. The id of a Buffer that
// ferry made joins a close batch (releasebatch.go); an adopted id, which foreign code also knew,
// is released at once, so that Close reports an id released behind the Buffer's back.
func releaseNow(b *Buffer) error {
	if b.scope != nil {
		b.scope.forget(b)
	}
	var err error
	if b.foreign {
		err = statusErr(C.ferry_buffer_release(C.uint64_t(b.id)))
	} else {
		err = releaseClosed(b)
	}
	// After the id is in a close batch: a budget refresh that the untrack starts flushes it.
	untrack(b)
	profileFree(b)
	return err
}

// releaseFromCleanup is the GC backstop of every Buffer: it runs once the Buffer is unreachable
// without Close, and queues the id for a batched release.
func releaseFromCleanup(a cleanupArg) {
	cleanupsRun.Add(1)
	profileDropped(a.prof)
	relq.mu.Lock()
	relq.ids = append(relq.ids, a.id)
	relq.bytes += a.n
	queuedLocked()
}

// queuedLocked sends the queue to Rust if it is full (or in a ferrydebug build), else makes sure
// the timer will; relq.mu must be held, and queuedLocked unlocks it.
func queuedLocked() {
	if len(relq.ids) >= releaseBatch || debugMode {
		ids, n := takeQueue()
		relq.mu.Unlock()
		releaseMany(ids, n)
		return
	}
	if !relq.armed {
		relq.armed = true
		if relq.timer == nil {
			relq.timer = time.AfterFunc(releaseDelay, flushReleases)
		} else {
			relq.timer.Reset(releaseDelay)
		}
	}
	relq.mu.Unlock()
}

// takeQueue empties the queue; relq.mu must be held. The caller must pass what it returns to
// releaseMany.
func takeQueue() ([]uint64, int64) {
	ids, n := relq.ids, relq.bytes
	if len(ids) > 0 {
		releasesInFlight.Add(1)
	}
	relq.ids, relq.bytes = make([]uint64, 0, releaseBatch), 0
	return ids, n
}

// flushReleases sends every queued id to Rust now.
func flushReleases() {
	relq.mu.Lock()
	relq.armed = false
	ids, n := takeQueue()
	relq.mu.Unlock()
	releaseMany(ids, n)
}

// pendingReleases returns how many ids wait in the queue.
func pendingReleases() int {
	relq.mu.Lock()
	defer relq.mu.Unlock()
	return len(relq.ids)
}

// releaseMany releases ids in one crossing and stops counting their n bytes. An id that is no
// longer valid is skipped by Rust; that can only happen if someone else released it.
func releaseMany(ids []uint64, n int64) {
	if len(ids) == 0 {
		return
	}
	var released C.size_t
	C.ferry_buffer_release_many((*C.uint64_t)(unsafe.Pointer(&ids[0])), C.size_t(len(ids)), &released)
	releaseCrossings.Add(1)
	untrackBytes(n)
	releasesInFlight.Add(-1)
}
