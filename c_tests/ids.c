/* ids: stale, double-released and forged ids are INVALID_HANDLE for every function that takes an
 * id, never a crash, and never touch a live buffer. release_many releases the valid ids of a mixed
 * array and reports the rest.
 *
 * Forging "wrong generation" and "another slot" ids uses the layout documented in src/slots.rs:
 * the generation is the high 32 bits of an id; the low 32 bits are kind (4 bits, 1 for buffers),
 * shard (4 bits) and slot (24 bits). */
#include <stdint.h>
#include <string.h>

#include "check.h"

#define GEN_OF(id) ((id) >> 32)
#define LOW_OF(id) ((id) & 0xFFFFFFFFULL)

/* Every id-taking function refuses `id` with INVALID_HANDLE and changes no counter. */
static int refused_everywhere(uint64_t id) {
    FerryStats before = check_stats();
    FerryView v = {0, NULL, 0};
    uint8_t b = 0x77;
    size_t n = 99;
    int ok = ferry_buffer_view(id, &v) == FERRY_STATUS_INVALID_HANDLE;
    ok &= ferry_buffer_share(id, &v) == FERRY_STATUS_INVALID_HANDLE;
    ok &= ferry_buffer_slice(id, 0, 0, &v) == FERRY_STATUS_INVALID_HANDLE;
    ok &= ferry_buffer_copy_out(id, 0, &b, 1) == FERRY_STATUS_INVALID_HANDLE;
    ok &= ferry_buffer_copy_out(id, 0, NULL, 0) == FERRY_STATUS_INVALID_HANDLE;
    ok &= ferry_buffer_release(id) == FERRY_STATUS_INVALID_HANDLE;
    ok &= ferry_buffer_release_many(&id, 1, &n) == FERRY_STATUS_INVALID_HANDLE && n == 0;
    ok &= v.id == 0 && v.ptr == NULL && v.len == 0 && b == 0x77;
    FerryStats after = check_stats();
    ok &= after.live_ids == before.live_ids && after.created == before.created &&
          after.released == before.released && after.live_bytes == before.live_bytes;
    return ok;
}

static void zero_and_max_are_never_valid(void) {
    FerryView keep;
    CHECK_STATUS(ferry_buffer_new(8, &keep), FERRY_STATUS_OK); /* so the table is not empty */
    CHECK(refused_everywhere(0));
    CHECK(refused_everywhere(UINT64_MAX));
    CHECK(refused_everywhere(UINT64_MAX - 1));
    CHECK(refused_everywhere(1));
    CHECK(refused_everywhere(0xFFFFFFFFULL));
    CHECK(refused_everywhere(0xFFFFFFFF00000000ULL));
    CHECK_STATUS(ferry_buffer_release(keep.id), FERRY_STATUS_OK);
}

static void stale_and_double_release(void) {
    FerryView a, b;
    if (!CHECK_STATUS(ferry_buffer_new(16, &a), FERRY_STATUS_OK)) return;
    CHECK_STATUS(ferry_buffer_release(a.id), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_release(a.id), FERRY_STATUS_INVALID_HANDLE);
    CHECK_STATUS(ferry_buffer_release(a.id), FERRY_STATUS_INVALID_HANDLE);
    CHECK(refused_everywhere(a.id));

    /* Double release of one of two ids over the same memory must not free it early. */
    if (!CHECK_STATUS(ferry_buffer_new(16, &a), FERRY_STATUS_OK)) return;
    memset(a.ptr, 'q', 16);
    CHECK_STATUS(ferry_buffer_share(a.id, &b), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_release(a.id), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_release(a.id), FERRY_STATUS_INVALID_HANDLE);
    CHECK_EQ(check_stats().live_bytes, 16);
    CHECK(b.ptr[0] == 'q' && b.ptr[15] == 'q');
    CHECK_STATUS(ferry_buffer_release(b.id), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_release(b.id), FERRY_STATUS_INVALID_HANDLE);
}

/* A released id whose slot now holds another buffer (the ABA case) answers nothing, and a release
 * of it leaves the new buffer alone. */
