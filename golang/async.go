package ferry

/*
#include <stdint.h>
#include <stdlib.h>
#include "ferry.h"

extern void ferryGoSink(uintptr_t key, FerryCompletion *items, size_t n);

static void ferry_cb_sink(void *user_data, const FerryCompletion *items, size_t n) {
	ferryGoSink((uintptr_t)user_data, (FerryCompletion *)items, n);
}

typedef struct {
	uint64_t queue;
	FerryStatus status;
} ferry_cb_queue;

static inline ferry_cb_queue ferry_cb_queue_new(void) {
	ferry_cb_queue r = {0, 0};
	r.status = ferry_queue_new(&r.queue);
	return r;
}

static inline ferry_cb_queue ferry_cb_queue_new_sink(uintptr_t key, size_t max_batch) {
	ferry_cb_queue r = {0, 0};
	r.status = ferry_queue_new_sink(ferry_cb_sink, (void *)key, max_batch, &r.queue);
	return r;
}

typedef struct {
	size_t n;
	FerryStatus status;
} ferry_cb_waited;

static inline ferry_cb_waited ferry_cb_wait(uint64_t queue, FerryCompletion *out, size_t cap, int64_t timeout_ns) {
	ferry_cb_waited r = {0, 0};
	r.status = ferry_queue_wait(queue, out, cap, timeout_ns, &r.n);
	return r;
}

typedef struct {
	FerryView view;
	FerryStatus status;
} ferry_cb_adopted;

static inline ferry_cb_adopted ferry_cb_view_id(uint64_t id) {
	ferry_cb_adopted r = {{0, 0, 0}, 0};
	r.status = ferry_buffer_view(id, &r.view);
	return r;
}
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

// Op is a built-in asynchronous operation run on ferry's Rust worker pool.
type Op uint32

// The built-in operations (FERRY_OP_* in ferry.h).
const (
	// OpEcho completes with the input buffer under a new id, zero-copy, and Value unchanged.
	OpEcho Op = C.FERRY_OP_ECHO
	// OpChecksum completes with the 64-bit FNV-1a hash of the input buffer's bytes in Value.
	OpChecksum Op = C.FERRY_OP_CHECKSUM
	// OpSleep waits Arg microseconds (at most 60 s) on a worker, checking for cancellation every
	// millisecond, and completes with Value. For tests and load.
	OpSleep Op = C.FERRY_OP_SLEEP
	// OpPanic panics on the worker: the call fails with an error matching ErrPanic. For tests.
	OpPanic Op = C.FERRY_OP_PANIC
	// OpCall invokes callback Arg on a worker thread with Input and Value, and completes with its
	// result.
	OpCall Op = C.FERRY_OP_CALL
)

// Request is one asynchronous call: an operation, its input buffer (lent for the duration of Submit
// only: the job holds the bytes itself), its argument and a value.
type Request struct {
	Op    Op
	Input *Buffer
	Arg   uint64
	Value uint64
}

// Future is the pending result of an asynchronous call. Its methods are for one goroutine.
type Future struct {
	e    *engine
	tag  uint64
	ctx  context.Context
	done chan struct{}
	// c is written by the engine's consumer before it closes done.
	c completion
	// Wait's outcome, kept for later calls.
	waited bool
	out    Payload
	err    error
}

type completion struct {
	status        Status
	buffer, value uint64
}

// Done returns a channel that is closed when the result has arrived (not when the context ends).
func (f *Future) Done() <-chan struct{} { return f.done }

// Wait waits for the result or for the context given to Submit to end, whichever comes first.
//
// On success the result's Buffer, if any, is owned by the caller. When the context ends first,
// Wait returns at once with an error matching both ErrCancelled and the context's error
// (context.Canceled or context.DeadlineExceeded); Rust is told, so a job that has not started is
// skipped and a running one can see the cancellation, and a result that arrives later is released.
// Later calls return the same outcome.
func (f *Future) Wait() (Payload, error) {
	if f.waited {
		return f.out, f.err
	}
	f.waited = true
	select {
	case <-f.done:
	default:
		select {
		case <-f.done:
		case <-f.ctx.Done():
			f.err = &cancelError{f.ctx.Err()}
			if f.e.forget(f.tag) {
				// The consumer will find no one waiting and release a late result itself.
				C.ferry_async_cancel(C.uint64_t(f.e.queue), C.uint64_t(f.tag))
			} else {
				// The consumer took the entry and is about to hand the result over: take it, release it.
				<-f.done
				if f.c.buffer != 0 {
					C.ferry_buffer_release(C.uint64_t(f.c.buffer))
				}
			}
			return f.out, f.err
		}
	}
	f.out, f.err = f.c.payload()
	return f.out, f.err
}

// payload turns a completion into the caller's result, adopting its buffer id.
func (c completion) payload() (Payload, error) {
	if c.status != StatusOK {
		return Payload{}, resultErr(c.status, c.value)
	}
	out := Payload{Value: c.value}
	if c.buffer != 0 {
		r := C.ferry_cb_view_id(C.uint64_t(c.buffer))
		if r.status != C.FERRY_STATUS_OK {
			return Payload{}, statusErr(r.status)
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

// Submit starts req on ferry's worker pool (started on first use) and returns its Future.
//
// ctx governs the wait (see Future.Wait). While the pool's job queue is full, Submit retries until
// ctx ends. Errors: a bad op (ErrUnsupported), a closed input Buffer (ErrClosed), an unknown
// callback id (ErrInvalidHandle), ctx already done (ErrCancelled).
func Submit(ctx context.Context, req Request) (*Future, error) {
	e, err := defaultEngine()
	if err != nil {
		return nil, err
	}
	return e.submit(ctx, req)
}

// Do runs req and waits for its result: Submit followed by Wait.
func Do(ctx context.Context, req Request) (Payload, error) {
	f, err := Submit(ctx, req)
	if err != nil {
		return Payload{}, err
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
// in.Buffer is lent for the duration of the submit only.
func (c *Callback) CallAsync(ctx context.Context, in Payload) (Payload, error) {
	return Do(ctx, Request{Op: OpCall, Input: in.Buffer, Arg: c.id, Value: in.Value})
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
	f = e.expect(ctx)
	return f, e.queue, f.tag, nil
}

// SetWorkers sets the number of Rust worker threads (1 to 256) for the pool's next start; 0 means
// the default (the number of CPUs, at least 2). A running pool keeps its threads until
// ShutdownAsync.
func SetWorkers(n int) error {
	if n < 0 || n > 256 {
		return &Error{Status: StatusInvalidArgument, Msg: "SetWorkers: n must be in 0..256"}
	}
	return statusErr(C.ferry_pool_configure(C.uint32_t(n), 0, 0))
}

// ShutdownAsync stops the async machinery: calls still waiting fail with an error matching
// ErrClosed, the completion goroutine exits, and the Rust worker threads are joined. The next
// asynchronous call starts everything again. It must not be called from a callback running on a
// worker (it returns an error matching ErrInvalidArgument there).
func ShutdownAsync() error {
	defEngine.mu.Lock()
	e := defEngine.e
	defEngine.e = nil
	defEngine.cur.Store(nil)
	defEngine.mu.Unlock()
	if e != nil {
		e.close()
	}
	return statusErr(C.ferry_pool_shutdown())
}

// The engine: one completion queue, the calls waiting on it, and its consumer.
//
// Delivery is chosen by measurement (see callback_bench_test.go and the package notes): the
// default engine polls (modePoll): one goroutine sits in a blocking ferry_queue_wait that returns
// as soon as one completion is ready and takes up to pollBatch at once. modeSink, where a Rust
// delivery thread calls into Go with each batch, is kept for comparison.
type deliveryMode int

const (
	modePoll deliveryMode = iota
	modeSink
)

const (
	defaultMode = modePoll
	pollBatch   = 256
)

type engine struct {
	queue  uint64
	mode   deliveryMode
	key    uintptr // modeSink: this engine's key in sinkEngines
	batch  int
	closed atomic.Bool
	exited chan struct{} // modePoll: closed when the poller goroutine returns

	nextTag atomic.Uint64
	mu      sync.Mutex
	pending map[uint64]*Future

	// Only the consumer (the poller goroutine, or the sink's delivery thread) touches these.
	futs []*Future
	late []uint64
}

var defEngine struct {
	mu  sync.Mutex
	e   *engine
	cur atomic.Pointer[engine]
}

var sinkEngines sync.Map // uintptr -> *engine

func defaultEngine() (*engine, error) {
	if e := defEngine.cur.Load(); e != nil {
		return e, nil
	}
	defEngine.mu.Lock()
	defer defEngine.mu.Unlock()
	if defEngine.e == nil {
		e, err := newEngine(defaultMode, pollBatch)
		if err != nil {
			return nil, err
		}
		defEngine.e = e
		defEngine.cur.Store(e)
	}
	return defEngine.e, nil
}

// newEngine makes a queue and starts its consumer: a goroutine (modePoll) or a Rust delivery
// thread calling ferryGoSink (modeSink), taking up to batch completions per crossing.
func newEngine(mode deliveryMode, batch int) (*engine, error) {
	ensureConfig()
	e := &engine{mode: mode, batch: batch, pending: make(map[uint64]*Future)}
	e.futs = make([]*Future, 0, batch)
	switch mode {
	case modeSink:
		e.key = nextKey.Add(1)
		sinkEngines.Store(e.key, e)
		r := C.ferry_cb_queue_new_sink(C.uintptr_t(e.key), C.size_t(batch))
		if r.status != C.FERRY_STATUS_OK {
			sinkEngines.Delete(e.key)
			return nil, statusErr(r.status)
		}
		e.queue = uint64(r.queue)
	default:
		r := C.ferry_cb_queue_new()
		if r.status != C.FERRY_STATUS_OK {
			return nil, statusErr(r.status)
		}
		e.queue = uint64(r.queue)
		e.exited = make(chan struct{})
		go e.poll()
	}
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
	for {
		r := C.ferry_cb_wait(C.uint64_t(e.queue), arr, C.size_t(e.batch), -1)
		if r.status != C.FERRY_STATUS_OK {
			return // CLOSED, or INVALID_HANDLE once the queue is gone: the engine is closing
		}
		e.deliver(items[:r.n])
	}
}

// sinkDeliver is called on a sink queue's Rust delivery thread with a batch.
func sinkDeliver(key uintptr, items []C.FerryCompletion) {
	defer func() {
		// deliver does not panic; if it ever did, the panic must not unwind into Rust.
		_ = recover()
	}()
	v, ok := sinkEngines.Load(key)
	if !ok {
		releaseLate(items)
		return
	}
	v.(*engine).deliver(items)
}

// releaseLate releases the result buffers of completions nobody waits for.
func releaseLate(items []C.FerryCompletion) {
	for i := range items {
		if items[i].buffer != 0 {
			C.ferry_buffer_release(items[i].buffer)
		}
	}
}

// deliver resolves the Futures of a batch: one lock for the whole batch, then each Future's done
// channel is closed. Results nobody waits for any more (cancelled) have their buffers released in
// one crossing.
func (e *engine) deliver(items []C.FerryCompletion) {
	futs := e.futs[:0]
	e.mu.Lock()
	for i := range items {
		tag := uint64(items[i].tag)
		f := e.pending[tag]
		if f != nil {
			delete(e.pending, tag)
		}
		futs = append(futs, f)
	}
	e.mu.Unlock()
	late := e.late[:0]
	for i, f := range futs {
		it := &items[i]
		if f == nil {
			if it.buffer != 0 {
				late = append(late, uint64(it.buffer))
			}
			continue
		}
		f.c = completion{status: Status(it.status), buffer: uint64(it.buffer), value: uint64(it.value)}
		close(f.done)
	}
	if len(late) > 0 {
		C.ferry_buffer_release_many((*C.uint64_t)(unsafe.Pointer(&late[0])), C.size_t(len(late)), nil)
	}
	clear(futs)
	e.futs, e.late = futs[:0], late[:0]
}

// expect registers a new Future under a fresh tag.
func (e *engine) expect(ctx context.Context) *Future {
	f := &Future{e: e, tag: e.nextTag.Add(1), ctx: ctx, done: make(chan struct{})}
	e.mu.Lock()
	e.pending[f.tag] = f
	e.mu.Unlock()
	if e.closed.Load() {
		// close may have swept pending before our insert; fail the Future ourselves.
		e.failPending()
	}
	return f
}

// forget removes tag from the pending calls; it reports whether it was still there (if not, the
// consumer has taken it and is delivering it).
func (e *engine) forget(tag uint64) bool {
	e.mu.Lock()
	_, ok := e.pending[tag]
	delete(e.pending, tag)
	e.mu.Unlock()
	return ok
}

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
	f := e.expect(ctx)
	var st C.FerryStatus
	for attempt := 0; ; attempt++ {
		st = C.ferry_async_submit(C.uint64_t(e.queue), C.uint64_t(f.tag), C.uint32_t(req.Op), C.uint64_t(in),
			C.uint64_t(req.Arg), C.uint64_t(req.Value))
		if st != C.FERRY_STATUS_QUEUE_FULL || ctx.Err() != nil {
			break
		}
		if attempt < 8 {
			runtime.Gosched()
		} else {
			time.Sleep(50 * time.Microsecond)
		}
	}
	if req.Input != nil {
		req.Input.unlease()
		runtime.KeepAlive(req.Input)
	}
	if st != C.FERRY_STATUS_OK {
		e.forget(f.tag)
		if st == C.FERRY_STATUS_QUEUE_FULL {
			return nil, &cancelError{ctx.Err()}
		}
		return nil, statusErr(st)
	}
	return f, nil
}

// close closes the queue (a sink queue delivers what it holds first), waits for the poller to
// exit, and fails every call still waiting with ErrClosed.
func (e *engine) close() {
	if e.closed.Swap(true) {
		return
	}
	C.ferry_queue_close(C.uint64_t(e.queue))
	if e.mode == modePoll {
		<-e.exited
	} else {
		sinkEngines.Delete(e.key)
	}
	e.failPending()
}

func (e *engine) failPending() {
	e.mu.Lock()
	var fs []*Future
	for tag, f := range e.pending {
		delete(e.pending, tag)
		fs = append(fs, f)
	}
	e.mu.Unlock()
	for _, f := range fs {
		f.c = completion{status: StatusClosed}
		close(f.done)
	}
}
