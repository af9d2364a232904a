//go:build ferry_reliability

package ferry

import (
	"context"
	"sync"
	"syscall"
	"testing"
)

// TestReliabilitySignals uses ferry every way a Go program does (buffers on many goroutines, a Go
// callback called inline and from Rust worker threads, async echo and checksum, pool shutdown) and
// checks that no signal's disposition changed, and that Go's SIGSEGV and SIGBUS handlers (which Go
// needs to turn faults into panics, and which must run on the alternate signal stack) still have
// SA_ONSTACK. Run with -tags ferry_reliability (make test-reliability).
func TestReliabilitySignals(t *testing.T) {
	const nsig = 65
	var before [nsig]sigDisposition
	for s := 1; s < nsig; s++ {
		before[s] = readSigaction(s)
	}
	for _, s := range []syscall.Signal{syscall.SIGSEGV, syscall.SIGBUS} {
		d := before[s]
		if !d.OK || d.Handler == 0 || d.Flags&saOnStack == 0 {
			t.Fatalf("before ferry is used, %v has no Go handler with SA_ONSTACK: %+v", s, d)
		}
	}

	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5000; i++ {
				b, err := New(64 + i%512)
				if err != nil {
					t.Error(err)
					return
				}
				b.Bytes()[0] = byte(i)
				b.Close()
			}
		}()
	}
	wg.Wait()

	cb, err := NewCallback(func(in Payload) (Payload, error) { return Payload{Value: in.Value * 2}, nil })
	if err != nil {
		t.Fatal(err)
	}
	if out, err := cb.Invoke(Payload{Value: 21}); err != nil || out.Value != 42 {
		t.Fatalf("Invoke: %v %v", out, err)
	}
	ctx := context.Background()
	for i := 0; i < 200; i++ {
		if out, err := cb.CallAsync(ctx, Payload{Value: uint64(i)}); err != nil || out.Value != uint64(2*i) {
			t.Fatalf("CallAsync: %v %v", out, err)
		}
	}
	b, err := Copy([]byte("signals"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := Echo(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Checksum(ctx, e); err != nil {
		t.Fatal(err)
	}
	e.Close()
	b.Close()
	cb.Close()

	check := func(when string) {
		t.Helper()
		for s := 1; s < nsig; s++ {
			if d := readSigaction(s); d != before[s] {
				t.Errorf("%s: signal %d (%v) changed: %+v -> %+v", when, s, syscall.Signal(s), before[s], d)
			}
		}
		for _, s := range []syscall.Signal{syscall.SIGSEGV, syscall.SIGBUS} {
			if d := readSigaction(int(s)); d.Flags&saOnStack == 0 {
				t.Errorf("%s: %v lost SA_ONSTACK: %+v", when, s, d)
			}
		}
	}
	check("with ferry's worker threads running")
	if err := ShutdownAsync(); err != nil {
		t.Fatal(err)
	}
	check("after ShutdownAsync")
	t.Logf("%d signals unchanged; SIGSEGV flags %#x, SIGBUS flags %#x (SA_ONSTACK %#x)",
		nsig-1, before[syscall.SIGSEGV].Flags, before[syscall.SIGBUS].Flags, saOnStack)
}
