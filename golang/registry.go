package ferry

// goCallbacks holds the Go functions registered as callbacks, by key: the integer that ferry keeps
// as the callback's user data and hands back to the trampolines (no Go pointer crosses). Every
// callback crossing looks its function up here, with one atomic load of its slot (lookupGo).
var goCallbacks slotTable[goCallback]

// goCallback is a registered function and the key it is registered under; it never changes, so a
// lookup that loads it knows from key whether it is the function asked for.
type goCallback struct {
	key uint64
	fn  CallbackFunc
}

// registerGo stores fn and returns its key, or 0 if the table is full.
func registerGo(fn CallbackFunc) uint64 {
	key, e := goCallbacks.claim()
	if e != nil {
		goCallbacks.fill(e, key, &goCallback{key: key, fn: fn})
	}
	return key
}

// lookupGo returns the function registered under key, or nil. The slot's value may be another
// key's (an older or newer registration in the same slot), but a goCallback never changes and
// records its key, so one load of the value and a compare tell: no need for get's second load of
// the slot's key. It reads the slot itself rather than through a slotTable method, since Go
// inlines no method of a generic type here, and this lookup is on every callback crossing.
func lookupGo(key uint64) CallbackFunc {
	slot := uint32(key) - 1 // a low half of 0 (no key has one) wraps around and fails the bound
	if slot >= slotMax {
		return nil
	}
	chunk := goCallbacks.chunks[slot/slotChunkSize].Load()
	if chunk == nil {
		return nil
	}
	if c := chunk[slot%slotChunkSize].val.Load(); c != nil && c.key == key {
		return c.fn
	}
	return nil
}

// dropCallback is the body of the drop trampoline: Rust has let go of the callback under key, so
// its Go function goes too.
func dropCallback(key uint64) {
	goCallbacks.remove(key)
}
