/* All the C glue of the Go package, declared here and defined in shims.c: calls of the C ABI that
 * return their status and results by value, and the C side of the trampolines through which Rust
 * calls Go.
 *
 * A Go variable whose address goes to C escapes to the heap, costing an allocation per call; a
 * struct returned by value does not. Only declarations live here, so that every Go file may include
 * this header, the files with //export included (their preamble may not define anything). */

#ifndef FERRY_GO_SHIMS_H
#define FERRY_GO_SHIMS_H

#include <stddef.h>
#include <stdint.h>

#include "ferry.h"

/* A status and the view of the id it made or looked up. */
typedef struct {
	FerryView view;
	FerryStatus status;
} ferry_go_made;

/* Buffers. Every id a Go Buffer owns is claimed (ferry_buffer_claim): the new, copy, share and
 * slice shims claim the id they make, in the same crossing, and ferry_go_claim claims an id made
 * elsewhere, so that no second Buffer can ever own it. */
ferry_go_made ferry_go_new(size_t len);
ferry_go_made ferry_go_copy(const uint8_t *data, size_t len);
ferry_go_made ferry_go_share(uint64_t id);
ferry_go_made ferry_go_slice(uint64_t id, size_t off, size_t len);
ferry_go_made ferry_go_claim(uint64_t id);

/* ReadID's one crossing: the length of id's buffer, and min(len, cap) of its bytes copied into dst
 * (ferry_buffer_copy_out holds the buffer while it copies). The id stays its owner's. */
typedef struct {
	size_t len;
	FerryStatus status;
} ferry_go_read_result;
ferry_go_read_result ferry_go_read(uint64_t id, uint8_t *dst, size_t cap);

/* Callbacks. ferry_go_cb_register registers the Go function under `key` (the callback's user
 * data is the key itself, an integer: no Go pointer crosses). */
typedef struct {
	uint64_t id;
	FerryStatus status;
} ferry_go_registered;

ferry_go_registered ferry_go_cb_register(uintptr_t key);

/* The result of an invoke, with the claimed view of its result buffer when there is one, so that
 * Go needs neither an escaping out-parameter nor a second crossing to adopt the buffer. */
typedef struct {
	FerryView view;
	uint64_t value;
	FerryStatus status;
} ferry_go_result;

ferry_go_result ferry_go_cb_invoke(uint64_t id, uint64_t buffer, uint64_t value);

/* Queues and async calls. */
typedef struct {
	uint64_t queue;
	FerryStatus status;
} ferry_go_queue;

ferry_go_queue ferry_go_queue_new(void);

typedef struct {
	size_t n;
	FerryStatus status;
} ferry_go_waited;

ferry_go_waited ferry_go_queue_wait(uint64_t queue, FerryCompletion *out, size_t cap, int64_t timeout_ns);

/* ferry_async_submit_batch with the count of accepted jobs returned by value. */
typedef struct {
	size_t accepted;
	FerryStatus status;
} ferry_go_submitted;

ferry_go_submitted ferry_go_submit_batch(uint64_t queue, const FerryJob *jobs, size_t n);

/* Inline small results (inline.go): for each of the n ids, a view of at most `slot` bytes is
 * copied to arena + i*slot, its length stored in lens[i] and the id released (all such ids in
 * batched releases); any other id is left alone, with lens[i] = SIZE_MAX. */
void ferry_go_inline(const uint64_t *ids, size_t n, size_t slot, uint8_t *arena, size_t *lens);

/* 1 on one of the worker pool's threads, else 0. */
uint32_t ferry_go_on_worker(void);

#endif /* FERRY_GO_SHIMS_H */
