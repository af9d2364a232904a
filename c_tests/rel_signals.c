/* rel_signals.c: loading and using ferry installs no signal handler, and ferry's own threads run on
 * stacks of the size ferry asked for.
 *
 * The library is loaded with dlopen (path in argv[1], default target/release/libferry.so), so the
 * check covers loading as well as use. The disposition of every signal (handler, flags, mask) and
 * the main thread's alternate signal stack are recorded before the load, after it, and after using
 * ferry: buffers created and released on three threads, a C callback invoked inline and on the
 * worker pool (FERRY_OP_CALL), an async echo, a sink queue with its delivery thread, and a pool
 * shutdown. Any change is a failure.
 *
 * Inside the callback (on a pool worker) and the sink (on the delivery thread) the thread reads its
 * own stack size with pthread_getattr_np: it must be the size ferry set (the pool is configured to
 * 192 KiB here; sink threads use 256 KiB), not the process default (usually 8 MiB), which shows the
 * threads are made with an explicit size.
 *
 * Built by mk/reliability.mk (not by mk/c.mk): cc ... rel_signals.c -ldl -lpthread, no libferry.a.
 * Ends with "N passed, N failed".
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ferry.h"

static int passed, failed;

#define CHECK(cond)                                                                \
    do {                                                                           \
        if (cond) {                                                                \
            passed++;                                                              \
        } else {                                                                   \
            failed++;                                                              \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);         \
        }                                                                          \
    } while (0)

#define CHECK_OK(call) CHECK((call) == FERRY_STATUS_OK)

/* ---- the library, through dlsym ---- */

static struct {
    __typeof__(ferry_buffer_new) *buffer_new;
    __typeof__(ferry_buffer_copy) *buffer_copy;
    __typeof__(ferry_buffer_view) *buffer_view;
    __typeof__(ferry_buffer_share) *buffer_share;
    __typeof__(ferry_buffer_release) *buffer_release;
    __typeof__(ferry_stats_get) *stats_get;
    __typeof__(ferry_callback_register) *callback_register;
    __typeof__(ferry_callback_unregister) *callback_unregister;
    __typeof__(ferry_callback_invoke) *callback_invoke;
    __typeof__(ferry_callback_stats) *callback_stats;
    __typeof__(ferry_queue_new) *queue_new;
    __typeof__(ferry_queue_new_sink) *queue_new_sink;
    __typeof__(ferry_queue_close) *queue_close;
    __typeof__(ferry_queue_wait) *queue_wait;
    __typeof__(ferry_async_submit) *async_submit;
    __typeof__(ferry_pool_configure) *pool_configure;
    __typeof__(ferry_pool_shutdown) *pool_shutdown;
} F;

static int load(void *lib, const char *name, void **slot) {
    /* POSIX: a function pointer is read out of dlsym's void * through an object pointer. */
    *slot = dlsym(lib, name);
    if (*slot == NULL) {
        fprintf(stderr, "dlsym %s: %s\n", name, dlerror());
        return 0;
    }
    return 1;
}

#define LOAD(field, name) ok &= load(lib, name, (void **)&F.field)

/* ---- signal dispositions ---- */

#define NSIGS 65 /* Linux: signals 1..64 */

struct disposition {
    int rc;
    struct sigaction sa;
    stack_t altstack;
};

static void snapshot(struct disposition *d) {
    for (int s = 1; s < NSIGS; s++) {
        memset(&d[s].sa, 0, sizeof d[s].sa);
        d[s].rc = sigaction(s, NULL, &d[s].sa);
    }
    sigaltstack(NULL, &d[0].altstack);
}

static int same_mask(const sigset_t *a, const sigset_t *b) {
    for (int s = 1; s < NSIGS; s++) {
        if (sigismember(a, s) != sigismember(b, s)) {
            return 0;
        }
    }
    return 1;
}

