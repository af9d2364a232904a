/* Helpers for the Go package: calls of the C ABI that return their status and view by value.
 * A Go variable whose address goes to C escapes to the heap, costing an allocation per call; a
 * struct returned by value does not. Any file of the package may #include "ferry_go.h". */

#ifndef FERRY_GO_H
#define FERRY_GO_H

#include "ferry.h"

typedef struct {
	FerryView view;
	FerryStatus status;
} ferry_go_made;

static inline ferry_go_made ferry_go_new(size_t len) {
	ferry_go_made r = {0};
	r.status = ferry_buffer_new(len, &r.view);
	return r;
}

static inline ferry_go_made ferry_go_copy(const uint8_t *data, size_t len) {
	ferry_go_made r = {0};
	r.status = ferry_buffer_copy(data, len, &r.view);
	return r;
}

static inline ferry_go_made ferry_go_view(uint64_t id) {
	ferry_go_made r = {0};
	r.status = ferry_buffer_view(id, &r.view);
	return r;
}

static inline ferry_go_made ferry_go_share(uint64_t id) {
	ferry_go_made r = {0};
	r.status = ferry_buffer_share(id, &r.view);
	return r;
}

static inline ferry_go_made ferry_go_slice(uint64_t id, size_t off, size_t len) {
	ferry_go_made r = {0};
	r.status = ferry_buffer_slice(id, off, len, &r.view);
	return r;
}

#endif /* FERRY_GO_H */
