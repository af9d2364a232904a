package ferry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/ferry/ferry/golang/internal/abitest"
)

func mustCopy(tb testing.TB, p []byte) *Buffer {
	tb.Helper()
	b, err := Copy(p)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func mustStats(tb testing.TB) Stats {
	tb.Helper()
	st, err := ReadStats()
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

// baseStats returns the stats a leak test compares its end with, once what earlier tests left
// behind has settled: async jobs still in flight (a cancelled call's late result holds an id until
// the poller releases it) and Buffers dropped without Close (live until a collection runs their
// cleanups). A base taken before that is too high, and the test then waits for a count it never
// sees again.
func baseStats(t *testing.T) Stats {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for mustCallbackStats(t).InFlight > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	return settle(t, time.Until(deadline))
}

func TestNewCopyBytesClose(t *testing.T) {
	base := mustStats(t)
	b := mustCopy(t, []byte("hello ferry"))
	if got := string(b.Bytes()); got != "hello ferry" {
		t.Fatalf("Bytes = %q", got)
	}
	if b.Len() != 11 || b.ID() == 0 {
		t.Fatalf("Len %d ID %d", b.Len(), b.ID())
	}
	z := mustNew(t, 4096)
	if !bytes.Equal(z.Bytes(), make([]byte, 4096)) {
		t.Fatal("New is not zeroed")
	}
	if st := mustStats(t); st.LiveIDs != base.LiveIDs+2 {
		t.Fatalf("live ids %d, want %d", st.LiveIDs, base.LiveIDs+2)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	if st := mustStats(t); st.LiveIDs != base.LiveIDs {
		t.Fatalf("live ids %d after Close, want %d", st.LiveIDs, base.LiveIDs)
	}
}

func TestBytesIsZeroCopyAndWritable(t *testing.T) {
	b := mustNew(t, 64)
	defer b.Close()
	p := b.Bytes()
	copy(p, "written through Bytes")
	q := b.Bytes()
	if unsafe.SliceData(p) != unsafe.SliceData(q) {
		t.Fatal("two Bytes calls gave different memory")
	}
	got, err := b.CopyBytes()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(got), "written through Bytes") {
		t.Fatalf("CopyBytes = %q", got)
	}
	got[0] = 'X'
	if p[0] != 'w' {
		t.Fatal("CopyBytes did not copy")
	}
}

func TestEmptyBuffers(t *testing.T) {
	for _, mk := range []func() (*Buffer, error){
		func() (*Buffer, error) { return New(0) },
		func() (*Buffer, error) { return Copy(nil) },
		func() (*Buffer, error) { return Copy([]byte{}) },
	} {
		b, err := mk()
		if err != nil {
			t.Fatal(err)
		}
		if b.Len() != 0 || b.Bytes() != nil || b.ID() == 0 {
			t.Fatalf("empty buffer: len %d bytes %v id %d", b.Len(), b.Bytes(), b.ID())
		}
		if n, err := b.WriteTo(io.Discard); n != 0 || err != nil {
			t.Fatalf("WriteTo of empty: %d %v", n, err)
		}
		if n, err := b.ReadAt(make([]byte, 1), 0); n != 0 || err != io.EOF {
			t.Fatalf("ReadAt of empty: %d %v", n, err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := New(-1); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("New(-1): %v", err)
	}
}

func TestAccessorsAfterClose(t *testing.T) {
	b := mustCopy(t, []byte("abc"))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if b.Len() != 0 || b.ID() != 0 {
		t.Fatalf("after Close: Len %d ID %d", b.Len(), b.ID())
	}
	closedErrs := map[string]error{}
	closedErrs["View"] = b.View(func([]byte) { t.Error("View called fn on a closed buffer") })
	_, closedErrs["CopyBytes"] = b.CopyBytes()
	_, closedErrs["ReadAt"] = b.ReadAt(make([]byte, 1), 0)
	_, closedErrs["WriteAt"] = b.WriteAt([]byte("x"), 0)
	_, closedErrs["WriteTo"] = b.WriteTo(io.Discard)
	_, closedErrs["Slice"] = b.Slice(0, 1)
	_, closedErrs["Share"] = b.Share()
	_, closedErrs["Detach"] = b.Detach()
	for name, err := range closedErrs {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	func() {
		defer func() {
			r := recover()
			err, ok := r.(error)
			if !ok || !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "Bytes called on a closed Buffer") {
				t.Errorf("Bytes after Close panicked with %v, want an ErrClosed error", r)
			}
		}()
		_ = b.Bytes()
	}()
}

func TestSliceAndShareOutliveTheParent(t *testing.T) {
	base := mustStats(t)
	b := mustCopy(t, []byte("0123456789"))
	s, err := b.Slice(2, 5)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := b.Share()
	if err != nil {
		t.Fatal(err)
	}
	if string(s.Bytes()) != "23456" || string(sh.Bytes()) != "0123456789" {
		t.Fatalf("slice %q share %q", s.Bytes(), sh.Bytes())
	}
	if s.ID() == b.ID() || sh.ID() == b.ID() || s.ID() == sh.ID() {
		t.Fatal("slice and share must have ids of their own")
	}
	b.Bytes()[3] = 'X'
	if string(s.Bytes()) != "2X456" {
		t.Fatalf("slice does not share memory: %q", s.Bytes())
	}
	b.Close()
	if st := mustStats(t); st.LiveBytes != base.LiveBytes+10 {
		t.Fatalf("live bytes %d with two ids left, want %d", st.LiveBytes, base.LiveBytes+10)
	}
	if string(s.Bytes()) != "2X456" {
		t.Fatalf("slice after parent Close: %q", s.Bytes())
	}
	sh.Close()
	s.Close()
	if st := mustStats(t); st.LiveBytes != base.LiveBytes || st.LiveIDs != base.LiveIDs {
		t.Fatalf("after closing all: %+v, base %+v", st, base)
	}
}

func TestSliceChecksRanges(t *testing.T) {
	b := mustNew(t, 10)
	defer b.Close()
	for _, c := range []struct {
		off, n int
		want   error
	}{{11, 0, ErrOutOfRange}, {5, 6, ErrOutOfRange}, {-1, 2, ErrOutOfRange}, {0, -2, ErrOutOfRange}} {
		if _, err := b.Slice(c.off, c.n); !errors.Is(err, c.want) {
			t.Errorf("Slice(%d, %d): %v, want %v", c.off, c.n, err, c.want)
		}
	}
	e, err := b.Slice(10, 0)
	if err != nil || e.Len() != 0 || e.Bytes() != nil {
		t.Fatalf("empty slice at the end: %v %v", e, err)
	}
	e.Close()
}

func TestReadAtWriteAt(t *testing.T) {
	b := mustNew(t, 8)
	defer b.Close()
	if n, err := b.WriteAt([]byte("abcd"), 2); n != 4 || err != nil {
		t.Fatalf("WriteAt: %d %v", n, err)
	}
	if n, err := b.WriteAt([]byte("xyz"), 6); n != 2 || !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("WriteAt past the end: %d %v", n, err)
	}
	if _, err := b.WriteAt([]byte("x"), 9); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("WriteAt beyond: %v", err)
	}
	p := make([]byte, 4)
	if n, err := b.ReadAt(p, 2); n != 4 || err != nil || string(p) != "abcd" {
		t.Fatalf("ReadAt: %d %v %q", n, err, p)
	}
	if n, err := b.ReadAt(p, 6); n != 2 || err != io.EOF || string(p[:2]) != "xy" {
		t.Fatalf("ReadAt at the end: %d %v %q", n, err, p[:n])
	}
	if _, err := b.ReadAt(p, -1); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("ReadAt(-1): %v", err)
	}
	all, err := io.ReadAll(io.NewSectionReader(b, 0, int64(b.Len())))
	if err != nil || string(all) != "\x00\x00abcdxy" {
		t.Fatalf("SectionReader: %q %v", all, err)
	}
}

func TestWriteToAFile(t *testing.T) {
	payload := bytes.Repeat([]byte("ferry "), 10000)
	b := mustCopy(t, payload)
	defer b.Close()
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := b.WriteTo(f)
	if err != nil || n != int64(len(payload)) {
		t.Fatalf("WriteTo: %d %v", n, err)
	}
	f.Close()
	got, err := os.ReadFile(f.Name())
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("file content differs (%d bytes, %v)", len(got), err)
	}
}

