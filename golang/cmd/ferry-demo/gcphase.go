package main

// Phase 3: buffers dropped without Close. Go's collector sees only the small Buffer objects, not
// the Rust bytes behind them; ferry counts those bytes and collects when they pass the soft limit.

import (
	"fmt"
	"runtime"
	"time"

	ferry "github.com/ferry/ferry/golang"
)

// gcResult is what the GC phase measured.
type gcResult struct {
	Total, BufSize  int64
	Buffers         int
	SoftLimit       int64
	HardLimit       uint64
	PeakLiveBytes   uint64
	GoHeapPeak      uint64 // the largest HeapAlloc sampled during the phase
	GoGCs           uint32 // garbage collections during the phase, ferry's included
	FerryCollects   uint64 // collections ferry triggered
	CleanupReleases uint64 // ids released by the GC backstop
	ReleaseCalls    uint64 // batched release crossings for those
	Elapsed         time.Duration
}

// runGC allocates total bytes in buffers of bufSize, writes one byte per page of each (so the
// memory is really used), and drops every one without Close, under the given soft limit.
func runGC(total, bufSize, soft int64, logf func(string, ...any)) (gcResult, error) {
	r := gcResult{Total: total, BufSize: bufSize, Buffers: int(total / bufSize), SoftLimit: soft}
	prev := ferry.SetSoftLimit(soft)
	defer ferry.SetSoftLimit(prev)
	if err := ferry.ResetPeak(); err != nil {
		return r, err
	}
	st0, err := ferry.ReadStats()
	if err != nil {
		return r, err
	}
	r.HardLimit = st0.LimitBytes
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gc0 := ms.NumGC
	every := max(r.Buffers/8, 1)
	start := time.Now()
	for i := range r.Buffers {
		b, err := ferry.New(int(bufSize))
		if err != nil {
			return r, fmt.Errorf("buffer %d of %d: %w", i, r.Buffers, err)
		}
		p := b.Bytes()
		for j := 0; j < len(p); j += 4096 {
			p[j] = byte(i)
		}
		runtime.KeepAlive(b)
		// b is dropped here, never closed.
		if (i+1)%every == 0 {
			st, err := ferry.ReadStats()
			if err != nil {
				return r, err
			}
			runtime.ReadMemStats(&ms)
			r.GoHeapPeak = max(r.GoHeapPeak, ms.HeapAlloc)
			logf("  %5s of %s dropped: live Rust bytes %8s (peak %8s), Go heap %8s, ferry-triggered GCs %d",
				sizeName(int(bufSize)*(i+1)), sizeName(int(total)), sizeName(int(st.LiveBytes)),
				sizeName(int(st.PeakBytes)), sizeName(int(ms.HeapAlloc)), st.Collections-st0.Collections)
		}
	}
	r.Elapsed = time.Since(start)
	st, err := ferry.ReadStats()
	if err != nil {
		return r, err
	}
	runtime.ReadMemStats(&ms)
	r.PeakLiveBytes = st.PeakBytes
	r.GoGCs = ms.NumGC - gc0
	r.FerryCollects = st.Collections - st0.Collections
	r.CleanupReleases = st.CleanupReleases - st0.CleanupReleases
	r.ReleaseCalls = st.ReleaseCrossings - st0.ReleaseCrossings
	if r.HardLimit > 0 && r.PeakLiveBytes > r.HardLimit {
		return r, fmt.Errorf("peak live Rust bytes %d passed the limit %d", r.PeakLiveBytes, r.HardLimit)
	}
	if r.CleanupReleases == 0 {
		return r, fmt.Errorf("no buffer was released by its cleanup")
	}
	return r, nil
}