static void stale_id_of_a_reused_slot(void) {
    FerryView a, b;
    if (!CHECK_STATUS(ferry_buffer_new(8, &a), FERRY_STATUS_OK)) return;
    CHECK_STATUS(ferry_buffer_release(a.id), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_new(24, &b), FERRY_STATUS_OK);
    /* One thread, free list: the slot comes straight back with a new generation. */
    CHECK_EQ(LOW_OF(b.id), LOW_OF(a.id));
    CHECK(GEN_OF(b.id) != GEN_OF(a.id));
    CHECK(refused_everywhere(a.id));
    FerryView v;
    CHECK_STATUS(ferry_buffer_view(b.id, &v), FERRY_STATUS_OK);
    CHECK(v.ptr == b.ptr && v.len == 24);
    CHECK_STATUS(ferry_buffer_release(b.id), FERRY_STATUS_OK);
}

static void forged_generation_and_slot(void) {
    FerryView a, b, v;
    /* Two live buffers in different slots at different generations: recycling `a` through its
     * slot (release then new, which reuses the slot) bumps its generation. */
    CHECK_STATUS(ferry_buffer_new(4, &b), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_new(4, &a), FERRY_STATUS_OK);
    for (int i = 0; i < 3 && GEN_OF(a.id) == GEN_OF(b.id); i++) {
        CHECK_STATUS(ferry_buffer_release(a.id), FERRY_STATUS_OK);
        CHECK_STATUS(ferry_buffer_new(4, &a), FERRY_STATUS_OK);
    }
    CHECK(LOW_OF(a.id) != LOW_OF(b.id));
    CHECK(GEN_OF(a.id) != GEN_OF(b.id));

    /* Wrong generations of a live slot: older, newer, far away, and the retired marker. */
    CHECK(refused_everywhere(a.id - (1ULL << 32)));
    CHECK(refused_everywhere(a.id + (1ULL << 32)));
    CHECK(refused_everywhere(a.id ^ (1ULL << 63)));
    CHECK(refused_everywhere(LOW_OF(a.id) | (0xFFFFFFFFULL << 32)));
    CHECK(refused_everywhere(LOW_OF(a.id)));
    /* Another slot's id: a's generation over b's slot, and b's over a's. */
    CHECK(refused_everywhere((GEN_OF(a.id) << 32) | LOW_OF(b.id)));
    CHECK(refused_everywhere((GEN_OF(b.id) << 32) | LOW_OF(a.id)));
    /* Neighbouring and far slots that were never handed out; another shard's copy of the slot. */
    CHECK(refused_everywhere(b.id + 1000));
    CHECK(refused_everywhere((GEN_OF(b.id) << 32) | 0x0FFFFFFFULL));
    CHECK(refused_everywhere(b.id ^ (1ULL << 24)));
    CHECK(refused_everywhere(b.id ^ (0xFULL << 24)));
    /* The same generation, shard and slot under another kind (a callback or queue id). */
    CHECK(refused_everywhere(b.id ^ (1ULL << 28)));
    CHECK(refused_everywhere(b.id ^ (0xFULL << 28)));

    /* The real ids were never disturbed. */
    CHECK_STATUS(ferry_buffer_view(a.id, &v), FERRY_STATUS_OK);
    CHECK(v.ptr == a.ptr);
    CHECK_STATUS(ferry_buffer_view(b.id, &v), FERRY_STATUS_OK);
    CHECK(v.ptr == b.ptr);
    CHECK_STATUS(ferry_buffer_release(a.id), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_release(b.id), FERRY_STATUS_OK);
}

/* Random ids while 64 buffers are live: fully random 64-bit values, and values shaped like real
 * ids (small generation, any shard, small slot), which do hit live ids now and then. A view
 * answers exactly when the value is a live id; every other value is refused by every function. */
