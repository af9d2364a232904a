package ferry

/*
#include <stdlib.h>
#include "shims.h"
*/
import "C"

import (
	"unsafe"
)

// ResultMode says how an async result's buffer reaches Go (Request.Result).
type ResultMode uint8

const (
	// ResultLend lends the result as a Buffer over the Rust memory, whatever its size: no copy,
	// and the caller closes it (the zero value, and the behaviour of Submit before ResultMode).
	ResultLend ResultMode = iota
	// ResultAuto copies a result of at most InlineThreshold bytes into Go memory inside the batch
	// that delivers it and releases the Rust side there (Result.Data: no Buffer, no cleanup, no
	// crossing of its own), and lends a larger one (Result.Buffer).
	ResultAuto
	// ResultInline always hands the result over in Go memory (Result.Data); one above
	// InlineThreshold is copied when Wait settles the Future, with a crossing of its own.
	ResultInline
)

// InlineThreshold is the largest result, in bytes, that ResultAuto copies into Go memory. It was
// chosen with BenchmarkRoundTripResult (-count 3, 2-core VM, ns per result, lend vs inline):
// 256 B 1638-2230 vs 1284-1663, 512 B 1492-2119 vs 1219-1255, 1 KiB 1479-1594 vs 1842-2128. Up
// to 512 B the copy made in the delivery batch costs less than lending a Buffer (a claim, a
// cleanup, a Close); at 1 KiB lending wins.
const InlineThreshold = 512

// inliner copies the small results of one delivery batch into Go memory; only the poller uses it.
// The arena is C memory, one InlineThreshold slot per completion of a batch.
type inliner struct {
	arena *C.uint8_t
	lens  *C.size_t
	batch int
	idx   []int
	futs  []*Future
	ids   []uint64
}

func (in *inliner) init(batch int) {
	in.batch = batch
	in.arena = (*C.uint8_t)(C.malloc(C.size_t(batch * InlineThreshold)))
	in.lens = (*C.size_t)(C.malloc(C.size_t(batch) * C.size_t(unsafe.Sizeof(C.size_t(0)))))
}

func (in *inliner) free() {
	C.free(unsafe.Pointer(in.arena))
	C.free(unsafe.Pointer(in.lens))
	in.arena, in.lens = nil, nil
}

// want notes that the Future f of items[i] wants its result in Go memory if it is small.
func (in *inliner) want(i int, f *Future) {
	in.idx = append(in.idx, i)
	in.futs = append(in.futs, f)
}

// resolve copies the wanted results of items that fit in one crossing (releasing their ids in
// Rust), resolves their Futures, and returns late with the ids of results nobody waits for any
// more appended.
func (in *inliner) resolve(items []C.FerryCompletion, late []uint64) []uint64 {
	if len(in.idx) == 0 {
		return late
	}
	ids := in.ids[:0]
	for _, i := range in.idx {
		ids = append(ids, uint64(items[i].buffer))
	}
	C.ferry_go_inline((*C.uint64_t)(unsafe.Pointer(&ids[0])), C.size_t(len(ids)), InlineThreshold, in.arena, in.lens)
	lens := unsafe.Slice(in.lens, len(ids))
	arena := unsafe.Slice((*byte)(unsafe.Pointer(in.arena)), in.batch*InlineThreshold)
	for k, i := range in.idx {
		c := completion{status: StatusOK, buffer: ids[k], value: uint64(items[i].value)}
		if l := lens[k]; l != ^C.size_t(0) {
			c.buffer, c.inlined = 0, true
			c.data = make([]byte, int(l))
			copy(c.data, arena[k*InlineThreshold:])
		}
		if !in.futs[k].resolve(c) && c.buffer != 0 {
			late = append(late, c.buffer)
		}
	}
	clear(in.futs)
	in.idx, in.futs, in.ids = in.idx[:0], in.futs[:0], ids[:0]
	return late
}

// copyOutAndRelease returns a copy of id's bytes in Go memory and releases the id: a result that
// ResultInline wants and that was too large to copy in the delivery batch.
func copyOutAndRelease(id uint64) ([]byte, error) {
	r := C.ferry_go_claim(C.uint64_t(id))
	if r.status != C.FERRY_STATUS_OK {
		return nil, adoptErr(r.status)
	}
	data := make([]byte, int(r.view.len))
	if len(data) > 0 {
		copy(data, unsafe.Slice((*byte)(unsafe.Pointer(r.view.ptr)), len(data)))
	}
	C.ferry_buffer_release(r.view.id)
	return data, nil
}
