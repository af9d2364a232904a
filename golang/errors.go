package ferry

/*
#include "ferry.h"
*/
import "C"

import "strconv"

// Status is a ferry status code, the value every function of the C ABI returns (FerryStatus in
// ferry.h). Values are stable: they are never renumbered, and new ones are only appended.
//
// The constants (StatusOK, StatusInvalidHandle, ...), their names and messages, and the sentinel
// errors (ErrInvalidHandle, ...) are generated into status_gen.go from ferry's one list of statuses
// (src/error.rs in the ferry repository; `make header` regenerates it).
type Status uint32

// String returns the status's name as in ferry.h without the prefix, e.g. "INVALID_HANDLE".
func (s Status) String() string {
	if int(s) < len(statusInfo) {
		return statusInfo[s].name
	}
	return "Status(" + strconv.FormatUint(uint64(s), 10) + ")"
}

// Message returns the status's message, the same text ferry_status_message gives.
func (s Status) Message() string {
	if int(s) < len(statusInfo) {
		return statusInfo[s].msg
	}
	return "unknown status"
}

// Error is the error type of every failing ferry call: the status code and a message.
//
// Match it with errors.Is against the sentinels (ErrInvalidHandle, ErrLimitReached, ...), which
// compare by Status only, or with errors.As to read the Status. ErrClosed also reports a use of a
// Buffer after its Close.
type Error struct {
	// Status is the ferry status code.
	Status Status
	// Msg says what went wrong; it may be more specific than Status.Message().
	Msg string
}

// Error returns "ferry: " followed by the message.
func (e *Error) Error() string {
	if e.Msg != "" {
		return "ferry: " + e.Msg
	}
	return "ferry: " + e.Status.Message()
}

// Is reports whether target is an *Error with the same Status, so that
// errors.Is(err, ferry.ErrInvalidHandle) holds for every invalid-handle error.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Status == e.Status
}

// statusErr turns a status returned by the C ABI into an error: nil for FERRY_STATUS_OK, else an
// *Error carrying the status and its message.
func statusErr(st C.FerryStatus) error {
	if st == C.FERRY_STATUS_OK {
		return nil
	}
	s := Status(st)
	return &Error{Status: s, Msg: s.Message()}
}

// errClosed is returned by Buffer methods called after Close; it matches ErrClosed.
var errClosed error = &Error{Status: StatusClosed, Msg: "buffer is closed"}

// libStatusMessage asks the library for a status's message (ferry_status_message); the tests check
// it against Status.Message.
func libStatusMessage(s Status) (string, error) {
	var buf [256]C.char
	var n C.size_t
	st := C.ferry_status_message(C.uint32_t(s), &buf[0], C.size_t(len(buf)), &n)
	if err := statusErr(st); err != nil {
		return "", err
	}
	return C.GoStringN(&buf[0], C.int(min(int(n), len(buf)-1))), nil
}
