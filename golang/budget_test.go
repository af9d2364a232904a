package ferry

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const mib = 1 << 20

// budgetChildEnv carries "mode:total" to TestBudgetChild, which runs in a child process so that
// GOMEMLIMIT and GOGC apply from its start.
const budgetChildEnv = "FERRY_BUDGET_CHILD"

// budgetLimit is the Go memory limit of the budget tests (GOMEMLIMIT=192MiB), and budgetBound
// the most Go memory + ferry live bytes may reach under it.
const (
	budgetLimit = 192 * mib
	budgetBound = budgetLimit + budgetLimit/4
)

// childFigures is the "ferry-budget:" line of a child: key=value pairs.
type childFigures map[string]string

func (f childFigures) int(t *testing.T, key string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(f[key], 10, 64)
	if err != nil {
		t.Fatalf("child figure %s=%q: %v", key, f[key], err)
	}
	return v
}

// runBudgetChild runs TestBudgetChild in a fresh process with GOMEMLIMIT, GOGC and
// FERRY_SOFT_LIMIT removed from its environment and env added. start, if not nil, gets the started
// command and the write end of the child's stdin, which the child reads one line from before it
// begins when FERRY_BUDGET_GATE is in env; if start fails, the child is killed. It returns the
// child's figures.
func runBudgetChild(t *testing.T, mode string, total int64, env []string, start func(*exec.Cmd, *os.File) error) childFigures {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBudgetChild$", "-test.count=1", "-test.v", "-test.timeout=20m")
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GOMEMLIMIT=") || strings.HasPrefix(kv, "GOGC=") ||
			strings.HasPrefix(kv, SoftLimitEnv+"=") || strings.HasPrefix(kv, budgetChildEnv+"=") {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%s:%d", budgetChildEnv, mode, total))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	var gate *os.File
	if start != nil {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		defer w.Close()
		cmd.Stdin, gate = r, w
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child %s: %v", mode, err)
	}
	if start != nil {
		if err := start(cmd, gate); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child %s: %v", mode, err)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child %s %v: %v\n%s", mode, env, err, out.String())
	}
	for _, line := range strings.Split(out.String(), "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "ferry-budget:")
		if !ok {
			continue
		}
		f := childFigures{}
		for _, kv := range strings.Fields(rest) {
			k, v, _ := strings.Cut(kv, "=")
			f[k] = v
		}
		return f
	}
	t.Fatalf("child printed no ferry-budget line:\n%s", out.String())
	return nil
}

// memSampler samples, every millisecond, Go's memory as its limit counts it (mapped and not
// released to the system) and ferry's live bytes, and keeps the peak of their sum.
type memSampler struct {
	peakSum, peakGo, peakLive atomic.Int64
	stop, done                chan struct{}
}

func startSampler(t *testing.T) *memSampler {
	s := &memSampler{stop: make(chan struct{}), done: make(chan struct{})}
	samples := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
			metrics.Read(samples)
			goMem := int64(samples[0].Value.Uint64() - samples[1].Value.Uint64())
			st, err := ReadStats()
			if err != nil {
				t.Error(err)
				return
			}
			live := int64(st.LiveBytes)
			for _, p := range []struct {
				a *atomic.Int64
				v int64
			}{{&s.peakSum, goMem + live}, {&s.peakGo, goMem}, {&s.peakLive, live}} {
				if p.v > p.a.Load() {
					p.a.Store(p.v)
				}
			}
		}
	}()
	return s
}

func (s *memSampler) finish() {
	close(s.stop)
	<-s.done
}

