//go:build ferrydebug

package ferry

/*
#include "ferry.h"
*/
import "C"

import "runtime"

// debugMode is true in builds with the ferrydebug tag: every accessor forces a garbage collection,
// cleanups release at once instead of in batches, and ferry runs in guard mode, so released memory
// is made inaccessible (PROT_NONE) and never reused. A missing runtime.KeepAlive, or a slice from
// Bytes used after Close, then faults at once in tests instead of reading garbage in production.
// Guard mode leaks address space by design: never ship a ferrydebug build.
const debugMode = true

func init() {
	if abiErr == nil { // a mismatched library is never called (abi.go)
		C.ferry_guard_set(1)
	}
}

// debugCollect forces a garbage collection, so that a Buffer the caller forgot to keep alive has
// its cleanup run, and its memory protected, before the caller touches the bytes again.
func debugCollect() { runtime.GC() }
