package ferry

/*
#include "shims.h"
*/
import "C"

import "sync"

// PoolConfig is the shape of ferry's Rust worker pool, applied when the pool next starts (at the
// first asynchronous call, or the first after ShutdownAsync). A zero field means ferry's default.
type PoolConfig struct {
	// Workers is the number of worker threads, 1 to MaxWorkers. Default: the number of CPUs, at
	// least 2.
	Workers int
	// QueueCap is how many jobs may wait for a worker before Submit has to retry. Default: 65536.
	QueueCap int
	// StackSize is each worker thread's stack in bytes, MinStackSize to MaxStackSize. Default:
	// 256 KiB. Callbacks run on the workers (CallAsync, OpCall), and how deeply they may nest
	// depends on it (see "Nesting" in the package documentation).
	StackSize int
}

// The bounds of a PoolConfig (MAX_THREADS, MIN_STACK and MAX_STACK in ferry.h).
const (
	MaxWorkers   = C.MAX_THREADS
	MinStackSize = C.MIN_STACK
	MaxStackSize = C.MAX_STACK
)

// poolConfig is the configuration last set, kept so that SetWorkers changes the thread count
// alone.
var poolConfig struct {
	mu sync.Mutex
	c  PoolConfig
}

// ConfigurePool sets the worker pool's configuration for its next start: a running pool keeps its
// threads, queue capacity and stack size until ShutdownAsync. Every value is checked here: one out
// of range gives an error matching ErrInvalidArgument and changes nothing.
func ConfigurePool(c PoolConfig) error {
	if abiErr != nil {
		return abiErr
	}
	if c.Workers < 0 || c.Workers > MaxWorkers || c.QueueCap < 0 || c.StackSize < 0 ||
		(c.StackSize != 0 && (c.StackSize < MinStackSize || c.StackSize > MaxStackSize)) {
		return &Error{Status: StatusInvalidArgument, Msg: "ConfigurePool: a value is out of range"}
	}
	poolConfig.mu.Lock()
	defer poolConfig.mu.Unlock()
	if err := statusErr(C.ferry_pool_configure(C.uint32_t(c.Workers), C.size_t(c.QueueCap),
		C.size_t(c.StackSize))); err != nil {
		return err
	}
	poolConfig.c = c
	return nil
}

// SetWorkers sets the number of Rust worker threads (1 to MaxWorkers) for the pool's next start,
// keeping the rest of the configuration; 0 means the default. See ConfigurePool.
func SetWorkers(n int) error {
	poolConfig.mu.Lock()
	c := poolConfig.c
	poolConfig.mu.Unlock()
	c.Workers = n
	return ConfigurePool(c)
}

// ShutdownAsync stops the async machinery: calls still waiting fail with an error matching
// ErrClosed, the completion goroutine exits, and the Rust worker threads are joined, so that the
// process is back to its goroutines and threads from before the first asynchronous call (see
// "Goroutines and threads" in the package documentation). The next asynchronous call starts
// everything again.
//
// Called from a callback that runs on a worker thread it would wait for itself: there it returns
// an error matching ErrInvalidArgument and changes nothing.
func ShutdownAsync() error {
	if abiErr != nil {
		return abiErr
	}
	if C.ferry_go_on_worker() != 0 {
		return &Error{Status: StatusInvalidArgument,
			Msg: "ShutdownAsync called on a worker thread (from a callback run by CallAsync or OpCall)"}
	}
	defEngine.mu.Lock()
	e := defEngine.e
	defEngine.e = nil
	defEngine.cur.Store(nil)
	defEngine.mu.Unlock()
	if e != nil {
		e.close()
	}
	return statusErr(C.ferry_pool_shutdown())
}