// TestBudgetChild is the measuring half of the budget tests; it runs only in a child process.
// Modes: "drop" keeps 64 MiB of Go heap live and drops total bytes of 1 MiB Buffers without Close;
// "grow" grows the Go heap while open Buffers hold Rust bytes (see TestBudgetGoHeapGrows);
// "cgroup" drops total bytes of filled 1 MiB Buffers (see TestBudgetCgroup).
func TestBudgetChild(t *testing.T) {
	spec := os.Getenv(budgetChildEnv)
	if spec == "" {
		t.Skip("run by the budget tests in a child process")
	}
	mode, totalStr, _ := strings.Cut(spec, ":")
	total, err := strconv.ParseInt(totalStr, 10, 64)
	if err != nil || total <= 0 {
		t.Fatalf("%s=%q: want mode:total", budgetChildEnv, spec)
	}
	if os.Getenv("FERRY_BUDGET_GATE") != "" {
		// Wait until the parent has moved this process where it should run.
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			t.Fatalf("gate: %v", err)
		}
	}
	base := mustStats(t)
	var gcBefore, gcAfter runtime.MemStats
	runtime.ReadMemStats(&gcBefore)
	if err := ResetPeak(); err != nil {
		t.Fatal(err)
	}
	s := startSampler(t)
	began := time.Now()
	var goHeld [][]byte
	extra := ""
	pattern := bytes.Repeat([]byte("ferry-budget"), 8<<10/12+1)[:8<<10]
	switch mode {
	case "drop":
		for range 64 {
			goHeld = append(goHeld, make([]byte, mib))
		}
		for i := int64(0); i < total/mib; i++ {
			b, err := New(mib)
			if err != nil {
				t.Fatalf("buffer %d: %v", i, err)
			}
			b.Bytes()[i%mib] = 1
			runtime.KeepAlive(b) // the slice is used after Bytes returns: keep b until then
		}
	case "grow":
		// Open Buffers hold 48 MiB of Rust bytes, 64 MiB from half-way on, while the Go heap grows
		// to 64 MiB live with total bytes of filled 8 KiB garbage made along the way, and a 1 MiB
		// Buffer is dropped without Close for every 4 MiB of Go garbage.
		var held []*Buffer
		hold := func(n int) {
			for range n {
				b, err := New(mib)
				if err != nil {
					t.Fatalf("holding buffer %d: %v", len(held), err)
				}
				b.Bytes()[0] = 1
				held = append(held, b)
			}
		}
		hold(48)
		st := mustStats(t)
		// ferry tells the runtime at most a step (budget/64) late.
		if st.RuntimeMemoryLimit > st.MemoryBudget-int64(st.LiveBytes)+st.MemoryBudget/64 {
			t.Fatalf("runtime limit %d with a budget of %d and %d live bytes: not lowered",
				st.RuntimeMemoryLimit, st.MemoryBudget, st.LiveBytes)
		}
		extra = fmt.Sprintf(" lowered=%d", st.RuntimeMemoryLimit)
		const steps = 64
		for step := range steps {
			if step == steps/2 {
				hold(16)
			}
			goHeld = append(goHeld, make([]byte, mib))
			for i := int64(0); i < total/steps/int64(len(pattern)); i++ {
				g := make([]byte, len(pattern))
				copy(g, pattern)
				sinkSlice = g
				if i%(4*mib/int64(len(pattern))) == 0 {
					b, err := New(mib)
					if err != nil {
						t.Fatalf("step %d: dropped buffer: %v", step, err)
					}
					b.Bytes()[0] = 1
					runtime.KeepAlive(b)
				}
			}
		}
		for _, b := range held {
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
		}
	case "cgroup":
		for i := int64(0); i < total/mib; i++ {
			b, err := New(mib)
			if err != nil {
				t.Fatalf("buffer %d: %v", i, err)
			}
			p := b.Bytes()
			for off := 0; off < len(p); off += len(pattern) {
				copy(p[off:], pattern)
			}
			runtime.KeepAlive(b)
		}
	default:
		t.Fatalf("%s=%q: unknown mode", budgetChildEnv, spec)
	}
	elapsed := time.Since(began)
	s.finish()
	runtime.KeepAlive(goHeld)
	st := mustStats(t)
	runtime.ReadMemStats(&gcAfter)
	fmt.Printf("ferry-budget: peak_sum=%d peak_go=%d peak_sampled_live=%d peak_live=%d soft=%d source=%s "+
		"budget=%d budget_source=%s hard=%d collections=%d gcs=%d ms=%d%s\n",
		s.peakSum.Load(), s.peakGo.Load(), s.peakLive.Load(), st.PeakBytes, st.SoftLimit, st.SoftLimitSource,
		st.MemoryBudget, st.BudgetSource, st.LimitBytes, st.Collections-base.Collections,
		gcAfter.NumGC-gcBefore.NumGC, elapsed.Milliseconds(), extra)
}