/* Counts the signals whose disposition differs, and names them. */
static int compare(const char *when, const struct disposition *before, const struct disposition *after) {
    int changed = 0;
    for (int s = 1; s < NSIGS; s++) {
        const struct sigaction *a = &before[s].sa, *b = &after[s].sa;
        if (before[s].rc != after[s].rc || a->sa_handler != b->sa_handler || a->sa_flags != b->sa_flags ||
            !same_mask(&a->sa_mask, &b->sa_mask)) {
            fprintf(stderr, "signal %d (%s) changed %s: handler %s, flags %#x -> %#x\n", s, strsignal(s), when,
                    a->sa_handler == b->sa_handler ? "same" : "replaced", (unsigned)a->sa_flags,
                    (unsigned)b->sa_flags);
            changed++;
        }
    }
    if (before[0].altstack.ss_sp != after[0].altstack.ss_sp ||
        before[0].altstack.ss_flags != after[0].altstack.ss_flags) {
        fprintf(stderr, "the main thread's sigaltstack changed %s\n", when);
        changed++;
    }
    return changed;
}

/* ---- ferry's threads report their stack size ---- */

static atomic_size_t worker_stack, sink_stack;
static atomic_int sink_items;

static size_t my_stack_size(void) {
    pthread_attr_t attr;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstacksize(&attr, &size);
        pthread_attr_destroy(&attr);
    }
    return size;
}

static uint32_t on_call(void *user_data, uint64_t buffer, uint64_t value, FerryPayload *result_out) {
    (void)buffer;
    if (user_data != NULL) {
        atomic_store((atomic_size_t *)user_data, my_stack_size());
    }
    result_out->value = value + 1;
    return FERRY_STATUS_OK;
}

static void on_sink(void *user_data, const FerryCompletion *items, size_t n) {
    (void)user_data;
    atomic_store(&sink_stack, my_stack_size());
    for (size_t i = 0; i < n; i++) {
        if (items[i].buffer != 0) {
            F.buffer_release(items[i].buffer);
        }
    }
    atomic_fetch_add(&sink_items, (int)n);
}

