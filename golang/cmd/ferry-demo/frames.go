package main

// Phase 1: frames of Rust memory handed to Go: zero-copy through ferry, copied by ferry into a
// buffer the reader reuses (ferry.ReadID), or copied with C.GoBytes.

/*
#cgo CFLAGS: -I${SRCDIR}/../..
// ferry.h is the Go module's copy in golang/, so the path stays inside the module.
#include "ferry.h"

// The classic cgo hand-off: one C call returns the frame's address and length (by value, so no Go
// variable escapes to the heap), and Go copies the bytes with C.GoBytes.
typedef struct {
	FerryView view;
	FerryStatus status;
} demo_view;

static inline demo_view demo_buffer_view(uint64_t id) {
	demo_view r = {{0, 0, 0}, 0};
	r.status = ferry_buffer_view(id, &r.view);
	return r;
}
*/
import "C"

import (
	"fmt"
	"hash/crc32"
	"runtime"
	"time"
	"unsafe"

	ferry "github.com/ferry/ferry/golang"
)

// castagnoli is CRC-32C, computed with the CPU's CRC instructions where there are some: a checksum
// fast enough (many GB/s) that the cost of the copy shows.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frameResult is one frame size's measurements. Times are per frame, in nanoseconds.
type frameResult struct {
	Size int
	// Receive only: the hand-off, and Go touching the first and last byte.
	RecvZeroNs, RecvReadNs, RecvCopyNs float64
	// Receive and consume: the hand-off, then CRC-32C over every byte.
	SumZeroNs, SumReadNs, SumCopyNs float64
	// Frames is how many frames were checksummed on each path (all sums agreed).
	Frames int
}

// fill writes a deterministic pseudo-random pattern (xorshift64) into p.
func fill(p []byte, seed uint64) {
	x := seed | 1
	i := 0
	for ; i+8 <= len(p); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		*(*uint64)(unsafe.Pointer(&p[i])) = x
	}
	for ; i < len(p); i++ {
		p[i] = byte(x >> (8 * (i % 8)))
	}
}

// recvZero hands the frame to Go the ferry way: Rust issues a new id over the frame's memory
// (Share: one crossing, no copy), Go reads the bytes in place (Bytes: no crossing), and releases
// the id when done (Close: one crossing). With sum, it checks the CRC-32C of every byte.
func recvZero(frame *ferry.Buffer, n int, sum bool, want uint32) error {
	for range n {
		fb, err := frame.Share()
		if err != nil {
			return err
		}
		p := fb.Bytes()
		if sum {
			if got := crc32.Checksum(p, castagnoli); got != want {
				fb.Close()
				return fmt.Errorf("zero-copy checksum %08x, want %08x", got, want)
			}
		} else {
			sink += int(p[0]) + int(p[len(p)-1])
		}
		if err := fb.Close(); err != nil {
			return err
		}
	}
	return nil
}

// recvRead hands the frame to Go as a copy that ferry makes: ferry.ReadID copies the bytes of the
// frame's id into p, a buffer the reader keeps from one frame to the next (one crossing, no
// allocation, no Buffer), where Go reads them.
func recvRead(frame *ferry.Buffer, p []byte, n int, sum bool, want uint32) error {
	id := frame.ID()
	for range n {
		k, err := ferry.ReadID(id, p)
		if err != nil {
			return err
		}
		q := p[:k]
		if sum {
			if got := crc32.Checksum(q, castagnoli); got != want {
				return fmt.Errorf("ReadID checksum %08x, want %08x", got, want)
			}
		} else {
			sink += int(q[0]) + int(q[len(q)-1])
		}
	}
	runtime.KeepAlive(frame)
	return nil
}

// best returns ferry's faster path for a measure (zero-copy or ReadID) and its time.
func best(zeroNs, readNs float64) (string, float64) {
	if readNs < zeroNs {
		return "ReadID", readNs
	}
	return "zero-copy", zeroNs
}