func TestViewDefersCloseUntilItReturns(t *testing.T) {
	base := mustStats(t)
	b := mustCopy(t, []byte("leased"))
	err := b.View(func(p []byte) {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
		if st := mustStats(t); st.LiveIDs != base.LiveIDs+1 {
			t.Errorf("Close inside View released at once: live ids %d", st.LiveIDs)
		}
		if string(p) != "leased" {
			t.Errorf("View bytes after Close: %q", p)
		}
		if b.View(func([]byte) {}) == nil {
			t.Error("a new View after Close succeeded")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if st := mustStats(t); st.LiveIDs != base.LiveIDs {
		t.Fatalf("id not released when the View returned: live ids %d", st.LiveIDs)
	}
}

func TestViewReleasesTheLeaseWhenFnPanics(t *testing.T) {
	base := mustStats(t)
	b := mustNew(t, 1)
	func() {
		defer func() { _ = recover() }()
		_ = b.View(func([]byte) { panic("boom") })
	}()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if st := mustStats(t); st.LiveIDs != base.LiveIDs {
		t.Fatalf("lease leaked by a panicking View: live ids %d", st.LiveIDs)
	}
}

func TestDetachAndAdopt(t *testing.T) {
	base := mustStats(t)
	b := mustCopy(t, []byte("handed over"))
	p := unsafe.Pointer(unsafe.SliceData(b.Bytes()))
	id, err := b.Detach()
	if err != nil || id == 0 {
		t.Fatalf("Detach: %d %v", id, err)
	}
	if _, err := b.Detach(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Detach: %v", err)
	}
	b.Close() // no effect: the id is no longer the Buffer's
	if st := mustStats(t); st.LiveIDs != base.LiveIDs+1 {
		t.Fatalf("Detach or Close released the id: live ids %d", st.LiveIDs)
	}
	if _, err := Adopt(id, p, 5); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Adopt with a wrong length: %v", err)
	}
	if _, err := Adopt(id, nil, 11); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Adopt with a wrong pointer: %v", err)
	}
	a, err := Adopt(id, p, 11)
	if err != nil {
		t.Fatal(err)
	}
	if string(a.Bytes()) != "handed over" || a.ID() != id {
		t.Fatalf("adopted %q id %d", a.Bytes(), a.ID())
	}
	a.Close()
	if _, err := AdoptID(id); !errors.Is(err, ErrInvalidHandle) {
		t.Fatalf("AdoptID of a released id: %v", err)
	}
	if _, err := AdoptID(0); !errors.Is(err, ErrInvalidHandle) {
		t.Fatalf("AdoptID(0): %v", err)
	}
	if st := mustStats(t); st.LiveIDs != base.LiveIDs {
		t.Fatalf("live ids %d, want %d", st.LiveIDs, base.LiveIDs)
	}
}

func TestDetachRefusesWhileLeased(t *testing.T) {
	b := mustNew(t, 4)
	defer b.Close()
	_ = b.View(func([]byte) {
		if _, err := b.Detach(); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Detach inside View: %v", err)
		}
	})
}

