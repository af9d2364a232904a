package ferry

import "sync/atomic"

// goCallbacks holds the Go functions registered as callbacks, by key: the integer that ferry keeps
// as the callback's user data and hands back to the trampolines (no Go pointer crosses). Every
// callback crossing looks its function up here, with one load of its slot (lookupGo).
var goCallbacks slotTable[goCallback]

// goCallback is a registered function and the key it is registered under.
type goCallback struct {
	// key is stored once, as soon as add has given it and before ferry (the only caller of the
	// trampolines) can know it; a lookup of an older key of the same slot reads 0 or this key,
	// never its own.
	key atomic.Uint64
	fn  CallbackFunc
}

// registerGo stores fn and returns its key, or 0 if the table is full.
func registerGo(fn CallbackFunc) uint64 {
	c := &goCallback{fn: fn}
	key := goCallbacks.add(c)
	c.key.Store(key)
	return key
}

// lookupGo returns the function registered under key, or nil. The slot's value may be another
// key's (an older or newer registration in the same slot), but each goCallback records its own
// key, so one load of the value and a compare tell, where slotTable.get loads the slot's key
// twice around the value. It reads the slot itself, since Go inlines no method of a generic type
// here and this lookup is on every callback crossing: runCallback with it inlined runs 76
// instructions per call, against 138 with a call to get (BenchmarkSyncCallback under callgrind).
func lookupGo(key uint64) CallbackFunc {
	// slotOf's check in one compare (with slotOf the function is too big to inline): a low half of
	// 0, which no key has, wraps around and fails the bound.
	slot := uint32(key) - 1
	if slot >= slotMax {
		return nil
	}
	chunk := goCallbacks.chunks[slot/slotChunkSize].Load()
	if chunk == nil {
		return nil
	}
	if c := chunk[slot%slotChunkSize].val.Load(); c != nil && c.key.Load() == key {
		return c.fn
	}
	return nil
}

// dropCallback is the body of the drop trampoline: Rust has let go of the callback under key, so
// its Go function goes too.
func dropCallback(key uint64) {
	goCallbacks.remove(key)
}
