/* status: ferry_status_message gives every status a distinct message, truncates to the caller's
 * buffer with a NUL, reports the full length, accepts a NULL buffer of length 0, and answers an
 * unknown status with "unknown status" and INVALID_ARGUMENT. The ABI version matches the header. */
#include <stdint.h>
#include <string.h>

#include "check.h"

enum { LAST_STATUS = FERRY_STATUS_NESTED_TOO_DEEP };

static void every_status_has_a_distinct_message(void) {
    static char msgs[LAST_STATUS + 1][128];
    int ok = 1;
    for (uint32_t s = 0; s <= LAST_STATUS; s++) {
        size_t n = 0;
        memset(msgs[s], 0x7F, sizeof msgs[s]);
        ok &= ferry_status_message(s, msgs[s], sizeof msgs[s], &n) == FERRY_STATUS_OK;
        ok &= n > 0 && n < sizeof msgs[s] && strlen(msgs[s]) == n;
        ok &= strcmp(msgs[s], "unknown status") != 0;
        /* The length alone, without a buffer. */
        size_t n2 = 0;
        ok &= ferry_status_message(s, NULL, 0, &n2) == FERRY_STATUS_OK && n2 == n;
        if (!ok) {
            fprintf(stderr, "     status %u: message \"%.127s\" (n=%zu)\n", (unsigned)s, msgs[s], n);
            break;
        }
    }
    CHECK(ok);
    int distinct = 1;
    for (uint32_t a = 0; a <= LAST_STATUS; a++) {
        for (uint32_t b = a + 1; b <= LAST_STATUS; b++) distinct &= strcmp(msgs[a], msgs[b]) != 0;
    }
    CHECK(distinct);
    CHECK(strcmp(msgs[FERRY_STATUS_OK], "ok") == 0);
    CHECK(strstr(msgs[FERRY_STATUS_INVALID_HANDLE], "invalid handle") != NULL);
}

static void truncation(void) {
    char full[128];
    size_t n = 0;
    CHECK_STATUS(ferry_status_message(FERRY_STATUS_INVALID_HANDLE, full, sizeof full, &n), FERRY_STATUS_OK);
    CHECK(n > 10);

    char buf[8];
    memset(buf, 'Z', sizeof buf);
    size_t m = 0;
    CHECK_STATUS(ferry_status_message(FERRY_STATUS_INVALID_HANDLE, buf, 5, &m), FERRY_STATUS_OK);
    CHECK_EQ(m, n); /* the full length, not what fit */
    CHECK(memcmp(buf, full, 4) == 0 && buf[4] == '\0');
    CHECK(buf[5] == 'Z' && buf[7] == 'Z'); /* nothing past len */

    memset(buf, 'Z', sizeof buf);
    CHECK_STATUS(ferry_status_message(FERRY_STATUS_INVALID_HANDLE, buf, 1, &m), FERRY_STATUS_OK);
    CHECK(buf[0] == '\0' && buf[1] == 'Z');

    /* A non-NULL buffer of length 0 is not written at all. */
    memset(buf, 'Z', sizeof buf);
    CHECK_STATUS(ferry_status_message(FERRY_STATUS_INVALID_HANDLE, buf, 0, &m), FERRY_STATUS_OK);
    CHECK_EQ(buf[0], 'Z');

    /* Exactly enough room for the message and its NUL. */
    char exact[128];
    memset(exact, 'Z', sizeof exact);
    CHECK_STATUS(ferry_status_message(FERRY_STATUS_INVALID_HANDLE, exact, n + 1, NULL), FERRY_STATUS_OK);
    CHECK(strcmp(exact, full) == 0 && exact[n + 1] == 'Z');
    /* One byte short: the last character goes. */
    memset(exact, 'Z', sizeof exact);
    CHECK_STATUS(ferry_status_message(FERRY_STATUS_INVALID_HANDLE, exact, n, NULL), FERRY_STATUS_OK);
    CHECK(strlen(exact) == n - 1 && memcmp(exact, full, n - 1) == 0);
}

static void unknown_status(void) {
    const uint32_t unknown[] = {LAST_STATUS + 1, 1000, 0x80000000u, UINT32_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        char buf[64];
        size_t n = 0;
        CHECK_STATUS(ferry_status_message(unknown[i], buf, sizeof buf, &n), FERRY_STATUS_INVALID_ARGUMENT);
        CHECK(strcmp(buf, "unknown status") == 0);
        CHECK_EQ(n, strlen("unknown status"));
        n = 0;
        CHECK_STATUS(ferry_status_message(unknown[i], NULL, 0, &n), FERRY_STATUS_INVALID_ARGUMENT);
        CHECK_EQ(n, strlen("unknown status"));
    }
    char small[4];
    CHECK_STATUS(ferry_status_message(UINT32_MAX, small, sizeof small, NULL), FERRY_STATUS_INVALID_ARGUMENT);
    CHECK(strcmp(small, "unk") == 0);
}

static void abi_version(void) {
    CHECK_EQ(ferry_abi_version(), FERRY_ABI_VERSION);
    CHECK_EQ(FERRY_MAX_LEN, 1ULL << 40);
}

int main(void) {
    every_status_has_a_distinct_message();
    truncation();
    unknown_status();
    abi_version();
    check_no_live();
    return check_finish();
}
