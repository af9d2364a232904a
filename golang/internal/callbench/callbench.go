// Package callbench is the baseline for ferry's sync-callback benchmark: a bare call from C into an
// exported Go function, with no ferry in between. It is internal, so it never reaches a program
// that imports ferry.
package callbench

/*
#include <stdint.h>

extern uint32_t callbenchNop(uint64_t v);

static uint32_t callbench_loop(uint64_t n) {
	uint32_t acc = 0;
	for (uint64_t i = 0; i < n; i++) {
		acc += callbenchNop(i);
	}
	return acc;
}

static uint32_t callbench_once(uint64_t v) {
	return callbenchNop(v);
}
*/
import "C"

// LoopC calls the exported Go function n times from one C loop: n C-to-Go crossings.
func LoopC(n int) uint32 { return uint32(C.callbench_loop(C.uint64_t(n))) }

// Once makes one Go-to-C call whose C side calls the exported Go function once.
func Once(v uint64) uint32 { return uint32(C.callbench_once(C.uint64_t(v))) }
