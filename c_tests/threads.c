/* threads: concurrent use from 6 pthreads.
 *
 * 1. Ring: every thread creates buffers (zeroed, copied or adopted), shares and slices them, checks
 *    the bytes and pointers, releases some ids itself (one by one and in release_many batches) and
 *    posts a share to the next thread, which checks the bytes and releases it: cross-thread
 *    releases, with slots recycled by one thread while another still holds stale ids into them.
 *    Adopted memory is handed back exactly once, on the thread that releases the last id.
 * 2. Race: all threads release the same ids at once (release and release_many); each id is
 *    released exactly once in total and each adopted block is handed back exactly once.
 * Set FERRY_C_ITERS to change the iterations per thread in the ring (default 20000). */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

enum { NTHREADS = 6, MAILBOX_CAP = 512, BATCH = 16, STALE_KEEP = 32, MAX_LEN = 200 };

/* One adopted block; the release callback fills it in. */
typedef struct {
    atomic_int calls;
    pthread_t thread; /* the thread the callback ran on */
    uint8_t *data;
    size_t len;
    int args_ok; /* the callback got back this block's own data and len */
} Adoption;

static atomic_long adoptions_made;
static atomic_long adoptions_released;

static void adoption_release(void *user_data, uint8_t *data, size_t len) {
    Adoption *a = user_data;
    a->thread = pthread_self();
    a->args_ok = data == a->data && len == a->len;
    atomic_fetch_add(&a->calls, 1);
    atomic_fetch_add(&adoptions_released, 1);
    free(data);
}

/* A share in transit to the next thread: its id, its length and the byte it is filled with. */
typedef struct {
    uint64_t id;
    size_t len;
    uint8_t tag;
    Adoption *adoption; /* non-NULL when this share is the last id over adopted memory */
} Parcel;

typedef struct {
    pthread_mutex_t mu;
    Parcel items[MAILBOX_CAP];
    size_t head, count;
} Mailbox;

typedef struct {
    int index;
    long iters;
    Mailbox *inbox, *outbox;
    long errors;
    int first_error_line;
    const char *first_error;
    long received, posted;
    uint64_t stale[STALE_KEEP]; /* ids this thread released lately, most made by other threads */
    size_t nstale;
    pthread_barrier_t *start;
} Worker;

static Mailbox mailboxes[NTHREADS];

#define EXPECT(w, cond)                                                                                        \
    do {                                                                                                       \
        if (!(cond)) {                                                                                         \
            if ((w)->errors++ == 0) {                                                                          \
                (w)->first_error_line = __LINE__;                                                              \
                (w)->first_error = #cond;                                                                      \
            }                                                                                                  \
        }                                                                                                      \
    } while (0)

static int all_bytes(const uint8_t *p, size_t n, uint8_t tag) {
    for (size_t i = 0; i < n; i++) {
        if (p[i] != tag) return 0;
    }
    return 1;
}

static int post(Mailbox *m, Parcel p) {
    pthread_mutex_lock(&m->mu);
    int ok = m->count < MAILBOX_CAP;
    if (ok) {
        m->items[(m->head + m->count) % MAILBOX_CAP] = p;
        m->count++;
    }
    pthread_mutex_unlock(&m->mu);
    return ok;
}

static int take(Mailbox *m, Parcel *out) {
    pthread_mutex_lock(&m->mu);
    int ok = m->count > 0;
    if (ok) {
        *out = m->items[m->head];
        m->head = (m->head + 1) % MAILBOX_CAP;
        m->count--;
    }
    pthread_mutex_unlock(&m->mu);
    return ok;
}

/* Checks a parcel's bytes through its own view and releases it; for adopted memory this is the
 * last id, so the memory must have been handed back on this very thread. */
