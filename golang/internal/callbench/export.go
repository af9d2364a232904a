package callbench

// #include <stdint.h>
import "C"

// callbenchNop is the bare exported Go function the baseline calls from C: it does nothing.
//
//export callbenchNop
func callbenchNop(v C.uint64_t) C.uint32_t {
	return C.uint32_t(v & 1)
}
