package ferry

import (
	"errors"
	"fmt"
	"testing"
)

// The Go list (status_gen.go) is generated from the same list as the library's; this checks the
// library linked now agrees: same messages, and the same number of statuses.
func TestStatusMessagesMatchTheLibrary(t *testing.T) {
	for s := StatusOK; s < numStatuses; s++ {
		got, err := libStatusMessage(s)
		if err != nil {
			t.Fatalf("%v: %v", s, err)
		}
		if got != s.Message() {
			t.Errorf("status %d (%v): Go message %q, library message %q", s, s, s.Message(), got)
		}
	}
	if _, err := libStatusMessage(numStatuses); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("status %d, past the Go list: %v, want ErrInvalidArgument (the library has more statuses)", numStatuses, err)
	}
	if got := Status(99).String(); got != "Status(99)" {
		t.Errorf("String of an unknown status = %q", got)
	}
	if got := Status(99).Message(); got != "unknown status" {
		t.Errorf("Message of an unknown status = %q", got)
	}
	if got := StatusInvalidHandle.String(); got != "INVALID_HANDLE" {
		t.Errorf("StatusInvalidHandle.String() = %q", got)
	}
}

func TestErrorsMatchSentinelsByStatus(t *testing.T) {
	if statusSentinels[StatusOK] != nil {
		t.Error("StatusOK has a sentinel error")
	}
	for s := StatusOK + 1; s < numStatuses; s++ {
		sentinel := statusSentinels[s]
		var se *Error
		if !errors.As(sentinel, &se) || se.Status != s {
			t.Fatalf("sentinel of %v is %#v", s, sentinel)
		}
		err := fmt.Errorf("wrapped: %w", &Error{Status: s, Msg: "specific"})
		if !errors.Is(err, sentinel) {
			t.Errorf("%v does not match its sentinel", s)
		}
		for s2 := StatusOK + 1; s2 < numStatuses; s2++ {
			if s2 != s && errors.Is(err, statusSentinels[s2]) {
				t.Errorf("%v matches the sentinel of %v", s, s2)
			}
		}
		var fe *Error
		if !errors.As(err, &fe) || fe.Status != s {
			t.Errorf("errors.As on %v gave %v", s, fe)
		}
	}
	if statusErr(0) != nil {
		t.Error("statusErr(OK) is not nil")
	}
	if got := ErrLimitReached.Error(); got != "ferry: live-byte limit reached" {
		t.Errorf("sentinel message %q", got)
	}
	if !errors.Is(errClosed, ErrClosed) {
		t.Error("a use after Close does not match ErrClosed")
	}
}
