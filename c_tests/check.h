/* check.h: the tiny check framework every C test program in c_tests/ shares.
 *
 * Each CHECK counts one pass or one failure (thread-safe: the counters are atomic). A failure
 * prints the file, line and expression to stderr and the program carries on, so one run shows
 * every broken check. A program ends with
 *
 *     check_no_live();           // ferry_stats_get shows live_ids == 0 and live_bytes == 0
 *     return check_finish();     // prints "N passed, N failed" and returns 0 or 1
 *
 * The runner (c_tests/run.sh) reads that closing line. Only ffi/ferry.h and the C library are used.
 */
#ifndef FERRY_C_TESTS_CHECK_H
#define FERRY_C_TESTS_CHECK_H

#include <inttypes.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "ferry.h"

static atomic_ulong check_passed_;
static atomic_ulong check_failed_;

/* Records one check; returns `ok` so a test can stop early: `if (!CHECK(p != NULL)) return;`. */
static inline int check_record_(int ok, const char *file, int line, const char *what) {
    if (ok) {
        atomic_fetch_add(&check_passed_, 1);
    } else {
        atomic_fetch_add(&check_failed_, 1);
        fprintf(stderr, "FAIL %s:%d: %s\n", file, line, what);
    }
    return ok;
}

/* The status's message from the library, for diagnostics only. */
static inline const char *check_status_text_(uint32_t status, char *buf, size_t len) {
    if (ferry_status_message(status, buf, len, NULL) != FERRY_STATUS_OK && len > 0) {
        snprintf(buf, len, "unknown status");
    }
    return buf;
}

static inline int check_status_(uint32_t got, uint32_t want, const char *file, int line, const char *what) {
    if (got == want) {
        return check_record_(1, file, line, what);
    }
    char g[96], w[96];
    check_record_(0, file, line, what);
    fprintf(stderr, "     got status %" PRIu32 " (%s), want %" PRIu32 " (%s)\n", got,
            check_status_text_(got, g, sizeof g), want, check_status_text_(want, w, sizeof w));
    return 0;
}

static inline int check_eq_u64_(uint64_t got, uint64_t want, const char *file, int line, const char *what) {
    if (got == want) {
        return check_record_(1, file, line, what);
    }
    check_record_(0, file, line, what);
    fprintf(stderr, "     got %" PRIu64 " (0x%" PRIx64 "), want %" PRIu64 " (0x%" PRIx64 ")\n", got, got, want,
            want);
    return 0;
}

/* A true condition. */
#define CHECK(cond) check_record_(!!(cond), __FILE__, __LINE__, #cond)
/* A call that returns exactly the status `want` (e.g. FERRY_STATUS_OK). */
#define CHECK_STATUS(call, want) check_status_((uint32_t)(call), (uint32_t)(want), __FILE__, __LINE__, #call " == " #want)
/* Two integers that are equal; both are printed on failure. */
#define CHECK_EQ(got, want) check_eq_u64_((uint64_t)(got), (uint64_t)(want), __FILE__, __LINE__, #got " == " #want)

/* The process-wide counters; a failed ferry_stats_get counts as a failed check and gives zeros. */
static inline FerryStats check_stats(void) {
    FerryStats s = {0, 0, 0, 0, 0, 0};
    CHECK_STATUS(ferry_stats_get(&s), FERRY_STATUS_OK);
    return s;
}

/* The closing invariant of every program: no id is live and no byte is held. */
#define check_no_live()                                                                                  \
    do {                                                                                                 \
        FerryStats check_end_ = check_stats();                                                           \
        CHECK_EQ(check_end_.live_ids, 0);                                                                \
        CHECK_EQ(check_end_.live_bytes, 0);                                                              \
    } while (0)

/* Prints the closing line the runner reads and returns the exit status (0 only if nothing failed). */
static inline int check_finish(void) {
    unsigned long passed = atomic_load(&check_passed_), failed = atomic_load(&check_failed_);
    fflush(stderr);
    printf("%lu passed, %lu failed\n", passed, failed);
    fflush(stdout);
    return failed == 0 && passed > 0 ? 0 : 1;
}

/* A small deterministic random generator (splitmix64) for forged ids and sizes. */
static inline uint64_t check_rand64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

#endif /* FERRY_C_TESTS_CHECK_H */
