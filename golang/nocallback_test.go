package ferry

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/ferry/ferry/golang/internal/abitest"
)

const noCallbackChildEnv = "FERRY_NOCALLBACK_CHILD"

// TestNoCallbackIsEnforced: a C function marked #cgo nocallback that calls back into Go makes the
// Go runtime panic (in a child process: the panic cannot be recovered). So the marks in ffi.go are
// a promise the runtime checks, and each must hold: no marked function can ever call Go.
func TestNoCallbackIsEnforced(t *testing.T) {
	if os.Getenv(noCallbackChildEnv) != "" {
		abitest.CallGoFromNoCallback()
		os.Stdout.WriteString("NOT ENFORCED: the call returned\n")
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoCallbackIsEnforced$", "-test.count=1")
	cmd.Env = append(os.Environ(), noCallbackChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	text := string(out)
	if err == nil || strings.Contains(text, "NOT ENFORCED") {
		t.Fatalf("a nocallback function called Go without a panic (%v):\n%s", err, text)
	}
	const want = "function marked with #cgo nocallback called back into Go"
	if !strings.Contains(text, want) {
		t.Fatalf("the child failed, but not with %q (%v):\n%s", want, err, text)
	}
}

// TestCopyFromStackDoesNotEscape: ferry_go_copy is marked noescape, so a Copy from an array on
// the caller's stack costs no allocation beyond the Buffer's own (New's).
func TestCopyFromStackDoesNotEscape(t *testing.T) {
	if raceEnabled || debugMode {
		t.Skip("allocation counts differ under -race and ferrydebug")
	}
	newAllocs := testing.AllocsPerRun(200, func() {
		b, err := New(64)
		if err != nil {
			t.Fatal(err)
		}
		b.Close()
	})
	copyAllocs := testing.AllocsPerRun(200, func() {
		var a [64]byte
		a[3] = 1
		b, err := Copy(a[:])
		if err != nil {
			t.Fatal(err)
		}
		b.Close()
	})
	if copyAllocs > newAllocs {
		t.Fatalf("Copy from a stack array: %.1f allocations, New: %.1f; the array escaped", copyAllocs, newAllocs)
	}
}