static void *churn(void *arg) {
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        FerryView v, s;
        if (F.buffer_copy((const uint8_t *)"signals", 7, &v) != FERRY_STATUS_OK ||
            F.buffer_share(v.id, &s) != FERRY_STATUS_OK) {
            return (void *)1;
        }
        F.buffer_release(v.id);
        F.buffer_release(s.id);
    }
    return NULL;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "target/release/libferry.so";
    static struct disposition before[NSIGS], loaded[NSIGS], used[NSIGS];
    snapshot(before);

    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        printf("0 passed, 1 failed\n");
        return 1;
    }
    int ok = 1;
    LOAD(buffer_new, "ferry_buffer_new");
    LOAD(buffer_copy, "ferry_buffer_copy");
    LOAD(buffer_view, "ferry_buffer_view");
    LOAD(buffer_share, "ferry_buffer_share");
    LOAD(buffer_release, "ferry_buffer_release");
    LOAD(stats_get, "ferry_stats_get");
    LOAD(callback_register, "ferry_callback_register");
    LOAD(callback_unregister, "ferry_callback_unregister");
    LOAD(callback_invoke, "ferry_callback_invoke");
    LOAD(callback_stats, "ferry_callback_stats");
    LOAD(queue_new, "ferry_queue_new");
    LOAD(queue_new_sink, "ferry_queue_new_sink");
    LOAD(queue_close, "ferry_queue_close");
    LOAD(queue_wait, "ferry_queue_wait");
    LOAD(async_submit, "ferry_async_submit");
    LOAD(pool_configure, "ferry_pool_configure");
    LOAD(pool_shutdown, "ferry_pool_shutdown");
    CHECK(ok);
    if (!ok) {
        printf("%d passed, %d failed\n", passed, failed);
        return 1;
    }

    snapshot(loaded);
    CHECK(compare("by dlopen", before, loaded) == 0);

    /* Buffers on this thread and two more. */
    FerryView v;
    CHECK_OK(F.buffer_new(4096, &v));
    CHECK_OK(F.buffer_release(v.id));
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        CHECK(pthread_create(&th[i], NULL, churn, NULL) == 0);
    }
    for (int i = 0; i < 2; i++) {
        void *r = (void *)1;
        pthread_join(th[i], &r);
        CHECK(r == NULL);
    }

    /* A callback inline and on the worker pool, with 192 KiB worker stacks. */
    const size_t want_worker = 192 << 10;
    CHECK_OK(F.pool_configure(2, 0, want_worker));
    uint64_t cb = 0, q = 0, sq = 0;
    CHECK_OK(F.callback_register(on_call, &worker_stack, NULL, &cb));
    FerryPayload res = {0, 0};
    CHECK_OK(F.callback_invoke(cb, 0, 41, &res));
    CHECK(res.value == 42);
    CHECK_OK(F.queue_new(&q));
    CHECK_OK(F.async_submit(q, 1, FERRY_OP_CALL, 0, cb, 99));
    CHECK_OK(F.buffer_copy((const uint8_t *)"echo", 4, &v));
    CHECK_OK(F.async_submit(q, 2, FERRY_OP_ECHO, v.id, 0, 7));
    CHECK_OK(F.buffer_release(v.id));
    FerryCompletion done[4];
    size_t got = 0;
    for (int tries = 0; got < 2 && tries < 100; tries++) {
        size_t n = 0;
        CHECK_OK(F.queue_wait(q, done + got, 4 - got, 100000000, &n));
        got += n;
    }
    CHECK(got == 2);
    for (size_t i = 0; i < got; i++) {
        CHECK(done[i].status == FERRY_STATUS_OK);
        if (done[i].tag == 1) {
            CHECK(done[i].value == 100);
        }
        if (done[i].buffer != 0) {
            CHECK_OK(F.buffer_release(done[i].buffer));
        }
    }

    /* A sink queue: its own delivery thread. */
    CHECK_OK(F.queue_new_sink(on_sink, NULL, 8, &sq));
    CHECK_OK(F.async_submit(sq, 1, FERRY_OP_ECHO, 0, 0, 1));
    CHECK_OK(F.async_submit(sq, 2, FERRY_OP_CHECKSUM, 0, 0, 0));
    for (int tries = 0; atomic_load(&sink_items) < 2 && tries < 60000; tries++) { /* up to 60 s */
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    CHECK(atomic_load(&sink_items) == 2);

    /* Stack sizes seen from inside ferry's threads: the configured size (glibc may round it up to
     * whole pages and add the guard page), far from the 8 MiB default. */
    size_t ws = atomic_load(&worker_stack), ss = atomic_load(&sink_stack);
    printf("rel_signals: worker thread stack %zu bytes (configured %zu), sink thread stack %zu bytes\n", ws,
           want_worker, ss);
    CHECK(ws >= want_worker && ws <= want_worker + (64 << 10));
    CHECK(ss >= (256 << 10) && ss <= (256 << 10) + (64 << 10));

    snapshot(used);
    CHECK(compare("while ferry's threads run", before, used) == 0);

    CHECK_OK(F.queue_close(sq));
    CHECK_OK(F.queue_close(q));
    CHECK_OK(F.callback_unregister(cb));
    CHECK_OK(F.pool_shutdown());

    snapshot(used);
    CHECK(compare("after using ferry", before, used) == 0);

    FerryStats st;
    CHECK_OK(F.stats_get(&st));
    CHECK(st.live_ids == 0 && st.live_bytes == 0);
    FerryCallbackStats cs;
    CHECK_OK(F.callback_stats(&cs));
    CHECK(cs.registered == 0 && cs.queues == 0 && cs.in_flight == 0 && cs.workers == 0);

    printf("rel_signals: %d signals unchanged by loading and using ferry\n", NSIGS - 1);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
