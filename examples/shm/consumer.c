/* consumer: the C side of examples/shm. Opens the region a Go producer published under a name
 * (argv[1]) and serves its requests with a registered ferry callback until the producer goes:
 * each request's payload is read in place (zero-copy), its FNV-1a sum is written into its first 8
 * bytes and the same buffer goes back as the reply. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ferry.h"

static uint64_t region;

static uint32_t checksum(void *user, uint64_t id, uint64_t value, FerryPayload *out) {
    FerryView v;
    (void)user;
    if (ferry_region_view(region, id, &v) != FERRY_STATUS_OK || v.len < 8) return 1;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 8; i < v.len; i++) h = (h ^ v.ptr[i]) * 0x100000001b3ull;
    memcpy(v.ptr, &h, 8);
    out->buffer = id; /* in place */
    out->value = value;
    return 0;
}

int main(int argc, char **argv) {
    uint64_t cb = 0;
    size_t served = 0, total = 0;
    FerryStatus st;
    if (argc != 2) {
        fprintf(stderr, "usage: consumer NAME\n");
        return 2;
    }
    st = ferry_region_open((const uint8_t *)argv[1], strlen(argv[1]), &region);
    if (st != FERRY_STATUS_OK) {
        char msg[128];
        ferry_status_message(st, msg, sizeof msg, NULL);
        fprintf(stderr, "consumer: open %s: %s\n", argv[1], msg);
        return 1;
    }
    ferry_callback_register(checksum, NULL, NULL, &cb);
    /* Serve until the producer closes the region (PEER_GONE). */
    while ((st = ferry_region_serve(region, cb, 64, -1, &served)) == FERRY_STATUS_OK) total += served;
    ferry_callback_unregister(cb);
    ferry_region_close(region);
    printf("consumer: served %zu requests, then the producer left\n", total);
    return st == FERRY_STATUS_PEER_GONE ? 0 : 1;
}
