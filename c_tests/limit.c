/* limit: the live-byte limit refuses creates and adoptions with LIMIT_REACHED, counts shared memory
 * once, and lets creates through again once bytes are released; the peak follows live bytes.
 * Single-threaded on purpose: with one thread the limit check is exact (see src/stats.rs). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static int adopt_calls;

static void free_release(void *user_data, uint8_t *data, size_t len) {
    (void)len;
    (*(int *)user_data)++;
    free(data);
}

static void limit_refuses_then_allows_after_release(void) {
    FerryView a, b, c, d, sh, sl, e, out = {0, NULL, 0};
    CHECK_STATUS(ferry_limit_set(1000), FERRY_STATUS_OK);
    CHECK_EQ(check_stats().limit_bytes, 1000);

    if (!CHECK_STATUS(ferry_buffer_new(600, &a), FERRY_STATUS_OK)) return;
    FerryStats before = check_stats();
    CHECK_STATUS(ferry_buffer_new(401, &out), FERRY_STATUS_LIMIT_REACHED);
    uint8_t src[401];
    memset(src, 3, sizeof src);
    CHECK_STATUS(ferry_buffer_copy(src, sizeof src, &out), FERRY_STATUS_LIMIT_REACHED);
    uint8_t *mem = malloc(401);
    CHECK_STATUS(ferry_buffer_adopt(mem, 401, free_release, &adopt_calls, &out), FERRY_STATUS_LIMIT_REACHED);
    CHECK_EQ(adopt_calls, 0); /* refused: the memory is still ours */
    free(mem);
    CHECK(out.id == 0);
    FerryStats refused = check_stats();
    CHECK_EQ(refused.live_ids, before.live_ids);
    CHECK_EQ(refused.live_bytes, before.live_bytes);
    CHECK_EQ(refused.created, before.created);

    /* Shares, slices and empty buffers add no bytes, so they pass a full limit. */
    CHECK_STATUS(ferry_buffer_new(400, &b), FERRY_STATUS_OK); /* exactly at the limit */
    CHECK_EQ(check_stats().live_bytes, 1000);
    CHECK_STATUS(ferry_buffer_new(1, &out), FERRY_STATUS_LIMIT_REACHED);
    CHECK_STATUS(ferry_buffer_share(a.id, &sh), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_slice(b.id, 100, 100, &sl), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_new(0, &e), FERRY_STATUS_OK);
    CHECK_EQ(check_stats().live_bytes, 1000);

    /* Releasing `a` alone frees nothing (sh still holds it), so the limit still bites. */
    CHECK_STATUS(ferry_buffer_release(a.id), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_new(1, &out), FERRY_STATUS_LIMIT_REACHED);
    CHECK_STATUS(ferry_buffer_release(sh.id), FERRY_STATUS_OK);
    CHECK_EQ(check_stats().live_bytes, 400);
    CHECK_STATUS(ferry_buffer_new(600, &c), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_new(1, &out), FERRY_STATUS_LIMIT_REACHED);

    /* Adopted memory counts against the limit like any other. */
    CHECK_STATUS(ferry_buffer_release(c.id), FERRY_STATUS_OK);
    mem = malloc(600);
    if (CHECK_STATUS(ferry_buffer_adopt(mem, 600, free_release, &adopt_calls, &d), FERRY_STATUS_OK)) {
        CHECK_STATUS(ferry_buffer_new(1, &out), FERRY_STATUS_LIMIT_REACHED);
        CHECK_STATUS(ferry_buffer_release(d.id), FERRY_STATUS_OK);
        CHECK_EQ(adopt_calls, 1);
    } else {
        free(mem);
    }

    /* Lowering the limit below what is live touches nothing live, and refuses new bytes. */
    CHECK_STATUS(ferry_limit_set(100), FERRY_STATUS_OK);
    FerryView v;
    CHECK_STATUS(ferry_buffer_view(b.id, &v), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_new(1, &out), FERRY_STATUS_LIMIT_REACHED);
    uint64_t ids[] = {b.id, sl.id, e.id};
    CHECK_STATUS(ferry_buffer_release_many(ids, 3, NULL), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_new(100, &a), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_release(a.id), FERRY_STATUS_OK);

    /* No limit: anything reasonable goes, and a size at the maximum is refused by the limit, not
     * tried by the allocator. */
    CHECK_STATUS(ferry_limit_set(0), FERRY_STATUS_OK);
    CHECK_EQ(check_stats().limit_bytes, 0);
    CHECK_STATUS(ferry_buffer_new(1 << 20, &a), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_release(a.id), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_limit_set((uint64_t)FERRY_MAX_LEN - 1), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_new((size_t)FERRY_MAX_LEN, &out), FERRY_STATUS_LIMIT_REACHED);
    CHECK_STATUS(ferry_limit_set(0), FERRY_STATUS_OK);
    CHECK(out.id == 0);
}

/* The peak is exact for buffers of 256 KiB (the counters' grain, src/stats.rs) or more: they are
 * folded into the global total at once. Smaller ones only raise the peak when a thread's slot folds
 * or the stats are read, so a short rise of less than 256 KiB can be missed (known; src/stats.rs). */
static void peak_follows_live_bytes(void) {
    const size_t big = 512 << 10, mid = 300 << 10;
    FerryView a, b;
    CHECK_STATUS(ferry_peak_reset(), FERRY_STATUS_OK);
    FerryStats s = check_stats();
    CHECK_EQ(s.peak_bytes, s.live_bytes);
    CHECK_STATUS(ferry_buffer_new(big, &a), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_new(mid, &b), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_release(a.id), FERRY_STATUS_OK);
    s = check_stats();
    CHECK_EQ(s.live_bytes, mid);
    CHECK_EQ(s.peak_bytes, big + mid);
    CHECK_STATUS(ferry_peak_reset(), FERRY_STATUS_OK);
    CHECK_EQ(check_stats().peak_bytes, mid);
    CHECK_STATUS(ferry_buffer_release(b.id), FERRY_STATUS_OK);
    s = check_stats();
    CHECK_EQ(s.peak_bytes, mid);
    CHECK_STATUS(ferry_peak_reset(), FERRY_STATUS_OK);
    CHECK_EQ(check_stats().peak_bytes, 0);
}

int main(void) {
    limit_refuses_then_allows_after_release();
    peak_follows_live_bytes();
    check_no_live();
    return check_finish();
}
