/* limit_threads: the live-byte limit is exact, across threads (issue 9, defect 2).
 *
 * Each case is what a hostile C caller saw on ferry before issue 9:
 *   1. a 64 KiB limit, nothing live: a 250 KiB create succeeded;
 *   2. a 64 KiB limit: two threads each create 60 KiB, one after the other: both succeeded;
 *   3. a 256 KiB limit, nothing live: a 100 KiB create was refused;
 *   4. eight threads churning under a 1 MiB limit: live bytes reached 2.8x the limit;
 *   5. two threads adopting 4 MiB each under a 4 MiB limit: both succeeded in ~3.5% of rounds;
 *   6. a thread that exits keeps bytes it was not charged for.
 * Here live bytes are counted by the test itself (added after a create succeeds, taken away before
 * the release) and may never pass the limit. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"

enum { KiB = 1024, MiB = 1024 * 1024 };

static FerryStatus new_buffer(size_t n, uint64_t *id) {
    FerryView v = {0, NULL, 0};
    FerryStatus st = ferry_buffer_new(n, &v);
    *id = v.id;
    return st;
}

typedef struct {
    size_t len;
    FerryStatus status;
    uint64_t id;
} OneCreate;

static void *create_one(void *arg) {
    OneCreate *c = arg;
    c->status = new_buffer(c->len, &c->id);
    return NULL;
}

static void single_creates_are_exact(void) {
    uint64_t a = 0, b = 0;
    CHECK_STATUS(ferry_limit_set(64 * KiB), FERRY_STATUS_OK);
    CHECK_STATUS(new_buffer(250 * KiB, &a), FERRY_STATUS_LIMIT_REACHED); /* case 1 */
    CHECK_STATUS(new_buffer(64 * KiB, &a), FERRY_STATUS_OK);
    CHECK_STATUS(new_buffer(1, &b), FERRY_STATUS_LIMIT_REACHED);
    CHECK_STATUS(ferry_buffer_release(a), FERRY_STATUS_OK);

    /* case 2: two threads, one after the other */
    OneCreate first = {60 * KiB, 0, 0}, second = {60 * KiB, 0, 0};
    pthread_t t;
    pthread_create(&t, NULL, create_one, &first);
    pthread_join(t, NULL);
    pthread_create(&t, NULL, create_one, &second);
    pthread_join(t, NULL);
    CHECK_STATUS(first.status, FERRY_STATUS_OK);
    CHECK_STATUS(second.status, FERRY_STATUS_LIMIT_REACHED);
    CHECK_STATUS(ferry_buffer_release(first.id), FERRY_STATUS_OK);

    /* case 3 */
    CHECK_STATUS(ferry_limit_set(256 * KiB), FERRY_STATUS_OK);
    CHECK_STATUS(new_buffer(100 * KiB, &a), FERRY_STATUS_OK);
    CHECK_STATUS(new_buffer(156 * KiB, &b), FERRY_STATUS_OK);
    uint64_t c = 0;
    CHECK_STATUS(new_buffer(1, &c), FERRY_STATUS_LIMIT_REACHED);
    CHECK_EQ(check_stats().live_bytes, 256 * KiB);
    CHECK_STATUS(ferry_buffer_release(a), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_release(b), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_limit_set(0), FERRY_STATUS_OK);
}

/* case 4 */
enum { CHURNERS = 8, CHURN_ITERS = 5000, HELD = 6 };
static const uint64_t churn_limit = 1 * MiB;
static atomic_ullong held_bytes;
static atomic_ullong most_held;

static void *churn(void *arg) {
    uint64_t rng = (uint64_t)(uintptr_t)arg * 7919 + 1;
    uint64_t ids[HELD];
    size_t lens[HELD], n = 0;
    for (int i = 0; i < CHURN_ITERS; i++) {
        uint64_t r = check_rand64(&rng);
        size_t len = 1 + (size_t)(r % (64 * KiB));
        if ((r >> 40) % 64 == 0) len = 300 * KiB + (size_t)(r % (200 * KiB)); /* now and then a large one */
        uint64_t id;
        if (n < HELD && new_buffer(len, &id) == FERRY_STATUS_OK) {
            unsigned long long now = atomic_fetch_add(&held_bytes, len) + len;
            unsigned long long prev = atomic_load(&most_held);
            while (now > prev && !atomic_compare_exchange_weak(&most_held, &prev, now)) {
            }
            ids[n] = id;
            lens[n++] = len;
        }
        if (n > 0 && ((r >> 20) & 1 || n == HELD)) {
            size_t k = (size_t)(r >> 8) % n;
            atomic_fetch_sub(&held_bytes, lens[k]);
            if (ferry_buffer_release(ids[k]) != FERRY_STATUS_OK) CHECK(!"release");
            ids[k] = ids[n - 1];
            lens[k] = lens[--n];
        }
    }
    while (n > 0) {
        atomic_fetch_sub(&held_bytes, lens[--n]);
        CHECK_STATUS(ferry_buffer_release(ids[n]), FERRY_STATUS_OK);
    }
    return NULL;
}

