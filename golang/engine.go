package ferry

/*
#include <stdlib.h>
#include "shims.h"
*/
import "C"

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// The engine: one completion queue, the calls waiting on it, and the poller goroutine that hands
// their results out.
//
// Delivery was chosen by measurement (BenchmarkCompletionDelivery, 2-core VM, best of 3): one
// goroutine sits in a blocking ferry_queue_wait that returns as soon as one completion is ready (so
// light load never waits for a batch to fill) and takes up to pollBatch at once. Per completion,
// the crossing alone costs 142 ns with one Go callback per completion, 114 ns polling one at a
// time, and 6.5 ns polling 256 at a time (22x); a Rust delivery thread calling Go with batches of
// 256 (ferry_queue_new_sink, which C users keep) costs 9.4 ns and needs a thread of its own.
// Resolving the Futures adds ~45 ns per completion. The benchmark keeps the comparison, on test
// code of its own (internal/abitest), off this path.
//
// Submits cross on the caller's goroutine, so that a submit made from a callback running on a
// worker thread is made on that thread: ferry's pool starts an extra worker for such a submit when
// no worker is free (see "Nesting" in the package documentation). A batched or deferred submit
// path must keep that property, or tell ferry which submits come from a worker.
const pollBatch = 256

type engine struct {
	queue  uint64
	batch  int
	closed atomic.Bool
	exited chan struct{} // closed when the poller goroutine returns
	calls  slotTable[Future]

	// Only the poller touches these.
	late  []uint64
	taken []uint64
	in    inliner
}

var defEngine struct {
	mu  sync.Mutex
	e   *engine
	cur atomic.Pointer[engine]
}

func defaultEngine() (*engine, error) {
	if e := defEngine.cur.Load(); e != nil {
		return e, nil
	}
	defEngine.mu.Lock()
	defer defEngine.mu.Unlock()
	if defEngine.e == nil {
		e, err := newEngine(pollBatch)
		if err != nil {
			return nil, err
		}
		defEngine.e = e
		defEngine.cur.Store(e)
	}
	return defEngine.e, nil
}

// newEngine makes a queue and starts its poller goroutine, which takes up to batch completions per
// crossing.
func newEngine(batch int) (*engine, error) {
	if abiErr != nil {
		return nil, abiErr
	}
	ensureConfig()
	r := C.ferry_go_queue_new()
	if r.status != C.FERRY_STATUS_OK {
		return nil, statusErr(r.status)
	}
	e := &engine{queue: uint64(r.queue), batch: batch, exited: make(chan struct{})}
	go e.poll()
	return e, nil
}

// poll is the poller goroutine: it waits in Rust for completions and hands them out, until the
// queue is closed. The batch array is C memory, so the cgo call checks no Go pointers.
func (e *engine) poll() {
	defer close(e.exited)
	size := C.size_t(unsafe.Sizeof(C.FerryCompletion{}))
	arr := (*C.FerryCompletion)(C.malloc(size * C.size_t(e.batch)))
	defer C.free(unsafe.Pointer(arr))
	items := unsafe.Slice(arr, e.batch)
	e.in.init(e.batch)
	defer e.in.free()
	for {
		r := C.ferry_go_queue_wait(C.uint64_t(e.queue), arr, C.size_t(e.batch), -1)
		if r.status != C.FERRY_STATUS_OK {
			return // CLOSED, or INVALID_HANDLE once the queue is gone: the engine is closing
		}
		e.deliver(items[:r.n])
	}
}

