package ferry

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rssChildEnv carries "softLimit:total:size" (bytes) to the child process of TestRSSFollowsLiveBytes.
const rssChildEnv = "FERRY_RSS_CHILD"

// TestRSSFollowsLiveBytes checks that process RSS follows ferry's live bytes when a program drops
// many large Buffers without Close and leaves their release to the GC backstop: 1 MiB buffers
// (half New and filled, half Copy), never closed, at the default soft limit and at 64 MiB. Each
// limit runs in a fresh child process with glibc's default malloc settings (MALLOC_ARENA_MAX and
// GLIBC_TUNABLES are removed from its environment), which reports its peak RSS (VmHWM, reset at the
// start) and the peak of ferry's live bytes. The peak RSS must stay within 1.5 x peak live bytes +
// 32 MiB, and once everything is released RSS must come back to within 48 MiB of where it started
// (ferry may keep up to 32 MiB of released mappings for reuse).
//
// It runs only when FERRY_RSS is set: "short" (2 GiB dropped per limit, in make test-reliability),
// "full" (8 GiB, make soak-rss), or a number of GiB. FERRY_RSS_SIZE sets another buffer size in
// bytes.
func TestRSSFollowsLiveBytes(t *testing.T) {
	if debugMode {
		t.Skip("guard mode never gives released pages back: RSS is no measure there")
	}
	var total int64
	switch mode := os.Getenv("FERRY_RSS"); mode {
	case "":
		t.Skip("set FERRY_RSS=short, full or a number of GiB")
	case "short":
		total = 2 << 30
	case "full":
		total = 8 << 30
	default:
		n, err := strconv.Atoi(mode)
		if err != nil || n <= 0 {
			t.Fatalf("FERRY_RSS=%q: want short, full or a positive number of GiB", mode)
		}
		total = int64(n) << 30
	}
	size := int64(1 << 20)
	if s := os.Getenv("FERRY_RSS_SIZE"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 || n > total {
			t.Fatalf("FERRY_RSS_SIZE=%q: want a buffer size in bytes", s)
		}
		size = n
	}
	const mib = 1 << 20
	for _, soft := range []int64{64 << 20, DefaultSoftLimit} {
		f := runRSSChild(t, soft, total, size)
		bound := f.peakLive + f.peakLive/2 + 32*mib
		t.Logf("rss: soft limit %d MiB, %d MiB dropped in %d KiB buffers in %v: peak live %.1f MiB, "+
			"peak RSS (VmHWM) %.1f MiB (sampled %.1f MiB), ratio %.2f, bound 1.5 x live + 32 MiB = %.1f MiB; "+
			"RSS at start %.1f MiB, after the final release %.1f MiB; %d collections",
			soft/mib, total/mib, size>>10, f.elapsed, inMiB(f.peakLive), inMiB(f.hwm), inMiB(f.sampled),
			float64(f.hwm)/float64(f.peakLive), inMiB(bound), inMiB(f.start), inMiB(f.end), f.collections)
		if f.hwm > bound {
			t.Errorf("soft limit %d MiB: peak RSS %.1f MiB > 1.5 x peak live bytes (%.1f MiB) + 32 MiB",
				soft/mib, inMiB(f.hwm), inMiB(f.peakLive))
		}
		if f.end > f.start+48*mib {
			t.Errorf("soft limit %d MiB: RSS %.1f MiB after the final release, %.1f MiB at the start",
				soft/mib, inMiB(f.end), inMiB(f.start))
		}
	}
}

func inMiB(v int64) float64 { return float64(v) / (1 << 20) }

// rssFigures is what a child of TestRSSFollowsLiveBytes measured.
type rssFigures struct {
	peakLive, hwm, sampled, start, end int64
	collections                        uint64
	elapsed                            time.Duration
}

