package ferry

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// ferry's heap profile answers "who holds the Rust memory?" the way Go's heap profiler answers it
// for Go memory (runtime.MemProfileRate): Buffers are sampled as they are made, on average one per
// rate bytes, and a sampled Buffer's creation stack is recorded until its bytes are released (by
// Close, Detach or the cleanup). WriteHeapProfile (profile_write.go) writes the records as a pprof
// profile, each scaled by the inverse of the probability that its Buffer was sampled.
//
// The hooks, called where the buffer code makes and releases Buffers:
//   - profileAlloc(b) in adoptView, where every Buffer is made: for a Buffer that is not sampled it
//     costs one compare-and-swap on a byte countdown (no lock, no map); a sampled one gets b.prof;
//   - profileFree(b) where a Buffer's id is released by Close or handed over by Detach: one nil
//     check unless b.prof is set;
//   - profileDropped(a.prof) in the cleanup: the Buffer was dropped without Close.
//
// The decision: each of heapShardCount countdowns (a Buffer uses the one its address picks, like
// the byte counters in pressure.go) holds the bytes left until its next sample, drawn from an
// exponential distribution with mean rate. A Buffer of n bytes is sampled when n is at least the
// countdown, and a new countdown is drawn; otherwise the countdown goes down by n. The draw is
// memoryless, so a Buffer of n bytes is sampled with probability 1-exp(-n/rate) whatever came
// before it, and counts 1/(1-exp(-n/rate)) times in the profile. An empty Buffer is never sampled
// unless the rate is 1, which samples every Buffer and counts each once.
//
// Like Go's, the profile keeps one bucket per creation stack for the life of the process (its
// alloc_* counts are cumulative), so its memory grows with the number of distinct stacks that
// made sampled Buffers, not with the number of Buffers.

// DefaultHeapProfileRate is the heap profile's sampling rate when neither SetHeapProfileRate nor
// FERRY_HEAP_PROFILE_RATE says otherwise: on average one Buffer is sampled per 8 MiB of Buffers
// made. A Buffer that is not sampled costs one atomic compare-and-swap more to make; a sampled one
// costs a walk of its stack, several microseconds right after a large buffer was zeroed (the
// walk's tables are then out of the caches). Go samples its heap every 512 KiB, but ferry's
// buffers are larger than Go's objects: at 512 KiB, 86% of 1 MiB Buffers are sampled and their
// New+Bytes+Close costs 11-14% more; at 8 MiB 12% are, and it costs 1.5-5% more, and 0.5-1.7%
// at 64 B (BenchmarkHeapProfileCost, 2-core machine). Lower the rate (1 records every Buffer) to
// look closer.
const DefaultHeapProfileRate = 8 << 20

// HeapProfileRateEnv is the environment variable read at start-up for the heap profile's sampling
// rate: a byte count (1 records every Buffer), or "off" (or 0) for none. A malformed value gives
// DefaultHeapProfileRate.
const HeapProfileRateEnv = "FERRY_HEAP_PROFILE_RATE"

const (
	heapShardCount = 16
	heapMaxDepth   = 64
)

type heapShard struct {
	countdown atomic.Int64
	_         [120]byte
}

// heapSample is the record of one sampled Buffer: what it adds to its bucket while it is open.
type heapSample struct {
	bucket *heapBucket
	// objects is the weight 1/P(sampled); bytes is objects times the Buffer's length.
	objects, bytes float64
}

// heapBucket holds the counts of the sampled Buffers made at one creation stack. The counts are
// scaled (sums of heapSample weights) and guarded by heapProf.mu.
type heapBucket struct {
	stack []uintptr
	// open is the number of sampled Buffers of this stack not yet released.
	open                         int64
	inuseObjects, inuseBytes     float64
	allocObjects, allocBytes     float64
	droppedObjects, droppedBytes float64
}

var (
	heapRate   atomic.Int64
	heapShards [heapShardCount]heapShard
	// heapRand is the state of the splitmix64 generator of countdowns (one atomic add per draw).
	heapRand atomic.Uint64
	heapProf struct {
		// mu guards buckets and their counts, and serialises rate changes.
		mu      sync.Mutex
		buckets map[string]*heapBucket
	}
)

func init() {
	heapProf.buckets = make(map[string]*heapBucket)
	heapRand.Store(rand.Uint64())
	heapRate.Store(heapRateFromEnv(os.Getenv(HeapProfileRateEnv)))
	redrawCountdowns()
}

// heapRateFromEnv parses FERRY_HEAP_PROFILE_RATE; an empty or malformed value gives the default.
func heapRateFromEnv(s string) int64 {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "off") {
		return 0
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return DefaultHeapProfileRate
	}
	return v
}

