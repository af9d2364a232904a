/* lifecycle: new, copy, view and release; bytes written through a view read back with copy_out;
 * empty buffers have a NULL pointer; the counters follow every create and release. */
#include <stdlib.h>
#include <string.h>

#include "check.h"

static void abi_version_matches_header(void) {
    CHECK_EQ(ferry_abi_version(), FERRY_ABI_VERSION);
}

static void new_is_zeroed_writable_and_read_back(void) {
    FerryStats before = check_stats();
    FerryView v = {0, NULL, 0};
    if (!CHECK_STATUS(ferry_buffer_new(64, &v), FERRY_STATUS_OK)) return;
    CHECK(v.id != 0);
    CHECK(v.ptr != NULL);
    CHECK_EQ(v.len, 64);
    int zero = 1;
    for (size_t i = 0; i < v.len; i++) zero &= v.ptr[i] == 0;
    CHECK(zero);

    for (size_t i = 0; i < v.len; i++) v.ptr[i] = (uint8_t)(i * 7 + 1);
    uint8_t out[64];
    memset(out, 0, sizeof out);
    CHECK_STATUS(ferry_buffer_copy_out(v.id, 0, out, sizeof out), FERRY_STATUS_OK);
    CHECK(memcmp(out, v.ptr, 64) == 0);
    CHECK_EQ(out[63], (uint8_t)(63 * 7 + 1));
    /* A part of the buffer, at an offset. */
    uint8_t part[10];
    CHECK_STATUS(ferry_buffer_copy_out(v.id, 50, part, sizeof part), FERRY_STATUS_OK);
    CHECK(memcmp(part, v.ptr + 50, sizeof part) == 0);

    FerryView again = {0, NULL, 0};
    CHECK_STATUS(ferry_buffer_view(v.id, &again), FERRY_STATUS_OK);
    CHECK_EQ(again.id, v.id);
    CHECK(again.ptr == v.ptr);
    CHECK_EQ(again.len, 64);

    FerryStats live = check_stats();
    CHECK_EQ(live.live_ids, before.live_ids + 1);
    CHECK_EQ(live.live_bytes, before.live_bytes + 64);
    CHECK_EQ(live.created, before.created + 1);
    CHECK(live.peak_bytes >= live.live_bytes);

    CHECK_STATUS(ferry_buffer_release(v.id), FERRY_STATUS_OK);
    FerryStats after = check_stats();
    CHECK_EQ(after.live_ids, before.live_ids);
    CHECK_EQ(after.live_bytes, before.live_bytes);
    CHECK_EQ(after.released, before.released + 1);
    CHECK_STATUS(ferry_buffer_view(v.id, &again), FERRY_STATUS_INVALID_HANDLE);
}

static void copy_takes_a_copy(void) {
    uint8_t src[300];
    for (size_t i = 0; i < sizeof src; i++) src[i] = (uint8_t)(255 - i);
    FerryView v = {0, NULL, 0};
    if (!CHECK_STATUS(ferry_buffer_copy(src, sizeof src, &v), FERRY_STATUS_OK)) return;
    CHECK(v.id != 0);
    CHECK_EQ(v.len, sizeof src);
    CHECK(v.ptr != NULL && v.ptr != src);
    CHECK(memcmp(v.ptr, src, sizeof src) == 0);
    /* Changing the source afterwards does not reach the copy, and writes to the copy stick. */
    memset(src, 0, sizeof src);
    CHECK_EQ(v.ptr[0], 255);
    v.ptr[1] = 'x';
    uint8_t out[3];
    CHECK_STATUS(ferry_buffer_copy_out(v.id, 0, out, 3), FERRY_STATUS_OK);
    CHECK(out[0] == 255 && out[1] == 'x' && out[2] == 253);
    CHECK_STATUS(ferry_buffer_release(v.id), FERRY_STATUS_OK);
}

