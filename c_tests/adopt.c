/* adopt: foreign memory handed to ferry without a copy. Its release function is called exactly once,
 * with the user_data, pointer and length given to ferry_buffer_adopt, only when the LAST id over the
 * memory goes (shares and slices count), never when the adoption is refused, and with no ferry lock
 * held (the function calls back into ferry here). ferry never writes adopted bytes itself (guard
 * mode included: c_tests/guard.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

typedef struct {
    int calls;
    void *user_data_seen;
    uint8_t *data_seen;
    size_t len_seen;
    int free_data;     /* free(data) in the callback */
    int reentry_ok;    /* ferry calls made from inside the callback worked */
    uint64_t other_id; /* a live id the callback views, 0 for none */
} Owner;

static void owner_release(void *user_data, uint8_t *data, size_t len) {
    Owner *o = user_data;
    o->calls++;
    o->user_data_seen = user_data;
    o->data_seen = data;
    o->len_seen = len;
    /* ferry holds no lock now: creating, viewing and releasing from here must not deadlock. */
    FerryStats s;
    FerryView v;
    o->reentry_ok = ferry_stats_get(&s) == FERRY_STATUS_OK;
    o->reentry_ok &= ferry_buffer_new(16, &v) == FERRY_STATUS_OK && ferry_buffer_release(v.id) == FERRY_STATUS_OK;
    if (o->other_id != 0) o->reentry_ok &= ferry_buffer_view(o->other_id, &v) == FERRY_STATUS_OK;
    if (o->free_data) free(data);
}

static uint8_t *filled(size_t n, uint8_t seed) {
    uint8_t *p = malloc(n);
    if (p != NULL) {
        for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(seed + i);
    }
    return p;
}

static void released_once_after_the_last_id(void) {
    Owner o = {0};
    o.free_data = 1;
    uint8_t *mem = filled(256, 1);
    if (!CHECK(mem != NULL)) return;
    FerryStats before = check_stats();
    FerryView a, sh, s1, s2, other;
    if (!CHECK_STATUS(ferry_buffer_adopt(mem, 256, owner_release, &o, &a), FERRY_STATUS_OK)) {
        free(mem);
        return;
    }
    /* Zero-copy: the view is the caller's memory. */
    CHECK(a.id != 0);
    CHECK(a.ptr == mem);
    CHECK_EQ(a.len, 256);
    CHECK_EQ(check_stats().live_bytes, before.live_bytes + 256);
    a.ptr[0] = 0xEE;
    CHECK_EQ(mem[0], 0xEE);
    uint8_t out[4];
    CHECK_STATUS(ferry_buffer_copy_out(a.id, 0, out, 4), FERRY_STATUS_OK);
    CHECK(out[0] == 0xEE && out[1] == 2 && out[3] == 4);

    CHECK_STATUS(ferry_buffer_share(a.id, &sh), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_slice(a.id, 100, 50, &s1), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_slice(s1.id, 10, 0, &s2), FERRY_STATUS_OK);
    CHECK(s1.ptr == mem + 100);
    CHECK(s2.ptr == NULL);
    CHECK_STATUS(ferry_buffer_new(8, &other), FERRY_STATUS_OK);
    o.other_id = other.id;

    CHECK_STATUS(ferry_buffer_release(a.id), FERRY_STATUS_OK);
    CHECK_EQ(o.calls, 0);
    CHECK_STATUS(ferry_buffer_release(sh.id), FERRY_STATUS_OK);
    CHECK_EQ(o.calls, 0);
    CHECK_STATUS(ferry_buffer_release(s1.id), FERRY_STATUS_OK);
    CHECK_EQ(o.calls, 0); /* the empty slice s2 still holds the memory */
    CHECK_EQ(check_stats().live_bytes, before.live_bytes + 256 + 8);
    CHECK_STATUS(ferry_buffer_release(s2.id), FERRY_STATUS_OK);
    CHECK_EQ(o.calls, 1);
    CHECK(o.user_data_seen == &o);
    CHECK(o.data_seen == mem); /* the original pointer and length, not a slice's */
    CHECK_EQ(o.len_seen, 256);
    CHECK(o.reentry_ok);
    CHECK_EQ(check_stats().live_bytes, before.live_bytes + 8);

    /* Stale releases of any of its ids never call it again. */
    uint64_t ids[] = {a.id, sh.id, s1.id, s2.id};
    size_t n = 9;
    CHECK_STATUS(ferry_buffer_release_many(ids, 4, &n), FERRY_STATUS_INVALID_HANDLE);
    CHECK_EQ(n, 0);
    CHECK_STATUS(ferry_buffer_release(s2.id), FERRY_STATUS_INVALID_HANDLE);
    CHECK_EQ(o.calls, 1);
    CHECK_STATUS(ferry_buffer_release(other.id), FERRY_STATUS_OK);
}

/* The last id going in a release_many (among invalid ones) hands the memory back once. */
static void released_by_release_many(void) {
    Owner o = {0};
    o.free_data = 1;
    uint8_t *mem = filled(64, 7);
    if (!CHECK(mem != NULL)) return;
    FerryView a, b;
    if (!CHECK_STATUS(ferry_buffer_adopt(mem, 64, owner_release, &o, &a), FERRY_STATUS_OK)) {
        free(mem);
        return;
    }
    CHECK_STATUS(ferry_buffer_slice(a.id, 1, 2, &b), FERRY_STATUS_OK);
    uint64_t ids[] = {0, a.id, UINT64_MAX, b.id, a.id};
    size_t n = 0;
    CHECK_STATUS(ferry_buffer_release_many(ids, 5, &n), FERRY_STATUS_INVALID_HANDLE);
    CHECK_EQ(n, 2);
    CHECK_EQ(o.calls, 1);
    CHECK(o.data_seen == mem && o.len_seen == 64);
}

