package ferry

import (
	"math"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// One memory budget. When the program has a Go memory limit (GOMEMLIMIT, or debug.SetMemoryLimit),
// Go's collector keeps only the memory the Go runtime manages within it, and every byte ferry
// lends is outside. So, while such a limit is set (and the soft limit is not off), ferry
//   - lowers the runtime's limit by its live bytes (never below an eighth of the limit), so that
//     Go's own collector runs earlier as Rust holds more, and raises it again as they are
//     released: ferry's bytes push the collector;
//   - unless a soft limit was set explicitly, derives its soft limit from what the Go heap leaves
//     of the budget: half of (limit - Go's live heap and runtime memory), at least a sixteenth of
//     the limit and at most DefaultSoftLimit, so that ferry collects, and the cleanups of dropped
//     Buffers release their bytes, before Go memory + ferry bytes pass the limit (the lowered
//     runtime limit alone does not do that: a Buffer costs Go's heap a few dozen bytes, so Go's
//     collector hardly runs while Rust bytes pile up; measured with TestBudgetDropWithoutClose,
//     2.4 x the limit without the derived soft limit, 0.9-1.0 x with it);
//   - sets the core's live-byte limit to the larger of 2 x DefaultSoftLimit and the budget, so a
//     growing Go heap never makes ferry refuse a create: the Go heap never pushes ferry's bytes.
// The runtime is told when the bytes of open Buffers have moved by budget/budgetStepDiv since the
// last update (and after each of ferry's collections), never on every New and Close.
//
// The user's own debug.SetMemoryLimit calls keep working: ferry reads the runtime's limit before
// it sets one, and a value it did not set is the user's new budget. A value ferry set recently
// that is set again (a limit read and later restored) is recognised as the budget it came from.
//
// Without a Go memory limit or an explicit soft limit, a cgroup memory limit below 4 x
// DefaultSoftLimit gives the default soft limit: a quarter of it (cgroup.go finds it).

const (
	// budgetStepDiv: the runtime's limit is updated when ferry's bytes moved by limit/budgetStepDiv.
	budgetStepDiv = 64
	// budgetIdleStep: with no Go memory limit, ferry looks for one set later (debug.SetMemoryLimit)
	// each time the bytes of open Buffers move by this much, and after each of its collections.
	budgetIdleStep = 32 << 20
	// goLimitFloorDiv: ferry never lowers the runtime's limit below limit/goLimitFloorDiv.
	goLimitFloorDiv = 8
	// budgetSoftFloorDiv: a soft limit derived from the budget is at least limit/budgetSoftFloorDiv.
	budgetSoftFloorDiv = 16
	// cgroupSoftDiv: under a cgroup memory limit, the default soft limit is limit/cgroupSoftDiv
	// when that is below DefaultSoftLimit.
	cgroupSoftDiv = 4
	noGoLimit     = math.MaxInt64
)

// LimitSource says where a limit came from (Stats.SoftLimitSource and Stats.BudgetSource).
type LimitSource string

const (
	// SourceNone: there is no such limit.
	SourceNone LimitSource = ""
	// SourceDefault: DefaultSoftLimit.
	SourceDefault LimitSource = "default"
	// SourceSetSoftLimit: a call to SetSoftLimit.
	SourceSetSoftLimit LimitSource = "SetSoftLimit"
	// SourceEnv: the FERRY_SOFT_LIMIT environment variable.
	SourceEnv LimitSource = "FERRY_SOFT_LIMIT"
	// SourceGoMemoryLimit: the Go memory limit (GOMEMLIMIT or debug.SetMemoryLimit).
	SourceGoMemoryLimit LimitSource = "GOMEMLIMIT"
	// SourceCgroup: the memory limit of the process's cgroup (memory.max, or cgroup v1's
	// memory.limit_in_bytes).
	SourceCgroup LimitSource = "cgroup"
)

// lim is the limit configuration; mu serialises every change to it and to the runtime's limit.
var lim struct {
	mu sync.Mutex
	// explicit is set by SetSoftLimit or a valid FERRY_SOFT_LIMIT: explicitSoft then wins.
	explicit     bool
	explicitSoft int64
	explicitSrc  LimitSource
	// cgroupMax is the cgroup memory limit found on first use, 0 for none.
	cgroupMax int64
	// user is the user's Go memory limit, noGoLimit for none; lastSet is the runtime's limit as
	// ferry last read or set it; recent remembers the limits ferry set and the budget of each.
	user    int64
	lastSet int64
	recent  [64]struct{ set, user int64 }
	next    int
	// What is in force, for Stats.
	source       LimitSource
	budget       int64
	budgetSource LimitSource
	samples      []metrics.Sample
}

var (
	// budgetPending asks the holder of lim.mu (or the next caller to get it) to refresh again.
	budgetPending atomic.Bool
	// budgetAt is trackedBytes at the last refresh; a fold that moves it by budgetStep refreshes.
	budgetAt   atomic.Int64
	budgetStep atomic.Int64
	// heldAfter is the bytes still tracked after a collection that freed little (0 if it freed a
	// good share): the next trigger is then half a soft limit above them.
	heldAfter atomic.Int64
	// runtimeLimitSets counts ferry's debug.SetMemoryLimit calls that set a limit.
	runtimeLimitSets atomic.Uint64
)

// budgetCheck is called when the tracked total t changed by a fold: it refreshes the budget once
// t has moved by budgetStep since the last refresh (0 before the first use). It costs two loads
// otherwise.
func budgetCheck(t int64) {
	d := t - budgetAt.Load()
	if st := budgetStep.Load(); st > 0 && (d >= st || -d >= st) {
		refreshBudget()
	}
}

// refreshBudget re-reads the Go memory limit, sets the runtime's limit for ferry's live bytes and
// re-derives the soft limit. A caller that finds another refresh running leaves it the work.
func refreshBudget() {
	budgetPending.Store(true)
	for budgetPending.Load() && lim.mu.TryLock() {
		budgetPending.Store(false)
		refreshLocked(false)
		lim.mu.Unlock()
	}
}

// refreshLocked does refreshBudget's work with lim.mu held; force sets the core's limit even if
// it did not change (SetSoftLimit does, in case C code set another).
func refreshLocked(force bool) {
	cur := debug.SetMemoryLimit(-1)
	if cur != lim.lastSet {
		lim.user = recognise(cur) // the user set a limit since ferry last looked
	}
	live := int64(-1) // read when needed, once
	for {
		want := lim.user
		if following() {
			if live < 0 {
				live = max(coreLiveBytes(), 0)
			}
			want = max(lim.user-live, lim.user/goLimitFloorDiv)
		}
		if want == cur {
			break
		}
		prev := debug.SetMemoryLimit(want)
		runtimeLimitSets.Add(1)
		if prev == cur {
			cur = want
			break
		}
		// The user set a limit between the read and the set: the runtime has ferry's value for
		// the old budget now; start again from theirs.
		cur, lim.user = want, recognise(prev)
	}
	if cur != lim.lastSet {
		lim.recent[lim.next%len(lim.recent)] = struct{ set, user int64 }{cur, lim.user}
		lim.next++
	}
	lim.lastSet = cur
	if lim.user == noGoLimit {
		budgetStep.Store(budgetIdleStep)
	} else {
		budgetStep.Store(max(lim.user/budgetStepDiv, trackGrain))
	}
	budgetAt.Store(trackedBytes())
	applyLimitsLocked(force)
}

// recognise returns the user's budget for a runtime limit that ferry did not just set: the
// budget a recent ferry value came from, or else the value itself.
func recognise(v int64) int64 {
	if v == noGoLimit {
		return v
	}
	for _, r := range lim.recent {
		if r.set == v && r.set != 0 {
			return r.user
		}
	}
	return v
}

// following reports whether ferry follows a Go memory limit: one is set and the soft limit is not
// off. lim.mu must be held.
func following() bool {
	return lim.user != noGoLimit && !(lim.explicit && lim.explicitSoft == 0)
}

// limitChoice is what chooseLimits decides.
type limitChoice struct {
	soft, hard   int64
	source       LimitSource
	budget       int64
	budgetSource LimitSource
}

// chooseLimits decides the soft and hard limits and the budget: an explicit soft limit wins
// (hard = 2 x soft); else, with a Go memory limit (user, noGoLimit for none), the soft limit is
// derived from what the Go runtime's memory in use (goInUse, called only then) leaves of it; else
// a quarter of the cgroup's memory limit (cgroupMax, 0 for none) when that is below the default;
// else the default. With a Go memory limit the budget is that limit, whichever soft limit wins
// (unless it is 0, off); with a cgroup-derived soft limit it is the cgroup's limit.
func chooseLimits(explicit bool, explicitSoft int64, explicitSrc LimitSource, user, cgroupMax int64, goInUse func() int64) limitChoice {
	c := limitChoice{soft: DefaultSoftLimit, hard: 2 * DefaultSoftLimit, source: SourceDefault}
	if v := cgroupMax / cgroupSoftDiv; v > 0 && v < c.soft {
		c = limitChoice{soft: v, hard: 2 * v, source: SourceCgroup, budget: cgroupMax, budgetSource: SourceCgroup}
	}
	follow := user != noGoLimit && !(explicit && explicitSoft == 0)
	switch {
	case explicit:
		c = limitChoice{soft: explicitSoft, hard: 2 * explicitSoft, source: explicitSrc}
	case follow:
		derived := max((user-goInUse())/2, user/budgetSoftFloorDiv, 1<<20)
		c = limitChoice{soft: min(DefaultSoftLimit, derived), hard: max(2*DefaultSoftLimit, user), source: SourceGoMemoryLimit}
	}
	if follow {
		c.budget, c.budgetSource = user, SourceGoMemoryLimit
	}
	return c
}

// applyLimitsLocked sets the soft and hard limits and the next trigger from the configuration;
// lim.mu must be held.
func applyLimitsLocked(force bool) {
	c := chooseLimits(lim.explicit, lim.explicitSoft, lim.explicitSrc, lim.user, lim.cgroupMax, goInUse)
	lim.source, lim.budget, lim.budgetSource = c.source, c.budget, c.budgetSource
	softLimit.Store(c.soft)
	if force || hardLimit.Load() != c.hard {
		hardLimit.Store(c.hard)
		setCoreLimit(c.hard)
	}
	// The bytes a collection could not free are never more than are open now (releases can
	// trail a collection).
	held := heldAfter.Load()
	if t := trackedBytes(); t < held {
		heldAfter.CompareAndSwap(held, t)
		held = t
	}
	nextTrigger.Store(triggerFor(c.soft, held))
}

// triggerFor returns the tracked bytes at which ferry next collects: the soft limit, or half of it
// above the bytes a collection could not free; never, with the soft limit off.
func triggerFor(soft, held int64) int64 {
	if soft <= 0 {
		return math.MaxInt64
	}
	return max(soft, held+soft/2)
}

// goInUse returns the Go runtime's memory that a collection cannot free: the heap live at the end
// of the last collection plus the runtime's memory outside the heap. lim.mu must be held.
func goInUse() int64 {
	if lim.samples == nil {
		lim.samples = []metrics.Sample{
			{Name: "/gc/heap/live:bytes"},
			{Name: "/memory/classes/total:bytes"},
			{Name: "/memory/classes/heap/objects:bytes"},
			{Name: "/memory/classes/heap/unused:bytes"},
			{Name: "/memory/classes/heap/free:bytes"},
			{Name: "/memory/classes/heap/released:bytes"},
		}
	}
	metrics.Read(lim.samples)
	var v [6]uint64
	for i, s := range lim.samples {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	nonHeap := int64(v[1]) - int64(v[2]+v[3]+v[4]+v[5])
	return int64(v[0]) + max(nonHeap, 0)
}

// budgetStats returns what Stats reports about the budget, after a refresh if the user changed
// the runtime's limit since ferry last looked.
func budgetStats() (src LimitSource, budget int64, bsrc LimitSource, runtimeLimit int64) {
	lim.mu.Lock()
	defer unlockLim()
	if debug.SetMemoryLimit(-1) != lim.lastSet {
		refreshLocked(false)
	}
	return lim.source, lim.budget, lim.budgetSource, lim.lastSet
}

// unlockLim unlocks lim.mu and then does a refresh that was asked for while it was held.
func unlockLim() {
	lim.mu.Unlock()
	if budgetPending.Load() {
		refreshBudget()
	}
}
