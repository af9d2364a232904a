package ferry

// The exported trampolines that Rust calls through ferry's C ABI (via ferry_go_cb_call and
// ferry_go_cb_drop in shims.c). A file with //export may only declare C things in its preamble:
// shims.h holds declarations only.

/*
#include "shims.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime/debug"
)

// ferryGoCallback runs the Go callback registered under key. Nothing escapes into Rust: a panic is
// recovered and reported as FERRY_STATUS_CALLBACK_PANIC with a failure token, and a
// runtime.Goexit is reported to ferry (settleCallback).
//
//export ferryGoCallback
func ferryGoCallback(key C.uintptr_t, buffer, value C.uint64_t, resultOut *C.FerryPayload) C.uint32_t {
	return runCallback(uint64(key), uint64(buffer), uint64(value), resultOut)
}

// ferryGoDrop is the drop hook: Rust has let go of the callback registered under key.
//
//export ferryGoDrop
func ferryGoDrop(key C.uintptr_t) {
	dropCallback(uint64(key))
}

// errUnknownCallback reports a call for a key that is not in the table, which ferry's drop
// ordering rules out; it is kept as a status rather than a crash.
var errUnknownCallback = errors.New("ferry: callback key not registered on the Go side")

// runCallback is the body of the invoke trampoline: it runs the Go function for key and stores the
// result (or a failure token) in *out for Rust.
func runCallback(key, buffer, value uint64, out *C.FerryPayload) (status C.uint32_t) {
	fn := lookupGo(key)
	if fn == nil {
		out.value = C.uint64_t(failures.put(failureRecord{err: errUnknownCallback}))
		return C.FERRY_STATUS_CALLBACK_FAILED
	}
	var in Payload
	// Every return below replaces it, so settleCallback finds it only after a panic or a Goexit.
	status = statusUnsettled
	defer settleCallback(&status, out, &in)
	in.Value = value
	if buffer != 0 {
		r := C.ferry_go_share(C.uint64_t(buffer))
		if r.status != C.FERRY_STATUS_OK {
			out.value = C.uint64_t(failures.put(failureRecord{err: statusErr(r.status)}))
			return C.FERRY_STATUS_CALLBACK_FAILED
		}
		in.Buffer = adoptView(r.view)
	}
	res, err := fn(in)
	if in.Buffer == nil && res.Buffer == nil && err == nil {
		out.value = C.uint64_t(res.Value)
		return C.FERRY_STATUS_OK
	}
	var outBuf uint64
	if err == nil && res.Buffer != nil {
		outBuf, err = handOver(res.Buffer)
	}
	if in.Buffer != nil {
		in.Buffer.Close()
	}
	if err != nil {
		if outBuf != 0 {
			C.ferry_buffer_release(C.uint64_t(outBuf))
		}
		out.value = C.uint64_t(failures.put(failureRecord{err: err}))
		return C.FERRY_STATUS_CALLBACK_FAILED
	}
	out.buffer, out.value = C.uint64_t(outBuf), C.uint64_t(res.Value)
	return C.FERRY_STATUS_OK
}

// statusUnsettled is runCallback's status until one of its returns sets it: no FerryStatus.
const statusUnsettled = ^C.uint32_t(0)

// settleCallback is runCallback's deferred handler. A panic in the callback becomes
// FERRY_STATUS_CALLBACK_PANIC with a failure token, and never unwinds into Rust.
//
// A callback that neither returned nor panicked (the status is still unsettled) called
// runtime.Goexit, which no recover stops: its goroutine ends without returning to the C and Rust
// frames below (see "Callbacks and runtime.Goexit" in the package documentation).
// ferry_callback_abandon then lets go of what those frames hold. On a ferry worker thread, where Go
// would kill the process, it completes the job with the failure token and never returns (the thread
// stays parked); on a thread Go created it returns, and the goroutine ends as Goexit asked.
func settleCallback(status *C.uint32_t, out *C.FerryPayload, in *Payload) {
	p := recover()
	if p == nil && *status != statusUnsettled {
		return
	}
	if in.Buffer != nil {
		in.Buffer.Close()
	}
	out.buffer = 0
	if p != nil {
		out.value = C.uint64_t(failures.put(failureRecord{panic: p, stack: debug.Stack()}))
		*status = C.FERRY_STATUS_CALLBACK_PANIC
		return
	}
	token := failures.put(failureRecord{goexit: true, stack: debug.Stack()})
	C.ferry_callback_abandon(C.uint64_t(token))
}

// handOver gives b's id to the caller of a callback: b is closed without releasing the id, or, if
// it is in use, shared and the share closed so. The id stays claimed until ferry_go_cb_call (in
// shims.c) gives it up for the caller, after the trampoline returns.
func handOver(b *Buffer) (uint64, error) {
	if id, err := b.detach(); err == nil {
		return id, nil
	} else if errors.Is(err, ErrClosed) {
		return 0, fmt.Errorf("ferry: callback returned a closed Buffer: %w", err)
	}
	s, err := b.Share()
	if err != nil {
		return 0, err
	}
	return s.detach()
}
