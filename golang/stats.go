package ferry

/*
#include "ferry.h"
*/
import "C"

import "expvar"

// Stats is a snapshot of ferry's counters: the process-wide table's (from Rust) and the Go
// package's own. The fields are read one by one, so under concurrent use they can be a few
// operations apart.
type Stats struct {
	// LiveIDs is the number of ids issued and not yet released, by anyone in the process.
	LiveIDs uint64
	// LiveBytes is the number of bytes held by live ids, counted once per allocation.
	LiveBytes uint64
	// PeakBytes is the highest LiveBytes since start or since ResetPeak.
	PeakBytes uint64
	// Created is the number of ids issued since start.
	Created uint64
	// Released is the number of ids released since start.
	Released uint64
	// LimitBytes is the core's live-byte limit, 0 for none: the hard limit, twice the soft limit or,
	// for a soft limit derived from a Go memory limit, the larger of 2 x DefaultSoftLimit and that
	// limit (unless C code set another).
	LimitBytes uint64
	// TrackedBytes is the length in bytes of the Buffers that are neither closed nor released by
	// their cleanup (a slice counts its own length).
	TrackedBytes int64
	// SoftLimit is the soft limit on TrackedBytes in force (see SetSoftLimit), 0 for none.
	SoftLimit int64
	// SoftLimitSource says where SoftLimit came from: SetSoftLimit, FERRY_SOFT_LIMIT, the Go
	// memory limit (derived from the budget the Go heap leaves), the cgroup, or the default.
	SoftLimitSource LimitSource
	// MemoryBudget is the memory budget that Go's memory and ferry's live bytes share, 0 for none:
	// the Go memory limit as the user set it (GOMEMLIMIT or debug.SetMemoryLimit), or else the
	// cgroup's memory limit when the soft limit was derived from it.
	MemoryBudget int64
	// BudgetSource says where MemoryBudget came from: SourceGoMemoryLimit, SourceCgroup or
	// SourceNone.
	BudgetSource LimitSource
	// RuntimeMemoryLimit is the Go runtime's memory limit in force (what debug.SetMemoryLimit(-1)
	// returns): while ferry follows a Go memory limit, MemoryBudget less ferry's live bytes as of
	// its last update; math.MaxInt64 for none.
	RuntimeMemoryLimit int64
	// PendingReleases is the number of ids that cleanups queued and that wait for a batched release.
	PendingReleases int
	// CleanupReleases is the number of Buffers released by the GC backstop, that is, never closed.
	CleanupReleases uint64
	// ReleaseCrossings is the number of batched release calls made for those.
	ReleaseCrossings uint64
	// Collections is the number of garbage collections ferry triggered because of memory pressure.
	Collections uint64
}

// ReadStats returns the current counters. It fails only if the library does (a caught panic), or
// is of another ABI version (ErrABIMismatch).
func ReadStats() (Stats, error) {
	if abiErr != nil {
		return Stats{}, abiErr
	}
	ensureConfig()
	src, budget, bsrc, rtLimit := budgetStats()
	flushCloses() // the core's figures count the ids of closed Buffers only once they are released
	var c C.FerryStats
	if err := statusErr(C.ferry_stats_get(&c)); err != nil {
		return Stats{}, err
	}
	return Stats{
		SoftLimitSource:    src,
		MemoryBudget:       budget,
		BudgetSource:       bsrc,
		RuntimeMemoryLimit: rtLimit,
		LiveIDs:            uint64(c.live_ids),
		LiveBytes:          uint64(c.live_bytes),
		PeakBytes:          uint64(c.peak_bytes),
		Created:            uint64(c.created),
		Released:           uint64(c.released),
		LimitBytes:         uint64(c.limit_bytes),
		TrackedBytes:       trackedBytes(),
		SoftLimit:          softLimit.Load(),
		PendingReleases:    pendingReleases(),
		CleanupReleases:    cleanupsRun.Load(),
		ReleaseCrossings:   releaseCrossings.Load(),
		Collections:        collections.Load(),
	}, nil
}

// ResetPeak starts peak tracking (Stats.PeakBytes) again from the current live bytes.
func ResetPeak() error {
	if abiErr != nil {
		return abiErr
	}
	return statusErr(C.ferry_peak_reset())
}

// PublishExpvar publishes ferry's Stats under name in the expvar registry (served as JSON at
// /debug/vars by a program that imports expvar's HTTP handler), read afresh on every request.
// Nothing is published until it is called. Like expvar.Publish, it panics if name is taken.
func PublishExpvar(name string) {
	expvar.Publish(name, expvar.Func(func() any {
		st, err := ReadStats()
		if err != nil {
			return map[string]string{"error": err.Error()}
		}
		return st
	}))
}