/* A refused adoption takes nothing: the release function is never called and the caller still owns
 * (and here frees) the memory. */
static void refused_adoptions_do_not_call_back(void) {
    Owner o = {0};
    uint8_t *mem = filled(128, 0);
    if (!CHECK(mem != NULL)) return;
    FerryView v = {0, NULL, 0};
    FerryStats before = check_stats();
    CHECK_STATUS(ferry_buffer_adopt(mem, 128, owner_release, &o, NULL), FERRY_STATUS_NULL_POINTER);
    CHECK_STATUS(ferry_buffer_adopt(NULL, 128, owner_release, &o, &v), FERRY_STATUS_NULL_POINTER);
    CHECK_STATUS(ferry_buffer_adopt(mem, (size_t)FERRY_MAX_LEN + 1, owner_release, &o, &v), FERRY_STATUS_TOO_LARGE);
    CHECK_STATUS(ferry_limit_set(100), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_adopt(mem, 128, owner_release, &o, &v), FERRY_STATUS_LIMIT_REACHED);
    CHECK_STATUS(ferry_limit_set(0), FERRY_STATUS_OK);
    CHECK_EQ(o.calls, 0);
    CHECK(v.id == 0);
    FerryStats after = check_stats();
    CHECK_EQ(after.live_ids, before.live_ids);
    CHECK_EQ(after.created, before.created);
    CHECK_EQ(after.live_bytes, before.live_bytes);
    CHECK_EQ(mem[127], 127);
    free(mem);
}

/* NULL release function: for memory that outlives ferry; nothing is called and the bytes stay. */
static void null_release_for_static_memory(void) {
    static uint8_t table[32] = "static bytes, never freed";
    FerryView v, s;
    if (!CHECK_STATUS(ferry_buffer_adopt(table, sizeof table, NULL, NULL, &v), FERRY_STATUS_OK)) return;
    CHECK(v.ptr == table && v.len == sizeof table);
    CHECK_STATUS(ferry_buffer_slice(v.id, 7, 5, &s), FERRY_STATUS_OK);
    s.ptr[0] = 'B';
    CHECK_STATUS(ferry_buffer_release(v.id), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_release(s.id), FERRY_STATUS_OK);
    CHECK(memcmp(table, "static Bytes", 12) == 0);
}

/* An empty adoption has a NULL view, and still gives back exactly what it was handed. */
static void empty_adoption(void) {
    static uint8_t one[1];
    Owner o = {0};
    FerryView v;
    if (!CHECK_STATUS(ferry_buffer_adopt(one, 0, owner_release, &o, &v), FERRY_STATUS_OK)) return;
    CHECK(v.id != 0 && v.ptr == NULL && v.len == 0);
    CHECK_STATUS(ferry_buffer_release(v.id), FERRY_STATUS_OK);
    CHECK_EQ(o.calls, 1);
    CHECK(o.data_seen == one && o.len_seen == 0 && o.user_data_seen == &o);

    Owner p = {0};
    if (!CHECK_STATUS(ferry_buffer_adopt(NULL, 0, owner_release, &p, &v), FERRY_STATUS_OK)) return;
    CHECK_STATUS(ferry_buffer_release(v.id), FERRY_STATUS_OK);
    CHECK_EQ(p.calls, 1);
    CHECK(p.data_seen == NULL && p.len_seen == 0);
}

/* Many adoptions, each with its own owner, released in an interleaved order. */
static void many_owners(void) {
    enum { N = 200 };
    static Owner owners[N];
    static FerryView views[N], shares[N];
    int ok = 1;
    for (int i = 0; i < N; i++) {
        owners[i].free_data = 1;
        uint8_t *mem = filled((size_t)(1 + i), (uint8_t)i);
        ok &= mem != NULL && ferry_buffer_adopt(mem, (size_t)(1 + i), owner_release, &owners[i], &views[i]) ==
                                 FERRY_STATUS_OK;
        ok &= ferry_buffer_share(views[i].id, &shares[i]) == FERRY_STATUS_OK;
    }
    CHECK(ok);
    for (int i = 0; i < N; i += 2) ok &= ferry_buffer_release(views[i].id) == FERRY_STATUS_OK;
    for (int i = 1; i < N; i += 2) ok &= ferry_buffer_release(shares[i].id) == FERRY_STATUS_OK;
    int none_called = 1;
    for (int i = 0; i < N; i++) none_called &= owners[i].calls == 0;
    CHECK(ok);
    CHECK(none_called);
    for (int i = 0; i < N; i += 2) ok &= ferry_buffer_release(shares[i].id) == FERRY_STATUS_OK;
    for (int i = 1; i < N; i += 2) ok &= ferry_buffer_release(views[i].id) == FERRY_STATUS_OK;
    int once_each = 1;
    for (int i = 0; i < N; i++) {
        once_each &= owners[i].calls == 1 && owners[i].user_data_seen == &owners[i] &&
                     owners[i].len_seen == (size_t)(1 + i) && owners[i].data_seen == views[i].ptr;
    }
    CHECK(ok);
    CHECK(once_each);
}

int main(void) {
    released_once_after_the_last_id();
    released_by_release_many();
    refused_adoptions_do_not_call_back();
    null_release_for_static_memory();
    empty_adoption();
    many_owners();
    check_no_live();
    return check_finish();
}