// runRSSChild runs TestRSSChild in a fresh process with glibc's malloc defaults and parses its
// "ferry-rss:" line.
func runRSSChild(t *testing.T, soft, total, size int64) rssFigures {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRSSChild$", "-test.count=1", "-test.v", "-test.timeout=20m")
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "MALLOC_") || strings.HasPrefix(kv, "GLIBC_TUNABLES=") ||
			strings.HasPrefix(kv, SoftLimitEnv+"=") || strings.HasPrefix(kv, rssChildEnv+"=") {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d:%d:%d", rssChildEnv, soft, total, size))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child (soft limit %d, total %d): %v\n%s", soft, total, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "ferry-rss:")
		if !ok {
			continue
		}
		var f rssFigures
		var ns int64
		if _, err := fmt.Sscanf(strings.TrimSpace(rest), "peak_live=%d hwm=%d sampled=%d start=%d end=%d collections=%d ns=%d",
			&f.peakLive, &f.hwm, &f.sampled, &f.start, &f.end, &f.collections, &ns); err != nil {
			t.Fatalf("child line %q: %v", line, err)
		}
		f.elapsed = time.Duration(ns).Round(time.Millisecond)
		return f
	}
	t.Fatalf("child printed no ferry-rss line:\n%s", out)
	return rssFigures{}
}

// TestRSSChild is the measuring half of TestRSSFollowsLiveBytes; it runs only in the child process.
func TestRSSChild(t *testing.T) {
	spec := os.Getenv(rssChildEnv)
	if spec == "" {
		t.Skip("run by TestRSSFollowsLiveBytes in a child process")
	}
	var soft, total, size int64
	if _, err := fmt.Sscanf(spec, "%d:%d:%d", &soft, &total, &size); err != nil || soft <= 0 || total <= 0 || size <= 0 {
		t.Fatalf("%s=%q: %v", rssChildEnv, spec, err)
	}
	SetSoftLimit(soft)
	base := mustStats(t)
	if base.LiveBytes != 0 {
		t.Fatalf("child starts with %d live bytes", base.LiveBytes)
	}
	if err := ResetPeak(); err != nil {
		t.Fatal(err)
	}
	// Writing 5 to clear_refs resets VmHWM to the current RSS (Linux 4.0 and later).
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatalf("reset VmHWM: %v", err)
	}
	start := vmRSS(t)

	var sampled atomic.Int64
	sampled.Store(start)
	stop, monitorDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(monitorDone)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if r := vmRSS(t); r > sampled.Load() {
					sampled.Store(r)
				}
			}
		}
	}()

	src := bytes.Repeat([]byte("ferry-rss"), int(size/9+1))[:size]
	began := time.Now()
	for i := int64(0); i < total/size; i++ {
		var b *Buffer
		var err error
		if i%2 == 0 {
			if b, err = New(int(size)); err == nil {
				copy(b.Bytes(), src) // a producer fills what it asked for
			}
		} else {
			b, err = Copy(src)
		}
		if err != nil {
			t.Fatalf("buffer %d: %v", i, err)
		}
		if b.Bytes()[size-1] != src[size-1] {
			t.Fatalf("buffer %d: wrong last byte", i)
		}
		// Dropped without Close: the GC backstop releases it.
	}
	elapsed := time.Since(began)
	close(stop)
	<-monitorDone
	hwm := vmHWMBytes(t)
	st := mustStats(t)
	settled := settle(t, 30*time.Second)
	end := vmRSS(t)
	if settled.LiveBytes != 0 || settled.LiveIDs != base.LiveIDs {
		t.Fatalf("not everything was released: %+v", settled)
	}
	fmt.Printf("ferry-rss: peak_live=%d hwm=%d sampled=%d start=%d end=%d collections=%d ns=%d\n",
		st.PeakBytes, hwm, sampled.Load(), start, end, st.Collections-base.Collections, elapsed.Nanoseconds())
}

// vmHWMBytes returns the process's peak resident set size in bytes, from /proc/self/status.
func vmHWMBytes(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}
