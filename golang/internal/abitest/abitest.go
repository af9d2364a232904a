// Package abitest holds C code over ferry's C ABI that ferry's own tests and benchmarks need: Go
// allows no cgo in _test.go files, and test-only C helpers stay out of the ferry package, so no
// program that imports ferry carries them. It is internal, so it never reaches one.
//
// The package declares the C ABI through the ferry package's copy of ferry.h and links nothing:
// the test binaries that use it link the ferry library through the ferry package.
package abitest

/*
#cgo CPPFLAGS: -I${SRCDIR}/../..
#include <stdint.h>
#include <stdlib.h>
#include "ferry.h"

// Calls callback `id` n times from C, as Rust or C code would: the sync-callback benchmark's loop.
static FerryStatus abitest_invoke_loop(uint64_t id, uint64_t n) {
	FerryPayload out = {0, 0};
	for (uint64_t i = 0; i < n; i++) {
		FerryStatus st = ferry_callback_invoke(id, 0, i, &out);
		if (st != FERRY_STATUS_OK) {
			return st;
		}
	}
	return FERRY_STATUS_OK;
}

// Posts n ready-made completions with tags first..first+n-1 (status OK, no buffer) to `queue`, in
// batches of 256, as a producer of completions would.
static FerryStatus abitest_post_range(uint64_t queue, uint64_t first, uint64_t n, uint64_t value) {
	FerryCompletion batch[256];
	while (n > 0) {
		size_t k = n < 256 ? (size_t)n : 256;
		for (size_t i = 0; i < k; i++) {
			FerryCompletion c = {first + i, 0, value, 0, 0};
			batch[i] = c;
		}
		FerryStatus st = ferry_queue_post(queue, batch, k);
		if (st != FERRY_STATUS_OK) {
			return st;
		}
		first += k;
		n -= k;
	}
	return FERRY_STATUS_OK;
}

static FerryStatus abitest_post_one(uint64_t queue, uint64_t tag, uint32_t status, uint64_t buffer, uint64_t value) {
	FerryCompletion c = {tag, buffer, value, status, 0};
	return ferry_queue_post(queue, &c, 1);
}

// A C callback: value 0 succeeds with result 1; any other value fails with that value as detail.
static uint32_t abitest_c_callback(void *user_data, uint64_t buffer, uint64_t value, FerryPayload *out) {
	(void)user_data;
	(void)buffer;
	out->value = value == 0 ? 1 : value;
	return value == 0 ? FERRY_STATUS_OK : FERRY_STATUS_CALLBACK_FAILED;
}

static FerryStatus abitest_register_c(uint64_t *id_out) {
	return ferry_callback_register(abitest_c_callback, NULL, NULL, id_out);
}

// A C callback that hands over the buffer id in its user data as its result, whoever owns it.
static uint32_t abitest_hand_over(void *user_data, uint64_t buffer, uint64_t value, FerryPayload *out) {
	(void)buffer;
	(void)value;
	out->buffer = (uint64_t)(uintptr_t)user_data;
	return FERRY_STATUS_OK;
}

static FerryStatus abitest_register_hand_over(uint64_t buffer, uint64_t *id_out) {
	return ferry_callback_register(abitest_hand_over, (void *)(uintptr_t)buffer, NULL, id_out);
}

// A new buffer of n bytes made from C: its id is nobody's claim.
static FerryStatus abitest_new_id(size_t n, uint64_t *id_out) {
	FerryView v = {0, 0, 0};
	FerryStatus st = ferry_buffer_new(n, &v);
	*id_out = v.id;
	return st;
}

// Makes an id of n bytes and releases it with two bare C ABI calls: the floor under New+Close.
static FerryStatus abitest_raw_new_release(size_t n) {
	FerryView v = {0, 0, 0};
	FerryStatus st = ferry_buffer_new(n, &v);
	if (st != FERRY_STATUS_OK) {
		return st;
	}
	return ferry_buffer_release(v.id);
}

// Waits on `queue` until n completions came, taking up to `batch` per crossing into ferry (the
// polling design's crossing, nothing else); returns the status that stopped it.
static FerryStatus abitest_poll_count(uint64_t queue, size_t batch, uint64_t n) {
	FerryCompletion *items = malloc(batch * sizeof(FerryCompletion));
	if (items == NULL) {
		return FERRY_STATUS_ALLOC_FAILED;
	}
	FerryStatus st = FERRY_STATUS_OK;
	while (n > 0 && st == FERRY_STATUS_OK) {
		size_t k = 0;
		st = ferry_queue_wait(queue, items, batch, -1, &k);
		n -= k < n ? k : n;
	}
	free(items);
	return st;
}

extern void abitestSink(uintptr_t key, FerryCompletion *items, size_t n);
extern void abitestNoop(void);

// A C function that calls Go, wrongly marked nocallback (below): calling it must panic, which shows
// that the ferry package's nocallback marks are enforced, not decoration.
#cgo nocallback abitest_calls_go_marked
static void abitest_calls_go_marked(void) { abitestNoop(); }

static void abitest_sink(void *user_data, const FerryCompletion *items, size_t n) {
	abitestSink((uintptr_t)user_data, (FerryCompletion *)items, n);
}

static FerryStatus abitest_new_sink(uintptr_t key, size_t max_batch, uint64_t *queue_out) {
	return ferry_queue_new_sink(abitest_sink, (void *)key, max_batch, queue_out);
}
*/
import "C"