// logBudget logs a child's figures against the budget.
func logBudget(t *testing.T, what string, f childFigures) {
	t.Helper()
	t.Logf("%s: peak Go+ferry %.1f MiB = %.2f x 192 MiB (Go %.1f MiB, ferry %.1f MiB sampled, %.1f MiB exact peak); "+
		"soft limit %.1f MiB from %s, budget %.0f MiB from %q; %s ferry collections, %s GCs, %s ms",
		what, inMiB(f.int(t, "peak_sum")), float64(f.int(t, "peak_sum"))/budgetLimit, inMiB(f.int(t, "peak_go")),
		inMiB(f.int(t, "peak_sampled_live")), inMiB(f.int(t, "peak_live")), inMiB(f.int(t, "soft")), f["source"],
		inMiB(f.int(t, "budget")), f["budget_source"], f["collections"], f["gcs"], f["ms"])
}

// TestBudgetDropWithoutClose: with GOMEMLIMIT=192MiB, a program keeps 64 MiB of Go heap live and
// drops 4 GiB of 1 MiB Buffers without Close (1 GiB with -short). The sampled peak of Go memory
// (as the limit counts it) + ferry's live bytes must stay within 1.25 x the limit, and no create
// may fail. The full run also measures the same program without GOMEMLIMIT, for comparison.
func TestBudgetDropWithoutClose(t *testing.T) {
	if debugMode {
		t.Skip("guard mode maps every buffer: too slow for this test")
	}
	total := int64(4 << 30)
	if testing.Short() {
		total = 1 << 30
	}
	f := runBudgetChild(t, "drop", total, []string{"GOMEMLIMIT=192MiB"}, nil)
	logBudget(t, fmt.Sprintf("GOMEMLIMIT=192MiB, %d MiB dropped", total>>20), f)
	if f["source"] != string(SourceGoMemoryLimit) || f.int(t, "budget") != budgetLimit || f["budget_source"] != string(SourceGoMemoryLimit) {
		t.Errorf("soft limit from %s, budget %d from %q: want both from the Go memory limit of %d",
			f["source"], f.int(t, "budget"), f["budget_source"], budgetLimit)
	}
	if p := f.int(t, "peak_sum"); p > budgetBound {
		t.Errorf("peak Go memory + ferry live bytes %.1f MiB > 1.25 x GOMEMLIMIT (%.0f MiB)", inMiB(p), inMiB(budgetBound))
	}
	if !testing.Short() {
		f := runBudgetChild(t, "drop", total, nil, nil)
		logBudget(t, fmt.Sprintf("no GOMEMLIMIT, %d MiB dropped", total>>20), f)
	}
}

// TestBudgetGoHeapGrows: with GOMEMLIMIT=192MiB and GOGC=off (the limit alone paces Go's
// collector), the Go heap grows to 64 MiB live through 2 GiB of garbage (512 MiB with -short)
// while open Buffers hold 48 then 64 MiB of Rust bytes, and 1 MiB Buffers are dropped along the
// way. ferry's bytes must push Go's collector (the runtime's limit is lowered by them), never the
// other way: no create may fail, and Go memory + ferry live bytes stay within 1.25 x the limit.
// Without the lowering the Go heap alone grows to the limit (measured: 1.49 x the limit with
// ferry's bytes).
func TestBudgetGoHeapGrows(t *testing.T) {
	if debugMode {
		t.Skip("guard mode maps every buffer: too slow for this test")
	}
	total := int64(2 << 30)
	if testing.Short() {
		total = 512 << 20
	}
	f := runBudgetChild(t, "grow", total, []string{"GOMEMLIMIT=192MiB", "GOGC=off"}, nil)
	logBudget(t, fmt.Sprintf("GOMEMLIMIT=192MiB GOGC=off, Go heap growing through %d MiB", total>>20), f)
	t.Logf("runtime limit with 48 MiB held: %.1f MiB", inMiB(f.int(t, "lowered")))
	if p := f.int(t, "peak_sum"); p > budgetBound {
		t.Errorf("peak Go memory + ferry live bytes %.1f MiB > 1.25 x GOMEMLIMIT (%.0f MiB)", inMiB(p), inMiB(budgetBound))
	}
}

