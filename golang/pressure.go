package ferry

/*
#include "ferry.h"
*/
import "C"

import (
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Go's collector cannot see Rust memory: a program that drops Buffers without Close could grow
// without bound before the GC ever runs their cleanups. So ferry counts the bytes of every Buffer
// that is neither closed nor released by its cleanup (tracked), and:
//   - when tracked passes the soft limit, it starts a collection in the background (at most one at
//     a time, and the next one only after tracked grows again by half the soft limit, when a
//     collection freed little);
//   - it sets the core's live-byte limit to twice the soft limit, and when a create is refused it
//     collects in the foreground, waits for the cleanups to release, and retries a few times before
//     it returns ErrLimitReached.
// Which soft limit, and how ferry shares a Go memory limit with the Go heap: budget.go.

// DefaultSoftLimit is the soft limit when nothing else sets one: SetSoftLimit, FERRY_SOFT_LIMIT,
// a Go memory limit or a cgroup memory limit below 1 GiB (see ReadStats for the one in force).
const DefaultSoftLimit = 256 << 20

// SoftLimitEnv is the environment variable read, on first use of the package, for the soft limit:
// a byte count with an optional K, M, G, KiB, MiB or GiB suffix, or "off".
const SoftLimitEnv = "FERRY_SOFT_LIMIT"

const relieveAttempts = 4

var (
	softLimit   atomic.Int64
	hardLimit   atomic.Int64
	nextTrigger atomic.Int64
	collecting  atomic.Bool
	collections atomic.Uint64
	configOnce  sync.Once
	// collectMu lets one goroutine at a time run a foreground collection; collectGen counts them, so
	// a goroutine that waited for another's collection retries without collecting again.
	collectMu  sync.Mutex
	collectGen atomic.Uint64
	// cleanupFreed counts the bytes released by cleanups, to judge how much a collection freed.
	cleanupFreed atomic.Int64
)

// SetSoftLimit sets the soft limit on the bytes held by open Buffers and returns the previous one.
// Past it ferry triggers a garbage collection so that unreachable Buffers release their memory; the
// core's live-byte limit is set to twice the soft limit. 0 turns both off, and ferry then leaves
// the Go memory limit alone too. A negative value changes nothing (use it to read the current
// limit). It overrides FERRY_SOFT_LIMIT, and a soft limit derived from a Go memory limit or a
// cgroup (see ReadStats for the one in force); while a Go memory limit is set, ferry still lowers
// the runtime's limit by its live bytes.
func SetSoftLimit(bytes int64) int64 {
	ensureConfig()
	if bytes < 0 {
		return softLimit.Load()
	}
	lim.mu.Lock()
	defer unlockLim()
	prev := softLimit.Load()
	lim.explicit, lim.explicitSoft, lim.explicitSrc = true, bytes, SourceSetSoftLimit
	heldAfter.Store(0)
	refreshLocked(true)
	return prev
}

// setCoreLimit sets the core's live-byte limit.
func setCoreLimit(hard int64) {
	if abiErr == nil { // a mismatched library is never called (abi.go)
		C.ferry_limit_set(C.uint64_t(hard))
	}
}

// coreLiveBytes returns the core's live bytes (every id in the process, each allocation once).
func coreLiveBytes() int64 {
	flushCloses()
	var c C.FerryStats
	if abiErr != nil || C.ferry_stats_get(&c) != C.FERRY_STATUS_OK {
		return trackedBytes()
	}
	return int64(c.live_bytes)
}

// ensureConfig applies the limits on first use: FERRY_SOFT_LIMIT, the Go memory limit, the
// cgroup's memory limit, or the default (see applyLimitsLocked).
func ensureConfig() {
	configOnce.Do(func() {
		lim.mu.Lock()
		defer unlockLim()
		if v, ok := parseSoftLimit(os.Getenv(SoftLimitEnv)); ok {
			lim.explicit, lim.explicitSoft, lim.explicitSrc = true, v, SourceEnv
		}
		lim.cgroupMax = cgroupMemoryLimit()
		lim.user = noGoLimit
		lim.lastSet = noGoLimit
		refreshLocked(true)
	})
}

// softLimitFromEnv parses FERRY_SOFT_LIMIT; an empty or malformed value gives the default.
func softLimitFromEnv(s string) int64 {
	if v, ok := parseSoftLimit(s); ok {
		return v
	}
	return DefaultSoftLimit
}

// parseSoftLimit parses a FERRY_SOFT_LIMIT value; ok is false for an empty or malformed one.
func parseSoftLimit(s string) (v int64, ok bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	if strings.EqualFold(s, "off") {
		return 0, true
	}
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, false
	}
	return v * mult, true
}