// SetHeapProfileRate sets the heap profile's sampling rate and returns the previous one: on
// average one Buffer is sampled per rate bytes of Buffers made, and each sample stands for the
// Buffers it represents, as with runtime.MemProfileRate. 1 records every Buffer (the profile's
// inuse_space then equals Stats.TrackedBytes exactly); 0 records none. A negative rate changes
// nothing (use it to read the current rate). It overrides FERRY_HEAP_PROFILE_RATE.
//
// Buffers sampled before a change stay in the profile with the weight of the rate they were
// sampled at. To profile a whole program at another rate, set it before the first Buffer is made.
func SetHeapProfileRate(rate int) int {
	if rate < 0 {
		return int(heapRate.Load())
	}
	heapProf.mu.Lock()
	prev := heapRate.Swap(int64(rate))
	redrawCountdowns()
	heapProf.mu.Unlock()
	return int(prev)
}

// redrawCountdowns starts every shard's countdown afresh at the current rate.
func redrawCountdowns() {
	r := heapRate.Load()
	for i := range heapShards {
		if r > 1 {
			heapShards[i].countdown.Store(nextSample(r))
		} else {
			heapShards[i].countdown.Store(0)
		}
	}
}

// nextSample draws the bytes until the next sample: an exponential variate with mean rate, rounded
// up so that it is at least 1 (P(draw <= n) = 1-exp(-n/rate) for every whole n).
func nextSample(rate int64) int64 {
	z := heapRand.Add(0x9e3779b97f4a7c15)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	u := (float64(z>>11) + 1) / (1 << 53) // uniform in (0, 1]
	d := math.Ceil(-math.Log(u) * float64(rate))
	return int64(min(max(d, 1), 1<<62))
}

// profileAlloc decides whether b, a Buffer just made (before it is shared), is sampled, and if so
// records its creation stack in b.prof. It is called once for every Buffer, by adoptView.
func profileAlloc(b *Buffer) {
	if r := heapRate.Load(); r != 0 {
		profileCount(b, r)
	}
}

// profileCount is profileAlloc for a nonzero rate.
func profileCount(b *Buffer, rate int64) {
	n := int64(b.n)
	if rate > 1 {
		s := &heapShards[(uintptr(unsafe.Pointer(b))>>13)%heapShardCount]
		for {
			c := s.countdown.Load()
			if c > n {
				if s.countdown.CompareAndSwap(c, c-n) {
					return
				}
				continue
			}
			if s.countdown.CompareAndSwap(c, nextSample(rate)) {
				break
			}
		}
	}
	b.prof = recordSample(n, rate)
}

// recordSample records the calling goroutine's stack as the creation stack of a sampled Buffer of
// n bytes, sampled at rate.
func recordSample(n, rate int64) *heapSample {
	var pcs [heapMaxDepth]uintptr
	depth := runtime.Callers(3, pcs[:]) // from profileAlloc's caller (adoptView) on
	var key [heapMaxDepth * 8]byte
	for i, pc := range pcs[:depth] {
		binary.LittleEndian.PutUint64(key[i*8:], uint64(pc))
	}
	w := 1.0
	if rate > 1 {
		w = -1 / math.Expm1(-float64(n)/float64(rate))
	}
	rec := &heapSample{objects: w, bytes: w * float64(n)}

	heapProf.mu.Lock()
	bk := heapProf.buckets[string(key[:depth*8])]
	if bk == nil {
		bk = &heapBucket{stack: append([]uintptr(nil), pcs[:depth]...)}
		heapProf.buckets[string(key[:depth*8])] = bk
	}
	bk.open++
	bk.inuseObjects += rec.objects
	bk.inuseBytes += rec.bytes
	bk.allocObjects += rec.objects
	bk.allocBytes += rec.bytes
	heapProf.mu.Unlock()
	rec.bucket = bk
	return rec
}

// profileFree removes b's record, if it was sampled, when its id is released by Close or handed
// over by Detach. It is called once per Buffer that does not end in the cleanup.
func profileFree(b *Buffer) {
	if p := b.prof; p != nil {
		p.release(false)
	}
}

// profileDropped removes the record p (nil if the Buffer was not sampled) of a Buffer released by
// its cleanup, and counts it as dropped without Close.
func profileDropped(p *heapSample) {
	if p != nil {
		p.release(true)
	}
}

func (p *heapSample) release(dropped bool) {
	bk := p.bucket
	heapProf.mu.Lock()
	bk.open--
	if bk.open == 0 {
		// Exact zero, whatever rounding the sums of weights left behind.
		bk.inuseObjects, bk.inuseBytes = 0, 0
	} else {
		bk.inuseObjects -= p.objects
		bk.inuseBytes -= p.bytes
	}
	if dropped {
		bk.droppedObjects += p.objects
		bk.droppedBytes += p.bytes
	}
	heapProf.mu.Unlock()
}
