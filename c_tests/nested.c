/* nested: callbacks on worker threads that submit async work and wait for it (issue 10, item 1).
 *
 * With a pool of 2 workers, 4 jobs run a C callback that submits a checksum to a queue of its own
 * and blocks in ferry_queue_wait until it completes. On ferry before issue 10 both workers blocked
 * and nothing ran the checksums: the program hung. Now a submit made on a worker while no worker
 * is free starts an extra worker, and the pool shrinks back once the queue is empty. */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <string.h>
#include <time.h>

#include "check.h"

static uint64_t fnv1a64(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

/* Submits a checksum of `buffer` and waits for it, on whatever thread runs the callback. */
static uint32_t checksum_and_wait(void *user_data, uint64_t buffer, uint64_t value, FerryPayload *result_out) {
    (void)user_data;
    uint64_t q = 0;
    FerryCompletion c;
    size_t n = 0;
    uint32_t st = ferry_queue_new(&q);
    if (st == FERRY_STATUS_OK) st = ferry_async_submit(q, value, FERRY_OP_CHECKSUM, buffer, 0, 0);
    while (st == FERRY_STATUS_OK && n == 0) st = ferry_queue_wait(q, &c, 1, -1, &n);
    if (q != 0) ferry_queue_close(q);
    if (st != FERRY_STATUS_OK) return FERRY_STATUS_CALLBACK_FAILED;
    result_out->value = c.status == FERRY_STATUS_OK && c.tag == value ? c.value : 0;
    return FERRY_STATUS_OK;
}

int main(void) {
    const char *text = "nested work on a worker";
    CHECK_STATUS(ferry_pool_shutdown(), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_pool_configure(2, 0, 0), FERRY_STATUS_OK);
    uint64_t cb = 0, q = 0;
    FerryView in;
    CHECK_STATUS(ferry_buffer_copy((const uint8_t *)text, strlen(text), &in), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_callback_register(checksum_and_wait, NULL, NULL, &cb), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_queue_new(&q), FERRY_STATUS_OK);
    enum { JOBS = 4 };
    for (uint64_t tag = 0; tag < JOBS; tag++) {
        CHECK_STATUS(ferry_async_submit(q, tag, FERRY_OP_CALL, in.id, cb, tag + 1), FERRY_STATUS_OK);
    }
    uint64_t want = fnv1a64((const uint8_t *)text, strlen(text));
    size_t got = 0;
    while (got < JOBS) {
        FerryCompletion c[JOBS];
        size_t n = 0;
        /* No deadline: a hang is the failure, and the runner's timeout catches it. */
        if (!CHECK_STATUS(ferry_queue_wait(q, c, JOBS, -1, &n), FERRY_STATUS_OK)) break;
        for (size_t i = 0; i < n; i++) {
            CHECK_STATUS(c[i].status, FERRY_STATUS_OK);
            CHECK_EQ(c[i].value, want);
        }
        got += n;
    }
    CHECK_EQ(got, JOBS);
    /* Extra workers leave once the queue is empty: the pool is back to its 2 threads. */
    FerryCallbackStats s;
    for (int i = 0; i < 60000; i++) {
        CHECK_STATUS(ferry_callback_stats(&s), FERRY_STATUS_OK);
        if (s.workers <= 2) break;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    CHECK(s.workers <= 2);
    CHECK_STATUS(ferry_queue_close(q), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_callback_unregister(cb), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_release(in.id), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_pool_shutdown(), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_pool_configure(0, 0, 0), FERRY_STATUS_OK);
    check_no_live();
    return check_finish();
}
