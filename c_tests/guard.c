/* guard: guard mode (ferry_guard_set) protects the memory ferry allocates and frees itself, and never
 * writes memory it only adopted: const data in read-only pages is released without a fault, static
 * data adopted with a NULL release function is left as the last holder left it, a release function
 * gets its bytes unpoisoned, and a refused adoption hands the memory back untouched. ferry's own
 * buffers still work in guard mode (each gets pages of its own). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define N 8192

/* const with an initializer: the array lands in read-only pages, so any write to it faults. */
static const uint8_t const_data[N] = {1, 2, 3, 4, 5, 6, 7, 8};

static uint8_t static_data[N];

typedef struct {
    int calls;
    int intact; /* the bytes were exactly as expected when the release function ran */
    uint8_t expect;
} Owner;

static void owner_release(void *user_data, uint8_t *data, size_t len) {
    Owner *o = user_data;
    o->calls++;
    o->intact = 1;
    for (size_t i = 0; i < len; i++) o->intact &= data[i] == o->expect;
}

static int all(const uint8_t *p, size_t n, uint8_t b) {
    for (size_t i = 0; i < n; i++) {
        if (p[i] != b) return 0;
    }
    return 1;
}

static void const_data_is_released_without_a_write(void) {
    FerryView v, s;
    if (!CHECK_STATUS(ferry_buffer_adopt((uint8_t *)const_data, N, NULL, NULL, &v), FERRY_STATUS_OK)) return;
    CHECK(v.ptr == const_data && v.len == N);
    CHECK_STATUS(ferry_buffer_slice(v.id, 4, 100, &s), FERRY_STATUS_OK);
    CHECK_EQ(s.ptr[0], 5);
    CHECK_STATUS(ferry_buffer_release(v.id), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_release(s.id), FERRY_STATUS_OK); /* the last id: a write here faults */
    CHECK(const_data[0] == 1 && const_data[7] == 8 && const_data[N - 1] == 0);
}

static void static_data_stays_as_it_was_left(void) {
    memset(static_data, 0x11, N);
    FerryView v;
    if (!CHECK_STATUS(ferry_buffer_adopt(static_data, N, NULL, NULL, &v), FERRY_STATUS_OK)) return;
    v.ptr[0] = 0x22; /* a holder writes through its view */
    CHECK_STATUS(ferry_buffer_release(v.id), FERRY_STATUS_OK);
    CHECK_EQ(static_data[0], 0x22);
    CHECK(all(static_data + 1, N - 1, 0x11));
}

static void release_function_gets_the_bytes_unpoisoned(void) {
    Owner o = {0, 0, 0x33};
    uint8_t *mem = malloc(N);
    if (!CHECK(mem != NULL)) return;
    memset(mem, 0x33, N);
    FerryView v;
    if (CHECK_STATUS(ferry_buffer_adopt(mem, N, owner_release, &o, &v), FERRY_STATUS_OK)) {
        CHECK_STATUS(ferry_buffer_release(v.id), FERRY_STATUS_OK);
        CHECK_EQ(o.calls, 1);
        CHECK(o.intact);
    }
    free(mem);
}

static void refused_adoption_hands_the_memory_back_untouched(void) {
    Owner o = {0, 0, 0x44};
    uint8_t *mem = malloc(N);
    if (!CHECK(mem != NULL)) return;
    memset(mem, 0x44, N);
    FerryView v = {0, NULL, 0};
    CHECK_STATUS(ferry_limit_set(N / 2), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_buffer_adopt(mem, N, owner_release, &o, &v), FERRY_STATUS_LIMIT_REACHED);
    CHECK_STATUS(ferry_buffer_adopt(static_data, N, NULL, NULL, &v), FERRY_STATUS_LIMIT_REACHED);
    CHECK_STATUS(ferry_buffer_adopt((uint8_t *)const_data, N, NULL, NULL, &v), FERRY_STATUS_LIMIT_REACHED);
    CHECK_STATUS(ferry_limit_set(0), FERRY_STATUS_OK);
    CHECK_EQ(o.calls, 0);
    CHECK(v.id == 0);
    CHECK(all(mem, N, 0x44));
    CHECK(const_data[0] == 1);
    free(mem);
}

static void own_buffers_work_in_guard_mode(void) {
    FerryView g, c;
    if (CHECK_STATUS(ferry_buffer_new(5000, &g), FERRY_STATUS_OK)) {
        CHECK(g.ptr != NULL && g.len == 5000);
        CHECK(g.ptr[0] == 0 && g.ptr[4999] == 0);
        g.ptr[4999] = 42;
        uint8_t b = 0;
        CHECK_STATUS(ferry_buffer_copy_out(g.id, 4999, &b, 1), FERRY_STATUS_OK);
        CHECK_EQ(b, 42);
        CHECK_STATUS(ferry_buffer_release(g.id), FERRY_STATUS_OK);
    }
    if (CHECK_STATUS(ferry_buffer_copy(const_data, N, &c), FERRY_STATUS_OK)) {
        CHECK(c.ptr != const_data && memcmp(c.ptr, const_data, N) == 0);
        CHECK_STATUS(ferry_buffer_release(c.id), FERRY_STATUS_OK);
    }
}

int main(void) {
    CHECK_STATUS(ferry_guard_set(1), FERRY_STATUS_OK);
    const_data_is_released_without_a_write();
    static_data_stays_as_it_was_left();
    release_function_gets_the_bytes_unpoisoned();
    refused_adoption_hands_the_memory_back_untouched();
    own_buffers_work_in_guard_mode();
    CHECK_STATUS(ferry_guard_set(0), FERRY_STATUS_OK);
    /* Outside guard mode too, adopted bytes go back as they were. */
    static_data_stays_as_it_was_left();
    release_function_gets_the_bytes_unpoisoned();
    check_no_live();
    return check_finish();
}
