/* args: a NULL for every pointer argument of every function is FERRY_STATUS_NULL_POINTER (and a
 * NULL pointer with length 0 is fine); a size past FERRY_MAX_LEN is TOO_LARGE; nothing is created,
 * read or written by a refused call. */
#include <stdint.h>
#include <string.h>

#include "check.h"

static int adopt_calls;

static void count_release(void *user_data, uint8_t *data, size_t len) {
    (void)user_data;
    (void)data;
    (void)len;
    adopt_calls++;
}

/* The counters did not move: no id was created or released. */
static int unchanged(FerryStats before) {
    FerryStats now = check_stats();
    return now.live_ids == before.live_ids && now.created == before.created && now.released == before.released &&
           now.live_bytes == before.live_bytes;
}

static void null_out_pointers(void) {
    static uint8_t data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    FerryView v;
    if (!CHECK_STATUS(ferry_buffer_new(8, &v), FERRY_STATUS_OK)) return;
    FerryStats before = check_stats();

    CHECK_STATUS(ferry_buffer_new(8, NULL), FERRY_STATUS_NULL_POINTER);
    CHECK_STATUS(ferry_buffer_new(0, NULL), FERRY_STATUS_NULL_POINTER);
    CHECK_STATUS(ferry_buffer_copy(data, sizeof data, NULL), FERRY_STATUS_NULL_POINTER);
    CHECK_STATUS(ferry_buffer_copy(NULL, 0, NULL), FERRY_STATUS_NULL_POINTER);
    CHECK_STATUS(ferry_buffer_adopt(data, sizeof data, count_release, NULL, NULL), FERRY_STATUS_NULL_POINTER);
    CHECK_STATUS(ferry_buffer_adopt(NULL, 0, count_release, NULL, NULL), FERRY_STATUS_NULL_POINTER);
    CHECK_STATUS(ferry_buffer_view(v.id, NULL), FERRY_STATUS_NULL_POINTER);
    CHECK_STATUS(ferry_buffer_share(v.id, NULL), FERRY_STATUS_NULL_POINTER);
    CHECK_STATUS(ferry_buffer_slice(v.id, 0, 4, NULL), FERRY_STATUS_NULL_POINTER);
    CHECK_STATUS(ferry_buffer_slice(v.id, 0, 0, NULL), FERRY_STATUS_NULL_POINTER);
    CHECK_STATUS(ferry_stats_get(NULL), FERRY_STATUS_NULL_POINTER);
    CHECK(unchanged(before));
    CHECK_EQ(adopt_calls, 0);
    CHECK(data[0] == 1 && data[7] == 8);
    CHECK_STATUS(ferry_buffer_release(v.id), FERRY_STATUS_OK);
}

static void null_data_pointers(void) {
    FerryView v, out = {0, NULL, 0};
    if (!CHECK_STATUS(ferry_buffer_new(8, &v), FERRY_STATUS_OK)) return;
    memset(v.ptr, 9, 8);
    FerryStats before = check_stats();

    CHECK_STATUS(ferry_buffer_copy(NULL, 1, &out), FERRY_STATUS_NULL_POINTER);
    CHECK_STATUS(ferry_buffer_copy(NULL, 4096, &out), FERRY_STATUS_NULL_POINTER);
    CHECK_STATUS(ferry_buffer_adopt(NULL, 1, count_release, &adopt_calls, &out), FERRY_STATUS_NULL_POINTER);
    CHECK_STATUS(ferry_buffer_adopt(NULL, 64, NULL, NULL, &out), FERRY_STATUS_NULL_POINTER);
    CHECK_STATUS(ferry_buffer_copy_out(v.id, 0, NULL, 1), FERRY_STATUS_NULL_POINTER);
    CHECK_STATUS(ferry_buffer_copy_out(v.id, 0, NULL, 8), FERRY_STATUS_NULL_POINTER);
    CHECK_STATUS(ferry_buffer_release_many(NULL, 1, NULL), FERRY_STATUS_NULL_POINTER);
    size_t n = 5;
    CHECK_STATUS(ferry_buffer_release_many(NULL, 3, &n), FERRY_STATUS_NULL_POINTER);
    char msg[8] = "xxxxxxx";
    CHECK_STATUS(ferry_status_message(FERRY_STATUS_OK, NULL, 1, NULL), FERRY_STATUS_NULL_POINTER);
    CHECK_STATUS(ferry_status_message(FERRY_STATUS_OVERFLOW, NULL, sizeof msg, NULL), FERRY_STATUS_NULL_POINTER);
    CHECK(out.id == 0 && out.ptr == NULL);
    CHECK(unchanged(before));
    CHECK_EQ(adopt_calls, 0);
    CHECK_EQ(v.ptr[0], 9);
    CHECK_STATUS(ferry_buffer_release(v.id), FERRY_STATUS_OK);
}

