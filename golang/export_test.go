package ferry

// SetHeapProfileSeed seeds the heap profile's sampler and draws every countdown afresh, so that the
// sampling of a test that makes its Buffers from one goroutine repeats from run to run.
func SetHeapProfileSeed(seed uint64) {
	heapProf.mu.Lock()
	heapRand.Store(seed)
	redrawCountdowns()
	heapProf.mu.Unlock()
}
