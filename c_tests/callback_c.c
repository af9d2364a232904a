/* callback_c: C function pointers as ferry callbacks, and the async machinery from C.
 *
 * 1. Sync: a C function registered with user_data and a drop function is invoked through ferry on
 *    this thread; results, a failure (its stray result buffer released by ferry), a recovered panic
 *    and stale ids come back as statuses; the drop function runs exactly once, at unregister.
 * 2. Async: echo (zero-copy: the result id views the same bytes) and checksum (FNV-1a) on the
 *    worker pool, drained with ferry_queue_wait; a bad op, a bad input id and a duplicate tag fail at
 *    submit; a panicking op and a cancelled sleep complete with PANIC and CANCELLED.
 * 3. FERRY_OP_CALL runs the C callback on a worker thread; unregistering it while the job runs
 *    defers the drop function until the job lets go, and it then runs exactly once.
 * 4. A sink queue delivers posted completions to a C function in batches of at most max_batch, all
 *    of them before ferry_queue_close returns.
 * Ends with the pool shut down, every callback counter at zero and no live buffer id. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "check.h"

typedef struct {
    uint64_t base;
    atomic_int drops;
    atomic_int calls;
    pthread_t last_thread;
    /* When `gate` is set, value 1000 waits until it is cleared (to hold a job on a worker). */
    atomic_int gate;
    atomic_int entered;
} Adder;

static uint32_t adder_call(void *user_data, uint64_t buffer, uint64_t value, FerryPayload *result_out) {
    Adder *a = user_data;
    atomic_fetch_add(&a->calls, 1);
    a->last_thread = pthread_self();
    if (value == 1) { /* a failure that also (wrongly) hands back a buffer: ferry must release it */
        FerryView v;
        if (ferry_buffer_new(8, &v) == FERRY_STATUS_OK) {
            result_out->buffer = v.id;
        }
        result_out->value = 77;
        return FERRY_STATUS_CALLBACK_FAILED;
    }
    if (value == 2) { /* what a trampoline does when it recovers a panic */
        result_out->value = 5;
        return FERRY_STATUS_CALLBACK_PANIC;
    }
    if (value == 1000) {
        atomic_store(&a->entered, 1);
        while (atomic_load(&a->gate)) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    if (buffer != 0) { /* echo the borrowed buffer back under an id of the caller's own */
        FerryView v;
        uint32_t st = ferry_buffer_share(buffer, &v);
        if (st != FERRY_STATUS_OK) {
            return st;
        }
        result_out->buffer = v.id;
    }
    result_out->value = a->base + value;
    return FERRY_STATUS_OK;
}

static void adder_drop(void *user_data) {
    Adder *a = user_data;
    atomic_fetch_add(&a->drops, 1);
}

static uint64_t fnv1a64(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 0x100000001b3ULL;
    }
    return h;
}

/* Waits until `want` completions have arrived on `q`, storing them by tag (tags are 0..cap-1). */
static size_t drain(uint64_t q, FerryCompletion *by_tag, size_t cap, size_t want) {
    FerryCompletion batch[16];
    size_t got = 0;
    while (got < want) {
        size_t n = 0;
        /* No deadline: under valgrind on a loaded machine a completion can take seconds (a panic's
         * backtrace alone can), and the runner's per-program timeout catches a real hang. */
        if (!CHECK_STATUS(ferry_queue_wait(q, batch, 16, -1, &n), FERRY_STATUS_OK) || !CHECK(n > 0)) {
            break;
        }
        for (size_t i = 0; i < n; i++) {
            if (CHECK(batch[i].tag < cap)) {
                by_tag[batch[i].tag] = batch[i];
            }
        }
        got += n;
    }
    return got;
}

