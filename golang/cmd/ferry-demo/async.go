package main

// Phase 2: checksum jobs run on ferry's Rust worker threads; their completions come back to Go.
//
// Part A uses the Go package's API (ferry.Submit and Future.Wait, from several goroutines), whose
// poller takes up to 256 completions per crossing. Part B drives the C ABI's completion queue
// directly, so that the number of completions taken per crossing (ferry_queue_wait's cap) can be
// set: 1 (one crossing per completion) against batches of up to 16, 256 and 1024.

/*
#include "ferry.h"

typedef struct {
	uint64_t queue;
	FerryStatus status;
} demo_queue;

static inline demo_queue demo_queue_new(void) {
	demo_queue r = {0, 0};
	r.status = ferry_queue_new(&r.queue);
	return r;
}

typedef struct {
	size_t n;
	FerryStatus status;
} demo_waited;

static inline demo_waited demo_queue_wait(uint64_t queue, FerryCompletion *out, size_t cap) {
	demo_waited r = {0, 0};
	r.status = ferry_queue_wait(queue, out, cap, -1, &r.n);
	return r;
}
*/
import "C"

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	ferry "github.com/ferry/ferry/golang"
	"github.com/ferry/ferry/golang/internal/report"
)

// asyncRun is one measured way of getting completions to Go.
type asyncRun struct {
	Path     string // what submits and how it waits
	Delivery string // how many completions per crossing
	Cap      int    // the cap per crossing; 0 for the Go API (fixed inside the package)
	Drain    bool   // the completions were all queued before the timed drain began
	Jobs     int
	Elapsed  time.Duration
	Waits    int // crossings that returned completions (Part B only)
	MaxBatch int // the largest batch seen (Part B only)
}

func (r asyncRun) perSec() float64 { return float64(r.Jobs) / r.Elapsed.Seconds() }
func (r asyncRun) nsPer() float64  { return float64(r.Elapsed.Nanoseconds()) / float64(r.Jobs) }

// asyncResult is phase 2's measurements.
type asyncResult struct {
	Workers    int
	Submitters int
	InputSize  int
	Runs       []asyncRun
}

// batchCaps are the completions taken per crossing in part B.
var batchCaps = []int{1, 16, 256, 1024}

// asyncInputs makes n input buffers of size bytes with distinct contents, and their FNV-1a hashes
// computed in Go, which the Rust workers' checksums must equal.
func asyncInputs(n, size int) ([]*ferry.Buffer, []uint64, error) {
	bufs := make([]*ferry.Buffer, n)
	want := make([]uint64, n)
	for i := range bufs {
		b, err := ferry.New(size)
		if err != nil {
			return nil, nil, err
		}
		fill(b.Bytes(), uint64(i+1)*0x2545F4914F6CDD1D)
		h := fnv.New64a()
		h.Write(b.Bytes())
		bufs[i], want[i] = b, h.Sum64()
	}
	return bufs, want, nil
}

func runAsync(jobs int, logf func(string, ...any)) (asyncResult, error) {
	res := asyncResult{Workers: max(runtime.NumCPU(), 2), Submitters: 4, InputSize: 256}
	inputs, want, err := asyncInputs(16, res.InputSize)
	if err != nil {
		return res, err
	}
	defer func() {
		for _, b := range inputs {
			b.Close()
		}
	}()

	logf("  A: %d checksum jobs through ferry.Submit / Future.Wait from %d goroutines", jobs, res.Submitters)
	r, err := runFutures(jobs, res.Submitters, inputs, want, logf)
	if err != nil {
		return res, err
	}
	res.Runs = append(res.Runs, r)

	logf("  B: %d checksum jobs per run through the C ABI's completion queue, by completions per crossing", jobs)
	for _, drain := range []bool{false, true} {
		for _, cp := range batchCaps {
			r, err := runQueue(jobs, cp, drain, inputs, want)
			if err != nil {
				return res, err
			}
			res.Runs = append(res.Runs, r)
			logf("     %-22s %-16s %9.0f completions/s, %5.0f ns each, %6d crossings, batch avg %6.1f max %4d",
				r.Path, r.Delivery, r.perSec(), r.nsPer(), r.Waits, float64(r.Jobs)/float64(r.Waits), r.MaxBatch)
		}
	}
	// The Go API's engine and the pool stay up for reuse; shut them down so the end state is clean.
	if err := ferry.ShutdownAsync(); err != nil {
		return res, err
	}
	return res, nil
}

