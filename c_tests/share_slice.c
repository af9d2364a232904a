/* share_slice: shares and slices are ids over the same memory. The memory outlives the first
 * release and goes with the last; a slice's pointer is the parent's plus the offset; an empty
 * slice has a NULL pointer; range errors are OUT_OF_RANGE, wrapping offset + len is OVERFLOW.
 * Reads after the parent's release run under valgrind and ASan, so a premature free shows. */
#include <stdint.h>
#include <string.h>

#include "check.h"

static void fill(uint8_t *p, size_t n, uint8_t seed) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(seed + i);
}

static int holds(const uint8_t *p, size_t n, uint8_t seed) {
    for (size_t i = 0; i < n; i++) {
        if (p[i] != (uint8_t)(seed + i)) return 0;
    }
    return 1;
}

static void memory_lives_until_the_last_id(void) {
    FerryStats before = check_stats();
    FerryView base, sh, sl, sub;
    if (!CHECK_STATUS(ferry_buffer_new(100, &base), FERRY_STATUS_OK)) return;
    fill(base.ptr, 100, 0);

    CHECK_STATUS(ferry_buffer_share(base.id, &sh), FERRY_STATUS_OK);
    CHECK(sh.id != base.id);
    CHECK(sh.ptr == base.ptr);
    CHECK_EQ(sh.len, 100);

    CHECK_STATUS(ferry_buffer_slice(base.id, 10, 20, &sl), FERRY_STATUS_OK);
    CHECK(sl.id != base.id && sl.id != sh.id);
    CHECK(sl.ptr == base.ptr + 10);
    CHECK_EQ(sl.len, 20);

    /* A slice of a slice: offsets are relative to the slice. */
    CHECK_STATUS(ferry_buffer_slice(sl.id, 5, 5, &sub), FERRY_STATUS_OK);
    CHECK(sub.ptr == base.ptr + 15);
    CHECK_EQ(sub.len, 5);
    CHECK_STATUS(ferry_buffer_slice(sl.id, 16, 5, &(FerryView){0, NULL, 0}), FERRY_STATUS_OUT_OF_RANGE);

    /* Four ids, one allocation: the bytes are counted once. */
    FerryStats mid = check_stats();
    CHECK_EQ(mid.live_ids, before.live_ids + 4);
    CHECK_EQ(mid.live_bytes, before.live_bytes + 100);

    /* A write through one id is seen through the others. */
    base.ptr[15] = 0xAB;
    uint8_t b = 0;
    CHECK_STATUS(ferry_buffer_copy_out(sub.id, 0, &b, 1), FERRY_STATUS_OK);
    CHECK_EQ(b, 0xAB);
    sub.ptr[4] = 0xCD;
    CHECK_STATUS(ferry_buffer_copy_out(sh.id, 19, &b, 1), FERRY_STATUS_OK);
    CHECK_EQ(b, 0xCD);
    base.ptr[15] = 15;
    base.ptr[19] = 19;

    /* Release the parent first: the others still reach the memory. */
    CHECK_STATUS(ferry_buffer_release(base.id), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_view(base.id, &(FerryView){0, NULL, 0}), FERRY_STATUS_INVALID_HANDLE);
    CHECK_STATUS(ferry_buffer_slice(base.id, 0, 1, &(FerryView){0, NULL, 0}), FERRY_STATUS_INVALID_HANDLE);
    CHECK_EQ(check_stats().live_bytes, before.live_bytes + 100);
    CHECK(holds(sh.ptr, 100, 0));
    uint8_t out[20];
    CHECK_STATUS(ferry_buffer_copy_out(sl.id, 0, out, 20), FERRY_STATUS_OK);
    CHECK(holds(out, 20, 10));

    CHECK_STATUS(ferry_buffer_release(sh.id), FERRY_STATUS_OK);
    CHECK(holds(sl.ptr, 20, 10));
    CHECK_STATUS(ferry_buffer_release(sl.id), FERRY_STATUS_OK);
    /* Only `sub` is left; it still holds five bytes of the original allocation. */
    CHECK(holds(sub.ptr, 5, 15));
    CHECK_EQ(check_stats().live_bytes, before.live_bytes + 100);
    FerryView w;
    CHECK_STATUS(ferry_buffer_view(sub.id, &w), FERRY_STATUS_OK);
    CHECK(w.ptr == sub.ptr && w.len == 5);
    CHECK_STATUS(ferry_buffer_release(sub.id), FERRY_STATUS_OK);

    FerryStats after = check_stats();
    CHECK_EQ(after.live_ids, before.live_ids);
    CHECK_EQ(after.live_bytes, before.live_bytes);
}

