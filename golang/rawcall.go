package ferry

/*
#include "ferry_go.h"
*/
import "C"

// rawNewRelease makes an id of n bytes and releases it with two bare C ABI calls and no Buffer:
// the floor under New+Close, which BenchmarkRawNewRelease measures. The linker drops it from
// programs that do not call it.
func rawNewRelease(n int) error {
	r := C.ferry_go_new(C.size_t(n))
	if r.status != C.FERRY_STATUS_OK {
		return statusErr(r.status)
	}
	return statusErr(C.ferry_buffer_release(r.view.id))
}