// recvCopy hands the frame to Go the classic cgo way: one C call for its address and length
// (ferry_buffer_view), then C.GoBytes copies it into Go memory, where Go reads it.
func recvCopy(frame *ferry.Buffer, n int, sum bool, want uint32) error {
	id := C.uint64_t(frame.ID())
	for range n {
		r := C.demo_buffer_view(id)
		if r.status != C.FERRY_STATUS_OK {
			return fmt.Errorf("ferry_buffer_view: status %d", r.status)
		}
		p := C.GoBytes(unsafe.Pointer(r.view.ptr), C.int(r.view.len))
		if sum {
			if got := crc32.Checksum(p, castagnoli); got != want {
				return fmt.Errorf("copy checksum %08x, want %08x", got, want)
			}
		} else {
			sink += int(p[0]) + int(p[len(p)-1])
		}
	}
	runtime.KeepAlive(frame)
	return nil
}

// sink keeps the compiler from dropping reads whose result is otherwise unused.
var sink int

// measure runs op(n) with growing n until one run takes at least budget (at least one frame), and
// returns the last run's time per call and its n. Like testing.B, only the last run counts.
func measure(budget time.Duration, op func(n int) error) (float64, int, error) {
	n := 1
	for {
		start := time.Now()
		if err := op(n); err != nil {
			return 0, 0, err
		}
		el := time.Since(start)
		if el >= budget || n >= 1<<30 {
			return float64(el.Nanoseconds()) / float64(n), n, nil
		}
		// Aim 20% past the budget, growing at least 2x and at most 100x per run.
		next := int(float64(n) * 1.2 * float64(budget) / float64(max(el, time.Microsecond)))
		n = min(max(next, 2*n), 100*n)
	}
}

// runFrames measures every size; progress goes to logf.
func runFrames(sizes []int, budget time.Duration, logf func(string, ...any)) ([]frameResult, error) {
	var out []frameResult
	for i, size := range sizes {
		// The frame is Rust memory: ferry_buffer_new allocates it (zeroed) and lends it to Go.
		// Go writes the pattern once; from then on every hand-off below reads that same frame.
		frame, err := ferry.New(size)
		if err != nil {
			return nil, fmt.Errorf("frame of %d bytes: %w", size, err)
		}
		fill(frame.Bytes(), uint64(size)*0x9E3779B97F4A7C15)
		want := crc32.Checksum(frame.Bytes(), castagnoli)
		r := frameResult{Size: size}
		p := make([]byte, size) // ReadID's reader keeps its buffer from frame to frame
		var nz, nr, nc int
		const zero, read, copied = 0, 1, 2
		steps := []struct {
			dst  *float64
			n    *int
			path int
			sum  bool
		}{
			{&r.RecvZeroNs, nil, zero, false},
			{&r.RecvReadNs, nil, read, false},
			{&r.RecvCopyNs, nil, copied, false},
			{&r.SumZeroNs, &nz, zero, true},
			{&r.SumReadNs, &nr, read, true},
			{&r.SumCopyNs, &nc, copied, true},
		}
		for _, s := range steps {
			ns, n, err := measure(budget, func(n int) error {
				switch s.path {
				case zero:
					return recvZero(frame, n, s.sum, want)
				case read:
					return recvRead(frame, p, n, s.sum, want)
				}
				return recvCopy(frame, n, s.sum, want)
			})
			if err != nil {
				frame.Close()
				return nil, fmt.Errorf("%s frames: %w", sizeName(size), err)
			}
			*s.dst = ns
			if s.n != nil {
				*s.n = n
			}
		}
		r.Frames = min(nz, nr, nc)
		if err := frame.Close(); err != nil {
			return nil, err
		}
		out = append(out, r)
		logf("  [%d/%d] %-7s  receive: zero-copy %s, ReadID %s, copy %s  |  +crc32c: zero-copy %s, ReadID %s, copy %s",
			i+1, len(sizes), sizeName(size), nsName(r.RecvZeroNs), nsName(r.RecvReadNs), nsName(r.RecvCopyNs),
			gbps(size, r.SumZeroNs), gbps(size, r.SumReadNs), gbps(size, r.SumCopyNs))
		runtime.GC() // return the copies' garbage before the next size
	}
	return out, nil
}
