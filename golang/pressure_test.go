package ferry

import (
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestSoftLimitFromEnv(t *testing.T) {
	for in, want := range map[string]int64{
		"": DefaultSoftLimit, "off": 0, "OFF": 0, "0": 0, "1048576": 1 << 20, "64MiB": 64 << 20,
		"64M": 64 << 20, "2GiB": 2 << 30, "512 KiB": 512 << 10, "3G": 3 << 30, "junk": DefaultSoftLimit,
		"-5": DefaultSoftLimit, "99999999999GiB": DefaultSoftLimit,
	} {
		if got := softLimitFromEnv(in); got != want {
			t.Errorf("softLimitFromEnv(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestSetSoftLimitSetsTheHardLimit(t *testing.T) {
	prev := SetSoftLimit(100 << 20)
	defer SetSoftLimit(prev)
	if got := SetSoftLimit(-1); got != 100<<20 {
		t.Fatalf("SetSoftLimit(-1) = %d", got)
	}
	st := mustStats(t)
	if st.SoftLimit != 100<<20 || st.LimitBytes != 200<<20 {
		t.Fatalf("soft %d hard %d", st.SoftLimit, st.LimitBytes)
	}
	SetSoftLimit(0)
	if st := mustStats(t); st.LimitBytes != 0 || st.SoftLimit != 0 {
		t.Fatalf("after SetSoftLimit(0): soft %d hard %d", st.SoftLimit, st.LimitBytes)
	}
}

// TestLimitReachedCollectsThenFails fills the hard limit with reachable buffers (nothing to
// collect: New must give up with ErrLimitReached, in bounded time), then drops them (New must
// succeed, thanks to the collection it runs).
func TestLimitReachedCollectsThenFails(t *testing.T) {
	if debugMode {
		t.Skip("guard mode maps every buffer: too slow for this test")
	}
	waitLive(t, 0, 10*time.Second) // no garbage from earlier tests that a collection could free
	prev := SetSoftLimit(8 << 20)  // hard limit 16 MiB
	defer SetSoftLimit(prev)
	var held []*Buffer
	var err error
	for range 64 {
		var b *Buffer
		if b, err = New(1 << 20); err != nil {
			break
		}
		held = append(held, b)
	}
	if !errors.Is(err, ErrLimitReached) || len(held) < 8 {
		t.Fatalf("after %d buffers: %v, want ErrLimitReached", len(held), err)
	}
	start := time.Now()
	if _, err := New(1 << 20); !errors.Is(err, ErrLimitReached) {
		t.Fatalf("New past the limit with everything reachable: %v", err)
	}
	took := time.Since(start)
	t.Logf("held %d MiB; a refused New took %v (%d collections so far)", len(held), took, mustStats(t).Collections)
	if took > 2*time.Second {
		t.Fatalf("a refused New took %v", took)
	}
	if _, err := New(17 << 20); !errors.Is(err, ErrLimitReached) {
		t.Fatalf("New larger than the hard limit: %v", err)
	}
	runtime.KeepAlive(held)
	held = nil
	b, err := New(1 << 20)
	if err != nil {
		t.Fatalf("New after dropping the held buffers: %v", err)
	}
	b.Close()
}

// TestGCPressureBoundsLiveBytes allocates 4 GiB in total through 1 MiB buffers that are never
// closed: only ferry's own collections make their cleanups run, and the peak of live Rust bytes
// must stay at or below twice the soft limit. The short version moves 512 MiB with a 32 MiB limit.
func TestGCPressureBoundsLiveBytes(t *testing.T) {
	if debugMode {
		t.Skip("guard mode maps every buffer: too slow for this test")
	}
	soft, total := int64(DefaultSoftLimit), int64(4<<30)
	if testing.Short() {
		soft, total = 32<<20, 512<<20
	}
	waitLive(t, 0, 10*time.Second) // start from an empty table, so the peak is this test's own
	prev := SetSoftLimit(soft)
	defer SetSoftLimit(prev)
	base := mustStats(t)
	if err := ResetPeak(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	const size = 1 << 20
	for i := int64(0); i < total/size; i++ {
		b, err := New(size)
		if err != nil {
			t.Fatalf("buffer %d: %v", i, err)
		}
		b.Bytes()[i%size] = 1
	}
	took := time.Since(start)
	st := mustStats(t)
	peak := st.PeakBytes - base.LiveBytes
	t.Logf("%d MiB through %d never-closed 1 MiB buffers in %v: peak live Rust bytes %d MiB "+
		"(soft limit %d MiB, bound %d MiB), %d collections, %d cleanups, %d release crossings; VmHWM %s",
		total>>20, total/size, took.Round(time.Millisecond), peak>>20, soft>>20, 2*soft>>20,
		st.Collections-base.Collections, st.CleanupReleases-base.CleanupReleases,
		st.ReleaseCrossings-base.ReleaseCrossings, vmHWM())
	if peak > uint64(2*soft) {
		t.Fatalf("peak live bytes %d > 2 x soft limit %d", peak, 2*soft)
	}
	if st.Collections == base.Collections {
		t.Fatal("ferry never triggered a collection")
	}
	waitLive(t, 0, 10*time.Second)
}

// vmHWM returns the process's peak resident set size from /proc, or "?" where there is none.
func vmHWM() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