// TestChooseLimits checks which soft limit, hard limit and budget win.
func TestChooseLimits(t *testing.T) {
	goMem := func(v int64) func() int64 { return func() int64 { return v } }
	noGo := func() int64 { t.Fatal("goInUse called without a Go memory limit"); return 0 }
	for _, c := range []struct {
		name         string
		explicit     bool
		soft         int64
		src          LimitSource
		user, cgroup int64
		goInUse      func() int64
		want         limitChoice
	}{
		{"default", false, 0, "", noGoLimit, 0, noGo,
			limitChoice{DefaultSoftLimit, 2 * DefaultSoftLimit, SourceDefault, 0, SourceNone}},
		{"cgroup 512 MiB: a quarter", false, 0, "", noGoLimit, 512 * mib, noGo,
			limitChoice{128 * mib, 256 * mib, SourceCgroup, 512 * mib, SourceCgroup}},
		{"cgroup 8 GiB: the default is lower", false, 0, "", noGoLimit, 8 << 30, noGo,
			limitChoice{DefaultSoftLimit, 2 * DefaultSoftLimit, SourceDefault, 0, SourceNone}},
		{"env wins over the cgroup", true, 64 * mib, SourceEnv, noGoLimit, 512 * mib, noGo,
			limitChoice{64 * mib, 128 * mib, SourceEnv, 0, SourceNone}},
		{"Go limit: half of what the Go heap leaves", false, 0, "", 192 * mib, 0, goMem(72 * mib),
			limitChoice{60 * mib, 2 * DefaultSoftLimit, SourceGoMemoryLimit, 192 * mib, SourceGoMemoryLimit}},
		{"Go limit wins over the cgroup", false, 0, "", 192 * mib, 512 * mib, goMem(72 * mib),
			limitChoice{60 * mib, 2 * DefaultSoftLimit, SourceGoMemoryLimit, 192 * mib, SourceGoMemoryLimit}},
		{"Go heap over the limit: a sixteenth", false, 0, "", 192 * mib, 0, goMem(300 * mib),
			limitChoice{12 * mib, 2 * DefaultSoftLimit, SourceGoMemoryLimit, 192 * mib, SourceGoMemoryLimit}},
		{"large Go limit: at most the default, hard limit the budget", false, 0, "", 4 << 30, 0, goMem(100 * mib),
			limitChoice{DefaultSoftLimit, 4 << 30, SourceGoMemoryLimit, 4 << 30, SourceGoMemoryLimit}},
		{"explicit wins, the budget still counts", true, 32 * mib, SourceSetSoftLimit, 192 * mib, 0, noGo,
			limitChoice{32 * mib, 64 * mib, SourceSetSoftLimit, 192 * mib, SourceGoMemoryLimit}},
		{"off: no budget followed", true, 0, SourceEnv, 192 * mib, 0, noGo,
			limitChoice{0, 0, SourceEnv, 0, SourceNone}},
	} {
		got := chooseLimits(c.explicit, c.soft, c.src, c.user, c.cgroup, c.goInUse)
		if got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

// withGoLimit sets the Go memory limit for a test and restores it (and lets ferry see it) after.
func withGoLimit(t *testing.T, v int64) {
	prev := debug.SetMemoryLimit(v)
	if prev != math.MaxInt64 {
		t.Skipf("the process has a Go memory limit (%d) already", prev)
	}
	t.Cleanup(func() {
		debug.SetMemoryLimit(math.MaxInt64)
		if st := mustStats(t); st.RuntimeMemoryLimit != math.MaxInt64 || st.BudgetSource != SourceNone {
			t.Errorf("after removing the Go memory limit: runtime limit %d, budget from %q", st.RuntimeMemoryLimit, st.BudgetSource)
		}
	})
}

// TestBudgetFollowsSetMemoryLimit follows the runtime's limit through the user's own
// debug.SetMemoryLimit calls, in this process: ferry lowers it by its live bytes, a limit the user
// sets later becomes the budget, a value read from the runtime and set back is recognised, and
// SetSoftLimit(0) gives the runtime the user's limit back.
func TestBudgetFollowsSetMemoryLimit(t *testing.T) {
	waitLive(t, 0, 10*time.Second) // live bytes are this test's own
	prevSoft := SetSoftLimit(-1)
	defer SetSoftLimit(prevSoft)
	withGoLimit(t, 1<<30)
	check := func(what string, budget, runtimeLimit int64) {
		t.Helper()
		st := mustStats(t)
		if st.MemoryBudget != budget || st.BudgetSource != SourceGoMemoryLimit || st.RuntimeMemoryLimit != runtimeLimit {
			t.Fatalf("%s: budget %d from %q, runtime limit %d in Stats; want %d from the Go memory limit, %d",
				what, st.MemoryBudget, st.BudgetSource, st.RuntimeMemoryLimit, budget, runtimeLimit)
		}
		if got := debug.SetMemoryLimit(-1); got != runtimeLimit {
			t.Fatalf("%s: the runtime's limit is %d, want %d", what, got, runtimeLimit)
		}
	}
	check("a Go limit of 1 GiB, nothing live", 1<<30, 1<<30)
	b := mustNew(t, 32*mib) // one fold of more than a step (1 GiB / 64): ferry updates at once
	check("32 MiB held", 1<<30, 1<<30-32*mib)

	debug.SetMemoryLimit(512 * mib)
	check("the user sets 512 MiB", 512*mib, 512*mib-32*mib)

	saved := debug.SetMemoryLimit(-1) // ferry's lowered value
	debug.SetMemoryLimit(2 << 30)
	check("the user sets 2 GiB", 2<<30, 2<<30-32*mib)
	debug.SetMemoryLimit(saved)
	check("the user restores the value read before", 512*mib, 512*mib-32*mib)

	SetSoftLimit(0)
	if st := mustStats(t); st.BudgetSource != SourceNone || debug.SetMemoryLimit(-1) != 512*mib {
		t.Fatalf("soft limit off: budget from %q, runtime limit %d; want none, the user's 512 MiB",
			st.BudgetSource, debug.SetMemoryLimit(-1))
	}
	SetSoftLimit(prevSoft)
	check("soft limit back on", 512*mib, 512*mib-32*mib)
	if st := mustStats(t); st.SoftLimitSource != SourceSetSoftLimit || st.SoftLimit != prevSoft {
		t.Fatalf("soft limit %d from %s, want %d from SetSoftLimit", st.SoftLimit, st.SoftLimitSource, prevSoft)
	}

	b.Close()
	check("closed", 512*mib, 512*mib)
}

// TestBudgetUpdatesAreRateLimited: with a Go memory limit, New+Close loops of 64 B and of 1 MiB
// never move ferry's bytes by a step, so they never call into the runtime to set its limit.
func TestBudgetUpdatesAreRateLimited(t *testing.T) {
	waitLive(t, 0, 10*time.Second) // no cleanup of an earlier test's garbage moves the bytes meanwhile
	withGoLimit(t, 1<<30)
	mustStats(t)
	before := runtimeLimitSets.Load()
	for range 10000 {
		mustNew(t, 64).Close()
	}
	for range 1000 {
		mustNew(t, mib).Close()
	}
	if n := runtimeLimitSets.Load() - before; n > 0 {
		t.Fatalf("%d runtime limit updates for 10000 64 B and 1000 1 MiB New+Close", n)
	}
	// And a step's worth of open bytes is followed.
	held := make([]*Buffer, 0, 32)
	for range 32 {
		held = append(held, mustNew(t, mib))
	}
	if n := runtimeLimitSets.Load() - before; n == 0 || n > 3 {
		t.Fatalf("%d runtime limit updates for 32 MiB held (a step is 16 MiB)", n)
	}
	for _, b := range held {
		b.Close()
	}
}
