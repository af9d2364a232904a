/* shm_region: shared-memory regions between two processes, from C (fork).
 *
 * 1. A region shared over a socketpair (SCM_RIGHTS): the parent's buffer crosses to the child by
 *    id, comes back as an in-place reply, the child's own buffer crosses the other way, and when
 *    the child is killed (SIGKILL) holding a lease, the parent gets the PEER_GONE event, reclaims
 *    the lease and can still read the buffer the child sent.
 * 2. A named region (mode 0600): a child opens it by name and sends; a second opener is refused
 *    (BUSY); a missing name is NOT_FOUND; run as root, a child that dropped to user nobody gets
 *    PERMISSION_DENIED.
 * 3. A registered ferry callback serves requests in the child (ferry_region_serve).
 * 4. Bad arguments: NULL pointers, stale and forged ids, ids of another kind, unknown flags.
 * Ends with descriptors and region mappings back to their start values, no region open and no
 * live buffer id. */
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (d == NULL) return -1;
    while (readdir(d) != NULL) n++;
    closedir(d);
    return n;
}

static int count_region_maps(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int n = 0;
    if (f == NULL) return -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strstr(line, "ferry-region") != NULL) n++;
    }
    fclose(f);
    return n;
}

/* Receives one message that is not a PEER_JOINED event, waiting up to 5 s. */
static int recv_msg(uint64_t region, FerryRegionMsg *m) {
    for (int i = 0; i < 100; i++) {
        size_t n = 0;
        if (ferry_region_recv(region, m, 1, 5000, &n) != FERRY_STATUS_OK || n == 0) return 0;
        if (!(m->flags & FERRY_REGION_MSG_PEER_JOINED)) return 1;
    }
    return 0;
}

/* The child of part 1: receive, check, reply in place, send one buffer of its own, exit. */
static int child_share(int sock) {
    uint64_t r = 0;
    FerryRegionMsg m;
    FerryView own;
    if (ferry_region_from_socket(sock, 5000, &r) != FERRY_STATUS_OK) return 10;
    if (!recv_msg(r, &m)) return 11;
    if (m.len != 4096 || memcmp(m.ptr, "from the parent", 16) != 0) return 12;
    memcpy(m.ptr, "from the child!", 16);
    if (ferry_region_send(r, m.id, 2, m.value + 1, m.corr, FERRY_REGION_SEND_MOVE) != FERRY_STATUS_OK) return 13;
    if (ferry_region_alloc(r, 100, &own) != FERRY_STATUS_OK) return 14;
    memset(own.ptr, 0x5A, 100);
    if (ferry_region_send(r, own.id, 3, 0, 0, FERRY_REGION_SEND_MOVE) != FERRY_STATUS_OK) return 15;
    /* Wait: the parent kills this process (SIGKILL) while it holds the parent's lease (or while
     * the lease is still on the ring). It never exits on its own: an exit that beat the kill
     * would make the parent's check of the signal fail. */
    recv_msg(r, &m);
    for (;;) pause();
}

static void part_share(void) {
    int sv[2];
    uint64_t r = 0;
    FerryView v;
    FerryRegionMsg m;
    FerryRegionConfig cfg = {.ring = 16, .slots = 32, .arena = 1 << 20, .mode = 0};
    if (!CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0)) return;
    CHECK_STATUS(ferry_region_create(&cfg, &r), FERRY_STATUS_OK);
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        _exit(child_share(sv[1]));
    }
    close(sv[1]);
    CHECK_STATUS(ferry_region_share(r, sv[0]), FERRY_STATUS_OK);
    close(sv[0]);
    CHECK_STATUS(ferry_region_alloc(r, 4096, &v), FERRY_STATUS_OK);
    memcpy(v.ptr, "from the parent", 16);
    CHECK_STATUS(ferry_region_send(r, v.id, 1, 41, 7, 0), FERRY_STATUS_OK);
    if (CHECK(recv_msg(r, &m))) {
        CHECK_EQ(m.id, v.id);
        CHECK(m.flags & FERRY_REGION_MSG_RETURN);
        CHECK_EQ(m.value, 42);
        CHECK_EQ(m.corr, 7);
        CHECK(memcmp(v.ptr, "from the child!", 16) == 0);
        CHECK_STATUS(ferry_region_release(r, m.id), FERRY_STATUS_OK); /* the hold the reply brought */
    }
    FerryView child_buf = {0};
    if (CHECK(recv_msg(r, &m))) {
        CHECK_EQ(m.tag, 3);
        CHECK_EQ(m.len, 100);
        CHECK(m.ptr != NULL && ((unsigned char *)m.ptr)[99] == 0x5A);
        CHECK_STATUS(ferry_region_view(r, m.id, &child_buf), FERRY_STATUS_OK);
    }
    FerryRegionStats st;
    CHECK_STATUS(ferry_region_stats(r, &st), FERRY_STATUS_OK);
    CHECK_EQ(st.seat, 0);
    CHECK_EQ(st.held, 1);
    CHECK_STATUS(ferry_region_send(r, v.id, 9, 0, 0, 0), FERRY_STATUS_OK); /* a lease it dies with */
    CHECK_STATUS(ferry_region_stats(r, &st), FERRY_STATUS_OK);
    CHECK_EQ(st.lent, 1);
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    /* The child is gone: its event comes, the buffer it sent stays readable until released. */
    size_t n = 0;
    CHECK_STATUS(ferry_region_recv(r, &m, 1, 5000, &n), FERRY_STATUS_OK);
    CHECK(n == 1 && (m.flags & FERRY_REGION_MSG_PEER_GONE));
    CHECK(((unsigned char *)child_buf.ptr)[0] == 0x5A);
    CHECK_STATUS(ferry_region_release(r, child_buf.id), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_region_send(r, 0, 0, 0, 0, 0), FERRY_STATUS_PEER_GONE);
    CHECK_STATUS(ferry_region_release(r, v.id), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_region_stats(r, &st), FERRY_STATUS_OK);
    CHECK_EQ(st.own_buffers, 0);
    CHECK_EQ(st.lent, 0);
    CHECK_EQ(st.held, 0);
    CHECK_EQ(st.peers_gone, 1);
    CHECK_STATUS(ferry_region_close(r), FERRY_STATUS_OK);
}

