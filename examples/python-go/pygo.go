// Command pythongo is a Go library for Python: built with -buildmode=c-shared, it makes frames
// of Rust memory with the ferry Go package and hands their ids to Python, which views them
// without a copy through the same ferry table.
//
// It is built with -tags ferry_external and linked against libferry.so (not libferry.a), so the
// process holds one copy of ferry: the dynamic linker maps libferry.so.N (its SONAME, N the ABI version) once, for the Python
// package and for this library alike (see README.md).
package main

/*
#include <stddef.h>
#include <stdint.h>
*/
import "C"

import (
	"errors"

	ferry "github.com/ferry/ferry/golang"
)

func main() {}

// pygo_frame makes a frame of n bytes of Rust memory filled by Go (byte i is seed+i), and hands
// its id to the caller, who owns it from then on and must release it (Python: Buffer.from_id).
//
//export pygo_frame
func pygo_frame(n C.size_t, seed C.uint8_t, idOut *C.uint64_t) C.uint32_t {
	b, err := ferry.New(int(n))
	if err != nil {
		return C.uint32_t(statusOf(err))
	}
	p := b.Bytes() // Rust memory, written in place
	for i := range p {
		p[i] = byte(seed) + byte(i)
	}
	id, err := b.Detach() // ownership of the id passes to the caller
	if err != nil {
		b.Close()
		return C.uint32_t(statusOf(err))
	}
	*idOut = C.uint64_t(id)
	return 0
}

// pygo_sum takes ownership of buffer id (made by Python, say), returns the sum of its bytes in
// *sumOut, and releases the id.
//
//export pygo_sum
func pygo_sum(id C.uint64_t, sumOut *C.uint64_t) C.uint32_t {
	b, err := ferry.AdoptID(uint64(id))
	if err != nil {
		return C.uint32_t(statusOf(err))
	}
	defer b.Close()
	var s uint64
	if err := b.View(func(p []byte) {
		for _, c := range p {
			s += uint64(c)
		}
	}); err != nil {
		return C.uint32_t(statusOf(err))
	}
	*sumOut = C.uint64_t(s)
	return 0
}

// pygo_live_ids returns the live ids of the ferry table as the Go package sees it.
//
//export pygo_live_ids
func pygo_live_ids() C.uint64_t {
	st, err := ferry.ReadStats()
	if err != nil {
		return ^C.uint64_t(0)
	}
	return C.uint64_t(st.LiveIDs)
}

func statusOf(err error) uint32 {
	var fe *ferry.Error
	if errors.As(err, &fe) {
		return uint32(fe.Status)
	}
	return uint32(ferry.StatusInvalidArgument)
}
