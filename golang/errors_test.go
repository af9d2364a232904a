package ferry

import (
	"errors"
	"fmt"
	"testing"
)

func TestStatusMessagesMatchTheLibrary(t *testing.T) {
	for s := StatusOK; s <= StatusRegionFull; s++ {
		got, err := libStatusMessage(s)
		if err != nil {
			t.Fatalf("%v: %v", s, err)
		}
		if got != s.Message() {
			t.Errorf("status %d (%v): Go message %q, library message %q", s, s, s.Message(), got)
		}
	}
	if _, err := libStatusMessage(StatusRegionFull + 1); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("unknown status: %v, want ErrInvalidArgument", err)
	}
	if got := Status(99).String(); got != "Status(99)" {
		t.Errorf("String of an unknown status = %q", got)
	}
}

func TestErrorsMatchSentinelsByStatus(t *testing.T) {
	sentinels := map[Status]error{
		StatusInvalidHandle: ErrInvalidHandle, StatusNullPointer: ErrNullPointer,
		StatusOutOfRange: ErrOutOfRange, StatusOverflow: ErrOverflow, StatusTooLarge: ErrTooLarge,
		StatusLimitReached: ErrLimitReached, StatusPanic: ErrPanic, StatusAllocFailed: ErrAllocFailed,
		StatusTableFull: ErrTableFull, StatusInvalidArgument: ErrInvalidArgument,
		StatusCallbackFailed: ErrCallbackFailed, StatusCallbackPanic: ErrCallbackPanic,
		StatusCancelled: ErrCancelled, StatusClosed: ErrClosed, StatusQueueFull: ErrQueueFull,
		StatusUnsupported: ErrUnsupported, StatusPeerGone: ErrPeerGone, StatusCorrupt: ErrCorrupt,
		StatusBusy: ErrBusy, StatusNotFound: ErrNotFound, StatusPermissionDenied: ErrPermissionDenied,
		StatusSystemError: ErrSystemError, StatusRegionFull: ErrRegionFull,
	}
	if len(sentinels) != int(StatusRegionFull) {
		t.Fatalf("%d sentinels for %d failure statuses", len(sentinels), StatusRegionFull)
	}
	for s, sentinel := range sentinels {
		err := fmt.Errorf("wrapped: %w", &Error{Status: s, Msg: "specific"})
		if !errors.Is(err, sentinel) {
			t.Errorf("%v does not match its sentinel", s)
		}
		for s2, other := range sentinels {
			if s2 != s && errors.Is(err, other) {
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
}
