// Package ferry lends Rust-owned memory to Go by integer id, zero-copy and GC-aware.
//
// A Buffer wraps one ferry id and the view (address and length) that came with it, so Bytes
// returns a []byte over the Rust memory with no copy and no cgo call. Close releases the id; a
// Buffer dropped without Close is released by a cleanup, batched with others into one call, and
// ferry triggers garbage collections itself when the bytes held by open Buffers pass a soft limit
// (SetSoftLimit, FERRY_SOFT_LIMIT, or derived from GOMEMLIMIT or a cgroup's memory limit),
// because Go's collector cannot see Rust memory; under a Go memory limit, ferry's bytes count
// against it too.
//
// # Ownership
//
//   - A Buffer owns its id. Close it when done; Close is idempotent and safe with concurrent use.
//   - A slice from Bytes is valid until Close, and only while the Buffer is reachable; View keeps the
//     Buffer alive for the duration of a function.
//   - Slice and Share make new ids over the same memory; the memory lives until all are closed.
//   - Adopt takes ownership of an id made elsewhere (for example by a downstream Rust crate).
//
// An id has one owner. Every Buffer claims its id in ferry's table, so Adopt and AdoptID refuse,
// with an error matching ErrInvalidHandle, an id that a live Buffer owns already: no program can
// make two Buffers own one id (where closing one would free the memory the other reads) with
// integers alone. Detach gives the claim up with the id.
//
// # Memory pressure
//
// Go's collector cannot see Rust memory, so ferry counts the bytes of open Buffers itself. Past the
// soft limit it starts a collection so that the cleanups of unreachable Buffers run, and goroutines
// that keep allocating past half as much again wait for one. The core's live-byte limit (the hard
// limit) is twice the soft limit: a create it refuses is retried after a collection a few times,
// then fails with ErrLimitReached.
//
// The soft limit is, first that applies: SetSoftLimit or FERRY_SOFT_LIMIT (read on first use);
// with a Go memory limit (GOMEMLIMIT or debug.SetMemoryLimit), half of what the Go heap leaves of
// it, between a sixteenth of the limit and DefaultSoftLimit, with a hard limit of the larger of
// 2 x DefaultSoftLimit and the Go limit; a quarter of the process's cgroup memory limit
// (memory.max, or cgroup v1's memory.limit_in_bytes) when that is below DefaultSoftLimit;
// DefaultSoftLimit.
//
// With a Go memory limit, Go's memory and ferry's live bytes share it as one budget: ferry lowers
// the runtime's limit by its live bytes (never below an eighth of it), so Go's collector runs
// earlier while Rust holds more, and raises it again as they are released. It updates the runtime
// when its bytes have moved by 1/64 of the limit, not on every New and Close. The program's own
// debug.SetMemoryLimit calls keep working: a value ferry did not set becomes the budget at ferry's
// next update (or ReadStats); debug.SetMemoryLimit(-1) returns the lowered limit in force, and
// setting such a value back restores the budget it came from. SetSoftLimit(0) stops all of this
// and gives the runtime the program's limit back.
//
// ReadStats reports the counters, the limits in force and where they came from, and
// PublishExpvar exports them.
//
// # Heap profile
//
// Go's heap profile cannot see Rust memory either, so ferry keeps its own: Buffers are sampled as
// they are made, on average one per DefaultHeapProfileRate bytes (SetHeapProfileRate, or
// FERRY_HEAP_PROFILE_RATE read at start-up), and a sampled Buffer's creation stack is kept until
// its bytes are released. WriteHeapProfile writes it for go tool pprof, with the open Buffers by
// creation stack (inuse_space, the default) and the Buffers the GC cleanup released because they
// were never closed (dropped_space); HeapProfileHandler serves it over HTTP.
//
// # Regions
//
// A Region is memory shared with another process (Linux): buffers allocated in it (Alloc) have
// ids valid in both processes, messages carry them on a ring with a lease for the receiver, and a
// peer that dies has its leases reclaimed. Waiting (Receive, Receiver, Client, Serve) parks the
// goroutine in the netpoller. See region.go and examples/shm.
//
// # Callbacks and async work
//
// NewCallback registers a Go function under a ferry id that Rust, C and Go can call. A callback
// runs on the thread that invokes it: Invoke runs it on the calling goroutine; CallAsync and
// FERRY_OP_CALL run it on one of the Rust worker threads (PoolConfig, ConfigurePool); C code runs
// it on its own thread. Submit, Do, Echo and Checksum run work on the workers and hand the results
// back through a Future, which may be waited on from several goroutines.
//
// # Nesting
//
// A callback may call ferry again, to any depth the thread's stack allows:
//
//   - Invoking callbacks from callbacks spends the thread's system stack (about 800 bytes per level
//     of Go callback). A call that finds less than 32 KiB left (a quarter of the stack, for
//     stacks under 128 KiB) fails with an error matching ErrNestedTooDeep instead of overflowing
//     the stack. Measured (TestDeepNestingFromAWorkerIsAnError, with and without -race): about
//     290 levels on a worker with the default 256 KiB stack, 5300 with PoolConfig.StackSize
//     4 MiB, 10600 from a goroutine (Go gives its threads 8 MiB).
//   - A callback on a worker may submit async work and wait for it. A submit made on a worker
//     while no worker is free starts an extra worker, so such waits complete even when every
//     worker waits; the pool runs at most Workers + max(Workers, 64) threads, and a submit that
//     would need more fails with an error matching ErrWouldDeadlock. The rule follows the thread
//     that submits: a callback that hands the submit to another goroutine and waits for it gets no
//     extra worker.
//   - ShutdownAsync from a callback on a worker would wait for itself: it returns an error
//     matching ErrInvalidArgument and changes nothing.
//
// # Callbacks and runtime.Goexit
//
// runtime.Goexit (which t.FailNow, t.Fatal and t.SkipNow call) ends its goroutine, and no
// recover stops it. In a callback:
//
//   - On a Rust worker thread (CallAsync, FERRY_OP_CALL), Go would end the process (Go cannot end
//     a goroutine on a thread it did not create). ferry fails the call instead: the caller gets a
//     *CallbackError with Goexit set, matching ErrCallbackPanic, and what the call held is
//     released. The worker's frames below the callback can never be returned to, so ferry starts
//     another worker in its place, and the thread stays parked, with its goroutine, for the life
//     of the process.
//   - On a thread Go created (Invoke, or C code called from Go), the callback runs on the
//     caller's goroutine, and Goexit ends that goroutine as it would in a plain Go call: Invoke
//     does not return. ferry lets go of what the call held (the callback's protection, the lease
//     on the lent Buffer), so nothing stays pinned. Frames of C or Rust code between the Go caller
//     and the callback are dropped without running: such code must not hold a lock across an
//     invoke of a Go callback that may call Goexit.
//   - On a thread that other C code created, Go ends the process ("runtime.Goexit called in a
//     thread that was not created by the Go runtime"); ferry cannot prevent that.
//
// # Goroutines and threads
//
// The first asynchronous call starts the Rust worker pool and one poller goroutine, which keeps an
// OS thread blocked in Rust. Each Rust worker that has run a Go callback keeps one goroutine (Go's
// record of a thread it did not create) while the pool runs: a goleak-style check counts one per
// such worker. ShutdownAsync stops the poller and joins the workers, which returns the process to
// its baseline; workers parked by a Goexit (above) are the only ones that stay.
//
// # Signal handlers, release functions and drop hooks
//
// No ferry function is async-signal-safe: none may be called from a C signal handler. Go's own
// signal handling (os/signal) delivers signals to ordinary goroutines, which may call ferry
// freely. Release functions of adopted memory and the drop hooks of callbacks run with no ferry
// lock held and may call any ferry function, ShutdownAsync excepted on a worker thread (ferry.h
// states the same rules for C).
//
// # Linking and build tags
//
// The package compiles against its own copy of ferry.h and links the ferry library one of three
// ways, chosen by build tag:
//
//   - default: the installed library found by pkg-config as package "ferry" (`make install`
//     writes ferry.pc), which links libferry.so; the program needs the library at run time.
//   - ferry_static: the installed static archive, from pkg-config package "ferry-static"
//     (ferry-static.pc, installed next to ferry.pc); nothing to find at run time.
//   - ferry_external: links nothing. Use it when the program links a downstream Rust staticlib
//     that bundles ferry, so that the process holds exactly one copy of ferry's handle table
//     (examples/downstream shows the recipe).
//
// Set PKG_CONFIG_PATH to $PREFIX/lib/pkgconfig when ferry is installed outside pkg-config's
// default search path. Inside ferry's repository, `make` sets PKG_CONFIG_PATH to build/pkgconfig,
// where `make lib` writes ferry-uninstalled.pc (pkg-config's convention for a library used from
// its build tree), which links the checkout's target/release/libferry.a.
//
// On first use the package compares ABIVersion with the linked library's ABI version; when they
// differ, every entry point returns an error matching ErrABIMismatch that names both.
//
// The other tags are for tests:
//
//   - ferrydebug: every accessor forces a garbage collection and released memory is made
//     inaccessible, so a missing runtime.KeepAlive or a use after Close faults at once.
package ferry
