/* fork: a real fork of a process whose worker pool is running (issue 10, item 10).
 *
 * Before the fork the parent keeps its one worker busy with a long sleep and has more jobs waiting.
 * In the child, on ferry before issue 10, the pool still believed its workers ran: a submit never
 * completed and ferry_pool_shutdown joined threads that do not exist. Here the child's jobs that
 * were waiting complete with CLOSED, a new submit completes on a fresh pool, shutdown returns, a
 * sink queue made before the fork can be closed, and the parent goes on undisturbed.
 *
 * The child reports through a pipe rather than its exit status: under valgrind the child's exit
 * runs a leak check of its own, which counts the parent's thread handles that the child can never
 * join (valgrind runs with --child-silent-after-fork=yes, c_tests/run.sh). */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static void sink(void *user_data, const FerryCompletion *items, size_t n) {
    (void)user_data;
    (void)items;
    (void)n;
}

/* Collects completions until `want` arrived; returns how many did (no deadline: the runner's
 * timeout catches a hang, which is the failure this test exists for). */
static size_t collect(uint64_t q, FerryCompletion *out, size_t want) {
    size_t got = 0;
    while (got < want) {
        size_t n = 0;
        if (ferry_queue_wait(q, out + got, want - got, -1, &n) != FERRY_STATUS_OK) break;
        got += n;
    }
    return got;
}

static int child(uint64_t q, uint64_t sq) {
    /* The jobs that were waiting when the parent forked complete here with CLOSED. */
    FerryCompletion c[4];
    size_t n = collect(q, c, 2);
    int ok = n == 2;
    for (size_t i = 0; i < n; i++) ok = ok && c[i].status == FERRY_STATUS_CLOSED && c[i].tag >= 2;
    /* A new submit runs on a pool of the child's own. */
    ok = ok && ferry_async_submit(q, 10, FERRY_OP_ECHO, 0, 0, 77) == FERRY_STATUS_OK;
    ok = ok && collect(q, c, 1) == 1 && c[0].tag == 10 && c[0].status == FERRY_STATUS_OK && c[0].value == 77;
    ok = ok && ferry_pool_shutdown() == FERRY_STATUS_OK;
    ok = ok && ferry_queue_close(sq) == FERRY_STATUS_OK;
    FerryView v;
    ok = ok && ferry_buffer_new(64, &v) == FERRY_STATUS_OK && ferry_buffer_release(v.id) == FERRY_STATUS_OK;
    return ok ? 0 : 1;
}

int main(void) {
    CHECK_STATUS(ferry_pool_shutdown(), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_pool_configure(1, 0, 0), FERRY_STATUS_OK);
    uint64_t q = 0, sq = 0;
    CHECK_STATUS(ferry_queue_new(&q), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_queue_new_sink(sink, NULL, 4, &sq), FERRY_STATUS_OK);
    /* The one worker sleeps (cancelled below in the parent); two more jobs wait behind it. */
    CHECK_STATUS(ferry_async_submit(q, 1, FERRY_OP_SLEEP, 0, 60 * 1000 * 1000, 0), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_async_submit(q, 2, FERRY_OP_ECHO, 0, 0, 2), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_async_submit(q, 3, FERRY_OP_ECHO, 0, 0, 3), FERRY_STATUS_OK);
    FerryCallbackStats s;
    /* Wait until the sleep has started, so that jobs 2 and 3 are the ones waiting at the fork. */
    for (;;) {
        CHECK_STATUS(ferry_callback_stats(&s), FERRY_STATUS_OK);
        if (s.workers == 1) break;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    struct timespec ts = {0, 20000000};
    nanosleep(&ts, NULL);

    fflush(stdout);
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        char verdict = child(q, sq) == 0 ? 'y' : 'n';
        _exit(write(fds[1], &verdict, 1) == 1 ? 0 : 2);
    }
    CHECK(pid > 0);
    close(fds[1]);
    char verdict = 0;
    CHECK(read(fds[0], &verdict, 1) == 1);
    CHECK(verdict == 'y'); /* every check in the child passed */
    close(fds[0]);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);

    /* The parent: its sleep is cancelled, and all three of its jobs complete as usual. */
    CHECK_STATUS(ferry_async_cancel(q, 1), FERRY_STATUS_OK);
    FerryCompletion c[3];
    CHECK_EQ(collect(q, c, 3), 3);
    for (int i = 0; i < 3; i++) {
        if (c[i].tag == 1) CHECK_STATUS(c[i].status, FERRY_STATUS_CANCELLED);
        else CHECK_STATUS(c[i].status, FERRY_STATUS_OK);
    }
    CHECK_STATUS(ferry_queue_close(sq), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_queue_close(q), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_pool_shutdown(), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_pool_configure(0, 0, 0), FERRY_STATUS_OK);
    check_no_live();
    return check_finish();
}