static void consume(Worker *w, Parcel p) {
    FerryView v = {0, NULL, 0};
    EXPECT(w, ferry_buffer_view(p.id, &v) == FERRY_STATUS_OK);
    EXPECT(w, v.len == p.len && (p.len == 0) == (v.ptr == NULL));
    if (v.ptr != NULL) EXPECT(w, all_bytes(v.ptr, v.len, p.tag));
    if (p.len > 0) {
        uint8_t last = 0;
        EXPECT(w, ferry_buffer_copy_out(p.id, p.len - 1, &last, 1) == FERRY_STATUS_OK && last == p.tag);
    }
    EXPECT(w, ferry_buffer_release(p.id) == FERRY_STATUS_OK);
    w->stale[w->nstale++ % STALE_KEEP] = p.id;
    if (p.adoption != NULL) {
        EXPECT(w, atomic_load(&p.adoption->calls) == 1);
        EXPECT(w, pthread_equal(p.adoption->thread, pthread_self()));
        EXPECT(w, p.adoption->args_ok);
        free(p.adoption);
    }
    w->received++;
}

static void *ring_worker(void *arg) {
    Worker *w = arg;
    uint64_t rng = 0x1234567ULL * (uint64_t)(w->index + 1);
    uint64_t batch[BATCH];
    size_t nbatch = 0;
    uint8_t scratch[MAX_LEN];
    pthread_barrier_wait(w->start);

    for (long i = 0; i < w->iters; i++) {
        size_t len = (size_t)(check_rand64(&rng) % (MAX_LEN + 1));
        uint8_t tag = (uint8_t)(w->index * 40 + i);
        int kind = (int)(i % 3);
        FerryView base = {0, NULL, 0};
        Adoption *adoption = NULL;
        if (kind == 0) {
            EXPECT(w, ferry_buffer_new(len, &base) == FERRY_STATUS_OK);
            if (base.ptr != NULL) memset(base.ptr, tag, len);
        } else if (kind == 1) {
            memset(scratch, tag, len);
            EXPECT(w, ferry_buffer_copy(scratch, len, &base) == FERRY_STATUS_OK);
        } else {
            adoption = calloc(1, sizeof *adoption);
            uint8_t *mem = malloc(len == 0 ? 1 : len);
            if (adoption == NULL || mem == NULL) {
                EXPECT(w, !"out of memory");
                free(adoption);
                free(mem);
                continue;
            }
            memset(mem, tag, len);
            adoption->data = mem;
            adoption->len = len;
            EXPECT(w, ferry_buffer_adopt(mem, len, adoption_release, adoption, &base) == FERRY_STATUS_OK);
            atomic_fetch_add(&adoptions_made, 1);
            EXPECT(w, len == 0 ? base.ptr == NULL : base.ptr == mem);
        }
        if (base.id == 0) continue;
        EXPECT(w, base.len == len && (len == 0) == (base.ptr == NULL));

        FerryView sh = {0, NULL, 0}, sl = {0, NULL, 0};
        EXPECT(w, ferry_buffer_share(base.id, &sh) == FERRY_STATUS_OK);
        EXPECT(w, sh.ptr == base.ptr && sh.len == len);
        size_t off = len / 3, slen = len / 3;
        EXPECT(w, ferry_buffer_slice(base.id, off, slen, &sl) == FERRY_STATUS_OK);
        EXPECT(w, sl.len == slen && (slen == 0 ? sl.ptr == NULL : sl.ptr == base.ptr + off));
        if (sl.ptr != NULL) EXPECT(w, all_bytes(sl.ptr, sl.len, tag));

        /* base goes now, the slice in the next batch, the share to the next thread. For adopted
         * memory the slice goes now too, so the share in the mailbox is the last id. */
        EXPECT(w, ferry_buffer_release(base.id) == FERRY_STATUS_OK);
        if (adoption != NULL) {
            EXPECT(w, ferry_buffer_release(sl.id) == FERRY_STATUS_OK);
            EXPECT(w, atomic_load(&adoption->calls) == 0);
        } else if (sl.id != 0) {
            batch[nbatch++] = sl.id;
        }
        if (nbatch == BATCH) {
            size_t n = 0;
            EXPECT(w, ferry_buffer_release_many(batch, BATCH, &n) == FERRY_STATUS_OK && n == BATCH);
            nbatch = 0;
        }
        if (sh.id != 0) {
            Parcel p = {sh.id, len, tag, adoption};
            if (post(w->outbox, p)) {
                w->posted++;
            } else {
                consume(w, p); /* the next thread is behind: check and release it here */
            }
        }

        Parcel p;
        for (int k = 0; k < 4 && take(w->inbox, &p); k++) consume(w, p);

        /* Ids released here but made by other threads stay dead while those threads reuse their
         * slots. (Unused entries are 0, which is never valid either.) */
        if (i % 8 == 0) {
            for (size_t k = 0; k < STALE_KEEP; k++) {
                FerryView v;
                EXPECT(w, ferry_buffer_view(w->stale[k], &v) == FERRY_STATUS_INVALID_HANDLE);
            }
            EXPECT(w, ferry_buffer_release(w->stale[(size_t)i % STALE_KEEP]) == FERRY_STATUS_INVALID_HANDLE);
            EXPECT(w, ferry_buffer_release(base.id) == FERRY_STATUS_INVALID_HANDLE);
        }
        if (i % 64 == 0) {
            FerryStats s;
            EXPECT(w, ferry_stats_get(&s) == FERRY_STATUS_OK && s.released <= s.created &&
                          s.live_ids == s.created - s.released);
        }
    }
    if (nbatch > 0) {
        size_t n = 0;
        EXPECT(w, ferry_buffer_release_many(batch, nbatch, &n) == FERRY_STATUS_OK && n == nbatch);
    }
    return NULL;
}