static void test_sync(void) {
    Adder a = {.base = 100};
    uint64_t id = 0;
    FerryPayload r = {0, 0};
    CHECK_STATUS(ferry_callback_register(NULL, &a, adder_drop, &id), FERRY_STATUS_NULL_POINTER);
    CHECK_STATUS(ferry_callback_register(adder_call, &a, adder_drop, NULL), FERRY_STATUS_NULL_POINTER);
    if (!CHECK_STATUS(ferry_callback_register(adder_call, &a, adder_drop, &id), FERRY_STATUS_OK)) {
        return;
    }
    CHECK(id != 0);
    CHECK_STATUS(ferry_callback_invoke(id, 0, 5, &r), FERRY_STATUS_OK);
    CHECK_EQ(r.value, 105);
    CHECK_EQ(r.buffer, 0);
    CHECK(pthread_equal(a.last_thread, pthread_self()));

    FerryView in;
    CHECK_STATUS(ferry_buffer_copy((const uint8_t *)"zero-copy", 9, &in), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_callback_invoke(id, in.id, 6, &r), FERRY_STATUS_OK);
    FerryView out;
    CHECK_STATUS(ferry_buffer_view(r.buffer, &out), FERRY_STATUS_OK);
    CHECK(out.ptr == in.ptr && out.len == 9);
    CHECK_STATUS(ferry_buffer_release(r.buffer), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_release(in.id), FERRY_STATUS_OK);

    FerryStats before = check_stats();
    CHECK_STATUS(ferry_callback_invoke(id, 0, 1, &r), FERRY_STATUS_CALLBACK_FAILED);
    CHECK_EQ(r.value, 77);
    CHECK_EQ(r.buffer, 0);
    CHECK_EQ(check_stats().live_ids, before.live_ids); /* the stray result buffer was released */
    CHECK_STATUS(ferry_callback_invoke(id, 0, 2, &r), FERRY_STATUS_CALLBACK_PANIC);
    CHECK_EQ(r.value, 5);
    CHECK_STATUS(ferry_callback_invoke(id, 0, 3, NULL), FERRY_STATUS_OK);

    CHECK_EQ(atomic_load(&a.drops), 0);
    CHECK_STATUS(ferry_callback_unregister(id), FERRY_STATUS_OK);
    CHECK_EQ(atomic_load(&a.drops), 1);
    CHECK_STATUS(ferry_callback_unregister(id), FERRY_STATUS_INVALID_HANDLE);
    CHECK_STATUS(ferry_callback_invoke(id, 0, 5, &r), FERRY_STATUS_INVALID_HANDLE);
    CHECK_STATUS(ferry_callback_invoke(0, 0, 5, &r), FERRY_STATUS_INVALID_HANDLE);
    CHECK_STATUS(ferry_callback_invoke(id ^ 0x100000000ULL, 0, 5, &r), FERRY_STATUS_INVALID_HANDLE);
    CHECK_EQ(atomic_load(&a.drops), 1);
}