// The bytes of open Buffers are counted in padded shards, so that goroutines on different Ps do not
// fight over one cache line on every New and Close. A Buffer counts in the shard picked by its
// address: the Ps allocate from different spans, so that spreads them, and Close finds the same
// shard again. A shard folds its running delta into trackedFolded when it passes ±trackGrain, and
// the soft-limit trigger is checked then, so a trigger can trail the truth by less than trackGrain
// per shard; a buffer of trackGrain bytes or more folds at once. trackedBytes sums everything and
// is exact.
const (
	trackShards = 16
	trackGrain  = 256 << 10
)

type trackShard struct {
	unfolded atomic.Int64
	_        [120]byte
}

var (
	trackShardsArr [trackShards]trackShard
	trackedFolded  atomic.Int64
)

func shardOf(b *Buffer) *trackShard {
	return &trackShardsArr[(uintptr(unsafe.Pointer(b))>>13)%trackShards]
}

// track counts a new Buffer's bytes and starts a background collection past the trigger.
func track(b *Buffer) {
	s := shardOf(b)
	if s.unfolded.Add(int64(b.n)) >= trackGrain {
		t := trackedFolded.Add(s.unfolded.Swap(0))
		budgetCheck(t)
		if next := nextTrigger.Load(); t >= next {
			if collecting.CompareAndSwap(false, true) {
				go backgroundCollect(collectGen.Load())
			}
			if t >= next+softLimit.Load()/2 {
				assist()
			}
		}
	}
}

// untrack stops counting the bytes of a Buffer that was closed or detached.
func untrack(b *Buffer) {
	s := shardOf(b)
	if s.unfolded.Add(-int64(b.n)) <= -trackGrain {
		budgetCheck(trackedFolded.Add(s.unfolded.Swap(0)))
	}
}

// untrackBytes stops counting n bytes of Buffers released by their cleanups.
func untrackBytes(n int64) {
	cleanupFreed.Add(n)
	budgetCheck(trackedFolded.Add(-n))
}

// trackedBytes returns the exact bytes of open Buffers.
func trackedBytes() int64 {
	t := trackedFolded.Load()
	for i := range trackShardsArr {
		t += trackShardsArr[i].unfolded.Load()
	}
	return t
}

// backgroundCollect runs one collection on its own goroutine (track starts it past the trigger),
// unless a collection finished since the trigger (gen is collectGen then): that one freed what
// this one would have, and a collection of nothing would only hold allocations back.
func backgroundCollect(gen uint64) {
	collectMu.Lock()
	if collectGen.Load() == gen {
		paceCollect()
	}
	collectMu.Unlock()
	collecting.Store(false)
}

// assist makes an allocating goroutine wait for a collection, running one itself unless another
// goroutine's collection finished while it waited. Allocators assist once the bytes of open
// Buffers pass the trigger by half the soft limit: when garbage Buffers are made faster than a
// background collection frees them, that slows their makers down instead of letting the bytes
// climb to the hard limit.
func assist() {
	gen := collectGen.Load()
	collectMu.Lock()
	if collectGen.Load() == gen {
		paceCollect()
	}
	collectMu.Unlock()
}

