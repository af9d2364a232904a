package ferry

import (
	"sync"
	"sync/atomic"
)

// slotTable maps generational keys to values, with a lookup that takes no lock: the one scheme
// behind the Go functions registered as callbacks (registry.go) and the calls waiting on an async
// engine (engine.go), as ferry's Rust core has one slot core behind every id.
//
// A key is generation<<32 | slot+1: 0 is never a key, and a key whose slot was freed and reused
// never finds the new value (the generation moved on). Slots live in chunks that are allocated on
// demand and never freed. Adding and freeing slots take a mutex; get and take do not.
//
// Each slot holds the value and the key it was stored under, in two atomics. A reader loads the
// key, the value, and the key again, and trusts the value only if both loads saw its key: whoever
// empties a slot clears the value before the key, and whoever fills it stores the value before the
// key, so a value seen between two loads of key k was stored under k.
//
// Recycling a slot is separate from taking its value, so that a consumer that takes many values (a
// batch of completions) can give their slots back under one lock (recycle).
type slotTable[T any] struct {
	mu     sync.Mutex
	gens   []uint32 // per slot: its current generation, under mu
	free   []uint32 // free slots, under mu
	chunks [slotChunks]atomic.Pointer[[slotChunkSize]slotEntry[T]]
	live   atomic.Int64 // values in the table
}

type slotEntry[T any] struct {
	key atomic.Uint64
	val atomic.Pointer[T]
}

const (
	slotChunkSize = 1024
	slotChunks    = 4096 // at most 4M values at once
	slotMax       = slotChunkSize * slotChunks
)

// slotOf returns the slot a key names, or -1 for a key that names none (0 included).
func slotOf(key uint64) int {
	slot := int64(uint32(key)) - 1
	if key>>32 == 0 || slot < 0 || slot >= slotMax {
		return -1
	}
	return int(slot)
}

func (t *slotTable[T]) entry(slot int) *slotEntry[T] {
	c := t.chunks[slot/slotChunkSize].Load()
	if c == nil {
		return nil
	}
	return &c[slot%slotChunkSize]
}

// add stores v under a new key and returns it, or 0 if the table is full.
func (t *slotTable[T]) add(v *T) uint64 {
	t.mu.Lock()
	var slot uint32
	if n := len(t.free); n > 0 {
		slot = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		if len(t.gens) == slotMax {
			t.mu.Unlock()
			return 0
		}
		slot = uint32(len(t.gens))
		t.gens = append(t.gens, 0)
		if slot%slotChunkSize == 0 {
			t.chunks[slot/slotChunkSize].Store(new([slotChunkSize]slotEntry[T]))
		}
	}
	t.gens[slot]++
	if t.gens[slot] == 0 {
		t.gens[slot] = 1 // the generation wrapped: 0 would make key>>32 zero
	}
	key := uint64(t.gens[slot])<<32 | uint64(slot+1)
	e := t.entry(int(slot))
	t.mu.Unlock()
	// The slot is ours alone until its key is published.
	e.val.Store(v)
	e.key.Store(key)
	t.live.Add(1)
	return key
}

// find returns the entry of key and the value stored under it, or nil for the value.
func (t *slotTable[T]) find(key uint64) (*slotEntry[T], *T) {
	slot := slotOf(key)
	if slot < 0 {
		return nil, nil
	}
	e := t.entry(slot)
	if e == nil || e.key.Load() != key {
		return nil, nil
	}
	v := e.val.Load()
	if e.key.Load() != key {
		return nil, nil
	}
	return e, v
}

// get returns the value stored under key, or nil.
func (t *slotTable[T]) get(key uint64) *T {
	_, v := t.find(key)
	return v
}

// take removes the value stored under key and returns it, or nil if it is not there (never stored,
// or taken already: of several concurrent takes of one key, exactly one gets the value). The slot
// stays reserved until recycle.
func (t *slotTable[T]) take(key uint64) *T {
	e, v := t.find(key)
	if v == nil || !e.val.CompareAndSwap(v, nil) {
		return nil
	}
	e.key.Store(0)
	t.live.Add(-1)
	return v
}

// recycle gives the slots of taken keys back for reuse. Each key must have been taken, and
// recycled once.
func (t *slotTable[T]) recycle(keys ...uint64) {
	t.mu.Lock()
	for _, k := range keys {
		t.free = append(t.free, uint32(k)-1)
	}
	t.mu.Unlock()
}

// remove takes key and recycles its slot; it reports whether key was there.
func (t *slotTable[T]) remove(key uint64) bool {
	if t.take(key) == nil {
		return false
	}
	t.recycle(key)
	return true
}

// drain takes and recycles every value still in the table, and returns them.
func (t *slotTable[T]) drain() []*T {
	t.mu.Lock()
	n := len(t.gens)
	t.mu.Unlock()
	var vs []*T
	for slot := range n {
		e := t.entry(slot)
		if k := e.key.Load(); k != 0 {
			if v := t.take(k); v != nil {
				vs = append(vs, v)
				t.recycle(k)
			}
		}
	}
	return vs
}