/* Either id of a share may go first. */
static void share_then_release_the_share_first(void) {
    static const uint8_t msg[] = "share me";
    FerryView a, s;
    if (!CHECK_STATUS(ferry_buffer_copy(msg, sizeof msg, &a), FERRY_STATUS_OK)) return;
    CHECK_STATUS(ferry_buffer_share(a.id, &s), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_release(s.id), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_release(s.id), FERRY_STATUS_INVALID_HANDLE);
    CHECK(memcmp(a.ptr, msg, sizeof msg) == 0);
    CHECK_STATUS(ferry_buffer_release(a.id), FERRY_STATUS_OK);
}

static void slice_pointer_arithmetic_over_every_offset(void) {
    enum { N = 64 };
    FerryView base;
    if (!CHECK_STATUS(ferry_buffer_new(N, &base), FERRY_STATUS_OK)) return;
    fill(base.ptr, N, 100);
    int ok = 1, null_when_empty = 1;
    for (size_t off = 0; off <= N; off++) {
        for (size_t len = 0; off + len <= N; len += 7) {
            FerryView s;
            if (ferry_buffer_slice(base.id, off, len, &s) != FERRY_STATUS_OK) {
                ok = 0;
                continue;
            }
            if (len == 0) {
                null_when_empty &= s.ptr == NULL && s.len == 0;
            } else {
                ok &= s.ptr == base.ptr + off && s.len == len && holds(s.ptr, len, (uint8_t)(100 + off));
            }
            ok &= ferry_buffer_release(s.id) == FERRY_STATUS_OK;
        }
    }
    CHECK(ok);
    CHECK(null_when_empty);
    CHECK_STATUS(ferry_buffer_release(base.id), FERRY_STATUS_OK);
}

static void empty_slices_and_shares_have_a_null_pointer(void) {
    FerryView base, e0, emid, eend, empty, esh, esl;
    if (!CHECK_STATUS(ferry_buffer_new(32, &base), FERRY_STATUS_OK)) return;
    CHECK_STATUS(ferry_buffer_slice(base.id, 0, 0, &e0), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_slice(base.id, 16, 0, &emid), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_slice(base.id, 32, 0, &eend), FERRY_STATUS_OK);
    CHECK(e0.ptr == NULL && e0.len == 0);
    CHECK(emid.ptr == NULL && emid.len == 0);
    CHECK(eend.ptr == NULL && eend.len == 0);
    /* An empty slice is still a live id that must be released. */
    CHECK_EQ(check_stats().live_ids, 4);
    FerryView v;
    CHECK_STATUS(ferry_buffer_view(emid.id, &v), FERRY_STATUS_OK);
    CHECK(v.ptr == NULL && v.len == 0);

    CHECK_STATUS(ferry_buffer_new(0, &empty), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_share(empty.id, &esh), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_slice(empty.id, 0, 0, &esl), FERRY_STATUS_OK);
    CHECK(esh.ptr == NULL && esh.len == 0);
    CHECK(esl.ptr == NULL && esl.len == 0);
    CHECK_STATUS(ferry_buffer_slice(empty.id, 0, 1, &v), FERRY_STATUS_OUT_OF_RANGE);
    CHECK_STATUS(ferry_buffer_slice(empty.id, 1, 0, &v), FERRY_STATUS_OUT_OF_RANGE);

    uint64_t ids[] = {base.id, e0.id, emid.id, eend.id, empty.id, esh.id, esl.id};
    size_t n = 0;
    CHECK_STATUS(ferry_buffer_release_many(ids, 7, &n), FERRY_STATUS_OK);
    CHECK_EQ(n, 7);
}

/* Offsets and lengths outside the view: OUT_OF_RANGE; offset + len wrapping: OVERFLOW. Nothing is
 * created and the destination of a failed copy_out is untouched. */
