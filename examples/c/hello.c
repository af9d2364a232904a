/* hello: the ferry C API in one short program.
 *
 * Build and run from the repository root with `make c-example`, or by hand:
 *   cargo build --release --lib
 *   cc -Iffi examples/c/hello.c target/release/libferry.a -lpthread -ldl -lm -o hello && ./hello
 */
#include <stdio.h>
#include <string.h>

#include "ferry.h"

/* Prints the message for a status, as a C caller would report an error. */
static void print_status(const char *what, FerryStatus st) {
    char msg[128];
    ferry_status_message(st, msg, sizeof msg, NULL);
    printf("%-34s status %u: %s\n", what, (unsigned)st, msg);
}

static int print_stats(const char *when) {
    FerryStats s;
    if (ferry_stats_get(&s) != FERRY_STATUS_OK) return -1;
    printf("%-34s live ids %llu, live bytes %llu, peak bytes %llu\n", when, (unsigned long long)s.live_ids,
           (unsigned long long)s.live_bytes, (unsigned long long)s.peak_bytes);
    return (int)s.live_ids;
}

int main(void) {
    if (ferry_abi_version() != FERRY_ABI_VERSION) {
        fprintf(stderr, "header is ABI %d but the library is ABI %u\n", FERRY_ABI_VERSION, ferry_abi_version());
        return 1;
    }

    /* 1. Create: one call gives the id and the address of 32 zeroed bytes that live in Rust. */
    FerryView buf;
    FerryStatus st = ferry_buffer_new(32, &buf);
    if (st != FERRY_STATUS_OK) {
        print_status("ferry_buffer_new", st);
        return 1;
    }
    printf("created id %#llx: %zu bytes at %p\n", (unsigned long long)buf.id, buf.len, (void *)buf.ptr);

    /* 2. Write in place: no copy, buf.ptr is the buffer itself. */
    const char *text = "hello from C, via ferry";
    memcpy(buf.ptr, text, strlen(text));

    /* 3. Slice: a second id over bytes 6..9 ("from"), sharing the same memory. */
    FerryView word;
    st = ferry_buffer_slice(buf.id, 6, 4, &word);
    if (st != FERRY_STATUS_OK) {
        print_status("ferry_buffer_slice", st);
        return 1;
    }
    printf("slice id %#llx: \"%.*s\" at buf.ptr + %td\n", (unsigned long long)word.id, (int)word.len,
           (const char *)word.ptr, word.ptr - buf.ptr);
    print_stats("two ids over one allocation:");

    /* 4. Release the buffer: the slice still holds the memory, so its bytes stay valid. */
    ferry_buffer_release(buf.id);
    char copy[8] = {0};
    ferry_buffer_copy_out(word.id, 0, (uint8_t *)copy, word.len); /* the copying path, for comparison */
    printf("after releasing the buffer, the slice still reads \"%s\"\n", copy);

    /* 5. Release the slice, the last id: now the memory is freed. */
    ferry_buffer_release(word.id);
    int live = print_stats("after releasing both:");

    /* 6. Mistakes are status codes, never crashes: release the buffer a second time. */
    st = ferry_buffer_release(buf.id);
    print_status("ferry_buffer_release (again)", st);

    return st == FERRY_STATUS_INVALID_HANDLE && live == 0 && strcmp(copy, "from") == 0 ? 0 : 1;
}