/* A NULL pointer with length 0 is a valid empty argument everywhere. */
static void null_with_zero_length_is_fine(void) {
    FerryView v, e1, e2, e3;
    if (!CHECK_STATUS(ferry_buffer_new(8, &v), FERRY_STATUS_OK)) return;
    CHECK_STATUS(ferry_buffer_copy(NULL, 0, &e1), FERRY_STATUS_OK);
    CHECK(e1.id != 0 && e1.ptr == NULL && e1.len == 0);
    CHECK_STATUS(ferry_buffer_adopt(NULL, 0, NULL, NULL, &e2), FERRY_STATUS_OK);
    CHECK(e2.id != 0 && e2.ptr == NULL && e2.len == 0);
    CHECK_STATUS(ferry_buffer_adopt(NULL, 0, count_release, &adopt_calls, &e3), FERRY_STATUS_OK);
    CHECK(e3.id != 0 && e3.ptr == NULL && e3.len == 0);
    CHECK_STATUS(ferry_buffer_copy_out(v.id, 0, NULL, 0), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_copy_out(v.id, 8, NULL, 0), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_copy_out(e1.id, 0, NULL, 0), FERRY_STATUS_OK);
    size_t n = 5;
    CHECK_STATUS(ferry_buffer_release_many(NULL, 0, &n), FERRY_STATUS_OK);
    CHECK_EQ(n, 0);
    CHECK_STATUS(ferry_buffer_release_many(NULL, 0, NULL), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_status_message(FERRY_STATUS_OK, NULL, 0, NULL), FERRY_STATUS_OK);
    n = 0;
    CHECK_STATUS(ferry_status_message(FERRY_STATUS_OK, NULL, 0, &n), FERRY_STATUS_OK);
    CHECK_EQ(n, 2); /* "ok" */
    /* The range is still checked when the destination is empty. */
    CHECK_STATUS(ferry_buffer_copy_out(v.id, 9, NULL, 0), FERRY_STATUS_OUT_OF_RANGE);

    uint64_t ids[] = {v.id, e1.id, e2.id, e3.id};
    CHECK_EQ(adopt_calls, 0);
    CHECK_STATUS(ferry_buffer_release_many(ids, 4, NULL), FERRY_STATUS_OK);
    /* An empty adoption still hands its (NULL, 0) back exactly once. */
    CHECK_EQ(adopt_calls, 1);
    adopt_calls = 0;
}

/* Sizes past FERRY_MAX_LEN are TOO_LARGE, checked before any pointer is read. */
static void oversize_is_too_large(void) {
    uint8_t small[16] = {0};
    uint64_t one_id[1] = {0};
    FerryView v, out = {0, NULL, 0};
    if (!CHECK_STATUS(ferry_buffer_new(16, &v), FERRY_STATUS_OK)) return;
    FerryStats before = check_stats();
    const size_t over = (size_t)FERRY_MAX_LEN + 1;

    CHECK_STATUS(ferry_buffer_new(over, &out), FERRY_STATUS_TOO_LARGE);
    CHECK_STATUS(ferry_buffer_new(SIZE_MAX, &out), FERRY_STATUS_TOO_LARGE);
    CHECK_STATUS(ferry_buffer_new((size_t)FERRY_MAX_LEN * 2, &out), FERRY_STATUS_TOO_LARGE);
    CHECK_STATUS(ferry_buffer_copy(small, over, &out), FERRY_STATUS_TOO_LARGE);
    CHECK_STATUS(ferry_buffer_copy(small, SIZE_MAX, &out), FERRY_STATUS_TOO_LARGE);
    CHECK_STATUS(ferry_buffer_adopt(small, over, count_release, NULL, &out), FERRY_STATUS_TOO_LARGE);
    CHECK_STATUS(ferry_buffer_adopt(small, SIZE_MAX, count_release, NULL, &out), FERRY_STATUS_TOO_LARGE);
    CHECK_STATUS(ferry_buffer_copy_out(v.id, 0, small, over), FERRY_STATUS_TOO_LARGE);
    CHECK_STATUS(ferry_buffer_copy_out(v.id, 0, small, SIZE_MAX), FERRY_STATUS_TOO_LARGE);
    CHECK_STATUS(ferry_buffer_release_many(one_id, SIZE_MAX, NULL), FERRY_STATUS_TOO_LARGE);
    CHECK_STATUS(ferry_buffer_release_many(one_id, (size_t)FERRY_MAX_LEN / 8 + 1, NULL), FERRY_STATUS_TOO_LARGE);
    /* A slice cannot reach past its parent, so an oversize slice length is simply out of range. */
    CHECK_STATUS(ferry_buffer_slice(v.id, 0, over, &out), FERRY_STATUS_OUT_OF_RANGE);
    CHECK(out.id == 0);
    CHECK_EQ(adopt_calls, 0);
    CHECK(unchanged(before));
    CHECK_STATUS(ferry_buffer_release(v.id), FERRY_STATUS_OK);
}

/* FERRY_MAX_LEN itself is not TOO_LARGE: the create reaches the allocator, which on an ordinary
 * machine has no 1 TiB to give (ALLOC_FAILED); with overcommit it may succeed, which is fine too. */
static void max_len_reaches_the_allocator(void) {
    FerryView out = {0, NULL, 0};
    FerryStats before = check_stats();
    FerryStatus st = ferry_buffer_new((size_t)FERRY_MAX_LEN, &out);
    CHECK(st == FERRY_STATUS_ALLOC_FAILED || st == FERRY_STATUS_OK);
    if (st == FERRY_STATUS_OK) {
        CHECK_EQ(out.len, (size_t)FERRY_MAX_LEN);
        CHECK_STATUS(ferry_buffer_release(out.id), FERRY_STATUS_OK);
    } else {
        CHECK(out.id == 0);
        CHECK(unchanged(before)); /* the refused bytes were given back to the counters */
    }
}

int main(void) {
    null_out_pointers();
    null_data_pointers();
    null_with_zero_length_is_fine();
    oversize_is_too_large();
    max_len_reaches_the_allocator();
    check_no_live();
    return check_finish();
}
