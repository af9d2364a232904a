package ferry

/*
#include "ferry.h"
*/
import "C"

import "strconv"

// Status is a ferry status code, the value every function of the C ABI returns (FerryStatus in
// ferry.h). Values are stable: they are never renumbered, and new ones are only appended.
type Status uint32

// The status codes of ferry.h, in order.
const (
	StatusOK              Status = C.FERRY_STATUS_OK
	StatusInvalidHandle   Status = C.FERRY_STATUS_INVALID_HANDLE
	StatusNullPointer     Status = C.FERRY_STATUS_NULL_POINTER
	StatusOutOfRange      Status = C.FERRY_STATUS_OUT_OF_RANGE
	StatusOverflow        Status = C.FERRY_STATUS_OVERFLOW
	StatusTooLarge        Status = C.FERRY_STATUS_TOO_LARGE
	StatusLimitReached    Status = C.FERRY_STATUS_LIMIT_REACHED
	StatusPanic           Status = C.FERRY_STATUS_PANIC
	StatusAllocFailed     Status = C.FERRY_STATUS_ALLOC_FAILED
	StatusTableFull       Status = C.FERRY_STATUS_TABLE_FULL
	StatusInvalidArgument Status = C.FERRY_STATUS_INVALID_ARGUMENT
	StatusCallbackFailed  Status = C.FERRY_STATUS_CALLBACK_FAILED
	StatusCallbackPanic   Status = C.FERRY_STATUS_CALLBACK_PANIC
	StatusCancelled       Status = C.FERRY_STATUS_CANCELLED
	StatusClosed          Status = C.FERRY_STATUS_CLOSED
	StatusQueueFull       Status = C.FERRY_STATUS_QUEUE_FULL
	StatusUnsupported     Status = C.FERRY_STATUS_UNSUPPORTED
	// Regions (region.go).
	StatusPeerGone         Status = C.FERRY_STATUS_PEER_GONE
	StatusCorrupt          Status = C.FERRY_STATUS_CORRUPT
	StatusBusy             Status = C.FERRY_STATUS_BUSY
	StatusNotFound         Status = C.FERRY_STATUS_NOT_FOUND
	StatusPermissionDenied Status = C.FERRY_STATUS_PERMISSION_DENIED
	StatusSystemError      Status = C.FERRY_STATUS_SYSTEM_ERROR
	StatusRegionFull       Status = C.FERRY_STATUS_REGION_FULL
)

// statusInfo holds each status's name and the message that ferry_status_message returns for it
// (a test checks the two agree, so the Go side never needs a crossing to describe an error).
var statusInfo = [...]struct{ name, msg string }{
	StatusOK:               {"OK", "ok"},
	StatusInvalidHandle:    {"INVALID_HANDLE", "invalid handle: the id is unknown, forged or already released"},
	StatusNullPointer:      {"NULL_POINTER", "a required pointer argument is NULL"},
	StatusOutOfRange:       {"OUT_OF_RANGE", "offset or length out of range for the buffer"},
	StatusOverflow:         {"OVERFLOW", "offset + length overflows"},
	StatusTooLarge:         {"TOO_LARGE", "size exceeds the maximum buffer length"},
	StatusLimitReached:     {"LIMIT_REACHED", "live-byte limit reached"},
	StatusPanic:            {"PANIC", "a panic was caught inside ferry"},
	StatusAllocFailed:      {"ALLOC_FAILED", "memory allocation failed"},
	StatusTableFull:        {"TABLE_FULL", "handle table is full"},
	StatusInvalidArgument:  {"INVALID_ARGUMENT", "invalid argument"},
	StatusCallbackFailed:   {"CALLBACK_FAILED", "the callback reported a failure"},
	StatusCallbackPanic:    {"CALLBACK_PANIC", "the callback panicked"},
	StatusCancelled:        {"CANCELLED", "cancelled"},
	StatusClosed:           {"CLOSED", "closed"},
	StatusQueueFull:        {"QUEUE_FULL", "queue full"},
	StatusUnsupported:      {"UNSUPPORTED", "unsupported operation"},
	StatusPeerGone:         {"PEER_GONE", "the region's peer is gone"},
	StatusCorrupt:          {"CORRUPT", "the region's shared metadata is corrupt"},
	StatusBusy:             {"BUSY", "busy: the region already has a peer or the name is taken"},
	StatusNotFound:         {"NOT_FOUND", "no region has that name"},
	StatusPermissionDenied: {"PERMISSION_DENIED", "permission denied"},
	StatusSystemError:      {"SYSTEM_ERROR", "a system call failed"},
	StatusRegionFull:       {"REGION_FULL", "the region has no room for the buffer"},
}

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
// compare by Status only, or with errors.As to read the Status.
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

// The sentinel errors, one per status. Compare with errors.Is; they match any *Error with the same
// Status whatever its message.
var (
	ErrInvalidHandle   error = &Error{Status: StatusInvalidHandle}
	ErrNullPointer     error = &Error{Status: StatusNullPointer}
	ErrOutOfRange      error = &Error{Status: StatusOutOfRange}
	ErrOverflow        error = &Error{Status: StatusOverflow}
	ErrTooLarge        error = &Error{Status: StatusTooLarge}
	ErrLimitReached    error = &Error{Status: StatusLimitReached}
	ErrPanic           error = &Error{Status: StatusPanic}
	ErrAllocFailed     error = &Error{Status: StatusAllocFailed}
	ErrTableFull       error = &Error{Status: StatusTableFull}
	ErrInvalidArgument error = &Error{Status: StatusInvalidArgument}
	ErrCallbackFailed  error = &Error{Status: StatusCallbackFailed}
	ErrCallbackPanic   error = &Error{Status: StatusCallbackPanic}
	ErrCancelled       error = &Error{Status: StatusCancelled}
	// ErrClosed also reports a use of a Buffer after its Close.
	ErrClosed      error = &Error{Status: StatusClosed}
	ErrQueueFull   error = &Error{Status: StatusQueueFull}
	ErrUnsupported error = &Error{Status: StatusUnsupported}
	// Regions (region.go).
	ErrPeerGone         error = &Error{Status: StatusPeerGone}
	ErrCorrupt          error = &Error{Status: StatusCorrupt}
	ErrBusy             error = &Error{Status: StatusBusy}
	ErrNotFound         error = &Error{Status: StatusNotFound}
	ErrPermissionDenied error = &Error{Status: StatusPermissionDenied}
	ErrSystemError      error = &Error{Status: StatusSystemError}
	ErrRegionFull       error = &Error{Status: StatusRegionFull}
)

// statusErr turns a status returned by the C ABI into an error: nil for FERRY_STATUS_OK, else an
// *Error carrying the status and its message.
func statusErr(st C.FerryStatus) error {
	if st == C.FERRY_STATUS_OK {
		return nil
	}
	s := Status(st)
	return &Error{Status: s, Msg: s.Message()}
}

// errClosed is returned by Buffer methods called after Close.
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
