/* thread_exit: threads whose first use of ferry comes while they exit (from a pthread key
 * destructor) leak nothing, and a sink queue closed from a C thread leaves nothing behind
 * (issue 9, defect 6). The valgrind run of this program (c_tests/run.sh: --leak-check=full with
 * definite and possible leaks counted as errors) is the check: on ferry before issue 9 each such
 * thread leaked 32 bytes and kept its hazard record marked in use forever, and closing a sink from
 * a C thread left 48 bytes possibly lost. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "check.h"

enum { THREADS = 64 };

static pthread_key_t key;
static uint64_t callback_id;
static atomic_int calls_from_destructors;

static uint32_t count(void *user_data, uint64_t buffer, uint64_t value, FerryPayload *result_out) {
    (void)user_data;
    (void)buffer;
    result_out->value = value + 1;
    return FERRY_STATUS_OK;
}

/* Runs as the thread exits, after its thread-local destructors: ferry's first use on this thread. */
static void on_exit_destructor(void *value) {
    FerryPayload r = {0, 0};
    if (ferry_callback_invoke(callback_id, 0, (uint64_t)(uintptr_t)value, &r) == FERRY_STATUS_OK &&
        r.value == (uint64_t)(uintptr_t)value + 1) {
        atomic_fetch_add(&calls_from_destructors, 1);
    }
    FerryView v;
    if (ferry_buffer_new(16, &v) == FERRY_STATUS_OK) ferry_buffer_release(v.id);
}

static void *exit_soon(void *arg) {
    pthread_setspecific(key, arg);
    return NULL;
}

static void sink(void *user_data, const FerryCompletion *items, size_t n) {
    (void)items;
    atomic_fetch_add((atomic_size_t *)user_data, n);
}

static void *close_a_sink(void *arg) {
    (void)arg;
    atomic_size_t sunk = 0;
    uint64_t q = 0;
    FerryCompletion c = {1, 0, 0, FERRY_STATUS_OK, 0};
    if (CHECK_STATUS(ferry_queue_new_sink(sink, &sunk, 4, &q), FERRY_STATUS_OK)) {
        CHECK_STATUS(ferry_queue_post(q, &c, 1), FERRY_STATUS_OK);
        CHECK_STATUS(ferry_queue_close(q), FERRY_STATUS_OK);
        CHECK_EQ(atomic_load(&sunk), 1);
    }
    return NULL;
}

int main(void) {
    CHECK(pthread_key_create(&key, on_exit_destructor) == 0);
    CHECK_STATUS(ferry_callback_register(count, NULL, NULL, &callback_id), FERRY_STATUS_OK);
    for (int i = 0; i < THREADS; i++) {
        pthread_t t;
        CHECK(pthread_create(&t, NULL, exit_soon, (void *)(uintptr_t)(i + 1)) == 0);
        CHECK(pthread_join(t, NULL) == 0);
    }
    CHECK_EQ(atomic_load(&calls_from_destructors), THREADS);
    /* A sink closed from a C thread, and one closed from the main thread. */
    pthread_t t;
    CHECK(pthread_create(&t, NULL, close_a_sink, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    close_a_sink(NULL);
    CHECK_STATUS(ferry_callback_unregister(callback_id), FERRY_STATUS_OK);
    pthread_key_delete(key);
    check_no_live();
    return check_finish();
}