func TestCloseAfterOutsideReleaseReportsIt(t *testing.T) {
	b := mustNew(t, 4)
	id, err := b.Detach()
	if err != nil {
		t.Fatal(err)
	}
	a, err := AdoptID(id)
	if err != nil {
		t.Fatal(err)
	}
	// C code releases the id behind the Buffer's back (an ownership bug in the C code: Go code
	// cannot do this, see TestOneBufferPerID).
	if st := abitest.Release(id); st != 0 {
		t.Fatal(Status(st))
	}
	if err := a.Close(); !errors.Is(err, ErrInvalidHandle) {
		t.Fatalf("Close of an id released elsewhere: %v", err)
	}
	runtime.KeepAlive(a)
}

// TestOneBufferPerID is issue 10, item 6: an id that a live Buffer owns cannot be adopted again,
// so integers alone (no unsafe) can never make two Buffers own one id, where closing one would
// free the memory the other reads. Before, every adoption below was accepted.
func TestOneBufferPerID(t *testing.T) {
	base := baseStats(t)
	b := mustCopy(t, []byte("owned"))
	s, err := b.Slice(1, 3)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := b.Share()
	if err != nil {
		t.Fatal(err)
	}
	echo, err := Echo(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	for name, owned := range map[string]*Buffer{"New": b, "Slice": s, "Share": sh, "Echo result": echo} {
		if a, err := AdoptID(owned.ID()); !errors.Is(err, ErrInvalidHandle) {
			t.Fatalf("AdoptID of a %s Buffer's id: %v, %v", name, a, err)
		}
		if a, err := Adopt(owned.ID(), unsafe.Pointer(unsafe.SliceData(owned.Bytes())), owned.Len()); !errors.Is(err, ErrInvalidHandle) {
			t.Fatalf("Adopt of a %s Buffer's id: %v, %v", name, a, err)
		}
	}
	// The Buffer a callback gets is its own; its id cannot be adopted inside the callback either.
	cb := mustCallback(t, func(in Payload) (Payload, error) {
		if _, err := AdoptID(in.Buffer.ID()); !errors.Is(err, ErrInvalidHandle) {
			return Payload{}, fmt.Errorf("AdoptID of the callback's input: %v", err)
		}
		return Payload{Value: 1}, nil
	})
	defer cb.Close()
	if _, err := cb.Invoke(Payload{Buffer: b}); err != nil {
		t.Fatal(err)
	}
	if _, err := cb.CallAsync(context.Background(), Payload{Buffer: b}); err != nil {
		t.Fatal(err)
	}
	// An id made by C code is adopted once; the second adoption fails, and reading and closing
	// the first stays safe.
	id, st := abitest.NewID(8)
	if st != 0 {
		t.Fatal(Status(st))
	}
	first, err := AdoptID(id)
	if err != nil {
		t.Fatal(err)
	}
	if second, err := AdoptID(id); !errors.Is(err, ErrInvalidHandle) {
		t.Fatalf("second AdoptID: %v, %v", second, err)
	}
	if n := len(first.Bytes()); n != 8 {
		t.Fatalf("adopted %d bytes", n)
	}
	// Detach hands the id on, claim and all: it can be adopted again (once).
	moved, err := first.Detach()
	if err != nil {
		t.Fatal(err)
	}
	again, err := AdoptID(moved)
	if err != nil {
		t.Fatalf("AdoptID after Detach: %v", err)
	}
	// A C callback that hands over an id a Buffer owns (an ownership bug in C) gives the Go caller
	// an error, not a second owner.
	thief, st := abitest.RegisterHandOver(b.ID())
	if st != 0 {
		t.Fatal(Status(st))
	}
	if out, err := InvokeID(thief, Payload{}); !errors.Is(err, ErrInvalidHandle) {
		t.Fatalf("a result that a Buffer owns: %+v, %v", out, err)
	}
	abitest.Unregister(thief)
	if got := string(b.Bytes()); got != "owned" {
		t.Fatalf("b reads %q", got)
	}
	for _, x := range []*Buffer{b, s, sh, echo, again} {
		if err := x.Close(); err != nil {
			t.Fatal(err)
		}
	}
	waitLive(t, base.LiveIDs, 5*time.Second)
}
