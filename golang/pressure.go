package ferry

/*
#include "ferry.h"
*/
import "C"

import (
	"os"
	"runtime"
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
//     a time, and the next one only after tracked grows again by half the soft limit);
//   - it sets the core's live-byte limit to twice the soft limit, and when a create is refused it
//     collects in the foreground, waits for the cleanups to release, and retries a few times before
//     it returns ErrLimitReached.

// DefaultSoftLimit is the soft limit when neither SetSoftLimit nor FERRY_SOFT_LIMIT says otherwise.
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
	setByUser   atomic.Bool
	// collectMu lets one goroutine at a time run a foreground collection; collectGen counts them, so
	// a goroutine that waited for another's collection retries without collecting again.
	collectMu  sync.Mutex
	collectGen atomic.Uint64
	// cleanupFreed counts the bytes released by cleanups, to judge how much a collection freed.
	cleanupFreed atomic.Int64
)

// SetSoftLimit sets the soft limit on the bytes held by open Buffers and returns the previous one.
// Past it ferry triggers a garbage collection so that unreachable Buffers release their memory; the
// core's live-byte limit is set to twice the soft limit. 0 turns both off. A negative value changes
// nothing (use it to read the current limit). It overrides FERRY_SOFT_LIMIT.
func SetSoftLimit(bytes int64) int64 {
	if bytes < 0 {
		ensureConfig()
		return softLimit.Load()
	}
	setByUser.Store(true)
	ensureConfig()
	return applySoftLimit(bytes)
}

func applySoftLimit(bytes int64) int64 {
	prev := softLimit.Swap(bytes)
	hard := int64(0)
	if bytes > 0 {
		hard = 2 * bytes
		nextTrigger.Store(bytes)
	} else {
		nextTrigger.Store(1<<63 - 1)
	}
	hardLimit.Store(hard)
	if abiErr == nil { // a mismatched library is never called (abi.go)
		C.ferry_limit_set(C.uint64_t(hard))
	}
	return prev
}

// ensureConfig applies the soft limit from the environment (or the default) on first use.
func ensureConfig() {
	configOnce.Do(func() {
		if setByUser.Load() {
			return
		}
		applySoftLimit(softLimitFromEnv(os.Getenv(SoftLimitEnv)))
	})
}

// softLimitFromEnv parses FERRY_SOFT_LIMIT; an empty or malformed value gives the default.
func softLimitFromEnv(s string) int64 {
	s = strings.TrimSpace(s)
	if s == "" {
		return DefaultSoftLimit
	}
	if strings.EqualFold(s, "off") {
		return 0
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
		return DefaultSoftLimit
	}
	return v * mult
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
		if next := nextTrigger.Load(); t >= next {
			if collecting.CompareAndSwap(false, true) {
				go backgroundCollect()
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
		trackedFolded.Add(s.unfolded.Swap(0))
	}
}

// untrackBytes stops counting n bytes of Buffers released by their cleanups.
func untrackBytes(n int64) {
	trackedFolded.Add(-n)
	cleanupFreed.Add(n)
}

// trackedBytes returns the exact bytes of open Buffers.
func trackedBytes() int64 {
	t := trackedFolded.Load()
	for i := range trackShardsArr {
		t += trackShardsArr[i].unfolded.Load()
	}
	return t
}

// backgroundCollect runs one collection on its own goroutine (track starts it past the trigger).
func backgroundCollect() {
	collectMu.Lock()
	paceCollect()
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
// good share of it, or else half the soft limit above what is still open, so that a program that
// really holds that much is not collected over and over. collectMu must be held.
func paceCollect() {
	before := cleanupFreed.Load()
	collect()
	soft := softLimit.Load()
	if soft <= 0 {
		return
	}
	if cleanupFreed.Load()-before >= soft/4 {
		nextTrigger.Store(soft)
	} else {
		nextTrigger.Store(max(soft, trackedBytes()+soft/2))
	}
}

// collect runs a garbage collection and waits, briefly, for the cleanups it queued to run and for
// their ids to be released.
func collect() {
	sentinelDone := make(chan struct{})
	runtime.AddCleanup(&sentinel{}, func(c chan struct{}) { close(c) }, sentinelDone)
	runtime.GC()
	collections.Add(1)
	collectGen.Add(1)
	select {
	case <-sentinelDone:
	case <-time.After(50 * time.Millisecond):
	}
	// Cleanups run in parallel: wait until none has run for two polls in a row (at most 50 ms).
	deadline := time.Now().Add(50 * time.Millisecond)
	last, quiet := cleanupsRun.Load(), 0
	for quiet < 2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Microsecond)
		if now := cleanupsRun.Load(); now != last {
			last, quiet = now, 0
		} else {
			quiet++
		}
	}
	flushReleases()
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
	assist()
	return true
}
