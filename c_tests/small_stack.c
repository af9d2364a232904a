/* small_stack: every ferry function runs on a worker with the smallest stack ferry_pool_configure
 * accepts (64 KiB), from a callback that FERRY_OP_CALL runs there (issue 9, defect 5).
 *
 * On ferry before issue 9 the callback registry built each 4096-slot chunk (96 KiB) on the stack
 * before boxing it, so the 4097th registration made on such a worker overflowed its stack and
 * aborted the process. */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

enum { SMALL_STACK = 64 * 1024, MANY = 5000 };

static uint32_t noop(void *user_data, uint64_t buffer, uint64_t value, FerryPayload *result_out) {
    (void)user_data;
    (void)buffer;
    result_out->value = value;
    return FERRY_STATUS_OK;
}

static void drop_nothing(void *user_data) { (void)user_data; }

static void sink(void *user_data, const FerryCompletion *items, size_t n) {
    (void)items;
    *(size_t *)user_data += n;
}

static void release_free(void *user_data, uint8_t *data, size_t len) {
    (void)user_data;
    (void)len;
    free(data);
}

/* Runs on the small-stack worker: touches every exported function. */
static uint32_t everything(void *user_data, uint64_t buffer, uint64_t value, FerryPayload *result_out) {
    (void)user_data;
    (void)value;
    uint64_t *ids = malloc(MANY * sizeof *ids);
    int ok = ids != NULL;
    /* More registrations than a registry chunk holds, so at least one chunk is allocated here. */
    for (int i = 0; ok && i < MANY; i++) {
        ok = ferry_callback_register(noop, NULL, drop_nothing, &ids[i]) == FERRY_STATUS_OK;
    }
    FerryPayload r = {0, 0};
    ok = ok && ferry_callback_invoke(ids[MANY - 1], 0, 7, &r) == FERRY_STATUS_OK && r.value == 7;
    for (int i = 0; ids != NULL && i < MANY; i++) ok = ferry_callback_unregister(ids[i]) == FERRY_STATUS_OK && ok;
    free(ids);

    FerryView a, b, c, d;
    uint8_t bytes[64] = {1, 2, 3};
    uint8_t *adopted = malloc(32);
    ok = ok && ferry_buffer_new(4096, &a) == FERRY_STATUS_OK;
    ok = ok && ferry_buffer_copy(bytes, sizeof bytes, &b) == FERRY_STATUS_OK;
    ok = ok && ferry_buffer_adopt(adopted, 32, release_free, NULL, &c) == FERRY_STATUS_OK;
    ok = ok && ferry_buffer_view(buffer, &d) == FERRY_STATUS_OK;
    ok = ok && ferry_buffer_share(a.id, &d) == FERRY_STATUS_OK && ferry_buffer_release(d.id) == FERRY_STATUS_OK;
    ok = ok && ferry_buffer_slice(b.id, 1, 2, &d) == FERRY_STATUS_OK && ferry_buffer_release(d.id) == FERRY_STATUS_OK;
    ok = ok && ferry_buffer_copy_out(b.id, 0, bytes + 8, 8) == FERRY_STATUS_OK && bytes[9] == 2;
    uint64_t three[3] = {a.id, b.id, c.id};
    size_t released = 0;
    ok = ok && ferry_buffer_release_many(three, 3, &released) == FERRY_STATUS_OK && released == 3;
    FerryStats st;
    ok = ok && ferry_stats_get(&st) == FERRY_STATUS_OK;
    ok = ok && ferry_limit_set(0) == FERRY_STATUS_OK && ferry_peak_reset() == FERRY_STATUS_OK;
    char msg[64];
    ok = ok && ferry_status_message(FERRY_STATUS_CLOSED, msg, sizeof msg, NULL) == FERRY_STATUS_OK;
    ok = ok && ferry_abi_version() == FERRY_ABI_VERSION;

    uint64_t q = 0, sq = 0, cb = 0;
    size_t sunk = 0, n = 0;
    FerryCompletion post = {9, 0, 1, FERRY_STATUS_OK, 0}, got[4];
    ok = ok && ferry_queue_new(&q) == FERRY_STATUS_OK;
    ok = ok && ferry_callback_register(noop, NULL, NULL, &cb) == FERRY_STATUS_OK;
    ok = ok && ferry_async_submit(q, 1, FERRY_OP_CHECKSUM, buffer, 0, 0) == FERRY_STATUS_OK;
    ok = ok && ferry_async_submit(q, 2, FERRY_OP_CALL, 0, cb, 5) == FERRY_STATUS_OK;
    ok = ok && ferry_async_submit(q, 3, FERRY_OP_SLEEP, 0, 50 * 1000 * 1000, 0) == FERRY_STATUS_OK;
    ok = ok && ferry_async_cancel(q, 3) == FERRY_STATUS_OK;
    ok = ok && ferry_queue_post(q, &post, 1) == FERRY_STATUS_OK;
    /* Not waiting for the completions here: this worker may be the only one. */
    ok = ok && ferry_queue_wait(q, got, 4, 0, &n) == FERRY_STATUS_OK;
    ok = ok && ferry_queue_new_sink(sink, &sunk, 8, &sq) == FERRY_STATUS_OK;
    ok = ok && ferry_queue_post(sq, &post, 1) == FERRY_STATUS_OK;
    ok = ok && ferry_queue_close(sq) == FERRY_STATUS_OK && sunk == 1;
    ok = ok && ferry_queue_close(q) == FERRY_STATUS_OK;
    ok = ok && ferry_callback_unregister(cb) == FERRY_STATUS_OK;
    FerryCallbackStats cs;
    ok = ok && ferry_callback_stats(&cs) == FERRY_STATUS_OK;
    ok = ok && ferry_pool_configure(0, 0, 0) == FERRY_STATUS_OK;
    ok = ok && ferry_pool_shutdown() == FERRY_STATUS_INVALID_ARGUMENT; /* not from a worker */
    ok = ok && ferry_guard_set(0) == FERRY_STATUS_OK;
    result_out->value = (uint64_t)ok;
    return FERRY_STATUS_OK;
}

int main(void) {
    CHECK_STATUS(ferry_pool_shutdown(), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_pool_configure(1, 0, SMALL_STACK), FERRY_STATUS_OK);
    uint64_t cb = 0, q = 0;
    FerryView in;
    CHECK_STATUS(ferry_buffer_copy((const uint8_t *)"input", 5, &in), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_callback_register(everything, NULL, NULL, &cb), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_queue_new(&q), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_async_submit(q, 1, FERRY_OP_CALL, in.id, cb, 0), FERRY_STATUS_OK);
    FerryCompletion c;
    size_t n = 0;
    CHECK_STATUS(ferry_queue_wait(q, &c, 1, -1, &n), FERRY_STATUS_OK);
    if (CHECK_EQ(n, 1)) {
        CHECK_STATUS(c.status, FERRY_STATUS_OK);
        CHECK_EQ(c.value, 1); /* every call in the callback succeeded */
    }
    CHECK_STATUS(ferry_queue_close(q), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_callback_unregister(cb), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_release(in.id), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_pool_shutdown(), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_pool_configure(0, 0, 0), FERRY_STATUS_OK);
    check_no_live();
    return check_finish();
}
