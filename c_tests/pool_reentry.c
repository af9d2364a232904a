/* pool_reentry: ferry_pool_shutdown re-entered, refused and configured (issue 10, items 2, 3, 7).
 *
 * 1. Item 2: jobs waiting in the queue at shutdown hold the last id of adopted memory and the last
 *    hold on a callback. Shutdown drops them; the release function and the drop function each call
 *    ferry_pool_shutdown again. On ferry before issue 10 the shutdown lock was still held while
 *    those jobs were dropped, so the nested call waited for the outer one: the program hung (the
 *    runner's timeout is the failure). Now the nested calls return OK at once, the waiting jobs
 *    complete with CLOSED, and the outer shutdown returns.
 * 2. Item 3, from C: ferry_pool_shutdown in a callback on a worker returns INVALID_ARGUMENT and
 *    changes nothing: a job queued behind it still completes OK and the next submit needs no
 *    restart.
 * 3. Item 7: ferry_pool_configure checks every value at once (a stack of SIZE_MAX used to be
 *    accepted and make the next submit fail with ALLOC_FAILED) and changes a running pool's queue
 *    capacity only at its next start (a capacity of 1 used to apply at once: the next submits got
 *    QUEUE_FULL). */
#define _POSIX_C_SOURCE 200809L

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"

static atomic_int gate_running;
static atomic_int gate_open;
static atomic_int released;
static atomic_int dropped;
static atomic_uint nested_release_status = 99;
static atomic_uint nested_drop_status = 99;

static void pause_1ms(void) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
}

/* Holds its worker until the gate opens (at most 60 s, so a broken run ends). */
static uint32_t gate(void *user_data, uint64_t buffer, uint64_t value, FerryPayload *result_out) {
    (void)user_data;
    (void)buffer;
    atomic_store(&gate_running, 1);
    for (int i = 0; i < 60000 && !atomic_load(&gate_open); i++) pause_1ms();
    result_out->value = value;
    return FERRY_STATUS_OK;
}

static uint32_t echo_value(void *user_data, uint64_t buffer, uint64_t value, FerryPayload *result_out) {
    (void)user_data;
    (void)buffer;
    result_out->value = value;
    return FERRY_STATUS_OK;
}

/* Release function of the adopted memory: runs when shutdown drops the last job holding it. */
static void release_and_shut_down(void *user_data, uint8_t *data, size_t len) {
    (void)user_data;
    (void)len;
    atomic_store(&nested_release_status, ferry_pool_shutdown());
    free(data);
    atomic_fetch_add(&released, 1);
    atomic_store(&gate_open, 1);
}

/* Drop function of a callback unregistered while a waiting job still holds it. */
static void drop_and_shut_down(void *user_data) {
    (void)user_data;
    atomic_store(&nested_drop_status, ferry_pool_shutdown());
    atomic_fetch_add(&dropped, 1);
}

/* Drains `want` completions from `q` into `out` (no deadline: a hang is the runner's timeout). */
static size_t drain(uint64_t q, FerryCompletion *out, size_t want) {
    size_t got = 0;
    while (got < want) {
        size_t n = 0;
        if (!CHECK_STATUS(ferry_queue_wait(q, out + got, want - got, -1, &n), FERRY_STATUS_OK)) break;
        got += n;
    }
    return got;
}

static const FerryCompletion *by_tag(const FerryCompletion *c, size_t n, uint64_t tag) {
    for (size_t i = 0; i < n; i++) {
        if (c[i].tag == tag) return &c[i];
    }
    return NULL;
}

static void shutdown_reentered_from_release_and_drop(void) {
    CHECK_STATUS(ferry_pool_shutdown(), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_pool_configure(1, 0, 0), FERRY_STATUS_OK);
    uint64_t q = 0, gate_cb = 0, held_cb = 0;
    CHECK_STATUS(ferry_queue_new(&q), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_callback_register(gate, NULL, NULL, &gate_cb), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_callback_register(echo_value, NULL, drop_and_shut_down, &held_cb), FERRY_STATUS_OK);
    uint8_t *mem = malloc(64);
    if (!CHECK(mem != NULL)) return;
    memset(mem, 7, 64);
    FerryView adopted;
    if (!CHECK_STATUS(ferry_buffer_adopt(mem, 64, release_and_shut_down, NULL, &adopted), FERRY_STATUS_OK)) {
        free(mem);
        return;
    }
    /* The one worker runs the gate; the next two jobs wait behind it. */
    CHECK_STATUS(ferry_async_submit(q, 1, FERRY_OP_CALL, 0, gate_cb, 1), FERRY_STATUS_OK);
    for (int i = 0; i < 60000 && !atomic_load(&gate_running); i++) pause_1ms();
    CHECK(atomic_load(&gate_running));
    CHECK_STATUS(ferry_async_submit(q, 2, FERRY_OP_ECHO, adopted.id, 0, 2), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_async_submit(q, 3, FERRY_OP_CALL, 0, held_cb, 3), FERRY_STATUS_OK);
    /* Only the waiting jobs hold the memory and the second callback now. */
    CHECK_STATUS(ferry_buffer_release(adopted.id), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_callback_unregister(held_cb), FERRY_STATUS_OK);
    CHECK_EQ(atomic_load(&released), 0);
    CHECK_EQ(atomic_load(&dropped), 0);

    CHECK_STATUS(ferry_pool_shutdown(), FERRY_STATUS_OK);
    CHECK_EQ(atomic_load(&released), 1);
    CHECK_EQ(atomic_load(&dropped), 1);
    CHECK_STATUS(atomic_load(&nested_release_status), FERRY_STATUS_OK);
    CHECK_STATUS(atomic_load(&nested_drop_status), FERRY_STATUS_OK);

    FerryCompletion c[3];
    size_t n = drain(q, c, 3);
    CHECK_EQ(n, 3);
    const FerryCompletion *ran = by_tag(c, n, 1), *w1 = by_tag(c, n, 2), *w2 = by_tag(c, n, 3);
    if (CHECK(ran != NULL && w1 != NULL && w2 != NULL)) {
        CHECK_STATUS(ran->status, FERRY_STATUS_OK);
        CHECK_STATUS(w1->status, FERRY_STATUS_CLOSED);
        CHECK_STATUS(w2->status, FERRY_STATUS_CLOSED);
    }
    CHECK_STATUS(ferry_queue_close(q), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_callback_unregister(gate_cb), FERRY_STATUS_OK);
}

