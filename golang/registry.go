package ferry

// goCallbacks holds the Go functions registered as callbacks, by key: the integer that ferry keeps
// as the callback's user data and hands back to the trampolines (no Go pointer crosses). Every
// callback crossing looks its function up here, without a lock (slottable.go).
var goCallbacks slotTable[goCallback]

type goCallback struct {
	fn CallbackFunc
}

// registerGo stores fn and returns its key, or 0 if the table is full.
func registerGo(fn CallbackFunc) uint64 {
	return goCallbacks.add(&goCallback{fn: fn})
}

// lookupGo returns the function registered under key, or nil.
func lookupGo(key uint64) CallbackFunc {
	if c := goCallbacks.get(key); c != nil {
		return c.fn
	}
	return nil
}

// dropCallback is the body of the drop trampoline: Rust has let go of the callback under key, so
// its Go function goes too.
func dropCallback(key uint64) {
	goCallbacks.remove(key)
}