static void random_ids(void) {
    enum { LIVE = 64, ROUNDS = 20000 };
    FerryView live[LIVE];
    for (int i = 0; i < LIVE; i++) {
        if (!CHECK_STATUS(ferry_buffer_new(32, &live[i]), FERRY_STATUS_OK)) return;
        memset(live[i].ptr, i, 32);
    }
    /* Stale ids are in the mix too. */
    for (int i = 0; i < LIVE; i += 4) {
        FerryView s;
        CHECK_STATUS(ferry_buffer_share(live[i].id, &s), FERRY_STATUS_OK);
        CHECK_STATUS(ferry_buffer_release(s.id), FERRY_STATUS_OK);
    }
    FerryStats before = check_stats();
    uint64_t rng = 0xC0FFEE;
    unsigned long hits = 0, refused = 0, wrong = 0;
    for (int r = 0; r < ROUNDS; r++) {
        uint64_t x = check_rand64(&rng);
        uint64_t id;
        if (r % 2 == 0) {
            id = x;
        } else {
            uint64_t gen = 1 + (x >> 60) % 3, shard = (x >> 40) & 0xF, slot = x & 0x7F;
            id = (gen << 32) | (1ULL << 28) | (shard << 24) | slot;
        }
        int is_live = -1;
        for (int i = 0; i < LIVE; i++) {
            if (live[i].id == id) is_live = i;
        }
        if (is_live >= 0) {
            FerryView v;
            if (ferry_buffer_view(id, &v) == FERRY_STATUS_OK && v.ptr == live[is_live].ptr) {
                hits++;
            } else {
                wrong++;
            }
        } else {
            FerryView v;
            if (ferry_buffer_view(id, &v) == FERRY_STATUS_INVALID_HANDLE &&
                ferry_buffer_release(id) == FERRY_STATUS_INVALID_HANDLE &&
                ferry_buffer_share(id, &v) == FERRY_STATUS_INVALID_HANDLE) {
                refused++;
            } else {
                wrong++;
            }
        }
    }
    CHECK_EQ(wrong, 0);
    CHECK(hits > 0); /* the shaped ids did reach live slots, so the check above had teeth */
    CHECK_EQ(hits + refused, ROUNDS);
    FerryStats after = check_stats();
    CHECK_EQ(after.live_ids, before.live_ids);
    CHECK_EQ(after.created, before.created);
    CHECK_EQ(after.released, before.released);
    int intact = 1;
    for (int i = 0; i < LIVE; i++) {
        uint8_t out[32];
        intact &= ferry_buffer_copy_out(live[i].id, 0, out, 32) == FERRY_STATUS_OK && out[0] == i && out[31] == i;
        intact &= ferry_buffer_release(live[i].id) == FERRY_STATUS_OK;
    }
    CHECK(intact);
}

static void release_many_with_a_mix(void) {
    FerryView a, b, c, gone, sh;
    CHECK_STATUS(ferry_buffer_new(10, &a), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_new(20, &b), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_new(30, &c), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_new(40, &gone), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_release(gone.id), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_share(c.id, &sh), FERRY_STATUS_OK);
    FerryStats before = check_stats();

    /* Valid ids, 0, a duplicate, a stale id, UINT64_MAX, a forged generation. */
    uint64_t ids[] = {a.id, 0, b.id, a.id, gone.id, UINT64_MAX, c.id, b.id + (1ULL << 32)};
    size_t n = 12345;
    CHECK_STATUS(ferry_buffer_release_many(ids, sizeof ids / sizeof ids[0], &n), FERRY_STATUS_INVALID_HANDLE);
    CHECK_EQ(n, 3);
    FerryStats after = check_stats();
    CHECK_EQ(after.live_ids, before.live_ids - 3);
    CHECK_EQ(after.released, before.released + 3);
    CHECK_EQ(after.live_bytes, before.live_bytes - 30); /* c's bytes live on through sh */
    CHECK(refused_everywhere(a.id));
    CHECK(refused_everywhere(b.id));
    CHECK(refused_everywhere(c.id));
    CHECK_EQ(sh.ptr[29], 0);

    /* Without released_out, and with every id invalid. */
    uint64_t bad[] = {a.id, b.id, 0};
    CHECK_STATUS(ferry_buffer_release_many(bad, 3, NULL), FERRY_STATUS_INVALID_HANDLE);
    n = 7;
    CHECK_STATUS(ferry_buffer_release_many(bad, 3, &n), FERRY_STATUS_INVALID_HANDLE);
    CHECK_EQ(n, 0);

    /* All valid: OK and the full count. */
    FerryView more[5];
    uint64_t more_ids[6];
    for (int i = 0; i < 5; i++) {
        CHECK_STATUS(ferry_buffer_new((size_t)i, &more[i]), FERRY_STATUS_OK);
        more_ids[i] = more[i].id;
    }
    more_ids[5] = sh.id;
    CHECK_STATUS(ferry_buffer_release_many(more_ids, 6, &n), FERRY_STATUS_OK);
    CHECK_EQ(n, 6);
    /* Empty array. */
    n = 7;
    CHECK_STATUS(ferry_buffer_release_many(more_ids, 0, &n), FERRY_STATUS_OK);
    CHECK_EQ(n, 0);
}

int main(void) {
    zero_and_max_are_never_valid();
    stale_and_double_release();
    stale_id_of_a_reused_slot();
    forged_generation_and_slot();
    random_ids();
    release_many_with_a_mix();
    check_no_live();
    return check_finish();
}
