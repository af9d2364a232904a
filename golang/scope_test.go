package ferry

import (
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/ferry/ferry/golang/internal/abitest"
)

// checkClosedLikeClose asserts that b behaves as after its own Close.
func checkClosedLikeClose(t *testing.T, b *Buffer) {
	t.Helper()
	if b.ID() != 0 || b.Len() != 0 {
		t.Errorf("closed scoped buffer: ID %d Len %d", b.ID(), b.Len())
	}
	if err := b.View(func([]byte) { t.Error("View ran fn on a closed buffer") }); !errors.Is(err, ErrClosed) {
		t.Errorf("View after scope Close: %v", err)
	}
	if _, err := b.CopyBytes(); !errors.Is(err, ErrClosed) {
		t.Errorf("CopyBytes after scope Close: %v", err)
	}
	if _, err := b.Share(); !errors.Is(err, ErrClosed) {
		t.Errorf("Share after scope Close: %v", err)
	}
	if _, err := b.Detach(); !errors.Is(err, ErrClosed) {
		t.Errorf("Detach after scope Close: %v", err)
	}
	func() {
		defer func() {
			r := recover()
			err, _ := r.(error)
			if !errors.Is(err, ErrClosed) {
				t.Errorf("Bytes after scope Close: recovered %v, want a panic matching ErrClosed", r)
			}
		}()
		_ = b.Bytes()
	}()
	if err := b.Close(); err != nil {
		t.Errorf("Close after scope Close: %v", err)
	}
}

