// Package ferry lends Rust-owned memory to Go by integer id, zero-copy and GC-aware.
//
// A Buffer wraps one ferry id and the view (address and length) that came with it, so Bytes
// returns a []byte over the Rust memory with no copy and no cgo call. Close releases the id; a
// Buffer dropped without Close is released by a cleanup, batched with others into one call, and
// ferry triggers garbage collections itself when the bytes held by open Buffers pass a soft limit
// (SetSoftLimit, FERRY_SOFT_LIMIT), because Go's collector cannot see Rust memory.
//
// # Ownership
//
//   - A Buffer owns its id. Close it when done; Close is idempotent and safe with concurrent use.
//   - A slice from Bytes is valid until Close, and only while the Buffer is reachable; View keeps the
//     Buffer alive for the duration of a function.
//   - Slice and Share make new ids over the same memory; the memory lives until all are closed.
//   - Adopt takes ownership of an id made elsewhere (for example by a downstream Rust crate).
//
// # Memory pressure
//
// Go's collector cannot see Rust memory, so ferry counts the bytes of open Buffers itself. Past the
// soft limit (DefaultSoftLimit, 256 MiB, or SetSoftLimit, or FERRY_SOFT_LIMIT read on first use)
// it starts a collection so that the cleanups of unreachable Buffers run, and goroutines that keep
// allocating past half as much again wait for one. The core's live-byte limit is set to twice the
// soft limit: a create it refuses is retried after a collection a few times, then fails with
// ErrLimitReached. ReadStats reports the counters and PublishExpvar exports them.
//
// # Regions
//
// A Region is memory shared with another process (Linux): buffers allocated in it (Alloc) have
// ids valid in both processes, messages carry them on a ring with a lease for the receiver, and a
// peer that dies has its leases reclaimed. Waiting (Receive, Receiver, Client, Serve) parks the
// goroutine in the netpoller. See region.go and examples/shm.
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
