/* Helpers for the Go package's region types (region*.go): calls of the region C ABI that return
 * their status and results by value, so no Go variable escapes to the heap for an out-parameter. */

#ifndef FERRY_REGION_GO_H
#define FERRY_REGION_GO_H

#include <stdlib.h>
#include "ferry.h"

typedef struct {
	FerryView view;
	FerryStatus status;
} ferry_rgo_view;

static inline ferry_rgo_view ferry_rgo_alloc(uint64_t region, size_t len) {
	ferry_rgo_view r = {0};
	r.status = ferry_region_alloc(region, len, &r.view);
	return r;
}

typedef struct {
	uint64_t region;
	FerryStatus status;
} ferry_rgo_region;

static inline ferry_rgo_region ferry_rgo_create(const FerryRegionConfig *cfg) {
	ferry_rgo_region r = {0};
	r.status = ferry_region_create(cfg, &r.region);
	return r;
}

static inline ferry_rgo_region ferry_rgo_create_named(const uint8_t *name, size_t len, const FerryRegionConfig *cfg) {
	ferry_rgo_region r = {0};
	r.status = ferry_region_create_named(name, len, cfg, &r.region);
	return r;
}

static inline ferry_rgo_region ferry_rgo_open(const uint8_t *name, size_t len) {
	ferry_rgo_region r = {0};
	r.status = ferry_region_open(name, len, &r.region);
	return r;
}

static inline ferry_rgo_region ferry_rgo_from_socket(int sock, int32_t timeout_ms) {
	ferry_rgo_region r = {0};
	r.status = ferry_region_from_socket(sock, timeout_ms, &r.region);
	return r;
}

typedef struct {
	int fd;
	FerryStatus status;
} ferry_rgo_fd;

static inline ferry_rgo_fd ferry_rgo_wait_fd(uint64_t region) {
	ferry_rgo_fd r = {0};
	r.status = ferry_region_fd(region, &r.fd);
	return r;
}

typedef struct {
	size_t n;
	FerryStatus status;
} ferry_rgo_n;

/* Receives into a C array the caller owns (Go passes a pointer into a Go array it pins for the
 * call: the messages hold no Go pointers). */
static inline ferry_rgo_n ferry_rgo_recv(uint64_t region, FerryRegionMsg *msgs, size_t cap, int32_t timeout_ms) {
	ferry_rgo_n r = {0};
	r.status = ferry_region_recv(region, msgs, cap, timeout_ms, &r.n);
	return r;
}

typedef struct {
	FerryRegionStats stats;
	FerryStatus status;
} ferry_rgo_stats;

static inline ferry_rgo_stats ferry_rgo_region_stats(uint64_t region) {
	ferry_rgo_stats r = {0};
	r.status = ferry_region_stats(region, &r.stats);
	return r;
}

static inline uint64_t ferry_rgo_count(void) {
	uint64_t n = 0;
	ferry_region_count(&n);
	return n;
}

#endif /* FERRY_REGION_GO_H */