import (
	"sync"
	"sync/atomic"
)

// The test-only operations of ferry's C ABI (FERRY_OP_SLEEP, FERRY_OP_PANIC), which the ferry
// package does not export.
const (
	OpSleep = uint32(C.FERRY_OP_SLEEP)
	OpPanic = uint32(C.FERRY_OP_PANIC)
)

// InvokeLoop calls callback id n times from a C loop (value i on the i-th call).
func InvokeLoop(id uint64, n int) uint32 {
	return uint32(C.abitest_invoke_loop(C.uint64_t(id), C.uint64_t(n)))
}

// PostRange posts n completions with tags first.. to queue from C.
func PostRange(queue, first uint64, n int, value uint64) uint32 {
	return uint32(C.abitest_post_range(C.uint64_t(queue), C.uint64_t(first), C.uint64_t(n), C.uint64_t(value)))
}

// PostCompletion posts one completion to queue, as a downstream producer would.
func PostCompletion(queue, tag uint64, status uint32, buffer, value uint64) uint32 {
	return uint32(C.abitest_post_one(C.uint64_t(queue), C.uint64_t(tag), C.uint32_t(status), C.uint64_t(buffer),
		C.uint64_t(value)))
}

// RegisterC registers a C function as a callback (value 0: OK with value 1; else failure with the
// value as detail) and returns its id and the status.
func RegisterC() (uint64, uint32) {
	var id C.uint64_t
	st := C.abitest_register_c(&id)
	return uint64(id), uint32(st)
}

// RegisterHandOver registers a C callback that returns buffer id `buffer` as its result, whether
// it owns it or not (a misbehaving C callback).
func RegisterHandOver(buffer uint64) (uint64, uint32) {
	var id C.uint64_t
	st := C.abitest_register_hand_over(C.uint64_t(buffer), &id)
	return uint64(id), uint32(st)
}

// Unregister unregisters callback id.
func Unregister(id uint64) uint32 {
	return uint32(C.ferry_callback_unregister(C.uint64_t(id)))
}

// NewID makes a buffer of n bytes from C and returns its id, which no Buffer has claimed.
func NewID(n int) (uint64, uint32) {
	var id C.uint64_t
	st := C.abitest_new_id(C.size_t(n), &id)
	return uint64(id), uint32(st)
}

// Release releases buffer id from C.
func Release(id uint64) uint32 {
	return uint32(C.ferry_buffer_release(C.uint64_t(id)))
}

// LiveIDs returns the core's count of live ids, read straight from the C ABI (the ferry package's
// ReadStats flushes its close batches first; this does not).
func LiveIDs() uint64 {
	var st C.FerryStats
	C.ferry_stats_get(&st)
	return uint64(st.live_ids)
}

// RawNewRelease makes an id of n bytes and releases it with two bare C ABI calls and no Buffer.
// CallGoFromNoCallback calls a C function marked #cgo nocallback that calls back into Go: the Go
// runtime panics ("function marked with #cgo nocallback called back into Go").
func CallGoFromNoCallback() { C.abitest_calls_go_marked() }

func RawNewRelease(n int) uint32 {
	return uint32(C.abitest_raw_new_release(C.size_t(n)))
}

// NewQueue makes a polled completion queue.
func NewQueue() (uint64, uint32) {
	var q C.uint64_t
	st := C.ferry_queue_new(&q)
	return uint64(q), uint32(st)
}

// CloseQueue closes queue q.
func CloseQueue(q uint64) uint32 {
	return uint32(C.ferry_queue_close(C.uint64_t(q)))
}

// PollCount waits on queue until n completions came, batch per crossing, and only counts them.
func PollCount(queue uint64, batch, n int) uint32 {
	return uint32(C.abitest_poll_count(C.uint64_t(queue), C.size_t(batch), C.uint64_t(n)))
}

// Sink is a sink queue (ferry_queue_new_sink) whose delivery thread calls into Go, which only
// counts what arrives: the crossing of the sink design.
type Sink struct {
	Queue uint64
	key   uintptr
	n     atomic.Int64
}

var (
	sinks   sync.Map // uintptr -> *Sink
	sinkKey atomic.Uintptr
)

// NewSink makes a sink queue delivering up to batch completions per call into Go.
func NewSink(batch int) (*Sink, uint32) {
	s := &Sink{key: sinkKey.Add(1)}
	sinks.Store(s.key, s)
	var q C.uint64_t
	st := C.abitest_new_sink(C.uintptr_t(s.key), C.size_t(batch), &q)
	if st != C.FERRY_STATUS_OK {
		sinks.Delete(s.key)
		return nil, uint32(st)
	}
	s.Queue = uint64(q)
	return s, 0
}

// Count returns how many completions the sink received.
func (s *Sink) Count() int64 { return s.n.Load() }

// Close closes the sink's queue (its delivery thread delivers what is queued and exits).
func (s *Sink) Close() uint32 {
	st := C.ferry_queue_close(C.uint64_t(s.Queue))
	sinks.Delete(s.key)
	return uint32(st)
}
