package ferry

// Small unexported hooks for this package's tests and benchmarks that need C (Go allows no cgo in
// _test.go files). They are ordinary code paths over the public C ABI, unused by the package itself.

/*
#include <stdint.h>
#include "ferry.h"

// Calls callback `id` n times from C, as Rust or C code would: the sync-callback benchmark's loop.
static inline FerryStatus ferry_cb_invoke_loop(uint64_t id, uint64_t n) {
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
static inline FerryStatus ferry_cb_post_range(uint64_t queue, uint64_t first, uint64_t n, uint64_t value) {
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

// A C callback: value 0 succeeds with result 1; any other value fails with that value as detail.
static uint32_t ferry_cb_test_c_callback(void *user_data, uint64_t buffer, uint64_t value, FerryPayload *out) {
	(void)user_data;
	(void)buffer;
	out->value = value == 0 ? 1 : value;
	return value == 0 ? FERRY_STATUS_OK : FERRY_STATUS_CALLBACK_FAILED;
}

static inline FerryStatus ferry_cb_test_register_c(uint64_t *id_out) {
	return ferry_callback_register(ferry_cb_test_c_callback, NULL, NULL, id_out);
}

static inline FerryStatus ferry_cb_post_one(uint64_t queue, uint64_t tag, uint32_t status, uint64_t buffer, uint64_t value) {
	FerryCompletion c = {tag, buffer, value, status, 0};
	return ferry_queue_post(queue, &c, 1);
}
*/
import "C"

// invokeLoop calls callback id n times from a C loop (value i on the i-th call).
func invokeLoop(id uint64, n int) error {
	return statusErr(C.ferry_cb_invoke_loop(C.uint64_t(id), C.uint64_t(n)))
}

// postRange posts n completions with tags first.. to queue from C.
func postRange(queue, first uint64, n int, value uint64) error {
	return statusErr(C.ferry_cb_post_range(C.uint64_t(queue), C.uint64_t(first), C.uint64_t(n), C.uint64_t(value)))
}

// postCompletion posts one completion to queue, as a downstream producer would.
func postCompletion(queue, tag uint64, st Status, buffer, value uint64) error {
	return statusErr(C.ferry_cb_post_one(C.uint64_t(queue), C.uint64_t(tag), C.uint32_t(st), C.uint64_t(buffer),
		C.uint64_t(value)))
}

// registerCCallback registers a C function as a callback (value 0: OK with value 1; else failure
// with the value as detail) and returns its id.
func registerCCallback() (uint64, error) {
	var id C.uint64_t
	err := statusErr(C.ferry_cb_test_register_c(&id))
	return uint64(id), err
}

// unregisterID unregisters callback id.
func unregisterID(id uint64) error {
	return statusErr(C.ferry_callback_unregister(C.uint64_t(id)))
}
