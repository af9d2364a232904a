//go:build ferry_reliability

package ferry

// The C side of TestReliabilityFork (build tag ferry_reliability; Go allows no cgo in _test.go
// files): a real fork of the Go test process, whose child runs C code only.

/*
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "ferry.h"

static uint64_t rel_fnv1a(const uint8_t *p, size_t n) {
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++) {
		h = (h ^ p[i]) * 0x100000001b3ULL;
	}
	return h;
}

// The child's work: ferry's pool was running in the parent; here a new queue gets jobs that run on
// a pool of the child's own, the pool shuts down, and every id made is released. Returns 0 when
// all went as it should, and says what happened in msg.
static int rel_fork_child(char *msg, size_t len) {
	uint64_t q = 0;
	FerryView v = {0, 0, 0};
	FerryStats before, after;
	FerryCallbackStats cs;
	if (ferry_stats_get(&before) != FERRY_STATUS_OK || ferry_queue_new(&q) != FERRY_STATUS_OK ||
	    ferry_buffer_copy((const uint8_t *)"forked", 6, &v) != FERRY_STATUS_OK) {
		snprintf(msg, len, "setup failed");
		return 1;
	}
	for (uint64_t tag = 1; tag <= 4; tag++) {
		uint32_t op = tag % 2 ? FERRY_OP_CHECKSUM : FERRY_OP_ECHO;
		FerryStatus st = ferry_async_submit(q, tag, op, v.id, 0, tag);
		if (st != FERRY_STATUS_OK) {
			snprintf(msg, len, "submit %llu: status %u", (unsigned long long)tag, (unsigned)st);
			return 1;
		}
	}
	size_t got = 0;
	uint64_t want = rel_fnv1a((const uint8_t *)"forked", 6);
	while (got < 4) {
		FerryCompletion c[4];
		size_t n = 0;
		// 60 s: a pool that believed the parent's workers ran would never complete these.
		FerryStatus st = ferry_queue_wait(q, c, 4, 60000000000LL, &n);
		if (st != FERRY_STATUS_OK || n == 0) {
			snprintf(msg, len, "%zu of 4 completions, then status %u", got, (unsigned)st);
			return 1;
		}
		for (size_t i = 0; i < n; i++) {
			int odd = c[i].tag % 2;
			if (c[i].status != FERRY_STATUS_OK || (odd && c[i].value != want) || (!odd && (c[i].buffer == 0 || c[i].value != c[i].tag))) {
				snprintf(msg, len, "completion %llu: status %u", (unsigned long long)c[i].tag, c[i].status);
				return 1;
			}
			if (c[i].buffer != 0) {
				ferry_buffer_release(c[i].buffer);
			}
		}
		got += n;
	}
	ferry_callback_stats(&cs);
	unsigned long long workers = cs.workers;
	if (ferry_pool_shutdown() != FERRY_STATUS_OK || ferry_callback_stats(&cs) != FERRY_STATUS_OK || cs.workers != 0) {
		snprintf(msg, len, "shutdown failed or left workers");
		return 1;
	}
	ferry_buffer_release(v.id);
	ferry_queue_close(q);
	ferry_stats_get(&after);
	if (after.live_ids != before.live_ids) {
		snprintf(msg, len, "live ids %llu before, %llu after", (unsigned long long)before.live_ids,
		         (unsigned long long)after.live_ids);
		return 1;
	}
	snprintf(msg, len, "ok: 4 jobs on the child's own pool of %llu workers, shutdown clean", workers);
	return 0;
}

// Forks. The child blocks every signal (Go's handlers must not run Go code in it), does its work,
// writes its report to the pipe and exits without returning to Go. The parent gets the child's
// pid and the pipe's read end.
static int rel_fork(int *read_fd) {
	int fds[2];
	if (pipe(fds) != 0) {
		return -1;
	}
	pid_t pid = fork();
	if (pid == 0) {
		sigset_t all;
		sigfillset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		close(fds[0]);
		char msg[256];
		int rc = rel_fork_child(msg, sizeof msg);
		ssize_t w = write(fds[1], msg, strlen(msg));
		(void)w;
		_exit(rc);
	}
	close(fds[1]);
	if (pid < 0) {
		close(fds[0]);
		return -1;
	}
	*read_fd = fds[0];
	return (int)pid;
}
*/
import "C"

// forkChild forks the process; the child runs ferry from C only and reports on the pipe whose read
// end is returned.
func forkChild() (pid, readFD int, ok bool) {
	var fd C.int
	p := C.rel_fork(&fd)
	return int(p), int(fd), p > 0
}
