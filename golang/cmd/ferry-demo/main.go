// Command ferry-demo shows what ferry is for, on data it makes itself, in three phases:
//
//  1. Frames of Rust memory, 64 B to 64 MiB, handed to Go zero-copy (a ferry id and a []byte over
//     the Rust bytes) and, for comparison, copied into Go memory with C.GoBytes; Go checksums both
//     and the checksums must agree.
//  2. Async work submitted to Rust worker threads, whose completions come back to Go in batches.
//  3. Buffers dropped without Close: live Rust bytes stay bounded by ferry's soft limit.
//  4. Ping-pong between two processes: a ferry shared-memory region (zero-copy, real wake-ups)
//     against a Unix socket that copies, 64 B to 64 MiB (the demo runs itself as the peer).
//
// It prints a table per phase, writes a Markdown report with SVG charts into -out, and exits
// non-zero if a check fails or if any ferry id is still live at the end.
//
// Run it with `make demo` from the repository root (which builds the Rust library first), or
// `make test-demo` for the quick mode (-quick) that CI runs.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	ferry "github.com/ferry/ferry/golang"
	"github.com/ferry/ferry/golang/internal/report"
)

// config holds what a run does; -quick selects a few-second version.
type config struct {
	out         string
	quick       bool
	frameSizes  []int
	frameBudget time.Duration
	asyncJobs   int
	gcTotal     int64
	gcBufSize   int64
	gcSoftLimit int64
	shmSizes    []int
	shmBudget   time.Duration
}

