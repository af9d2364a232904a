package ferry

// The exported trampolines that Rust calls through ferry's C ABI. A file with //export may only
// declare C things in its preamble, so the shims that call these live in callback.go and async.go.

/*
#include <stdint.h>
#include "ferry.h"
*/
import "C"

import "unsafe"

// ferryGoCallback runs the Go callback registered under key. It never lets a panic escape into
// Rust: runCallback recovers it and reports FERRY_STATUS_CALLBACK_PANIC with a failure token.
//
//export ferryGoCallback
func ferryGoCallback(key C.uintptr_t, buffer, value C.uint64_t, resultOut *C.FerryPayload) C.uint32_t {
	return runCallback(uintptr(key), uint64(buffer), uint64(value), resultOut)
}

// ferryGoDrop is the drop hook: Rust has let go of the callback registered under key.
//
//export ferryGoDrop
func ferryGoDrop(key C.uintptr_t) {
	dropCallback(uintptr(key))
}

// ferryGoSink receives a batch of completions for the sink-mode engine registered under key.
//
//export ferryGoSink
func ferryGoSink(key C.uintptr_t, items *C.FerryCompletion, n C.size_t) {
	sinkDeliver(uintptr(key), unsafe.Slice(items, int(n)))
}