static void test_async(void) {
    uint64_t q = 0;
    if (!CHECK_STATUS(ferry_queue_new(&q), FERRY_STATUS_OK)) {
        return;
    }
    const char *text = "the quick brown fox";
    FerryView in;
    CHECK_STATUS(ferry_buffer_copy((const uint8_t *)text, strlen(text), &in), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_async_submit(q, 0, FERRY_OP_ECHO, in.id, 0, 42), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_async_submit(q, 1, FERRY_OP_CHECKSUM, in.id, 0, 0), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_async_submit(q, 2, FERRY_OP_PANIC, 0, 0, 0), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_async_submit(q, 3, FERRY_OP_SLEEP, 0, 30000000, 0), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_async_submit(q, 3, FERRY_OP_ECHO, 0, 0, 0), FERRY_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ferry_async_submit(q, 4, 999, 0, 0, 0), FERRY_STATUS_UNSUPPORTED);
    CHECK_STATUS(ferry_async_submit(q, 4, FERRY_OP_ECHO, 12345, 0, 0), FERRY_STATUS_INVALID_HANDLE);
    CHECK_STATUS(ferry_async_submit(q, 4, FERRY_OP_CALL, 0, 12345, 0), FERRY_STATUS_INVALID_HANDLE);
    CHECK_STATUS(ferry_async_submit(q + 1, 4, FERRY_OP_ECHO, 0, 0, 0), FERRY_STATUS_INVALID_HANDLE);
    CHECK_STATUS(ferry_async_cancel(q, 3), FERRY_STATUS_OK);
    uint8_t *ptr = in.ptr;
    CHECK_STATUS(ferry_buffer_release(in.id), FERRY_STATUS_OK); /* the jobs hold the bytes themselves */

    FerryCompletion c[4];
    memset(c, 0, sizeof c);
    CHECK_EQ(drain(q, c, 4, 4), 4);
    CHECK_STATUS(c[0].status, FERRY_STATUS_OK);
    CHECK_EQ(c[0].value, 42);
    FerryView echo;
    if (CHECK_STATUS(ferry_buffer_view(c[0].buffer, &echo), FERRY_STATUS_OK)) {
        CHECK(echo.ptr == ptr && echo.len == strlen(text) && memcmp(echo.ptr, text, echo.len) == 0);
        CHECK_STATUS(ferry_buffer_release(c[0].buffer), FERRY_STATUS_OK);
    }
    CHECK_STATUS(c[1].status, FERRY_STATUS_OK);
    CHECK_EQ(c[1].value, fnv1a64((const uint8_t *)text, strlen(text)));
    CHECK_STATUS(c[2].status, FERRY_STATUS_PANIC);
    CHECK_STATUS(c[3].status, FERRY_STATUS_CANCELLED);
    CHECK_STATUS(ferry_async_cancel(q, 3), FERRY_STATUS_INVALID_HANDLE); /* no longer in flight */

    size_t n = 0;
    CHECK_STATUS(ferry_queue_wait(q, c, 4, 0, &n), FERRY_STATUS_OK);
    CHECK_EQ(n, 0);
    CHECK_STATUS(ferry_queue_wait(q, c, 0, 0, &n), FERRY_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ferry_queue_wait(q, NULL, 4, 0, &n), FERRY_STATUS_NULL_POINTER);
    CHECK_STATUS(ferry_queue_close(q), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_queue_close(q), FERRY_STATUS_INVALID_HANDLE);
    CHECK_STATUS(ferry_queue_wait(q, c, 4, 0, &n), FERRY_STATUS_INVALID_HANDLE);
}

static void test_call_on_worker(void) {
    Adder a = {.base = 1};
    uint64_t id = 0, q = 0;
    if (!CHECK_STATUS(ferry_callback_register(adder_call, &a, adder_drop, &id), FERRY_STATUS_OK) ||
        !CHECK_STATUS(ferry_queue_new(&q), FERRY_STATUS_OK)) {
        return;
    }
    CHECK_STATUS(ferry_async_submit(q, 0, FERRY_OP_CALL, 0, id, 10), FERRY_STATUS_OK);
    atomic_store(&a.gate, 1);
    CHECK_STATUS(ferry_async_submit(q, 1, FERRY_OP_CALL, 0, id, 1000), FERRY_STATUS_OK);
    while (!atomic_load(&a.entered)) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    CHECK_STATUS(ferry_callback_unregister(id), FERRY_STATUS_OK);
    CHECK_EQ(atomic_load(&a.drops), 0); /* the running job still holds the callback */
    FerryCallbackStats s;
    CHECK_STATUS(ferry_callback_stats(&s), FERRY_STATUS_OK);
    CHECK(s.alive >= 1);
    atomic_store(&a.gate, 0);

    FerryCompletion c[2];
    memset(c, 0, sizeof c);
    CHECK_EQ(drain(q, c, 2, 2), 2);
    CHECK_STATUS(c[0].status, FERRY_STATUS_OK);
    CHECK_EQ(c[0].value, 11);
    CHECK_STATUS(c[1].status, FERRY_STATUS_OK);
    CHECK_EQ(c[1].value, 1001);
    CHECK(!pthread_equal(a.last_thread, pthread_self())); /* it ran on a worker */
    /* The worker drops its hold right after pushing the completion (wait for it as long as the
     * runner's timeout allows: nothing else ends this loop early but the drop). */
    for (int i = 0; i < 600000 && atomic_load(&a.drops) == 0; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    CHECK_EQ(atomic_load(&a.drops), 1);
    CHECK_STATUS(ferry_async_submit(q, 2, FERRY_OP_CALL, 0, id, 10), FERRY_STATUS_INVALID_HANDLE);
    CHECK_STATUS(ferry_queue_close(q), FERRY_STATUS_OK);
}

typedef struct {
    size_t max_batch;
    atomic_ulong items, batches, tag_sum;
    atomic_int too_big;
} SinkCount;

static void count_sink(void *user_data, const FerryCompletion *items, size_t n) {
    SinkCount *s = user_data;
    if (n == 0 || n > s->max_batch) {
        atomic_store(&s->too_big, 1);
    }
    unsigned long sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += (unsigned long)items[i].tag;
    }
    atomic_fetch_add(&s->tag_sum, sum);
    atomic_fetch_add(&s->items, n);
    atomic_fetch_add(&s->batches, 1);
}