static uint32_t double_it(void *user, uint64_t buffer, uint64_t value, FerryPayload *out) {
    (void)user;
    out->buffer = buffer; /* an in-place reply when a buffer came */
    out->value = value * 2;
    return value == 13 ? 1 : 0; /* 13 fails */
}

static void part_named(void) {
    char name[64];
    int len = snprintf(name, sizeof name, "ferry-ctest-%d", (int)getpid());
    uint64_t r = 0, r2 = 0;
    CHECK_STATUS(ferry_region_create_named((const uint8_t *)name, (size_t)len, NULL, &r), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_region_create_named((const uint8_t *)name, (size_t)len, NULL, &r2), FERRY_STATUS_BUSY);
    pid_t pid = fork();
    if (pid == 0) {
        uint64_t c = 0, cb = 0;
        size_t served = 0;
        if (ferry_region_open((const uint8_t *)name, (size_t)len, &c) != FERRY_STATUS_OK) _exit(20);
        if (ferry_callback_register(double_it, NULL, NULL, &cb) != FERRY_STATUS_OK) _exit(21);
        for (int i = 0; i < 3; i++) {
            if (ferry_region_serve(c, cb, 1, 5000, &served) != FERRY_STATUS_OK || served != 1) _exit(22 + i);
        }
        ferry_callback_unregister(cb);
        ferry_region_close(c);
        _exit(0);
    }
    /* The creator accepts while it receives: serve three calls through the child. */
    FerryRegionMsg m;
    size_t n = 0;
    int joined = 0;
    for (int i = 0; i < 50 && !joined; i++) {
        CHECK_STATUS(ferry_region_recv(r, &m, 1, 5000, &n), FERRY_STATUS_OK);
        joined = n == 1 && (m.flags & FERRY_REGION_MSG_PEER_JOINED);
    }
    CHECK(joined);
    if (joined) {
        /* A second process cannot take the seat. */
        pid_t p2 = fork();
        if (p2 == 0) {
            uint64_t c = 0;
            _exit(ferry_region_open((const uint8_t *)name, (size_t)len, &c) == FERRY_STATUS_BUSY ? 0 : 30);
        }
        int st2 = 0;
        while (waitpid(p2, &st2, WNOHANG) == 0) ferry_region_recv(r, &m, 1, 10, &n);
        CHECK(WIFEXITED(st2) && WEXITSTATUS(st2) == 0);
        FerryView v;
        CHECK_STATUS(ferry_region_alloc(r, 64, &v), FERRY_STATUS_OK);
        CHECK_STATUS(ferry_region_send(r, v.id, 1, 21, 100, FERRY_REGION_SEND_MOVE), FERRY_STATUS_OK);
        CHECK(recv_msg(r, &m) && m.id == v.id && m.value == 42 && m.corr == 100);
        CHECK_STATUS(ferry_region_release(r, m.id), FERRY_STATUS_OK);
        CHECK_STATUS(ferry_region_send(r, 0, 1, 5, 101, 0), FERRY_STATUS_OK);
        CHECK(recv_msg(r, &m) && m.id == 0 && m.value == 10 && m.corr == 101);
        CHECK_STATUS(ferry_region_send(r, 0, 1, 13, 102, 0), FERRY_STATUS_OK);
        CHECK(recv_msg(r, &m) && (m.flags & FERRY_REGION_MSG_ERROR) && m.corr == 102);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (geteuid() == 0) {
        /* Another user cannot open a 0600 name: a child that drops to nobody. */
        pid_t p3 = fork();
        if (p3 == 0) {
            uint64_t c = 0;
            if (setgid(65534) != 0 || setuid(65534) != 0) _exit(40);
            _exit(ferry_region_open((const uint8_t *)name, (size_t)len, &c) == FERRY_STATUS_PERMISSION_DENIED ? 0 : 41);
        }
        int st3 = 0;
        waitpid(p3, &st3, 0);
        CHECK(WIFEXITED(st3) && WEXITSTATUS(st3) == 0);
    }
    CHECK_STATUS(ferry_region_close(r), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_region_open((const uint8_t *)name, (size_t)len, &r2), FERRY_STATUS_NOT_FOUND);
}

static void part_bad_arguments(void) {
    uint64_t r = 0;
    FerryView v, w;
    FerryRegionMsg m;
    size_t n;
    int fd = -1;
    CHECK_STATUS(ferry_region_create(NULL, NULL), FERRY_STATUS_NULL_POINTER);
    FerryRegionConfig bad = {.ring = 3};
    CHECK_STATUS(ferry_region_create(&bad, &r), FERRY_STATUS_INVALID_ARGUMENT);
    FerryRegionConfig badmode = {.mode = 0400};
    CHECK_STATUS(ferry_region_create(&badmode, &r), FERRY_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ferry_region_create_named((const uint8_t *)"../x", 4, NULL, &r), FERRY_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ferry_region_create_named(NULL, 0, NULL, &r), FERRY_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ferry_region_create(NULL, &r), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_region_fd(r, &fd), FERRY_STATUS_OK);
    CHECK(fd >= 0);
    CHECK_STATUS(ferry_region_alloc(r, 16, NULL), FERRY_STATUS_NULL_POINTER);
    CHECK_STATUS(ferry_region_alloc(r, (size_t)1 << 40, &v), FERRY_STATUS_REGION_FULL);
    CHECK_STATUS(ferry_region_alloc(r, 0, &v), FERRY_STATUS_OK);
    CHECK(v.ptr == NULL && v.len == 0);
    CHECK_STATUS(ferry_region_view(r, v.id, &w), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_region_send(r, v.id, 0, 0, 0, 0), FERRY_STATUS_PEER_GONE); /* nobody attached */
    CHECK_STATUS(ferry_region_send(r, 0, 0, 0, 0, 0x80), FERRY_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ferry_region_release(r, v.id), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_region_release(r, v.id), FERRY_STATUS_INVALID_HANDLE);
    CHECK_STATUS(ferry_region_view(r, v.id, &w), FERRY_STATUS_INVALID_HANDLE);
    CHECK_STATUS(ferry_region_view(r, v.id ^ 0x100000000ull, &w), FERRY_STATUS_INVALID_HANDLE);
    CHECK_STATUS(ferry_region_view(r, 0, &w), FERRY_STATUS_INVALID_HANDLE);
    /* Ids of other kinds: a buffer id, and the region's own id, are not region buffers. */
    CHECK_STATUS(ferry_buffer_new(8, &w), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_region_release(r, w.id), FERRY_STATUS_INVALID_HANDLE);
    CHECK_STATUS(ferry_region_release(r, r), FERRY_STATUS_INVALID_HANDLE);
    CHECK_STATUS(ferry_region_close(w.id), FERRY_STATUS_INVALID_HANDLE);
    CHECK_STATUS(ferry_buffer_release(w.id), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_region_recv(r, &m, 0, 0, &n), FERRY_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ferry_region_recv(r, NULL, 1, 0, &n), FERRY_STATUS_NULL_POINTER);
    CHECK_STATUS(ferry_region_recv(r, &m, 1, -2, &n), FERRY_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ferry_region_recv(r, &m, 1, 0, &n), FERRY_STATUS_OK);
    CHECK_EQ(n, 0);
    CHECK_STATUS(ferry_region_set_spin(r, 20000000), FERRY_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ferry_region_from_socket(-1, 0, &r), FERRY_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ferry_region_share(r, -1), FERRY_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ferry_region_share(r, fd), FERRY_STATUS_SYSTEM_ERROR); /* not a socket */
    CHECK_STATUS(ferry_region_close(r), FERRY_STATUS_OK);
    CHECK_STATUS(ferry_region_close(r), FERRY_STATUS_INVALID_HANDLE);
    CHECK_STATUS(ferry_region_alloc(r, 8, &v), FERRY_STATUS_INVALID_HANDLE);
}

int main(void) {
    int fds0 = count_fds(), maps0 = count_region_maps();
    part_share();
    part_named();
    part_bad_arguments();
    uint64_t open = 1;
    CHECK_STATUS(ferry_region_count(&open), FERRY_STATUS_OK);
    CHECK_EQ(open, 0);
    CHECK_EQ(count_fds(), fds0);
    CHECK_EQ(count_region_maps(), maps0);
    check_no_live();
    return check_finish();
}