static long iterations(void) {
    const char *s = getenv("FERRY_C_ITERS");
    long n = s != NULL ? strtol(s, NULL, 10) : 0;
    return n > 0 ? n : 20000;
}

static void ring(void) {
    static Worker workers[NTHREADS];
    pthread_t threads[NTHREADS];
    FerryStats before = check_stats();
    long iters = iterations();
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, NTHREADS);
    for (int t = 0; t < NTHREADS; t++) {
        pthread_mutex_init(&mailboxes[t].mu, NULL);
        workers[t] = (Worker){.index = t, .iters = iters, .inbox = &mailboxes[t],
                              .outbox = &mailboxes[(t + 1) % NTHREADS], .start = &start};
    }
    int started = 1;
    for (int t = 0; t < NTHREADS; t++) started &= pthread_create(&threads[t], NULL, ring_worker, &workers[t]) == 0;
    if (!CHECK(started)) exit(check_finish());
    for (int t = 0; t < NTHREADS; t++) pthread_join(threads[t], NULL);
    pthread_barrier_destroy(&start);

    /* Parcels still in transit: the receiving thread finished first. Released here, on main. */
    long received = 0, posted = 0, errors = 0;
    for (int t = 0; t < NTHREADS; t++) {
        Parcel p;
        while (take(&mailboxes[t], &p)) consume(&workers[t], p);
    }
    for (int t = 0; t < NTHREADS; t++) {
        Worker *w = &workers[t];
        if (w->errors != 0) {
            fprintf(stderr, "     thread %d: %ld errors, first at %s:%d: %s\n", t, w->errors, __FILE__,
                    w->first_error_line, w->first_error);
        }
        CHECK_EQ(w->errors, 0);
        received += w->received;
        posted += w->posted;
        errors += w->errors;
        pthread_mutex_destroy(&mailboxes[t].mu);
    }
    CHECK(posted > 0);           /* shares really crossed threads */
    CHECK(received >= posted);   /* and every one was consumed */
    CHECK_EQ(received, (long)NTHREADS * iters);
    CHECK_EQ(atomic_load(&adoptions_made), atomic_load(&adoptions_released));
    CHECK(atomic_load(&adoptions_made) > 0);
    FerryStats after = check_stats();
    CHECK_EQ(after.created - before.created, 3 * (uint64_t)NTHREADS * (uint64_t)iters);
    CHECK_EQ(after.released - before.released, 3 * (uint64_t)NTHREADS * (uint64_t)iters);
    CHECK_EQ(after.live_ids, 0);
    CHECK_EQ(after.live_bytes, 0);
}