func main() {
	var c config
	flag.StringVar(&c.out, "out", "results", "directory for the report (report.md) and its charts; empty for none")
	flag.BoolVar(&c.quick, "quick", false, "a few-second run with fewer sizes and jobs (for CI)")
	shmPeer := flag.Bool("shm-peer", false, "run as the peer process of phase 4 (internal)")
	shmOnly := flag.Bool("shm-only", false, "run phase 4 alone and print its table (make bench-shm)")
	flag.Parse()
	if *shmPeer {
		os.Exit(shmPeerMain())
	}
	c.frameSizes = []int{64, 1 << 10, 16 << 10, 256 << 10, 4 << 20, 64 << 20}
	c.frameBudget = 250 * time.Millisecond
	c.asyncJobs = 400_000
	c.gcTotal, c.gcBufSize, c.gcSoftLimit = 2<<30, 1<<20, 64<<20
	c.shmSizes = []int{64, 1 << 10, 16 << 10, 256 << 10, 4 << 20, 64 << 20}
	c.shmBudget = 300 * time.Millisecond
	if c.quick {
		c.shmSizes = []int{64, 4 << 20}
		c.shmBudget = 20 * time.Millisecond
		c.frameSizes = []int{64, 16 << 10, 4 << 20}
		c.frameBudget = 20 * time.Millisecond
		c.asyncJobs = 40_000
		c.gcTotal, c.gcSoftLimit = 256<<20, 32<<20
	}
	if *shmOnly {
		shm, err := runShm(c.shmSizes, c.shmBudget, logf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ferry-demo: FAIL:", err)
			os.Exit(1)
		}
		fmt.Print("\n" + shmTable(shm).Text())
		logf("%s", shmSummary(shm))
		return
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "ferry-demo: FAIL:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Printf(format+"\n", args...)
}

func run(c config) error {
	m := report.ThisMachine()
	start := time.Now()
	logf("ferry demo on %s", m)
	if c.quick {
		logf("(quick mode: fewer sizes, shorter runs; figures are rough)")
	}

	logf("\nPhase 1: Rust frames to Go, zero-copy (ferry) vs copy (C.GoBytes)")
	frames, err := runFrames(c.frameSizes, c.frameBudget, logf)
	if err != nil {
		return fmt.Errorf("phase 1: %w", err)
	}
	fmt.Print("\n" + frameTable(frames).Text())
	logf("All checksums agreed: every frame gave the same CRC-32C on both paths.")
	logf("%s", frameSummary(frames))

	logf("\nPhase 2: async work on Rust workers, completions delivered to Go in batches")
	async, err := runAsync(c.asyncJobs, logf)
	if err != nil {
		return fmt.Errorf("phase 2: %w", err)
	}
	fmt.Print("\n" + asyncTable(async).Text())
	logf("Up to 256 completions per crossing vs one per crossing: %.1f× the completions per second when draining,\n"+
		"%.1f× with a submit (one cgo call per job) in the loop.", async.speedup(256, true), async.speedup(256, false))

	logf("\nPhase 3: %s in %s buffers dropped without Close, soft limit %s",
		sizeName(int(c.gcTotal)), sizeName(int(c.gcBufSize)), sizeName(int(c.gcSoftLimit)))
	gcr, err := runGC(c.gcTotal, c.gcBufSize, c.gcSoftLimit, logf)
	if err != nil {
		return fmt.Errorf("phase 3: %w", err)
	}
	fmt.Print("\n" + gcTable(gcr).Text())
	logf("%s of Rust memory passed through; live Rust bytes peaked at %s (core limit %s), the Go heap at %s.",
		sizeName(int(gcr.Total)), sizeName(int(gcr.PeakLiveBytes)), sizeName(int(gcr.HardLimit)), sizeName(int(gcr.GoHeapPeak)))

	logf("\nPhase 4: ping-pong between two processes, ferry region (zero-copy, wake-ups) vs Unix socket (copies)")
	shm, err := runShm(c.shmSizes, c.shmBudget, logf)
	if err != nil {
		return fmt.Errorf("phase 4: %w", err)
	}
	fmt.Print("\n" + shmTable(shm).Text())
	logf("%s", shmSummary(shm))

	end, err := drain()
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	logf("\nEnd: live ids %d, live Rust bytes %d, pending releases %d%s (after closing everything and a GC)",
		end.LiveIDs, end.LiveBytes, end.PendingReleases, end.callbackSummary())
	if c.out != "" {
		paths, err := writeReport(c, m, elapsed, frames, async, gcr, shm, end)
		if err != nil {
			return fmt.Errorf("report: %w", err)
		}
		logf("Report: %s", strings.Join(paths, ", "))
	}
	if !end.clean() {
		return fmt.Errorf("leak: %d live ids, %d live bytes at the end%s", end.LiveIDs, end.LiveBytes, end.callbackSummary())
	}
	logf("PASS: live ids = 0; total %.1f s", elapsed.Seconds())
	return nil
}

// sizeName formats a byte count in binary units, without decimals when whole: 64 B, 16 KiB.
func sizeName(n int) string {
	return strings.Replace(report.Bytes(float64(n)), ".0 ", " ", 1)
}

// nsName formats a time per item: 850 ns, 12.3 µs, 4.5 ms.
func nsName(ns float64) string {
	switch {
	case ns >= 1e6:
		return fmt.Sprintf("%.1f ms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.1f µs", ns/1e3)
	default:
		return fmt.Sprintf("%.0f ns", ns)
	}
}

// gbps formats the throughput of size bytes per ns nanoseconds.
func gbps(size int, ns float64) string {
	v := float64(size) / ns
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f GB/s", v)
	case v >= 1:
		return fmt.Sprintf("%.1f GB/s", v)
	default:
		return fmt.Sprintf("%.2f GB/s", v)
	}
}

func ratio(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f×", v)
	}
	return fmt.Sprintf("%.1f×", v)
}

func frameTable(rs []frameResult) *report.Table {
	t := &report.Table{Header: []string{"frame", "receive: zero-copy", "ReadID", "C.GoBytes", "ferry's path",
		"copy / ferry", "+crc32c: zero-copy", "ReadID", "C.GoBytes", "ferry's path", "copy / ferry", "frames checked"}}
	for _, r := range rs {
		rp, rb := best(r.RecvZeroNs, r.RecvReadNs)
		sp, sb := best(r.SumZeroNs, r.SumReadNs)
		t.AddRow(sizeName(r.Size), nsName(r.RecvZeroNs), nsName(r.RecvReadNs), nsName(r.RecvCopyNs), rp,
			ratio(r.RecvCopyNs/rb), gbps(r.Size, r.SumZeroNs), gbps(r.Size, r.SumReadNs), gbps(r.Size, r.SumCopyNs),
			sp, ratio(r.SumCopyNs/sb), fmt.Sprint(r.Frames))
	}
	return t
}

