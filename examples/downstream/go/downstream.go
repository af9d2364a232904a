// Package downstream is the Go side of the example downstream crate: it asks the crate for frames
// and wraps their ids in ferry Buffers.
//
// Build it, and every program or test that imports it, with -tags ferry_external: the ferry Go
// package then links no library of its own, and this package links the crate's staticlib, which
// bundles ferry. The process holds exactly one copy of ferry, so one handle table.
package downstream

/*
#cgo CFLAGS: -I${SRCDIR}/.. -I${SRCDIR}/../../../ffi
#cgo LDFLAGS: ${SRCDIR}/../../../target/downstream/release/libferry_downstream.a -ldl -lpthread -lm
#include "downstream.h"

typedef struct {
	FerryView view;
	FerryStatus status;
} downstream_frame;

// By value, so that no Go variable's address goes to C.
static inline downstream_frame downstream_frame_make(uint64_t seq, size_t len) {
	downstream_frame r = {0};
	r.status = downstream_make_frame(seq, len, &r.view);
	return r;
}
*/
import "C"

import (
	"unsafe"

	ferry "github.com/ferry/ferry/golang"
)

// MakeFrame asks the crate for frame seq of n bytes (byte i is (seq+i)%251) and returns it as a
// ferry Buffer that owns the id: Close it, or let the cleanup release it.
func MakeFrame(seq uint64, n int) (*ferry.Buffer, error) {
	r := C.downstream_frame_make(C.uint64_t(seq), C.size_t(n))
	if r.status != C.FERRY_STATUS_OK {
		return nil, &ferry.Error{Status: ferry.Status(r.status), Msg: "downstream_make_frame: " + ferry.Status(r.status).Message()}
	}
	b, err := ferry.Adopt(uint64(r.view.id), unsafe.Pointer(r.view.ptr), int(r.view.len))
	if err != nil {
		// Adopt takes nothing on error: this id is still ours to release.
		if rel, aerr := ferry.AdoptID(uint64(r.view.id)); aerr == nil {
			rel.Close()
		}
		return nil, err
	}
	return b, nil
}

// FramesMade returns how many frames the crate has lent since the process started.
func FramesMade() uint64 { return uint64(C.downstream_frames_made()) }

// FrameByte is byte i of frame seq, as the crate renders it.
func FrameByte(seq uint64, i int) byte { return byte((seq + uint64(i)) % 251) }