func TestScopeCloseReleasesEveryBuffer(t *testing.T) {
	base := mustStats(t)
	s := NewScope()
	var bufs []*Buffer
	for i := range 100 {
		var b *Buffer
		var err error
		if i%2 == 0 {
			b, err = s.New(i + 1)
		} else {
			b, err = s.Copy([]byte{byte(i), 2, 3})
		}
		if err != nil {
			t.Fatal(err)
		}
		if b.Len() == 0 || b.ID() == 0 {
			t.Fatalf("buffer %d: Len %d ID %d", i, b.Len(), b.ID())
		}
		b.Bytes()[0] = byte(i)
		bufs = append(bufs, b)
	}
	if got := bufs[3].Bytes(); got[0] != 3 || got[1] != 2 {
		t.Fatalf("Copy's bytes: %v", got)
	}
	mid := mustStats(t)
	if d := mid.LiveIDs - base.LiveIDs; d != 100 {
		t.Fatalf("live ids grew by %d, want 100", d)
	}
	wantBytes := int64(0)
	for _, b := range bufs {
		wantBytes += int64(b.Len())
	}
	if d := mid.TrackedBytes - base.TrackedBytes; d != wantBytes {
		t.Fatalf("tracked bytes grew by %d, want %d", d, wantBytes)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	after := mustStats(t)
	if after.LiveIDs != base.LiveIDs || after.LiveBytes != base.LiveBytes || after.TrackedBytes != base.TrackedBytes {
		t.Fatalf("after scope Close: %+v, want the counters of %+v", after, base)
	}
	for _, b := range bufs {
		checkClosedLikeClose(t, b)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.New(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("New after Close: %v", err)
	}
	if _, err := s.Copy([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Copy after Close: %v", err)
	}
	if st := mustStats(t); st.LiveIDs != base.LiveIDs {
		t.Fatalf("a refused New or Copy left %d ids behind", st.LiveIDs-base.LiveIDs)
	}
}

// Buffers closed early, detached or leased when the scope closes are each released exactly once.
func TestScopeEarlyCloseDetachAndLease(t *testing.T) {
	base := mustStats(t)
	s := NewScope()
	a, b, c, d := mustScoped(t, s, 10), mustScoped(t, s, 20), mustScoped(t, s, 30), mustScoped(t, s, 40)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	id, err := b.Detach()
	if err != nil {
		t.Fatal(err)
	}
	if st := mustStats(t); st.LiveIDs-base.LiveIDs != 3 || st.TrackedBytes-base.TrackedBytes != 70 {
		t.Fatalf("after an early Close and a Detach: %d ids, %d tracked bytes; want 3 and 70",
			st.LiveIDs-base.LiveIDs, st.TrackedBytes-base.TrackedBytes)
	}
	// c is leased by a View while the scope closes: its bytes stay readable until the View returns.
	err = c.View(func(p []byte) {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		p[0] = 1 // still valid: the lease holds the id
		if c.ID() != 0 {
			t.Error("c still answers its id after the scope closed")
		}
		if st := mustStats(t); st.LiveIDs-base.LiveIDs != 2 { // b (detached) and c (leased)
			t.Errorf("inside the View: %d ids live, want 2", st.LiveIDs-base.LiveIDs)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	checkClosedLikeClose(t, d)
	checkClosedLikeClose(t, c)
	if st := mustStats(t); st.LiveIDs-base.LiveIDs != 1 || st.TrackedBytes != base.TrackedBytes {
		t.Fatalf("after the View: %d ids, %d tracked bytes; want the detached id only",
			st.LiveIDs-base.LiveIDs, st.TrackedBytes-base.TrackedBytes)
	}
	// The detached id is the caller's: the scope did not release it.
	if st := abitest.Release(id); st != 0 {
		t.Fatalf("release of the detached id: %v", Status(st))
	}
	if st := mustStats(t); st.LiveIDs != base.LiveIDs || st.LiveBytes != base.LiveBytes {
		t.Fatalf("leak: %+v vs %+v", st, base)
	}
}

func mustScoped(tb testing.TB, s *Scope, n int) *Buffer {
	tb.Helper()
	b, err := s.New(n)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestScopeAdopt(t *testing.T) {
	base := mustStats(t)
	id, ptr, n := rawID(t, 16)
	s := NewScope()
	if _, err := s.Adopt(id, unsafe.Add(ptr, 1), n); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Adopt with a wrong view: %v", err)
	}
	b, err := s.Adopt(id, ptr, n)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AdoptID(id); !errors.Is(err, ErrInvalidHandle) {
		t.Fatalf("a second owner of a scoped id: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkClosedLikeClose(t, b)
	id2, ptr2, n2 := rawID(t, 8)
	if _, err := s.Adopt(id2, ptr2, n2); !errors.Is(err, ErrClosed) {
		t.Fatalf("Adopt after Close: %v", err)
	}
	// The refused id is still the caller's, and unclaimed.
	a, err := AdoptID(id2)
	if err != nil {
		t.Fatalf("the id a closed scope refused: %v", err)
	}
	a.Close()
	if st := mustStats(t); st.LiveIDs != base.LiveIDs {
		t.Fatalf("%d ids leaked", st.LiveIDs-base.LiveIDs)
	}
}

// rawID makes an id from C (nobody's claim) and returns it with its view.
func rawID(t *testing.T, n int) (uint64, unsafe.Pointer, int) {
	t.Helper()
	id, st := abitest.NewID(n)
	if st != 0 {
		t.Fatal(Status(st))
	}
	b, err := AdoptID(id)
	if err != nil {
		t.Fatal(err)
	}
	ptr := unsafe.Pointer(unsafe.SliceData(b.Bytes()))
	if _, err := b.Detach(); err != nil {
		t.Fatal(err)
	}
	return id, ptr, n
}

// The scope's one cleanup releases the Buffers of a dropped scope, and only once the scope and
// every Buffer of it are unreachable: one Buffer kept holds the whole scope.
func TestScopeBackstop(t *testing.T) {
	base := mustStats(t)
	dropScope(t, 50, -1)
	waitFor(t, 20*time.Second, "the dropped scope's buffers released", func() bool {
		runtime.GC()
		st := mustStats(t)
		return st.LiveIDs == base.LiveIDs && st.TrackedBytes == base.TrackedBytes &&
			st.CleanupReleases >= base.CleanupReleases+50
	})
	kept := dropScope(t, 50, 25)
	for range 3 {
		runtime.GC()
		flushReleases()
	}
	if got := kept.Bytes(); got[0] != 25 {
		t.Fatalf("kept buffer reads %v", got)
	}
	if st := mustStats(t); st.LiveIDs != base.LiveIDs+50 {
		t.Fatalf("a scope with a reachable buffer: %d live ids over base, want all 50", st.LiveIDs-base.LiveIDs)
	}
	if err := kept.Close(); err != nil {
		t.Fatal(err)
	}
	kept = nil
	waitFor(t, 20*time.Second, "the scope of the last buffer collected", func() bool {
		runtime.GC()
		st := mustStats(t)
		return st.LiveIDs == base.LiveIDs && st.TrackedBytes == base.TrackedBytes
	})
}

// dropScope fills a scope with n buffers and drops it; it returns the keep-th buffer (none for -1),
// marked with its index.
//
//go:noinline
func dropScope(t *testing.T, n, keep int) *Buffer {
	s := NewScope()
	var kept *Buffer
	for i := range n {
		b := mustScoped(t, s, 32)
		if i == keep {
			b.Bytes()[0] = byte(i)
			kept = b
		}
	}
	return kept
}

// Scoped and unscoped buffers, early Closes and a scope Close from several goroutines at once
// (run under -race): every id is released exactly once.
func TestScopeConcurrent(t *testing.T) {
	base := mustStats(t)
	s := NewScope()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				b, err := s.New(8)
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				if (i+g)%3 == 0 {
					b.Close()
				} else {
					_ = b.View(func(p []byte) { p[0] = byte(i) })
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 100 {
			runtime.Gosched()
		}
		s.Close()
	}()
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if st := mustStats(t); st.LiveIDs != base.LiveIDs || st.TrackedBytes != base.TrackedBytes || st.LiveBytes != base.LiveBytes {
		t.Fatalf("after the scope: %+v, want the counters of %+v", st, base)
	}
}

// The heap profile sees scoped Buffers made and freed, by scope Close and by early Close.
func TestScopeHeapProfile(t *testing.T) {
	defer SetHeapProfileRate(SetHeapProfileRate(1))
	open0 := openSamples()
	s := NewScope()
	a := mustScoped(t, s, 100)
	mustScoped(t, s, 200)
	if d := openSamples() - open0; d != 2 {
		t.Fatalf("%d sampled buffers open, want 2", d)
	}
	a.Close()
	if d := openSamples() - open0; d != 1 {
		t.Fatalf("after an early Close: %d sampled buffers open, want 1", d)
	}
	s.Close()
	if d := openSamples() - open0; d != 0 {
		t.Fatalf("after the scope's Close: %d sampled buffers open, want 0", d)
	}
}

func openSamples() int {
	heapProf.mu.Lock()
	defer heapProf.mu.Unlock()
	n := 0
	for _, bk := range heapProf.buckets {
		n += int(bk.open)
	}
	return n
}

// Item 2 of issue 12: Close makes no crossing, yet ReadStats right after it shows the bytes gone.
func TestReadStatsRightAfterClose(t *testing.T) {
	base := mustStats(t)
	b := mustNew(t, 12345)
	closeArmed.Store(true) // no timer flushes before ReadStats (ReadStats' flush re-arms)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if closePending.Load() == 0 && !debugMode {
		t.Fatal("Close released at once: the id did not join a close batch")
	}
	st := mustStats(t)
	if st.LiveIDs != base.LiveIDs || st.LiveBytes != base.LiveBytes || st.TrackedBytes != base.TrackedBytes {
		t.Fatalf("ReadStats right after Close: %+v, want the counters of %+v", st, base)
	}
}

// A create that the live-byte limit refuses because closed Buffers still wait in a close batch
// succeeds after the flush, without a garbage collection.
func TestLimitRefusalFlushesCloses(t *testing.T) {
	if debugMode {
		t.Skip("ferrydebug builds release at Close")
	}
	// No soft limit (so no collection is triggered by the bytes), and a core limit of 16 MiB.
	defer SetSoftLimit(SetSoftLimit(0))
	const hard = 16 << 20
	setCoreLimit(hard)
	collections0 := collections.Load()
	for i := range 5 {
		b := mustNew(t, hard-(1<<20))
		closeArmed.Store(true) // no timer flushes: only the refused create's relief does
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if closePending.Load() == 0 {
			t.Fatalf("round %d: the Close did not join a close batch", i)
		}
	}
	if n := collections.Load() - collections0; n != 0 {
		t.Fatalf("%d collections: a refusal was relieved by collecting, not by flushing the closes", n)
	}
}

// A close batch that nothing flushes goes to Rust by itself, closeDelay after the Close.
func TestCloseBatchFlushesByTime(t *testing.T) {
	if debugMode {
		t.Skip("ferrydebug builds release at Close")
	}
	flushCloses()
	before := abitest.LiveIDs()
	b, c := mustNew(t, 100), mustNew(t, 100)
	closeArmed.Store(true) // b's Close arms no timer
	b.Close()
	if closePending.Load() == 0 || abitest.LiveIDs() != before+2 {
		t.Fatal("the Close did not join a close batch")
	}
	closeArmed.Store(false)
	c.Close() // arms the timer
	before += 2
	waitFor(t, 10*time.Second, "the close batch released by its timer", func() bool {
		return closePending.Load() == 0
	})
	if got := abitest.LiveIDs(); got > before-2 {
		t.Fatalf("%d live ids after the timer's flush, want at most %d", got, before-2)
	}
}

// A full close batch goes to Rust at once, without waiting for the timer.
func TestCloseBatchFlushesByCount(t *testing.T) {
	if debugMode {
		t.Skip("ferrydebug builds release at Close")
	}
	flushCloses()
	closeArmed.Store(true) // keep the timer out of it: no Close arms it now
	defer flushCloses()
	crossings := closeCrossings.Load()
	const n = trackShards * closeBatch // some shard fills, wherever the Buffers lie
	bufs := make([]*Buffer, n)
	for i := range bufs {
		bufs[i] = mustNew(t, 8)
	}
	for _, b := range bufs {
		b.Close()
	}
	if got := closeCrossings.Load() - crossings; got < 1 {
		t.Fatalf("%d closes made no crossing: no full batch was sent", n)
	}
	if p := closePending.Load(); p >= n {
		t.Fatalf("%d of %d closed ids still pending", p, n)
	}
}
