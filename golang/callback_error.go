package ferry

import (
	"fmt"
	"sync"
)

// CallbackError is the error a Go caller gets when a callback fails or panics. For a Go callback
// it carries the callback's own error or the recovered panic value and stack.
//
// errors.Is(err, ErrCallbackFailed) or errors.Is(err, ErrCallbackPanic) tells which; errors.Is and
// errors.As also see through to the callback's own error.
type CallbackError struct {
	// Status is StatusCallbackFailed or StatusCallbackPanic.
	Status Status
	// Err is the error a Go callback returned (nil for a panic, or for a C callback).
	Err error
	// Panic is the value a Go callback panicked with (nil otherwise).
	Panic any
	// Goexit is true when the Go callback called runtime.Goexit (as t.FailNow and t.Fatal do) on
	// a Rust worker thread: it never returned, and Status is StatusCallbackPanic.
	Goexit bool
	// Stack is the stack of the goroutine that panicked or called runtime.Goexit, taken in the
	// trampoline.
	Stack []byte
	// Detail is the raw detail value from Rust: for a C callback, its own code.
	Detail uint64
}

// Error describes the failure.
func (e *CallbackError) Error() string {
	switch {
	case e.Goexit:
		return "ferry: callback called runtime.Goexit (t.FailNow or t.Fatal in a callback?) on a worker thread"
	case e.Status == StatusCallbackPanic && e.Panic != nil:
		return fmt.Sprintf("ferry: callback panicked: %v", e.Panic)
	case e.Err != nil:
		return "ferry: callback failed: " + e.Err.Error()
	default:
		return fmt.Sprintf("ferry: %s (detail %d)", e.Status.Message(), e.Detail)
	}
}

// Is reports whether target is the sentinel for e's Status (ErrCallbackFailed, ErrCallbackPanic).
func (e *CallbackError) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Status == e.Status
}

// Unwrap returns the callback's own error, if any.
func (e *CallbackError) Unwrap() error { return e.Err }

// resultErr turns a failed invoke or job (status and detail value) into an error; for a Go
// callback's failure it finds the record the trampoline left.
func resultErr(st Status, detail uint64) error {
	switch st {
	case StatusCallbackFailed, StatusCallbackPanic:
		e := &CallbackError{Status: st, Detail: detail}
		if r, ok := failures.take(detail); ok {
			e.Err, e.Panic, e.Goexit, e.Stack = r.err, r.panic, r.goexit, r.stack
			if r.panic != nil || r.goexit {
				e.Status = StatusCallbackPanic
			}
		}
		return e
	}
	s := st
	return &Error{Status: s, Msg: s.Message()}
}

// failures holds what Go callbacks failed with, until the Go caller that gets the failure back
// claims it by token (the detail value that travels through Rust). A failure nobody claims (the
// caller was Rust or C) is overwritten after failureRing newer ones, so the ring never grows.
var failures failureRing

const failureRingSize = 1024

type failureRecord struct {
	token  uint64
	err    error
	panic  any
	goexit bool
	stack  []byte
}

type failureRing struct {
	mu   sync.Mutex
	next uint64
	recs [failureRingSize]failureRecord
}

// failureTokenTag marks the detail values that are Go failure tokens, so that a C callback's own
// detail code is not mistaken for one (a C callback would have to forge the tag on purpose).
const failureTokenTag = 0xFE77 << 48

// put stores a record and returns its token.
func (f *failureRing) put(r failureRecord) uint64 {
	f.mu.Lock()
	f.next++
	r.token = failureTokenTag | f.next&(1<<48-1)
	f.recs[f.next%failureRingSize] = r
	f.mu.Unlock()
	return r.token
}

// take returns and forgets the record for token, if it is still there.
func (f *failureRing) take(token uint64) (failureRecord, bool) {
	if token&^(1<<48-1) != failureTokenTag {
		return failureRecord{}, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r := &f.recs[(token&(1<<48-1))%failureRingSize]
	if r.token != token {
		return failureRecord{}, false
	}
	out := *r
	*r = failureRecord{}
	return out, true
}