/* ---- 2. every thread releases the same ids at the same moment ---- */

enum { RACE_IDS = 600, RACE_ROUNDS = 5 };

typedef struct {
    int index;
    const uint64_t *ids;
    pthread_barrier_t *start;
    long released; /* how many of the ids this thread released */
} Racer;

static void *racer(void *arg) {
    Racer *r = arg;
    pthread_barrier_wait(r->start);
    if (r->index % 2 == 0) {
        size_t n = 0;
        FerryStatus st = ferry_buffer_release_many(r->ids, RACE_IDS, &n);
        /* OK only if this thread won every id. */
        if ((st == FERRY_STATUS_OK && n == RACE_IDS) || (st == FERRY_STATUS_INVALID_HANDLE && n < RACE_IDS)) {
            r->released = (long)n;
        } else {
            r->released = -1000000; /* makes the total wrong */
        }
    } else {
        /* Walk the ids from the other end so the two styles collide. */
        for (size_t k = RACE_IDS; k-- > 0;) {
            FerryStatus st = ferry_buffer_release(r->ids[k]);
            if (st == FERRY_STATUS_OK) {
                r->released++;
            } else if (st != FERRY_STATUS_INVALID_HANDLE) {
                r->released = -1000000;
            }
        }
    }
    return NULL;
}

static void race(void) {
    static uint64_t ids[RACE_IDS];
    static Adoption adoptions[RACE_IDS];
    for (int round = 0; round < RACE_ROUNDS; round++) {
        long before_released = atomic_load(&adoptions_released);
        int made = 1, adopted = 0;
        for (size_t k = 0; k < RACE_IDS; k++) {
            FerryView v;
            if (k % 3 == 0) {
                uint8_t *mem = malloc(8);
                adoptions[k] = (Adoption){.data = mem, .len = 8};
                atomic_init(&adoptions[k].calls, 0);
                made &= mem != NULL && ferry_buffer_adopt(mem, 8, adoption_release, &adoptions[k], &v) == FERRY_STATUS_OK;
                adopted++;
            } else {
                made &= ferry_buffer_new(k, &v) == FERRY_STATUS_OK;
            }
            ids[k] = v.id;
        }
        if (!CHECK(made)) return;
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, NTHREADS);
        Racer racers[NTHREADS];
        pthread_t threads[NTHREADS];
        for (int t = 0; t < NTHREADS; t++) {
            racers[t] = (Racer){.index = t, .ids = ids, .start = &start, .released = 0};
            if (pthread_create(&threads[t], NULL, racer, &racers[t]) != 0) {
                CHECK(!"pthread_create");
                exit(check_finish());
            }
        }
        long total = 0;
        for (int t = 0; t < NTHREADS; t++) {
            pthread_join(threads[t], NULL);
            total += racers[t].released;
        }
        pthread_barrier_destroy(&start);
        CHECK_EQ(total, RACE_IDS); /* every id released exactly once */
        int once = 1;
        for (size_t k = 0; k < RACE_IDS; k += 3) once &= atomic_load(&adoptions[k].calls) == 1 && adoptions[k].args_ok;
        CHECK(once);
        CHECK_EQ(atomic_load(&adoptions_released) - before_released, adopted);
        FerryStats s = check_stats();
        CHECK_EQ(s.live_ids, 0);
        CHECK_EQ(s.live_bytes, 0);
    }
}

int main(void) {
    ring();
    race();
    check_no_live();
    return check_finish();
}