static void test_sink(void) {
    SinkCount s = {.max_batch = 16};
    uint64_t q = 0;
    CHECK_STATUS(ferry_queue_new_sink(count_sink, &s, 0, &q), FERRY_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ferry_queue_new_sink(NULL, &s, 16, &q), FERRY_STATUS_NULL_POINTER);
    if (!CHECK_STATUS(ferry_queue_new_sink(count_sink, &s, 16, &q), FERRY_STATUS_OK)) {
        return;
    }
    enum { N = 1000 };
    static FerryCompletion items[N];
    unsigned long want = 0;
    for (size_t i = 0; i < N; i++) {
        items[i] = (FerryCompletion){.tag = i, .status = FERRY_STATUS_OK};
        want += i;
    }
    for (size_t i = 0; i < N; i += 100) {
        CHECK_STATUS(ferry_queue_post(q, items + i, 100), FERRY_STATUS_OK);
    }
    CHECK_STATUS(ferry_async_submit(q, N, FERRY_OP_ECHO, 0, 0, 0), FERRY_STATUS_OK);
    size_t n = 0;
    CHECK_STATUS(ferry_queue_wait(q, items, 1, 0, &n), FERRY_STATUS_INVALID_ARGUMENT);
    /* Close once the echo job's completion has been delivered: a completion that arrives after the
     * close is discarded (its buffer released), so a fixed sleep here made the count below depend
     * on how fast a loaded machine ran the worker (the flaky failure of make test). */
    while (atomic_load(&s.items) < N + 1) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    CHECK_STATUS(ferry_queue_close(q), FERRY_STATUS_OK);
    CHECK_EQ(atomic_load(&s.items), N + 1);
    CHECK_EQ(atomic_load(&s.tag_sum), want + N);
    CHECK_EQ(atomic_load(&s.too_big), 0);
    CHECK(atomic_load(&s.batches) <= N + 1);
    FerryCompletion bad = {.tag = 1, .status = 1000};
    CHECK_STATUS(ferry_queue_post(q, &bad, 1), FERRY_STATUS_INVALID_ARGUMENT);
}

int main(void) {
    CHECK_STATUS(ferry_pool_configure(4, 0, 0), FERRY_STATUS_OK);
    test_sync();
    test_async();
    test_call_on_worker();
    test_sink();
    CHECK_STATUS(ferry_pool_shutdown(), FERRY_STATUS_OK);
    FerryCallbackStats s;
    memset(&s, 0xff, sizeof s);
    CHECK_STATUS(ferry_callback_stats(&s), FERRY_STATUS_OK);
    CHECK_EQ(s.registered, 0);
    CHECK_EQ(s.alive, 0);
    CHECK_EQ(s.queues, 0);
    CHECK_EQ(s.in_flight, 0);
    CHECK_EQ(s.workers, 0);
    check_no_live();
    return check_finish();
}
