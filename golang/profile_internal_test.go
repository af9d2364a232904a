package ferry

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The sampler's promise, on which the profile's scaling rests: at rate R a Buffer of n bytes is
// sampled with probability 1-exp(-n/R), whatever sizes came before it, and the sampled Buffers'
// weights add up to the true bytes. Statistical, with a fixed seed; each bound is five standard
// deviations.
func TestHeapSampleProbability(t *testing.T) {
	const rate, perSize = 4096, 20000
	defer SetHeapProfileRate(SetHeapProfileRate(rate))
	SetHeapProfileSeed(7)
	sizes := []int{0, 64, 1000, 4096, 20000}
	order := make([]int, 0, len(sizes)*perSize)
	for i := range sizes {
		for range perSize {
			order = append(order, i)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })

	sampled := make([]float64, len(sizes))
	weighted := make([]float64, len(sizes))
	for _, i := range order {
		b := &Buffer{n: sizes[i]} // never shared with Rust: only its length and address matter here
		profileAlloc(b)
		if b.prof != nil {
			sampled[i]++
			weighted[i] += b.prof.bytes
			profileFree(b)
		}
	}
	for i, n := range sizes {
		p := -math.Expm1(-float64(n) / rate)
		if sd := math.Sqrt(perSize * p * (1 - p)); math.Abs(sampled[i]-perSize*p) > 5*sd+1e-9 {
			t.Errorf("%d-byte Buffers: %v of %d sampled, want %.0f ± %.0f", n, sampled[i], perSize, perSize*p, 5*sd)
		}
		if n == 0 {
			continue
		}
		truth := float64(perSize * n)
		if sd := float64(n) * math.Sqrt(perSize*(1-p)/p); math.Abs(weighted[i]-truth) > 5*sd {
			t.Errorf("%d-byte Buffers: estimated %.0f bytes, true %.0f ± %.0f", n, weighted[i], truth, 5*sd)
		}
	}
}

func TestHeapProfileRateZeroAndOne(t *testing.T) {
	defer SetHeapProfileRate(SetHeapProfileRate(0))
	if r := SetHeapProfileRate(-1); r != 0 {
		t.Fatalf("SetHeapProfileRate(-1) = %d, want the current rate 0", r)
	}
	b := mustNew(t, 1<<20)
	if b.prof != nil {
		t.Error("a Buffer was sampled at rate 0")
	}
	b.Close()
	SetHeapProfileRate(1)
	for _, n := range []int{0, 1, 100} {
		b := mustNew(t, n)
		if b.prof == nil || b.prof.objects != 1 || b.prof.bytes != float64(n) {
			t.Errorf("rate 1, %d bytes: record %+v, want weight 1", n, b.prof)
		}
		b.Close()
	}
}

func TestHeapRateFromEnv(t *testing.T) {
	for in, want := range map[string]int64{
		"": DefaultHeapProfileRate, "1": 1, " 4096 ": 4096, "0": 0, "off": 0, "OFF": 0,
		"-5": DefaultHeapProfileRate, "1MiB": DefaultHeapProfileRate, "x": DefaultHeapProfileRate,
	} {
		if got := heapRateFromEnv(in); got != want {
			t.Errorf("heapRateFromEnv(%q) = %d, want %d", in, got, want)
		}
	}
}