static void ranges_are_checked(void) {
    FerryView base, sl, v = {0, NULL, 0};
    if (!CHECK_STATUS(ferry_buffer_new(10, &base), FERRY_STATUS_OK)) return;
    fill(base.ptr, 10, 0);
    FerryStats before = check_stats();

    CHECK_STATUS(ferry_buffer_slice(base.id, 11, 0, &v), FERRY_STATUS_OUT_OF_RANGE);
    CHECK_STATUS(ferry_buffer_slice(base.id, 5, 6, &v), FERRY_STATUS_OUT_OF_RANGE);
    CHECK_STATUS(ferry_buffer_slice(base.id, 0, 11, &v), FERRY_STATUS_OUT_OF_RANGE);
    CHECK_STATUS(ferry_buffer_slice(base.id, 10, 1, &v), FERRY_STATUS_OUT_OF_RANGE);
    CHECK_STATUS(ferry_buffer_slice(base.id, SIZE_MAX, 0, &v), FERRY_STATUS_OUT_OF_RANGE);
    CHECK_STATUS(ferry_buffer_slice(base.id, 0, SIZE_MAX, &v), FERRY_STATUS_OUT_OF_RANGE);
    CHECK_STATUS(ferry_buffer_slice(base.id, SIZE_MAX, 1, &v), FERRY_STATUS_OVERFLOW);
    CHECK_STATUS(ferry_buffer_slice(base.id, SIZE_MAX, 2, &v), FERRY_STATUS_OVERFLOW);
    CHECK_STATUS(ferry_buffer_slice(base.id, 2, SIZE_MAX, &v), FERRY_STATUS_OVERFLOW);
    CHECK_STATUS(ferry_buffer_slice(base.id, SIZE_MAX / 2 + 1, SIZE_MAX / 2 + 1, &v), FERRY_STATUS_OVERFLOW);
    CHECK(v.id == 0 && v.ptr == NULL && v.len == 0);

    uint8_t dst[16];
    memset(dst, 0x5A, sizeof dst);
    CHECK_STATUS(ferry_buffer_copy_out(base.id, 9, dst, 2), FERRY_STATUS_OUT_OF_RANGE);
    CHECK_STATUS(ferry_buffer_copy_out(base.id, 0, dst, 11), FERRY_STATUS_OUT_OF_RANGE);
    CHECK_STATUS(ferry_buffer_copy_out(base.id, 11, dst, 0), FERRY_STATUS_OUT_OF_RANGE);
    CHECK_STATUS(ferry_buffer_copy_out(base.id, SIZE_MAX, dst, 1), FERRY_STATUS_OVERFLOW);
    CHECK_STATUS(ferry_buffer_copy_out(base.id, SIZE_MAX - 1, dst, 16), FERRY_STATUS_OVERFLOW);
    /* A length past FERRY_MAX_LEN is refused as TOO_LARGE before the range is looked at. */
    CHECK_STATUS(ferry_buffer_copy_out(base.id, 2, dst, SIZE_MAX), FERRY_STATUS_TOO_LARGE);
    int untouched = 1;
    for (size_t i = 0; i < sizeof dst; i++) untouched &= dst[i] == 0x5A;
    CHECK(untouched);
    /* Exactly up to the end is fine, and so is an empty copy at the end. */
    CHECK_STATUS(ferry_buffer_copy_out(base.id, 8, dst, 2), FERRY_STATUS_OK);
    CHECK(dst[0] == 8 && dst[1] == 9 && dst[2] == 0x5A);
    CHECK_STATUS(ferry_buffer_copy_out(base.id, 10, dst, 0), FERRY_STATUS_OK);

    /* Ranges within a slice are checked against the slice, not the parent. */
    CHECK_STATUS(ferry_buffer_slice(base.id, 4, 4, &sl), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_copy_out(sl.id, 0, dst, 5), FERRY_STATUS_OUT_OF_RANGE);
    CHECK_STATUS(ferry_buffer_copy_out(sl.id, 1, dst, 3), FERRY_STATUS_OK);
    CHECK(dst[0] == 5 && dst[1] == 6 && dst[2] == 7);
    CHECK_STATUS(ferry_buffer_slice(sl.id, 4, 1, &v), FERRY_STATUS_OUT_OF_RANGE);
    CHECK_STATUS(ferry_buffer_slice(sl.id, 1, SIZE_MAX, &v), FERRY_STATUS_OVERFLOW);
    CHECK_STATUS(ferry_buffer_release(sl.id), FERRY_STATUS_OK);

    FerryStats after = check_stats();
    CHECK_EQ(after.live_ids, before.live_ids);
    CHECK_EQ(after.created, before.created + 1);
    CHECK_STATUS(ferry_buffer_release(base.id), FERRY_STATUS_OK);
}

int main(void) {
    memory_lives_until_the_last_id();
    share_then_release_the_share_first();
    slice_pointer_arithmetic_over_every_offset();
    empty_slices_and_shares_have_a_null_pointer();
    ranges_are_checked();
    check_no_live();
    return check_finish();
}
