package ferry

/*
#include "shims.h"
*/
import "C"

import (
	"io"
	"unsafe"
)

// ReadID copies the bytes of the buffer that id names into p, in one cgo call, and returns how
// many it copied. It reads an id without owning it: no Buffer is made, nothing is claimed or
// released, and the id stays with whoever holds it (a Buffer, C code, Rust). It is the copying path
// for small payloads: a reused p makes it a copy with no allocation, where C.GoBytes allocates on
// every call; for large buffers a Buffer's zero-copy Bytes costs less (see the demo's frame table).
//
// When the buffer is longer than p, ReadID fills p and returns len(p) and io.ErrShortBuffer.
// Errors match ErrInvalidHandle for an id that names no live buffer (unknown, released, forged
// or of another kind), including one released while the copy was about to start, and the id of a
// Buffer closed before the call (ReadID first sends Rust the ids that Close batched, if any: a
// crossing of its own only when Buffers were closed since the last batch went).
func ReadID(id uint64, p []byte) (int, error) {
	debugCollect()
	if abiErr != nil {
		return 0, abiErr
	}
	if closePending.Load() != 0 {
		flushCloses()
	}
	// Not marked nocallback: copy_out holds the buffer while it copies, and if its owner releases
	// the id meanwhile, the hold is the last reference and runs the release function (Go's, for
	// memory Go adopted).
	r := C.ferry_go_read(C.uint64_t(id), (*C.uint8_t)(unsafe.SliceData(p)), C.size_t(len(p)))
	if r.status != C.FERRY_STATUS_OK {
		return 0, statusErr(r.status)
	}
	if int(r.len) > len(p) {
		return len(p), io.ErrShortBuffer
	}
	return int(r.len), nil
}