static void churners_never_pass_the_limit(void) {
    CHECK_STATUS(ferry_limit_set(churn_limit), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_peak_reset(), FERRY_STATUS_OK);
    pthread_t th[CHURNERS];
    for (int i = 0; i < CHURNERS; i++) pthread_create(&th[i], NULL, churn, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < CHURNERS; i++) pthread_join(th[i], NULL);
    CHECK(atomic_load(&most_held) <= churn_limit);
    CHECK(atomic_load(&most_held) > churn_limit / 2); /* the limit was actually approached */
    FerryStats s = check_stats();
    CHECK(s.peak_bytes <= churn_limit);
    CHECK_EQ(s.live_bytes, 0);
    CHECK_STATUS(ferry_limit_set(0), FERRY_STATUS_OK);
}

/* case 5 */
typedef struct {
    uint8_t *mem;
    FerryStatus status;
    uint64_t id;
    pthread_barrier_t *start;
} Adopter;

static void free_release(void *user_data, uint8_t *data, size_t len) {
    (void)user_data;
    (void)len;
    free(data);
}

static void *adopt_4mib(void *arg) {
    Adopter *a = arg;
    FerryView v = {0, NULL, 0};
    pthread_barrier_wait(a->start);
    a->status = ferry_buffer_adopt(a->mem, 4 * MiB, free_release, NULL, &v);
    a->id = v.id;
    return NULL;
}

static void racing_adopts_fit_once(void) {
    CHECK_STATUS(ferry_limit_set(4 * MiB), FERRY_STATUS_OK);
    int both = 0, neither = 0;
    for (int round = 0; round < 300; round++) {
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, 2);
        Adopter a[2] = {{malloc(4 * MiB), 0, 0, &start}, {malloc(4 * MiB), 0, 0, &start}};
        pthread_t th[2];
        for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, adopt_4mib, &a[i]);
        for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
        pthread_barrier_destroy(&start);
        int ok = 0;
        for (int i = 0; i < 2; i++) {
            if (a[i].status == FERRY_STATUS_OK) {
                ok++;
                CHECK_STATUS(ferry_buffer_release(a[i].id), FERRY_STATUS_OK);
            } else {
                CHECK_STATUS(a[i].status, FERRY_STATUS_LIMIT_REACHED);
                free(a[i].mem); /* a refused adopt hands the memory back */
            }
        }
        both += ok == 2;
        neither += ok == 0;
    }
    CHECK_EQ(both, 0);
    CHECK_EQ(neither, 0);
    CHECK_STATUS(ferry_limit_set(0), FERRY_STATUS_OK);
}

/* case 6: small buffers made by threads that then exit still count, and the credit those threads
 * left behind never makes a create that fits fail. */
static void *make_small_and_exit(void *arg) {
    uint64_t *id = arg;
    CHECK_STATUS(new_buffer(10 * KiB, id), FERRY_STATUS_OK);
    return NULL;
}

static void exited_threads_leave_nothing_uncounted(void) {
    CHECK_STATUS(ferry_limit_set(100 * KiB), FERRY_STATUS_OK);
    uint64_t ids[5];
    for (int i = 0; i < 5; i++) {
        pthread_t t;
        pthread_create(&t, NULL, make_small_and_exit, &ids[i]);
        pthread_join(t, NULL);
    }
    CHECK_EQ(check_stats().live_bytes, 50 * KiB);
    uint64_t rest = 0, more = 0;
    CHECK_STATUS(new_buffer(50 * KiB, &rest), FERRY_STATUS_OK);
    CHECK_STATUS(new_buffer(1, &more), FERRY_STATUS_LIMIT_REACHED);
    CHECK_STATUS(ferry_buffer_release(rest), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_release_many(ids, 5, NULL), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_limit_set(0), FERRY_STATUS_OK);
}

int main(void) {
    single_creates_are_exact();
    churners_never_pass_the_limit();
    racing_adopts_fit_once();
    exited_threads_leave_nothing_uncounted();
    check_no_live();
    return check_finish();
}
