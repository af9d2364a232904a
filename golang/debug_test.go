//go:build ferrydebug

package ferry

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

const debugChildEnv = "FERRY_DEBUG_CHILD"

// TestDebugModeCatchesUseAfterFree runs two mistakes in child processes (a fault kills the
// process, so it cannot happen in this one) and checks that each died of a memory fault instead of
// reading freed memory: a slice from Bytes used after Close, and a slice used after its Buffer
// became unreachable (a missing runtime.KeepAlive).
func TestDebugModeCatchesUseAfterFree(t *testing.T) {
	if mode := os.Getenv(debugChildEnv); mode != "" {
		runDebugChild(mode)
		return
	}
	for _, mode := range []string{"after-close", "missing-keepalive"} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestDebugModeCatchesUseAfterFree$", "-test.count=1")
			cmd.Env = append(os.Environ(), debugChildEnv+"="+mode)
			out, err := cmd.CombinedOutput()
			text := string(out)
			if strings.Contains(text, "NOT CAUGHT") {
				t.Fatalf("the child read freed memory without faulting:\n%s", text)
			}
			if err == nil {
				t.Fatalf("the child exited cleanly:\n%s", text)
			}
			if !strings.Contains(text, "SIGSEGV") || !strings.Contains(text, "unexpected fault address") {
				t.Fatalf("the child failed, but not with a memory fault (%v):\n%s", err, text)
			}
			first, _, _ := strings.Cut(text, "\n\n")
			t.Logf("child died as expected (%v): %s", err, first)
		})
	}
}

func runDebugChild(mode string) {
	switch mode {
	case "after-close":
		b, err := New(4096)
		if err != nil {
			panic(err)
		}
		p := b.Bytes()
		p[0] = 42
		b.Close()
		fmt.Println("NOT CAUGHT: read", p[0], "after Close")
	case "missing-keepalive":
		p := leakBytes()
		other, err := New(1)
		if err != nil {
			panic(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			_ = other.Len()
			_, _ = other.CopyBytes() // forces a collection in ferrydebug builds
			time.Sleep(time.Millisecond)
			if p[0] != 7 {
				fmt.Println("NOT CAUGHT: the byte changed to", p[0])
				os.Exit(0)
			}
		}
		fmt.Println("NOT CAUGHT: the slice stayed readable for 5s after its Buffer became unreachable")
	}
	os.Exit(0)
}

// leakBytes returns a slice from Bytes and drops the Buffer: the bug a KeepAlive would prevent.
//
//go:noinline
func leakBytes() []byte {
	b, err := New(4096)
	if err != nil {
		panic(err)
	}
	p := b.Bytes()
	p[0] = 7
	return p
}