// frameSummary says where zero-copy starts to win, and how ferry's path compares with the copy.
func frameSummary(rs []frameResult) string {
	lo, hi := rs[0].RecvZeroNs, rs[0].RecvZeroNs
	recvWin, sumWin := "", ""
	worst, worstAt := 0.0, ""
	for _, r := range rs {
		lo, hi = min(lo, r.RecvZeroNs), max(hi, r.RecvZeroNs)
		if recvWin == "" && r.RecvReadNs > r.RecvZeroNs {
			recvWin = sizeName(r.Size)
		}
		if sumWin == "" && r.SumReadNs > r.SumZeroNs {
			sumWin = sizeName(r.Size)
		}
		_, rb := best(r.RecvZeroNs, r.RecvReadNs)
		_, sb := best(r.SumZeroNs, r.SumReadNs)
		for _, q := range []float64{r.RecvCopyNs / rb, r.SumCopyNs / sb} {
			if worstAt == "" || q < worst {
				worst, worstAt = q, sizeName(r.Size)
			}
		}
	}
	orNone := func(s string) string {
		if s == "" {
			return "no size measured"
		}
		return s
	}
	return fmt.Sprintf("The zero-copy hand-off took %s to %s at every size; a copy grows with the size.\n"+
		"Zero-copy beat ferry's own copy (ReadID) from %s up (receive only), from %s up with the checksum.\n"+
		"Against C.GoBytes, ferry's faster path was %s at worst (at %s; above 1: ferry is faster).",
		nsName(lo), nsName(hi), orNone(recvWin), orNone(sumWin), ratio(worst), worstAt)
}

func gcTable(r gcResult) *report.Table {
	t := &report.Table{Header: []string{"dropped", "buffers", "soft limit", "core limit", "peak live Rust bytes",
		"Go heap peak", "GCs (ferry's)", "cleanup releases", "release calls", "time"}}
	t.AddRow(sizeName(int(r.Total)), fmt.Sprint(r.Buffers), sizeName(int(r.SoftLimit)), sizeName(int(r.HardLimit)),
		sizeName(int(r.PeakLiveBytes)), sizeName(int(r.GoHeapPeak)), fmt.Sprintf("%d (%d)", r.GoGCs, r.FerryCollects),
		fmt.Sprint(r.CleanupReleases), fmt.Sprint(r.ReleaseCalls), fmt.Sprintf("%.2f s", r.Elapsed.Seconds()))
	return t
}

// endState is what is left once everything is closed.
type endState struct {
	ferry.Stats
	CB ferry.CallbackStats
}

func (e endState) clean() bool {
	return e.LiveIDs == 0 && e.LiveBytes == 0 && e.PendingReleases == 0 &&
		e.CB.Registered == 0 && e.CB.Alive == 0 && e.CB.Queues == 0 && e.CB.InFlight == 0 && e.CB.GoFuncs == 0
}

func (e endState) callbackSummary() string {
	return fmt.Sprintf(", callbacks registered %d, queues open %d, jobs in flight %d",
		e.CB.Registered, e.CB.Queues, e.CB.InFlight)
}

// drain collects garbage until every id is released and every callback and queue is gone (at
// most 5 s), and returns the final state.
func drain() (endState, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
		st, err := ferry.ReadStats()
		if err != nil {
			return endState{}, err
		}
		cb, err := ferry.ReadCallbackStats()
		if err != nil {
			return endState{}, err
		}
		e := endState{Stats: st, CB: cb}
		if e.clean() || time.Now().After(deadline) {
			return e, nil
		}
	}
}
