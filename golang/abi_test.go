package ferry

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// linkedABIEnv names the ABI version a test run expects the linked library to report. Unset, the
// library must match ABIVersion. scripts/abi-mismatch.sh sets it when it links the tests against
// a library deliberately built with another FERRY_ABI_VERSION.
const linkedABIEnv = "FERRY_TEST_LINKED_ABI"

func TestCheckABI(t *testing.T) {
	if err := checkABI(3, 3); err != nil {
		t.Fatalf("checkABI(3, 3) = %v, want nil", err)
	}
	err := checkABI(3, 7)
	if !errors.Is(err, ErrABIMismatch) {
		t.Fatalf("checkABI(3, 7) = %v, does not match ErrABIMismatch", err)
	}
	if errors.Is(err, ErrInvalidHandle) || errors.Is(err, ErrUnsupported) {
		t.Fatalf("an ABI mismatch matches a status sentinel: %v", err)
	}
	var m *ABIMismatchError
	if !errors.As(err, &m) || m.Package != 3 || m.Library != 7 {
		t.Fatalf("checkABI(3, 7) = %#v, want an *ABIMismatchError{Package: 3, Library: 7}", err)
	}
	msg := err.Error()
	for _, want := range []string{"written for ferry ABI version 3", "library has ABI version 7", "libferry.so.3"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
}

// TestLinkedABI checks the library this test binary links. Normally it matches and the package
// works; under scripts/abi-mismatch.sh it does not, and every entry point must refuse with the
// mismatch error (and, returning before any other call, must not crash on the foreign library).
func TestLinkedABI(t *testing.T) {
	want := uint32(ABIVersion)
	if s := os.Getenv(linkedABIEnv); s != "" {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			t.Fatalf("%s=%q: %v", linkedABIEnv, s, err)
		}
		want = uint32(n)
	}
	if got := LinkedABIVersion(); got != want {
		t.Fatalf("the linked library reports ABI version %d, want %d", got, want)
	}
	if want == ABIVersion {
		if abiErr != nil {
			t.Fatalf("matching library, but the package reports %v", abiErr)
		}
		b, err := New(8)
		if err != nil {
			t.Fatal(err)
		}
		b.Close()
		return
	}

	ctx := context.Background()
	calls := map[string]error{}
	_, calls["New"] = New(8)
	_, calls["Copy"] = Copy([]byte("x"))
	_, calls["Adopt"] = Adopt(1, nil, 0)
	_, calls["AdoptID"] = AdoptID(1)
	_, calls["NewCallback"] = NewCallback(func(Payload) (Payload, error) { return Payload{}, nil })
	_, calls["InvokeID"] = InvokeID(1, Payload{})
	_, calls["ReadCallbackStats"] = ReadCallbackStats()
	_, calls["Submit"] = Submit(ctx, Request{Op: OpEcho})
	_, _, _, calls["NewFuture"] = NewFuture(ctx)
	calls["SetWorkers"] = SetWorkers(2)
	calls["ShutdownAsync"] = ShutdownAsync()
	_, calls["ReadStats"] = ReadStats()
	calls["ResetPeak"] = ResetPeak()
	_, calls["CreateRegion"] = CreateRegion(nil)
	_, calls["CreateNamedRegion"] = CreateNamedRegion("ferry-abi-test", nil)
	_, calls["OpenRegion"] = OpenRegion("ferry-abi-test")
	_, calls["ReceiveRegion"] = ReceiveRegion(nil, time.Second) // refused before conn is used
	if n := OpenRegions(); n != 0 {
		t.Errorf("OpenRegions with a library of ABI version %d: %d, want 0", want, n)
	}
	SetSoftLimit(1 << 20) // returns no error; it must not reach the library either
	for name, err := range calls {
		var m *ABIMismatchError
		if !errors.Is(err, ErrABIMismatch) || !errors.As(err, &m) || m.Package != ABIVersion || m.Library != want {
			t.Errorf("%s with a library of ABI version %d: %v, want the ABI mismatch error", name, want, err)
		}
	}
	t.Logf("every entry point refused the library: %v", calls["New"])
}