/* Calls ferry_pool_shutdown on the worker that runs it and returns its status as the value. */
static uint32_t shut_down_here(void *user_data, uint64_t buffer, uint64_t value, FerryPayload *result_out) {
    (void)user_data;
    (void)buffer;
    (void)value;
    uint32_t worker = 0;
    ferry_thread_is_worker(&worker);
    result_out->value = ((uint64_t)worker << 32) | ferry_pool_shutdown();
    return FERRY_STATUS_OK;
}

static void shutdown_on_a_worker_changes_nothing(void) {
    CHECK_STATUS(ferry_pool_shutdown(), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_pool_configure(1, 0, 0), FERRY_STATUS_OK);
    uint64_t q = 0, cb = 0;
    CHECK_STATUS(ferry_queue_new(&q), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_callback_register(shut_down_here, NULL, NULL, &cb), FERRY_STATUS_OK);
    /* One worker: the echo waits behind the callback and must still run after the refusal. */
    CHECK_STATUS(ferry_async_submit(q, 1, FERRY_OP_CALL, 0, cb, 0), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_async_submit(q, 2, FERRY_OP_ECHO, 0, 0, 22), FERRY_STATUS_OK);
    FerryCompletion c[2];
    size_t n = drain(q, c, 2);
    CHECK_EQ(n, 2);
    const FerryCompletion *call = by_tag(c, n, 1), *echo = by_tag(c, n, 2);
    if (CHECK(call != NULL && echo != NULL)) {
        CHECK_STATUS(call->status, FERRY_STATUS_OK);
        CHECK_EQ(call->value, ((uint64_t)1 << 32) | FERRY_STATUS_INVALID_ARGUMENT);
        CHECK_STATUS(echo->status, FERRY_STATUS_OK);
        CHECK_EQ(echo->value, 22);
    }
    FerryCallbackStats s;
    CHECK_STATUS(ferry_callback_stats(&s), FERRY_STATUS_OK);
    CHECK_EQ(s.workers, 1);
    CHECK_STATUS(ferry_queue_close(q), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_callback_unregister(cb), FERRY_STATUS_OK);
}

static void configure_checks_at_once_and_applies_at_the_next_start(void) {
    CHECK_STATUS(ferry_pool_shutdown(), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_pool_configure(2, 0, 0), FERRY_STATUS_OK);
    /* Out of range: refused here, and the configuration stays as it was. */
    CHECK_STATUS(ferry_pool_configure(0, 0, SIZE_MAX), FERRY_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ferry_pool_configure(0, 0, MIN_STACK - 1), FERRY_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ferry_pool_configure(0, 0, (size_t)MAX_STACK + 1), FERRY_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ferry_pool_configure(MAX_THREADS + 1, 0, 0), FERRY_STATUS_INVALID_ARGUMENT);
    uint64_t q = 0;
    CHECK_STATUS(ferry_queue_new(&q), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_async_submit(q, 1, FERRY_OP_ECHO, 0, 0, 1), FERRY_STATUS_OK);
    FerryCompletion c[16];
    CHECK_EQ(drain(q, c, 1), 1);
    CHECK_STATUS(c[0].status, FERRY_STATUS_OK);
    /* The stat counts worker threads that have begun running: the second may still be starting
     * after the first ran the echo, so wait for it (at most 30 s). */
    FerryCallbackStats s;
    for (int i = 0; i < 30000; i++) {
        CHECK_STATUS(ferry_callback_stats(&s), FERRY_STATUS_OK);
        if (s.workers >= 2) break;
        pause_1ms();
    }
    CHECK_EQ(s.workers, 2);

    /* A queue capacity of 1 for the next start: the running pool still takes 16 jobs at once. */
    CHECK_STATUS(ferry_pool_configure(2, 1, 0), FERRY_STATUS_OK);
    for (uint64_t tag = 0; tag < 16; tag++) {
        CHECK_STATUS(ferry_async_submit(q, 100 + tag, FERRY_OP_SLEEP, 0, 1000, tag), FERRY_STATUS_OK);
    }
    CHECK_EQ(drain(q, c, 16), 16);
    for (size_t i = 0; i < 16; i++) CHECK_STATUS(c[i].status, FERRY_STATUS_OK);
    CHECK_STATUS(ferry_pool_shutdown(), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_pool_configure(0, 0, 0), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_queue_close(q), FERRY_STATUS_OK);
}

int main(void) {
    shutdown_reentered_from_release_and_drop();
    shutdown_on_a_worker_changes_nothing();
    configure_checks_at_once_and_applies_at_the_next_start();
    CHECK_STATUS(ferry_pool_shutdown(), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_pool_configure(0, 0, 0), FERRY_STATUS_OK);
    check_no_live();
    return check_finish();
}
