package ferry

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSoak runs create/view/release cycles on several goroutines: each cycle makes a Buffer (New or
// Copy, 16 B to 4 KiB), writes and reads it through its zero-copy view, now and then takes a Slice
// or Share of it, and releases it, half the time with Close and half the time by dropping it for the
// GC cleanup to release. RSS (VmRSS) is sampled throughout; at the end every id and byte must be
// released, and RSS after the warm-up must not grow.
//
// It runs only when FERRY_SOAK is set: "short" (1,000,000 cycles, in make test-reliability), "full"
// (10,000,000 cycles, make soak), or a number of cycles.
func TestSoak(t *testing.T) {
	cycles := 0
	switch mode := os.Getenv("FERRY_SOAK"); mode {
	case "":
		t.Skip("set FERRY_SOAK=short, full or a number of cycles")
	case "short":
		cycles = 1_000_000
	case "full":
		cycles = 10_000_000
	default:
		n, err := strconv.Atoi(strings.ReplaceAll(mode, "_", ""))
		if err != nil || n <= 0 {
			t.Fatalf("FERRY_SOAK=%q: want short, full or a positive number", mode)
		}
		cycles = n
	}
	const workers = 8
	// Dropped Buffers hold Rust memory until a GC runs their cleanups; ferry starts one when the
	// tracked bytes pass the soft limit. A 32 MiB limit (default 256 MiB) lets even the short run
	// reach its plateau early, so flatness is measured over most of the run.
	const softLimit = 32 << 20
	prevLimit := SetSoftLimit(softLimit)
	defer SetSoftLimit(prevLimit)
	// Buffers that earlier tests dropped are released by their cleanups first, so the base is still.
	base := settle(t, 5*time.Second)
	rssStart := vmRSS(t)

	// RSS samples: a monitor goroutine tracks the peak, and the progress marks record RSS at each
	// tenth of the run.
	var peak, firstHalfPeak atomic.Int64
	var done atomic.Int64
	peak.Store(rssStart)
	stop := make(chan struct{})
	monitorDone := make(chan struct{})
	go func() {
		defer close(monitorDone)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				r := vmRSS(t)
				if r > peak.Load() {
					peak.Store(r)
				}
				if done.Load() <= int64(cycles/2) && r > firstHalfPeak.Load() {
					firstHalfPeak.Store(r)
				}
			}
		}
	}()

	var marks [11]atomic.Int64
	var liveAt, heapAt [11]atomic.Int64
	var closed, dropped, slices atomic.Int64
	src := bytes.Repeat([]byte("ferry-soak"), 410)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < cycles; i += workers {
				n := 16 + (i*7919)%4081
				var b *Buffer
				var err error
				if i%3 == 0 {
					b, err = Copy(src[:n])
				} else {
					b, err = New(n)
				}
				if err != nil {
					t.Errorf("cycle %d: create %d bytes: %v", i, n, err)
					return
				}
				want := byte(i)
				err = b.View(func(p []byte) {
					p[0], p[len(p)-1] = want, want
				})
				if err != nil || b.Bytes()[0] != want || b.Bytes()[n-1] != want {
					t.Errorf("cycle %d: view: %v", i, err)
					return
				}
				if i%8 == 0 {
					var o *Buffer
					if i%16 == 0 {
						o, err = b.Slice(n/2, n-n/2)
					} else {
						o, err = b.Share()
					}
					if err != nil || o.Bytes()[len(o.Bytes())-1] != want {
						t.Errorf("cycle %d: slice/share: %v", i, err)
						return
					}
					slices.Add(1)
					if i%32 == 0 {
						o.Close()
					}
				}
				if i%2 == 0 {
					if err := b.Close(); err != nil {
						t.Errorf("cycle %d: Close: %v", i, err)
						return
					}
					closed.Add(1)
				} else {
					dropped.Add(1) // released by its cleanup after a GC
				}
				if d := done.Add(1); d%int64(cycles/10) == 0 && d/int64(cycles/10) <= 10 {
					k := d / int64(cycles/10)
					marks[k].Store(vmRSS(t))
					if st, err := ReadStats(); err == nil {
						liveAt[k].Store(int64(st.LiveBytes))
					}
					var ms runtime.MemStats
					runtime.ReadMemStats(&ms)
					heapAt[k].Store(int64(ms.HeapSys - ms.HeapReleased))
				}
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)

	// Let the cleanups release what was dropped.
	st := settle(t, 30*time.Second)
	close(stop)
	<-monitorDone
	rssEnd := vmRSS(t)

	const mib = 1 << 20
	half := max(firstHalfPeak.Load(), marks[5].Load())
	t.Logf("soak: %d cycles on %d goroutines in %v (%.0f ns/cycle): %d closed, %d dropped for cleanup, %d slices/shares",
		cycles, workers, elapsed.Round(time.Millisecond), float64(elapsed.Nanoseconds())/float64(cycles),
		closed.Load(), dropped.Load(), slices.Load())
	var line strings.Builder
	mb := func(v int64) string { return strconv.FormatFloat(float64(v)/mib, 'f', 1, 64) }
	for i := 1; i <= 10; i++ {
		line.WriteString(" " + mb(marks[i].Load()) + "/" + mb(liveAt[i].Load()) + "/" + mb(heapAt[i].Load()))
	}
	t.Logf("soak: RSS start %.1f MiB, peak in the first half %.1f MiB, at the end of the cycles %.1f MiB, after the final release %.1f MiB, peak %.1f MiB (MALLOC_ARENA_MAX=%q)",
		float64(rssStart)/mib, float64(half)/mib, float64(marks[10].Load())/mib, float64(rssEnd)/mib,
		float64(peak.Load())/mib, os.Getenv("MALLOC_ARENA_MAX"))
	t.Logf("soak: per tenth, RSS/ferry live bytes/Go heap (MiB):%s", line.String())
	t.Logf("soak: live ids %d -> %d, live bytes %d -> %d, cleanup releases %d",
		base.LiveIDs, st.LiveIDs, base.LiveBytes, st.LiveBytes, st.CleanupReleases-base.CleanupReleases)

	if st.LiveIDs != base.LiveIDs || st.LiveBytes != base.LiveBytes || st.PendingReleases != 0 {
		t.Fatalf("not everything was released: %+v (base %+v)", st, base)
	}
	// Flat: the second half of the run ends with no more RSS than the first half peaked at, give
	// or take 24 MiB + 10% (the allocator's high-water marks still creep while the short run warms
	// up, by 11-13 MiB; a leak of 8 bytes a cycle over the full run's second half would not pass).
	if last := marks[10].Load(); last > half+half/10+24*mib {
		t.Fatalf("RSS grew: %.1f MiB at the end of the cycles, the first half peaked at %.1f MiB",
			float64(last)/mib, float64(half)/mib)
	}
	// The Go heap holds no per-cycle state either.
	if h := heapAt[10].Load(); h > heapAt[5].Load()+16*mib {
		t.Fatalf("Go heap grew from %.1f MiB to %.1f MiB", float64(heapAt[5].Load())/mib, float64(h)/mib)
	}
}

// settle collects garbage until the cleanups have released every dropped Buffer (no Go-tracked
// bytes and no pending releases left, and the live id count still over three rounds) or the
// timeout passes, and returns the stats then.
func settle(t *testing.T, timeout time.Duration) Stats {
	deadline := time.Now().Add(timeout)
	var prev Stats
	still := 0
	for {
		runtime.GC()
		st, err := ReadStats()
		if err != nil {
			t.Fatal(err)
		}
		if st.LiveIDs == prev.LiveIDs && st.PendingReleases == 0 && st.TrackedBytes == 0 {
			still++
		} else {
			still = 0
		}
		if still >= 3 || time.Now().After(deadline) {
			return st
		}
		prev = st
		time.Sleep(5 * time.Millisecond)
	}
}

// vmRSS returns the process's resident set size in bytes, from /proc/self/status.
func vmRSS(t *testing.T) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}
