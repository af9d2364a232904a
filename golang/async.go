package ferry

/*
#include <stdint.h>
#include <stdlib.h>
#include "ferry_go.h"

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
	e   *engine
	tag uint64
	ctx context.Context
	// state is futPending, futWaiting (ch is made and someone may block on it), futDone (c is
	// set) or futCancelled (Wait gave up; the consumer releases a late result).
	state atomic.Uint32
	// ch is made by the first Done or Wait that must block, before state becomes futWaiting.
	ch chan struct{}
	// c is written by the engine's consumer before it sets futDone.
	c completion
	// Wait's outcome, kept for later calls.
	waited bool
	out    Payload
	err    error
}

const (
	futPending uint32 = iota
	futWaiting
	futDone
	futCancelled
)

type completion struct {
	status        Status
	buffer, value uint64
}

// closedChan is returned by Done once the result is there.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// Done returns a channel that is closed when the result has arrived (never, for a call whose Wait
// gave up because its context ended).
func (f *Future) Done() <-chan struct{} {
	if f.ch != nil {
		return f.ch
	}
	if f.state.Load() == futDone {
		return closedChan
	}
	// The channel costs an allocation and a close: only calls that really wait pay for it.
	f.ch = make(chan struct{})
	if !f.state.CompareAndSwap(futPending, futWaiting) {
		return closedChan // done meanwhile
	}
	return f.ch
}

// resolve hands c to the Future (the consumer's side); it reports false if the Future was
// cancelled, in which case the caller releases c's buffer.
func (f *Future) resolve(c completion) bool {
	f.c = c
	switch f.state.Swap(futDone) {
	case futWaiting:
		close(f.ch)
	case futCancelled:
		return false
	}
	return true
}

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
	if f.state.Load() != futDone {
		select {
		case <-f.Done():
		case <-f.ctx.Done():
			f.err = &cancelError{f.ctx.Err()}
			if f.state.Swap(futCancelled) == futDone {
				// The result came in the meantime: nobody will take it, so release it now.
				if f.c.buffer != 0 {
					C.ferry_buffer_release(C.uint64_t(f.c.buffer))
				}
			} else {
				// The consumer will release a late result; tell Rust to skip or stop the job.
				C.ferry_async_cancel(C.uint64_t(f.e.queue), C.uint64_t(f.tag))
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
		r := C.ferry_go_view(C.uint64_t(c.buffer))
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
// The first asynchronous call also starts one goroutine that waits in Rust for completions and
// hands them out, many per crossing; it keeps an OS thread blocked in that wait until
// ShutdownAsync.
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
	f, err = e.expect(ctx)
	if err != nil {
		return nil, 0, 0, err
	}
	return f, e.queue, f.tag, nil
}

// SetWorkers sets the number of Rust worker threads (1 to 256) for the pool's next start; 0 means
// the default (the number of CPUs, at least 2). A running pool keeps its threads until
// ShutdownAsync.
func SetWorkers(n int) error {
	if abiErr != nil {
		return abiErr
	}
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
	if abiErr != nil {
		return abiErr
	}
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
// Delivery is chosen by measurement (BenchmarkCompletionDelivery, 2-core VM, best of 3): the
// default engine polls (modePoll): one goroutine sits in a blocking ferry_queue_wait that returns
// as soon as one completion is ready (so light load never waits for a batch to fill) and takes up
// to pollBatch at once. Per completion, the crossing alone costs 142 ns with one Go callback per
// completion, 114 ns polling one at a time, and 6.5 ns polling 256 at a time (22x); a Rust
// delivery thread calling Go with batches of 256 (modeSink, kept for comparison and for C users
// through ferry_queue_new_sink) costs 9.4 ns and needs a thread of its own. Resolving the Futures
// adds ~45 ns per completion either way.
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
	calls  callTable

	// countOnly makes the consumer only count what it receives (benchmarks of the bare crossing).
	countOnly bool
	counted   atomic.Int64

	// Only the consumer (the poller goroutine, or the sink's delivery thread) touches these.
	late  []uint64
	freed []uint32
}

// callTable holds the Futures waiting on an engine, by tag. A tag is generation<<32 | slot+1, so
// the consumer finds a Future with two loads and no lock or hashing, and a stale tag (a late
// duplicate, a forged post) never finds a Future that reused its slot. A slot is freed when its
// completion arrives (every successful submit has exactly one), when its submit fails, or when the
// engine closes; slots come back to the free list in batches.
type callTable struct {
	live   atomic.Int64 // Futures in the table
	mu     sync.Mutex
	free   []uint32
	gens   []uint32
	chunks [callChunks]atomic.Pointer[[callChunkSize]atomic.Pointer[Future]]
}

const (
	callChunkSize = 1024
	callChunks    = 4096 // at most 4M calls in flight per engine
)

// add gives f a slot and sets f.tag; false if the table is full.
func (t *callTable) add(f *Future) bool {
	t.mu.Lock()
	var slot uint32
	if n := len(t.free); n > 0 {
		slot = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		if len(t.gens) == callChunks*callChunkSize {
			t.mu.Unlock()
			return false
		}
		slot = uint32(len(t.gens))
		t.gens = append(t.gens, 0)
		if slot%callChunkSize == 0 {
			t.chunks[slot/callChunkSize].Store(new([callChunkSize]atomic.Pointer[Future]))
		}
	}
	t.gens[slot]++
	f.tag = uint64(t.gens[slot])<<32 | uint64(slot+1)
	ref := &t.chunks[slot/callChunkSize].Load()[slot%callChunkSize]
	t.mu.Unlock()
	ref.Store(f)
	t.live.Add(1)
	return true
}

func (t *callTable) ref(tag uint64) *atomic.Pointer[Future] {
	slot := uint32(tag) - 1
	if tag>>32 == 0 || slot >= callChunks*callChunkSize {
		return nil
	}
	c := t.chunks[slot/callChunkSize].Load()
	if c == nil {
		return nil
	}
	return &c[slot%callChunkSize]
}

// take removes and returns the Future for tag (the consumer's side), or nil.
func (t *callTable) take(tag uint64) *Future {
	r := t.ref(tag)
	if r == nil {
		return nil
	}
	f := r.Load()
	if f == nil || f.tag != tag {
		return nil
	}
	r.Store(nil)
	t.live.Add(-1)
	return f
}

// swapOut removes the Future for tag if it is still there, for paths that may race each other
// (a failed submit, closing); the caller then frees the slot.
func (t *callTable) swapOut(tag uint64) *Future {
	r := t.ref(tag)
	if r == nil {
		return nil
	}
	f := r.Load()
	if f == nil || f.tag != tag || !r.CompareAndSwap(f, nil) {
		return nil
	}
	t.live.Add(-1)
	return f
}

// release puts slots back on the free list.
func (t *callTable) release(slots ...uint32) {
	t.mu.Lock()
	t.free = append(t.free, slots...)
	t.mu.Unlock()
}

// all removes and returns every Future still in the table.
func (t *callTable) all() []*Future {
	t.mu.Lock()
	n := len(t.gens)
	t.mu.Unlock()
	var fs []*Future
	for slot := 0; slot < n; slot++ {
		c := t.chunks[slot/callChunkSize].Load()
		if f := c[slot%callChunkSize].Swap(nil); f != nil {
			t.live.Add(-1)
			fs = append(fs, f)
			t.release(uint32(slot))
		}
	}
	return fs
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
	return startEngine(&engine{mode: mode, batch: batch})
}

func startEngine(e *engine) (*engine, error) {
	if abiErr != nil {
		return nil, abiErr
	}
	ensureConfig()
	switch e.mode {
	case modeSink:
		e.key = nextKey.Add(1)
		sinkEngines.Store(e.key, e)
		r := C.ferry_cb_queue_new_sink(C.uintptr_t(e.key), C.size_t(e.batch))
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

// deliver resolves the Futures of a batch: per completion, two loads and a store to find and
// remove the Future, and one swap to hand the result over (a channel is closed only if someone
// blocks in Wait). Results nobody waits for any more (cancelled, unknown tags) are released in one
// crossing, and the freed slots go back in one lock.
func (e *engine) deliver(items []C.FerryCompletion) {
	if e.countOnly {
		e.counted.Add(int64(len(items)))
		return
	}
	late, freed := e.late[:0], e.freed[:0]
	for i := range items {
		it := &items[i]
		tag := uint64(it.tag)
		c := completion{status: Status(it.status), buffer: uint64(it.buffer), value: uint64(it.value)}
		f := e.calls.take(tag)
		if f != nil {
			freed = append(freed, uint32(tag)-1)
		}
		if (f == nil || !f.resolve(c)) && c.buffer != 0 {
			late = append(late, c.buffer)
		}
	}
	if len(late) > 0 {
		C.ferry_buffer_release_many((*C.uint64_t)(unsafe.Pointer(&late[0])), C.size_t(len(late)), nil)
	}
	if len(freed) > 0 {
		e.calls.release(freed...)
	}
	e.late, e.freed = late[:0], freed[:0]
}

// expect registers a new Future under a fresh tag.
func (e *engine) expect(ctx context.Context) (*Future, error) {
	f := &Future{e: e, ctx: ctx}
	if !e.calls.add(f) {
		return nil, &Error{Status: StatusTableFull, Msg: "too many async calls in flight"}
	}
	if e.closed.Load() {
		// close may have swept the table before f went in: fail f ourselves.
		e.fail(f.tag)
		return nil, &Error{Status: StatusClosed, Msg: "async engine is shut down"}
	}
	return f, nil
}

// fail resolves the Future for tag with CLOSED if it is still in the table, and frees its slot.
func (e *engine) fail(tag uint64) {
	if f := e.calls.swapOut(tag); f != nil {
		e.calls.release(uint32(tag) - 1)
		f.resolve(completion{status: StatusClosed})
	}
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
	f, err := e.expect(ctx)
	if err != nil {
		if req.Input != nil {
			req.Input.unlease()
		}
		return nil, err
	}
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
		// No completion will come: free the slot (unless close already swept it).
		if e.calls.swapOut(f.tag) != nil {
			e.calls.release(uint32(f.tag) - 1)
		}
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
	for _, f := range e.calls.all() {
		f.resolve(completion{status: StatusClosed})
	}
}
