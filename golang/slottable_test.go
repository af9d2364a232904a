package ferry

import (
	"sync"
	"sync/atomic"
	"testing"
)

type slotVal struct{ n int }

func TestSlotTableKeysAndGenerations(t *testing.T) {
	var tb slotTable[slotVal]
	for _, k := range []uint64{0, 1, 1 << 32, 1<<32 | slotMax + 1, ^uint64(0)} {
		if tb.get(k) != nil || tb.take(k) != nil || tb.remove(k) {
			t.Fatalf("key %#x found in an empty table", k)
		}
	}
	a, b := &slotVal{1}, &slotVal{2}
	ka, kb := tb.add(a), tb.add(b)
	if ka == 0 || kb == 0 || ka == kb || ka>>32 == 0 {
		t.Fatalf("keys %#x %#x", ka, kb)
	}
	if tb.get(ka) != a || tb.get(kb) != b || tb.live.Load() != 2 {
		t.Fatal("lookup")
	}
	if tb.take(ka) != a || tb.take(ka) != nil || tb.get(ka) != nil {
		t.Fatal("a key is taken once")
	}
	tb.recycle(ka)
	// The freed slot comes back under a new generation: the old key never finds the new value.
	c := &slotVal{3}
	kc := tb.add(c)
	if uint32(kc) != uint32(ka) || kc == ka {
		t.Fatalf("slot not reused under a new generation: %#x then %#x", ka, kc)
	}
	if tb.get(ka) != nil || tb.take(ka) != nil || tb.get(kc) != c {
		t.Fatal("a stale key found the slot's new value")
	}
	if !tb.remove(kb) || tb.remove(kb) {
		t.Fatal("remove reports whether the key was there")
	}
	got := tb.drain()
	if len(got) != 1 || got[0] != c || tb.live.Load() != 0 || tb.get(kc) != nil {
		t.Fatalf("drain: %v, live %d", got, tb.live.Load())
	}
	// A slot past the first chunk.
	keys := make([]uint64, slotChunkSize+5)
	for i := range keys {
		keys[i] = tb.add(&slotVal{i})
	}
	last := keys[len(keys)-1]
	if v := tb.get(last); v == nil || v.n != len(keys)-1 {
		t.Fatalf("second chunk: %v", v)
	}
}

// TestSlotTableConcurrent races adds, lookups, takes and frees from several goroutines (run it
// with -race): a lookup returns only the value stored under its key, and of concurrent takes of a
// key exactly one wins.
func TestSlotTableConcurrent(t *testing.T) {
	var tb slotTable[slotVal]
	const workers, rounds = 4, 20_000
	var wrong, wins atomic.Int64
	var wg sync.WaitGroup
	type pair struct {
		k uint64
		v *slotVal
	}
	shared := make(chan pair, 64)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				v := &slotVal{w*rounds + i}
				k := tb.add(v)
				if got := tb.get(k); got != v {
					wrong.Add(1)
				}
				select {
				case shared <- pair{k, v}:
				default:
				}
				// Take someone's key (maybe our own), racing the other takers.
				select {
				case o := <-shared:
					if got := tb.get(o.k); got != nil && got != o.v {
						wrong.Add(1)
					}
					if got := tb.take(o.k); got != nil {
						if got != o.v {
							wrong.Add(1)
						}
						wins.Add(1)
						tb.recycle(o.k)
					}
				default:
				}
				if tb.take(k) != nil {
					wins.Add(1)
					tb.recycle(k)
				}
			}
		}()
	}
	wg.Wait()
	wins.Add(int64(len(tb.drain())))
	if wrong.Load() != 0 {
		t.Fatalf("%d lookups returned a value not stored under their key", wrong.Load())
	}
	if wins.Load() != workers*rounds || tb.live.Load() != 0 {
		t.Fatalf("%d values taken of %d added, %d live", wins.Load(), workers*rounds, tb.live.Load())
	}
}