static void empty_buffers_have_a_null_pointer(void) {
    static const uint8_t some[4] = {1, 2, 3, 4};
    FerryView a = {0, (uint8_t *)1, 1}, b = {0, (uint8_t *)1, 1}, c = {0, (uint8_t *)1, 1};
    CHECK_STATUS(ferry_buffer_new(0, &a), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_copy(NULL, 0, &b), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_copy(some, 0, &c), FERRY_STATUS_OK);
    FerryView *all[3] = {&a, &b, &c};
    for (int i = 0; i < 3; i++) {
        CHECK(all[i]->id != 0);
        CHECK(all[i]->ptr == NULL);
        CHECK_EQ(all[i]->len, 0);
        FerryView w = {0, (uint8_t *)1, 1};
        CHECK_STATUS(ferry_buffer_view(all[i]->id, &w), FERRY_STATUS_OK);
        CHECK(w.ptr == NULL && w.len == 0);
        CHECK_STATUS(ferry_buffer_copy_out(all[i]->id, 0, NULL, 0), FERRY_STATUS_OK);
    }
    CHECK(a.id != b.id && b.id != c.id && a.id != c.id);
    CHECK_EQ(check_stats().live_bytes, 0);
    for (int i = 0; i < 3; i++) CHECK_STATUS(ferry_buffer_release(all[i]->id), FERRY_STATUS_OK);
}

/* Many live buffers at once: distinct ids and addresses, each holding its own bytes, released in a
 * shuffled order; the counters add up exactly. */
static void many_buffers_keep_their_own_bytes(void) {
    enum { N = 1000 };
    static FerryView v[N];
    FerryStats before = check_stats();
    uint64_t bytes = 0;
    int ok = 1;
    for (size_t i = 0; i < N; i++) {
        size_t len = 1 + i % 97;
        if (ferry_buffer_new(len, &v[i]) != FERRY_STATUS_OK) {
            ok = 0;
            v[i].id = 0;
            continue;
        }
        memset(v[i].ptr, (int)(i & 0xFF), len);
        bytes += len;
    }
    CHECK(ok);
    FerryStats mid = check_stats();
    CHECK_EQ(mid.live_ids, before.live_ids + N);
    CHECK_EQ(mid.live_bytes, before.live_bytes + bytes);
    CHECK_EQ(mid.created, before.created + N);

    int distinct = 1;
    for (size_t i = 1; i < N; i++) distinct &= v[i].id != v[i - 1].id && v[i].ptr != v[i - 1].ptr;
    CHECK(distinct);

    uint64_t rng = 42;
    for (size_t i = N - 1; i > 0; i--) {
        size_t j = (size_t)(check_rand64(&rng) % (i + 1));
        FerryView t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
    int intact = 1, released = 1;
    for (size_t i = 0; i < N; i++) {
        uint8_t first = 0;
        intact &= ferry_buffer_copy_out(v[i].id, 0, &first, 1) == FERRY_STATUS_OK && first == v[i].ptr[v[i].len - 1];
        released &= ferry_buffer_release(v[i].id) == FERRY_STATUS_OK;
    }
    CHECK(intact);
    CHECK(released);
    FerryStats after = check_stats();
    CHECK_EQ(after.live_ids, before.live_ids);
    CHECK_EQ(after.live_bytes, before.live_bytes);
    CHECK_EQ(after.released, before.released + N);
    CHECK(after.peak_bytes >= before.live_bytes + bytes);
}

/* A freed buffer's memory can be handed out again to a new buffer, and the new one starts zeroed
 * even when the old one was written. */
static void new_buffers_are_zeroed_after_reuse(void) {
    int ok = 1;
    for (int round = 0; round < 50; round++) {
        FerryView v;
        if (ferry_buffer_new(256, &v) != FERRY_STATUS_OK) {
            ok = 0;
            break;
        }
        for (size_t i = 0; i < v.len; i++) ok &= v.ptr[i] == 0;
        memset(v.ptr, 0xEE, v.len);
        ok &= ferry_buffer_release(v.id) == FERRY_STATUS_OK;
    }
    CHECK(ok);
}

int main(void) {
    abi_version_matches_header();
    new_is_zeroed_writable_and_read_back();
    copy_takes_a_copy();
    empty_buffers_have_a_null_pointer();
    many_buffers_keep_their_own_bytes();
    new_buffers_are_zeroed_after_reuse();
    check_no_live();
    return check_finish();
}
