package ferry

/*
#include "shims.h"
*/
import "C"

import (
	"context"
	"runtime"
	"unsafe"
)

// SubmitBatch starts every request of reqs on ferry's worker pool in one crossing
// (ferry_async_submit_batch: one lookup of the queue, one lock of the pool and at most one wake-up
// per worker for the whole batch) and returns their Futures, in the order of reqs. It crosses on
// the calling goroutine, as Submit does, so a batch submitted from a callback on a worker thread is
// a nested submit (see "Nesting" in the package documentation).
//
// Each request is what Submit would start, with ctx for every Future. An Input Buffer is lent for
// the call only. If an Input is closed, nothing is submitted and the error matches ErrClosed.
// While the pool's job queue is full, SubmitBatch retries the rest of the batch until ctx ends.
// The pool takes the requests in order and stops at the first it refuses: then SubmitBatch returns
// the Futures of the requests before it (each gets its result) with the error of the refused one
// (as for Submit); the requests from it on were not submitted.
func SubmitBatch(ctx context.Context, reqs []Request) ([]*Future, error) {
	e, err := defaultEngine()
	if err != nil {
		return nil, err
	}
	return e.submitBatch(ctx, reqs)
}

func (e *engine) submitBatch(ctx context.Context, reqs []Request) ([]*Future, error) {
	if err := ctx.Err(); err != nil {
		return nil, &cancelError{err}
	}
	if len(reqs) == 0 {
		return nil, nil
	}
	for i := range reqs {
		if in := reqs[i].Input; in != nil && !in.acquire() {
			unleaseInputs(reqs[:i])
			return nil, errClosed
		}
	}
	defer unleaseInputs(reqs)
	futs := make([]*Future, len(reqs))
	jobs := make([]C.FerryJob, len(reqs))
	for i := range reqs {
		f, err := e.expect(ctx)
		if err != nil {
			e.dropFutures(futs[:i])
			return nil, err
		}
		futs[i] = f
		r := &reqs[i]
		f.mode = r.Result
		var in uint64
		if r.Input != nil {
			in = r.Input.id
		}
		jobs[i] = C.FerryJob{tag: C.uint64_t(f.tag), op: C.uint32_t(r.Op), input: C.uint64_t(in),
			arg: C.uint64_t(r.Arg), value: C.uint64_t(r.Value)}
	}
	done := 0
	var st C.FerryStatus
	for attempt := 0; done < len(jobs); attempt++ {
		r := C.ferry_go_submit_batch(C.uint64_t(e.queue), (*C.FerryJob)(unsafe.Pointer(&jobs[done])), C.size_t(len(jobs)-done))
		done += int(r.accepted)
		st = r.status
		if st != C.FERRY_STATUS_QUEUE_FULL || ctx.Err() != nil {
			break
		}
		queueFullBackoff(attempt)
	}
	runtime.KeepAlive(jobs)
	if done == len(jobs) {
		return futs, nil
	}
	// No completion will come for the rest.
	e.dropFutures(futs[done:])
	if st == C.FERRY_STATUS_QUEUE_FULL {
		return futs[:done], &cancelError{ctx.Err()}
	}
	return futs[:done], statusErr(st)
}

// dropFutures frees the slots of Futures whose jobs were never submitted (unless close already
// swept them).
func (e *engine) dropFutures(futs []*Future) {
	for _, f := range futs {
		if e.calls.take(f.tag) != nil {
			e.calls.recycle(f.tag)
		}
	}
}

// unleaseInputs ends the leases SubmitBatch took on the requests' inputs.
func unleaseInputs(reqs []Request) {
	for i := range reqs {
		if in := reqs[i].Input; in != nil {
			in.unlease()
			runtime.KeepAlive(in)
		}
	}
}
