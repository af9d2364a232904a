package abitest

/*
#include <stdint.h>
#include "ferry.h"
*/
import "C"

// abitestSink receives a batch on a sink queue's delivery thread and counts it.
//
//export abitestSink
func abitestSink(key C.uintptr_t, items *C.FerryCompletion, n C.size_t) {
	if s, ok := sinks.Load(uintptr(key)); ok {
		s.(*Sink).n.Add(int64(n))
	}
}

// abitestNoop is the Go function that abitest_calls_go_marked calls.
//
//export abitestNoop
func abitestNoop() {}