// deliver resolves the Futures of a batch: per completion, a lookup and a swap to take the Future
// out of the table, and one swap to hand the result over (a channel is closed only if someone
// blocks in Wait). Results nobody waits for any more (cancelled, unknown tags) are released in one
// crossing, and the taken slots go back in one lock.
func (e *engine) deliver(items []C.FerryCompletion) {
	late, taken := e.late[:0], e.taken[:0]
	for i := range items {
		it := &items[i]
		tag := uint64(it.tag)
		c := completion{status: Status(it.status), buffer: uint64(it.buffer), value: uint64(it.value)}
		f := e.calls.take(tag)
		if f != nil {
			taken = append(taken, tag)
			if f.mode != ResultLend && c.buffer != 0 && c.status == StatusOK {
				e.in.want(i, f) // resolved after the batch's copy, below
				continue
			}
		}
		if (f == nil || !f.resolve(c)) && c.buffer != 0 {
			late = append(late, c.buffer)
		}
	}
	late = e.in.resolve(items, late)
	if len(late) > 0 {
		C.ferry_buffer_release_many((*C.uint64_t)(unsafe.Pointer(&late[0])), C.size_t(len(late)), nil)
	}
	if len(taken) > 0 {
		e.calls.recycle(taken...)
	}
	e.late, e.taken = late[:0], taken[:0]
}

// expect registers a new Future under a fresh tag.
func (e *engine) expect(ctx context.Context) (*Future, error) {
	f := &Future{e: e, ctx: ctx}
	tag := e.calls.add(f)
	if tag == 0 {
		return nil, &Error{Status: StatusTableFull, Msg: "too many async calls in flight"}
	}
	f.tag = tag
	if e.closed.Load() {
		// close may have swept the table before f went in: fail f ourselves.
		e.fail(tag)
		return nil, &Error{Status: StatusClosed, Msg: "async engine is shut down"}
	}
	return f, nil
}

// fail resolves the Future for tag with CLOSED if it is still in the table, and frees its slot.
func (e *engine) fail(tag uint64) {
	if f := e.calls.take(tag); f != nil {
		e.calls.recycle(tag)
		f.resolve(completion{status: StatusClosed})
	}
}

// submit starts req and returns its Future. The submit crosses on this goroutine (see the note on
// nested submits above).
func (e *engine) submit(ctx context.Context, req Request) (*Future, error) {
	if err := ctx.Err(); err != nil {
		return nil, &cancelError{err}
	}
	var in uint64
	if req.Input != nil {
		if !req.Input.acquire() {
			return nil, errClosed
		}
		in = req.Input.id
	}
	f, err := e.expect(ctx)
	if err != nil {
		if req.Input != nil {
			req.Input.unlease()
		}
		return nil, err
	}
	f.mode = req.Result
	var st C.FerryStatus
	for attempt := 0; ; attempt++ {
		st = C.ferry_async_submit(C.uint64_t(e.queue), C.uint64_t(f.tag), C.uint32_t(req.Op), C.uint64_t(in),
			C.uint64_t(req.Arg), C.uint64_t(req.Value))
		if st != C.FERRY_STATUS_QUEUE_FULL || ctx.Err() != nil {
			break
		}
		queueFullBackoff(attempt)
	}
	if req.Input != nil {
		req.Input.unlease()
		runtime.KeepAlive(req.Input)
	}
	if st != C.FERRY_STATUS_OK {
		// No completion will come: free the slot (unless close already swept it).
		if e.calls.take(f.tag) != nil {
			e.calls.recycle(f.tag)
		}
		if st == C.FERRY_STATUS_QUEUE_FULL {
			return nil, &cancelError{ctx.Err()}
		}
		return nil, statusErr(st)
	}
	return f, nil
}

// close closes the queue, waits for the poller to exit, and fails every call still waiting with
// ErrClosed.
func (e *engine) close() {
	if e.closed.Swap(true) {
		return
	}
	C.ferry_queue_close(C.uint64_t(e.queue))
	<-e.exited
	for _, f := range e.calls.drain() {
		f.resolve(completion{status: StatusClosed})
	}
}

// queueFullBackoff waits before a submit refused with QUEUE_FULL is tried again: a yield for the
// first attempts, then 50 µs sleeps.
func queueFullBackoff(attempt int) {
	if attempt < 8 {
		runtime.Gosched()
	} else {
		time.Sleep(50 * time.Microsecond)
	}
}