// paceCollect collects and sets the next trigger: the soft limit again if the collection freed a
// good share of it, or else half the soft limit above what is still open (heldAfter), so that a
// program that really holds that much is not collected over and over. It also refreshes the
// budget, so a soft limit derived from a Go memory limit follows the Go heap. collectMu must be
// held.
func paceCollect() {
	before := cleanupFreed.Load()
	tb := trackedBytes()
	collect()
	// Bytes that were open before the collection and still are: what the program holds (Buffers
	// made during the collection could not be collected by it, and say nothing of that).
	if freed := cleanupFreed.Load() - before; freed >= softLimit.Load()/4 {
		heldAfter.Store(0)
	} else {
		heldAfter.Store(max(tb-freed, 0))
	}
	refreshBudget() // sets the next trigger, from a soft limit derived afresh if it follows a budget
}

// collect runs a garbage collection, waits (at most 100 ms) for the cleanups it queued to run,
// releases their ids and waits for batches of them already on their way. collectMu must be held.
// runtime.GC returns once the cycle is swept, and every cleanup of the cycle is queued by then:
// where the runtime publishes its cleanup counters (runtime/metrics /gc/cleanups/...), collect
// waits until as many cleanups have run as were queued; elsewhere it waits for a sentinel's
// cleanup and then until no cleanup has run for two polls in a row.
func collect() {
	if !cleanupCountsChecked {
		cleanupCountsChecked = true
		cleanupCountsInit()
	}
	counted := cleanupCounts != nil
	var sentinelDone chan struct{}
	if !counted {
		sentinelDone = make(chan struct{})
		runtime.AddCleanup(&sentinel{}, func(c chan struct{}) { close(c) }, sentinelDone)
	}
	runtime.GC()
	collections.Add(1)
	collectGen.Add(1)
	deadline := time.Now().Add(100 * time.Millisecond)
	if counted {
		queued, _ := readCleanupCounts()
		for time.Now().Before(deadline) {
			if _, executed := readCleanupCounts(); executed >= queued {
				break
			}
			time.Sleep(50 * time.Microsecond)
		}
	} else {
		select {
		case <-sentinelDone:
		case <-time.After(50 * time.Millisecond):
		}
		last, quiet := cleanupsRun.Load(), 0
		for quiet < 2 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Microsecond)
			if now := cleanupsRun.Load(); now != last {
				last, quiet = now, 0
			} else {
				quiet++
			}
		}
	}
	flushReleases()
	flushCloses()
	// A batch that a cleanup or the release timer took from the queue may still be on its way to
	// Rust: wait for it too, so that what is tracked now is what the collection left.
	for releasesInFlight.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Microsecond)
	}
}

// cleanupCounts reads the runtime's cleanup counters; nil where the runtime has none. collectMu
// guards it and cleanupCountsChecked.
var (
	cleanupCounts        []metrics.Sample
	cleanupCountsChecked bool
)

// cleanupCountsInit sets cleanupCounts if the runtime counts cleanups.
func cleanupCountsInit() {
	s := []metrics.Sample{{Name: "/gc/cleanups/queued:cleanups"}, {Name: "/gc/cleanups/executed:cleanups"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 && s[1].Value.Kind() == metrics.KindUint64 {
		cleanupCounts = s
	}
}

// readCleanupCounts returns how many cleanups the runtime has queued and executed since start.
func readCleanupCounts() (queued, executed uint64) {
	metrics.Read(cleanupCounts)
	return cleanupCounts[0].Value.Uint64(), cleanupCounts[1].Value.Uint64()
}

// sentinel is an object whose cleanup tells collect that this cycle's cleanups have started.
type sentinel struct {
	_ *int
	_ [24]byte
}

// relieve is called after the core refused a create of n bytes with LIMIT_REACHED; it reports
// whether to retry, after collecting garbage so that cleanups release what they can.
func relieve(attempt, n int) bool {
	hard := hardLimit.Load()
	if attempt >= relieveAttempts || (hard > 0 && int64(n) > hard) {
		return false
	}
	if flushCloses() > 0 {
		return true // closed Buffers held the bytes: retry before collecting
	}
	assist()
	return true
}
