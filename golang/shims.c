/* The C glue of the Go package: see shims.h. */

#include "shims.h"

#include <string.h>

#include "_cgo_export.h"

static ferry_go_made claim_made(FerryStatus st, FerryView v) {
	ferry_go_made r = {v, st};
	if (st == FERRY_STATUS_OK) {
		/* A fresh id: nobody else can have claimed it. */
		r.status = ferry_buffer_claim(v.id, &r.view);
		if (r.status != FERRY_STATUS_OK) {
			ferry_buffer_release(v.id);
		}
	}
	return r;
}

ferry_go_made ferry_go_new(size_t len) {
	FerryView v = {0, 0, 0};
	FerryStatus st = ferry_buffer_new(len, &v);
	return claim_made(st, v);
}

ferry_go_made ferry_go_copy(const uint8_t *data, size_t len) {
	FerryView v = {0, 0, 0};
	FerryStatus st = ferry_buffer_copy(data, len, &v);
	return claim_made(st, v);
}

ferry_go_made ferry_go_share(uint64_t id) {
	FerryView v = {0, 0, 0};
	FerryStatus st = ferry_buffer_share(id, &v);
	return claim_made(st, v);
}

ferry_go_made ferry_go_slice(uint64_t id, size_t off, size_t len) {
	FerryView v = {0, 0, 0};
	FerryStatus st = ferry_buffer_slice(id, off, len, &v);
	return claim_made(st, v);
}

ferry_go_made ferry_go_claim(uint64_t id) {
	ferry_go_made r = {{0, 0, 0}, 0};
	r.status = ferry_buffer_claim(id, &r.view);
	return r;
}

ferry_go_read_result ferry_go_read(uint64_t id, uint8_t *dst, size_t cap) {
	ferry_go_read_result r = {0, 0};
	FerryView v = {0, 0, 0};
	r.status = ferry_buffer_view(id, &v);
	if (r.status != FERRY_STATUS_OK) {
		return r;
	}
	r.len = v.len;
	size_t n = v.len < cap ? v.len : cap;
	if (n > 0) {
		/* Released in between: INVALID_HANDLE, and dst is untouched. */
		r.status = ferry_buffer_copy_out(id, 0, dst, n);
	}
	return r;
}

/* What ferry calls for a Go callback: the exported Go trampoline (trampoline.go), with the key
 * turned back into an integer before Go sees it. A buffer the callback hands over was its Go
 * Buffer's, claimed: it passes to the caller unclaimed, so that the caller (Go's Invoke included)
 * can claim it in turn. */
static uint32_t ferry_go_cb_call(void *user_data, uint64_t buffer, uint64_t value, FerryPayload *result_out) {
	uint32_t st = ferryGoCallback((uintptr_t)user_data, buffer, value, result_out);
	if (st == FERRY_STATUS_OK && result_out->buffer != 0) {
		ferry_buffer_disclaim(result_out->buffer);
	}
	return st;
}

static void ferry_go_cb_drop(void *user_data) {
	ferryGoDrop((uintptr_t)user_data);
}

ferry_go_registered ferry_go_cb_register(uintptr_t key) {
	ferry_go_registered r = {0, 0};
	r.status = ferry_callback_register(ferry_go_cb_call, (void *)key, ferry_go_cb_drop, &r.id);
	return r;
}

ferry_go_result ferry_go_cb_invoke(uint64_t id, uint64_t buffer, uint64_t value) {
	ferry_go_result r = {{0, 0, 0}, 0, 0};
	FerryPayload out = {0, 0};
	r.status = ferry_callback_invoke(id, buffer, value, &out);
	r.value = out.value;
	if (r.status == FERRY_STATUS_OK && out.buffer != 0) {
		/* The caller owns the result: claimed here, or (claimed by someone else, which only a
		 * callback that hands over an id it does not own can cause) left alone and reported. */
		r.status = ferry_buffer_claim(out.buffer, &r.view);
	}
	return r;
}

ferry_go_queue ferry_go_queue_new(void) {
	ferry_go_queue r = {0, 0};
	r.status = ferry_queue_new(&r.queue);
	return r;
}

ferry_go_waited ferry_go_queue_wait(uint64_t queue, FerryCompletion *out, size_t cap, int64_t timeout_ns) {
	ferry_go_waited r = {0, 0};
	r.status = ferry_queue_wait(queue, out, cap, timeout_ns, &r.n);
	return r;
}

ferry_go_submitted ferry_go_submit_batch(uint64_t queue, const FerryJob *jobs, size_t n) {
	ferry_go_submitted r = {0, 0};
	r.status = ferry_async_submit_batch(queue, jobs, n, &r.accepted);
	return r;
}

void ferry_go_inline(const uint64_t *ids, size_t n, size_t slot, uint8_t *arena, size_t *lens) {
	uint64_t done[64];
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		FerryView v = {0, 0, 0};
		if (ferry_buffer_view(ids[i], &v) != FERRY_STATUS_OK || v.len > slot) {
			lens[i] = SIZE_MAX;
			continue;
		}
		if (v.len > 0) {
			memcpy(arena + i * slot, v.ptr, v.len);
		}
		lens[i] = v.len;
		done[k++] = ids[i];
		if (k == sizeof done / sizeof done[0]) {
			ferry_buffer_release_many(done, k, NULL);
			k = 0;
		}
	}
	if (k > 0) {
		ferry_buffer_release_many(done, k, NULL);
	}
}

uint32_t ferry_go_on_worker(void) {
	uint32_t w = 0;
	ferry_thread_is_worker(&w);
	return w;
}