// runFutures runs jobs checksum jobs through the Go API: each of g goroutines submits a window of
// futures, then waits for each and checks its value.
func runFutures(jobs, g int, inputs []*ferry.Buffer, want []uint64, logf func(string, ...any)) (asyncRun, error) {
	const window = 128
	ctx := context.Background()
	var done atomic.Int64
	var firstErr error
	var errOnce sync.Once
	fail := func(err error) { errOnce.Do(func() { firstErr = err }) }
	var wg sync.WaitGroup
	start := time.Now()
	stop := make(chan struct{})
	go func() { // progress
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				logf("     ... %d of %d done", done.Load(), jobs)
			}
		}
	}()
	for w := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			futs := make([]*ferry.Future, 0, window)
			idx := make([]int, 0, window)
			for i := w; i < jobs; {
				futs, idx = futs[:0], idx[:0]
				for ; i < jobs && len(futs) < window; i += g {
					k := i % len(inputs)
					f, err := ferry.Submit(ctx, ferry.Request{Op: ferry.OpChecksum, Input: inputs[k]})
					if err != nil {
						fail(fmt.Errorf("submit: %w", err))
						return
					}
					futs, idx = append(futs, f), append(idx, k)
				}
				for j, f := range futs {
					out, err := f.Wait()
					if err != nil {
						fail(fmt.Errorf("job: %w", err))
						return
					}
					if out.Value != want[idx[j]] {
						fail(fmt.Errorf("checksum %016x from Rust, Go computed %016x", out.Value, want[idx[j]]))
						return
					}
				}
				done.Add(int64(len(futs)))
			}
		}()
	}
	wg.Wait()
	close(stop)
	if firstErr != nil {
		return asyncRun{}, firstErr
	}
	return asyncRun{
		Path:     fmt.Sprintf("Go API, %d goroutines", g),
		Delivery: "≤256 (package)",
		Jobs:     jobs,
		Elapsed:  time.Since(start),
	}, nil
}

// runQueue runs jobs checksum jobs on a queue of its own and drains it taking up to cp
// completions per ferry_queue_wait. Pipelined (drain false), a goroutine submits while this one
// drains, and the time covers both; with drain, every job is submitted and completed first and
// only the drain is timed.
func runQueue(jobs, cp int, drain bool, inputs []*ferry.Buffer, want []uint64) (asyncRun, error) {
	r := asyncRun{Cap: cp, Drain: drain, Jobs: jobs, Path: "submit + drain", Delivery: fmt.Sprintf("≤%d per crossing", cp)}
	if drain {
		r.Path = "drain only (queued)"
	}
	if cp == 1 {
		r.Delivery = "1 per crossing"
	}
	q := C.demo_queue_new()
	if q.status != C.FERRY_STATUS_OK {
		return r, fmt.Errorf("ferry_queue_new: %v", ferry.Status(q.status))
	}
	defer C.ferry_queue_close(q.queue)
	ids := make([]C.uint64_t, len(inputs))
	for i, b := range inputs {
		ids[i] = C.uint64_t(b.ID())
	}
	submitAll := func() error {
		for i := range jobs {
			for {
				st := C.ferry_async_submit(q.queue, C.uint64_t(i+1), C.FERRY_OP_CHECKSUM, ids[i%len(ids)], 0, 0)
				if st == C.FERRY_STATUS_OK {
					break
				}
				if st != C.FERRY_STATUS_QUEUE_FULL {
					return fmt.Errorf("ferry_async_submit: %v", ferry.Status(st))
				}
				runtime.Gosched()
			}
		}
		return nil
	}
	var subErr chan error
	var start time.Time
	if drain {
		if err := submitAll(); err != nil {
			return r, err
		}
		if err := waitIdle(10 * time.Second); err != nil {
			return r, err
		}
		start = time.Now()
	} else {
		subErr = make(chan error, 1)
		start = time.Now()
		go func() { subErr <- submitAll() }()
	}
	items := make([]C.FerryCompletion, cp)
	got := 0
	for got < jobs {
		w := C.demo_queue_wait(q.queue, &items[0], C.size_t(cp))
		if w.status != C.FERRY_STATUS_OK {
			return r, fmt.Errorf("ferry_queue_wait: %v", ferry.Status(w.status))
		}
		n := int(w.n)
		for _, c := range items[:n] {
			tag := int(c.tag)
			if c.status != C.FERRY_STATUS_OK || tag < 1 || tag > jobs {
				return r, fmt.Errorf("completion tag %d: status %v", tag, ferry.Status(c.status))
			}
			if v := uint64(c.value); v != want[(tag-1)%len(want)] {
				return r, fmt.Errorf("checksum %016x from Rust for job %d, Go computed %016x", v, tag, want[(tag-1)%len(want)])
			}
		}
		got += n
		r.Waits++
		r.MaxBatch = max(r.MaxBatch, n)
	}
	r.Elapsed = time.Since(start)
	if subErr != nil {
		if err := <-subErr; err != nil {
			return r, err
		}
	}
	runtime.KeepAlive(inputs)
	return r, nil
}

