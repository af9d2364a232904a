package ferry

import (
	"runtime"
	"testing"
	"time"
)

// waitLive polls, collecting garbage each time, until the live id count is back to want or the
// deadline passes; it returns the last stats read. The leak tests wait for 0: no test in the
// package may leave an id behind once its Buffers are closed or unreachable.
func waitLive(t *testing.T, want uint64, timeout time.Duration) Stats {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := mustStats(t)
		// With no id left, wait for the bytes too: a release removes the id first and frees the
		// memory after (on the releasing thread, or when the last reference goes), so a read in
		// between sees no ids and some bytes.
		if st.LiveIDs == want && (want != 0 || st.LiveBytes == 0) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("live ids %d after %v, want %d (stats %+v)", st.LiveIDs, timeout, want, st)
		}
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNoLeakAfterClose(t *testing.T) {
	base := mustStats(t)
	bufs := make([]*Buffer, 0, 3000)
	for i := range 1000 {
		b := mustNew(t, i%700)
		s, err := b.Slice(0, b.Len()/2)
		if err != nil {
			t.Fatal(err)
		}
		sh, err := b.Share()
		if err != nil {
			t.Fatal(err)
		}
		bufs = append(bufs, b, s, sh)
	}
	for _, b := range bufs {
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	st := waitLive(t, 0, 5*time.Second)
	if st.LiveBytes != 0 {
		t.Fatalf("live bytes %d, want 0", st.LiveBytes)
	}
	if st.CleanupReleases != base.CleanupReleases {
		t.Fatalf("%d cleanups ran for closed buffers", st.CleanupReleases-base.CleanupReleases)
	}
}

func TestNoLeakAfterGCAndReleasesAreBatched(t *testing.T) {
	const n = 2000
	base := mustStats(t)
	for i := range n {
		b := mustNew(t, 64+i%100)
		b.Bytes()[0] = 1
	}
	st := waitLive(t, 0, 10*time.Second)
	if st.LiveBytes != 0 {
		t.Fatalf("live bytes %d, want 0", st.LiveBytes)
	}
	cleanups := st.CleanupReleases - base.CleanupReleases
	crossings := st.ReleaseCrossings - base.ReleaseCrossings
	t.Logf("%d buffers dropped without Close: %d cleanups, %d release crossings", n, cleanups, crossings)
	if cleanups != n {
		t.Fatalf("%d cleanups ran, want %d", cleanups, n)
	}
	if !debugMode && crossings > n/20 {
		t.Fatalf("%d release crossings for %d cleanups: not batched", crossings, n)
	}
	if st.PendingReleases != 0 {
		t.Fatalf("%d releases still pending", st.PendingReleases)
	}
}

func TestTrackedBytesFollowOpenBuffers(t *testing.T) {
	base := mustStats(t)
	a := mustNew(t, 1000)
	b := mustNew(t, 3<<20)
	if got := mustStats(t).TrackedBytes - base.TrackedBytes; got != 1000+3<<20 {
		t.Fatalf("tracked %d more bytes, want %d", got, 1000+3<<20)
	}
	a.Close()
	if _, err := b.Detach(); err != nil {
		t.Fatal(err)
	}
	if got := mustStats(t).TrackedBytes; got != base.TrackedBytes {
		t.Fatalf("tracked bytes %d after Close and Detach, want %d", got, base.TrackedBytes)
	}
	again, err := AdoptID(b.id)
	if err != nil {
		t.Fatal(err)
	}
	again.Close()
}
