//go:build ferry_reliability

package ferry

import (
	"context"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReliabilityFork is issue 10, item 10, from Go: a real fork (not syscall.ForkExec) of a Go
// process whose worker pool is running, with one worker busy and a job waiting. The child, in C
// only, gets a pool of its own: its jobs complete and its shutdown returns (on ferry before issue 10
// the child's pool believed the parent's workers ran: its submits never completed). The parent goes
// on using ferry meanwhile, and its own jobs complete as if nothing happened.
func TestReliabilityFork(t *testing.T) {
	resetPool(t, 1)
	defer resetPool(t, 0)
	ctx := context.Background()
	busy, err := Submit(ctx, Request{Op: opSleep, Arg: 300_000, Value: 1})
	if err != nil {
		t.Fatal(err)
	}
	waiting, err := Submit(ctx, Request{Op: OpEcho, Value: 2})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the worker running the sleep", func() bool { return mustCallbackStats(t).Workers == 1 })

	pid, fd, ok := forkChild()
	if !ok {
		t.Fatal("fork failed")
	}
	// The parent goes on using ferry while the child runs.
	b := mustCopy(t, []byte("parent"))
	for range 50 {
		if sum, err := Checksum(ctx, b); err != nil || sum != fnv64a([]byte("parent")) {
			t.Fatalf("parent checksum after fork: %x, %v", sum, err)
		}
	}
	b.Close()
	for i, f := range []*Future{busy, waiting} {
		if out, err := f.Wait(); err != nil || out.Value != uint64(i+1) {
			t.Fatalf("parent job %d across the fork: %+v, %v", i+1, out, err)
		}
	}

	r := os.NewFile(uintptr(fd), "fork-report")
	defer r.Close()
	report, _ := io.ReadAll(r)
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("child: %s", report)
	if !ws.Exited() || ws.ExitStatus() != 0 || !strings.HasPrefix(string(report), "ok") {
		t.Fatalf("child: %v, %q", ws, report)
	}
}
