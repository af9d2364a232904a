/* kinds: an id of one kind is refused by every function that takes another kind, however many
 * threads use ferry.
 *
 * Each of 24 threads (more than ferry's 16 shards, so thread homes wrap around every shard) makes a
 * buffer, a callback and a completion queue. Then every id is handed to every function of the other
 * kinds: each call must return INVALID_HANDLE and change nothing (the buffer still reads its bytes,
 * the callback still answers, the queue still takes posts). On ferry before issue 9, buffer ids of
 * the 13th and 14th threads were bit-identical to callback and queue ids, so a buffer id ran a
 * callback and a callback id released another thread's buffer. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "check.h"

enum { NTHREADS = 24 };

typedef struct {
    int index;
    FerryView buf;
    uint64_t callback;
    uint64_t queue;
} Made;

static Made made[NTHREADS];

static uint32_t answer(void *user_data, uint64_t buffer, uint64_t value, FerryPayload *result_out) {
    (void)buffer;
    result_out->value = value + (uint64_t)(uintptr_t)user_data;
    return FERRY_STATUS_OK;
}

static void *make(void *arg) {
    Made *m = arg;
    uint8_t fill[32];
    memset(fill, m->index, sizeof fill);
    CHECK_STATUS(ferry_buffer_copy(fill, sizeof fill, &m->buf), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_callback_register(answer, (void *)(uintptr_t)(1000 + m->index), NULL, &m->callback),
                 FERRY_STATUS_OK);
    CHECK_STATUS(ferry_queue_new(&m->queue), FERRY_STATUS_OK);
    return NULL;
}

/* Every buffer function refuses `id` (not a buffer id). */
static void buffer_functions_refuse(uint64_t id) {
    FerryView v = {0, NULL, 0};
    uint8_t b[4];
    size_t n = 99;
    CHECK_STATUS(ferry_buffer_view(id, &v), FERRY_STATUS_INVALID_HANDLE);
    CHECK_STATUS(ferry_buffer_share(id, &v), FERRY_STATUS_INVALID_HANDLE);
    CHECK_STATUS(ferry_buffer_slice(id, 0, 1, &v), FERRY_STATUS_INVALID_HANDLE);
    CHECK_STATUS(ferry_buffer_copy_out(id, 0, b, sizeof b), FERRY_STATUS_INVALID_HANDLE);
    CHECK_STATUS(ferry_buffer_release(id), FERRY_STATUS_INVALID_HANDLE);
    CHECK_STATUS(ferry_buffer_release_many(&id, 1, &n), FERRY_STATUS_INVALID_HANDLE);
    CHECK_EQ(n, 0);
    CHECK(v.id == 0);
}

/* Every callback function refuses `id` (not a callback id). */
static void callback_functions_refuse(uint64_t id, uint64_t some_queue) {
    FerryPayload r = {0, 0};
    CHECK_STATUS(ferry_callback_invoke(id, 0, 1, &r), FERRY_STATUS_INVALID_HANDLE);
    CHECK_STATUS(ferry_callback_unregister(id), FERRY_STATUS_INVALID_HANDLE);
    CHECK_STATUS(ferry_async_submit(some_queue, 77, FERRY_OP_CALL, 0, id, 0), FERRY_STATUS_INVALID_HANDLE);
    CHECK_EQ(r.value, 0);
}

/* Every queue function refuses `id` (not a queue id). */
static void queue_functions_refuse(uint64_t id) {
    FerryCompletion out[1];
    size_t n = 99;
    FerryCompletion c = {1, 0, 0, FERRY_STATUS_OK, 0};
    CHECK_STATUS(ferry_queue_wait(id, out, 1, 0, &n), FERRY_STATUS_INVALID_HANDLE);
    CHECK_STATUS(ferry_queue_post(id, &c, 1), FERRY_STATUS_INVALID_HANDLE);
    CHECK_STATUS(ferry_async_submit(id, 1, FERRY_OP_ECHO, 0, 0, 0), FERRY_STATUS_INVALID_HANDLE);
    CHECK_STATUS(ferry_async_cancel(id, 1), FERRY_STATUS_INVALID_HANDLE);
    CHECK_STATUS(ferry_queue_close(id), FERRY_STATUS_INVALID_HANDLE);
}

int main(void) {
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        made[i].index = i;
        /* One after the other, so thread i is the i-th thread to use ferry. */
        if (pthread_create(&th[i], NULL, make, &made[i]) != 0 || pthread_join(th[i], NULL) != 0) {
            CHECK(!"pthread_create");
            return check_finish();
        }
    }
    for (int i = 0; i < NTHREADS; i++) {
        Made *m = &made[i];
        CHECK(m->buf.id != m->callback && m->buf.id != m->queue && m->callback != m->queue);
        for (int j = 0; j < NTHREADS; j++) {
            CHECK(m->buf.id != made[j].callback && m->buf.id != made[j].queue);
            CHECK(m->callback != made[j].queue);
        }
        buffer_functions_refuse(m->callback);
        buffer_functions_refuse(m->queue);
        callback_functions_refuse(m->buf.id, made[0].queue);
        callback_functions_refuse(m->queue, made[0].queue);
        queue_functions_refuse(m->buf.id);
        queue_functions_refuse(m->callback);
    }
    /* Nothing was touched: every buffer still reads its bytes, every callback answers, every queue
     * takes a post. */
    for (int i = 0; i < NTHREADS; i++) {
        Made *m = &made[i];
        FerryView v;
        if (CHECK_STATUS(ferry_buffer_view(m->buf.id, &v), FERRY_STATUS_OK)) {
            CHECK_EQ(v.len, 32);
            CHECK_EQ(v.ptr[31], (uint8_t)i);
        }
        FerryPayload r = {0, 0};
        CHECK_STATUS(ferry_callback_invoke(m->callback, 0, 1, &r), FERRY_STATUS_OK);
        CHECK_EQ(r.value, 1001 + i);
        FerryCompletion c = {5, 0, 6, FERRY_STATUS_OK, 0}, out[1];
        size_t n = 0;
        CHECK_STATUS(ferry_queue_post(m->queue, &c, 1), FERRY_STATUS_OK);
        CHECK_STATUS(ferry_queue_wait(m->queue, out, 1, 0, &n), FERRY_STATUS_OK);
        CHECK_EQ(n, 1);
        CHECK_STATUS(ferry_buffer_release(m->buf.id), FERRY_STATUS_OK);
        CHECK_STATUS(ferry_callback_unregister(m->callback), FERRY_STATUS_OK);
        CHECK_STATUS(ferry_queue_close(m->queue), FERRY_STATUS_OK);
    }
    FerryCallbackStats cs;
    CHECK_STATUS(ferry_callback_stats(&cs), FERRY_STATUS_OK);
    CHECK_EQ(cs.registered, 0);
    CHECK_EQ(cs.queues, 0);
    check_no_live();
    return check_finish();
}