// waitIdle waits until no async job is in flight.
func waitIdle(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		cb, err := ferry.ReadCallbackStats()
		if err != nil {
			return err
		}
		if cb.InFlight == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d jobs still in flight after %v", cb.InFlight, limit)
		}
		time.Sleep(time.Millisecond)
	}
}

func asyncTable(a asyncResult) *report.Table {
	t := &report.Table{Header: []string{"path", "completions per crossing", "jobs", "completions/s", "ns each",
		"crossings", "batch avg", "batch max"}}
	for _, r := range a.Runs {
		crossings, avg, mx := "—", "—", "—"
		if r.Waits > 0 {
			crossings = fmt.Sprint(r.Waits)
			avg = fmt.Sprintf("%.1f", float64(r.Jobs)/float64(r.Waits))
			mx = fmt.Sprint(r.MaxBatch)
		}
		t.AddRow(r.Path, r.Delivery, fmt.Sprint(r.Jobs), report.SI(r.perSec()), fmt.Sprintf("%.0f", r.nsPer()),
			crossings, avg, mx)
	}
	return t
}

// speedup returns the completions/s at cap cp over those at cap 1, for the drain-only or the
// pipelined runs; NaN if either is missing.
func (a asyncResult) speedup(cp int, drain bool) float64 {
	var one, at float64
	for _, r := range a.Runs {
		if r.Cap == 0 || r.Drain != drain {
			continue
		}
		if r.Cap == 1 {
			one = r.perSec()
		}
		if r.Cap == cp {
			at = r.perSec()
		}
	}
	if one == 0 || at == 0 {
		return math.NaN()
	}
	return at / one
}

func asyncChart(a asyncResult) *report.BarChart {
	c := &report.BarChart{
		Title:  "Completions per second by completions per crossing (higher is better)",
		YLabel: "completions per second (log scale)",
		LogY:   true,
	}
	for _, cp := range batchCaps {
		if cp == 1 {
			c.Categories = append(c.Categories, "1 per crossing")
		} else {
			c.Categories = append(c.Categories, fmt.Sprintf("≤%d", cp))
		}
	}
	c.Categories = append(c.Categories, "Go API (≤256)")
	pipe := report.BarSeries{Name: "submit + drain"}
	drain := report.BarSeries{Name: "drain only"}
	for _, cp := range batchCaps {
		for _, r := range a.Runs {
			if r.Cap == cp && r.Drain {
				drain.Values = append(drain.Values, r.perSec())
			} else if r.Cap == cp {
				pipe.Values = append(pipe.Values, r.perSec())
			}
		}
	}
	api := math.NaN()
	for _, r := range a.Runs {
		if r.Cap == 0 {
			api = r.perSec()
		}
	}
	pipe.Values = append(pipe.Values, api)
	drain.Values = append(drain.Values, math.NaN())
	c.Series = []report.BarSeries{pipe, drain}
	return c
}

func asyncDoc(d *report.Doc, a asyncResult) {
	d.Para(fmt.Sprintf(`Checksum jobs (FNV-1a over a %d-byte Rust buffer) run on ferry's Rust worker pool (%d
threads on this machine); each job's completion (tag, status, value) is delivered to Go, and Go checks
every value against its own FNV-1a of the same bytes.`, a.InputSize, a.Workers))
	d.List(
		fmt.Sprintf("**Go API**: %d goroutines call `ferry.Submit` and `Future.Wait` (windows of 128 jobs); the package's poller goroutine takes up to 256 completions per crossing.", a.Submitters),
		"**C ABI queue, submit + drain**: one goroutine submits (`ferry_async_submit`, one cgo call per job) while another drains with `ferry_queue_wait`, taking at most the given number of completions per crossing. The time covers both, so submits bound it.",
		"**C ABI queue, drain only**: every job is submitted and completed first; only the drain is timed. This is the cost of delivery alone.",
	)
	d.Table(asyncTable(a))
	d.Para(fmt.Sprintf(`Batched delivery (up to 256 per crossing) against one completion per crossing: %.1f× the
completions per second when draining, %.1f× with submits in the loop. A batch never waits to fill:
ferry_queue_wait returns as soon as one completion is ready, so "batch avg" shows how many were ready.`,
		a.speedup(256, true), a.speedup(256, false)))
}
