package ferry

import (
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// The profile's sample types, in the order of each sample's values. inuse_* is what the open
// Buffers hold now, alloc_* what was made since start, dropped_* what the cleanup released
// because it was never closed.
var heapSampleTypes = []*profile.ValueType{
	{Type: "alloc_objects", Unit: "count"},
	{Type: "alloc_space", Unit: "bytes"},
	{Type: "dropped_objects", Unit: "count"},
	{Type: "dropped_space", Unit: "bytes"},
	{Type: "inuse_objects", Unit: "count"},
	{Type: "inuse_space", Unit: "bytes"},
}

// HeapProfileCallLabel is the label that each sample of the heap profile carries: the ferry
// function or method that made the Buffers, e.g. "New", "Copy", "(*Buffer).Slice" or
// "(*Future).Wait" (select with go tool pprof -tagfocus=call=Copy).
const HeapProfileCallLabel = "call"

// WriteHeapProfile writes ferry's heap profile to w: the Buffers that are open now, by the stack
// that made them, as a gzipped profile.proto that go tool pprof reads (-top, -list, -http).
//
// Its sample types are inuse_space and inuse_objects (the default view: the bytes and number of
// open Buffers), alloc_space and alloc_objects (everything made since start), and dropped_space
// and dropped_objects (Buffers that were never closed and were released by the GC cleanup: leaks
// caught by the backstop; select with -sample_index=dropped_space). Like Go's heap profile, it
// holds samples (see SetHeapProfileRate), each scaled by the inverse of the probability that its
// Buffer was sampled, so the values estimate the true totals; at rate 1 they are exact.
//
// A Buffer's stack starts at the function that called ferry (New, Copy, Adopt, AdoptID, Slice,
// Share, a callback's Call, a Future's Wait); the ferry function itself is in the sample's "call"
// label. A Slice or Share counts its own length, as in Stats.TrackedBytes, so memory shared by
// several open Buffers counts once for each.
func WriteHeapProfile(w io.Writer) error {
	return heapProfile().Write(w)
}

// heapBucketView is a copy of a bucket's counts, taken under heapProf.mu.
type heapBucketView struct {
	stack  []uintptr
	values [6]int64
}

// heapProfile builds the profile from a snapshot of the buckets.
func heapProfile() *profile.Profile {
	heapProf.mu.Lock()
	views := make([]heapBucketView, 0, len(heapProf.buckets))
	for _, bk := range heapProf.buckets {
		views = append(views, heapBucketView{stack: bk.stack, values: [6]int64{
			round(bk.allocObjects), round(bk.allocBytes),
			round(bk.droppedObjects), round(bk.droppedBytes),
			round(bk.inuseObjects), round(bk.inuseBytes),
		}})
	}
	heapProf.mu.Unlock()

	// One mapping, the program, with every location already symbolised: pprof names the program
	// and never looks for a binary to symbolise with.
	exe, _ := os.Executable()
	m := &profile.Mapping{ID: 1, File: exe, HasFunctions: true, HasFilenames: true, HasLineNumbers: true}
	p := &profile.Profile{
		SampleType:        heapSampleTypes,
		DefaultSampleType: "inuse_space",
		PeriodType:        &profile.ValueType{Type: "space", Unit: "bytes"},
		Period:            heapRate.Load(),
		TimeNanos:         time.Now().UnixNano(),
		Mapping:           []*profile.Mapping{m},
	}
	type locKey struct {
		pc   uintptr
		fn   string
		line int
	}
	locs := make(map[locKey]*profile.Location)
	funcs := make(map[string]*profile.Function)
	prefix := ferryFuncPrefix()
	for _, v := range views {
		if v.values == [6]int64{} {
			continue
		}
		frames, call := creationFrames(v.stack, prefix)
		s := &profile.Sample{Value: v.values[:]}
		if call != "" {
			s.Label = map[string][]string{HeapProfileCallLabel: {call}}
		}
		for _, f := range frames {
			k := locKey{f.PC, f.Function, f.Line}
			loc := locs[k]
			if loc == nil {
				fn := funcs[f.Function+"\x00"+f.File]
				if fn == nil {
					fn = &profile.Function{ID: uint64(len(p.Function) + 1), Name: f.Function,
						SystemName: f.Function, Filename: f.File}
					funcs[f.Function+"\x00"+f.File] = fn
					p.Function = append(p.Function, fn)
				}
				loc = &profile.Location{ID: uint64(len(p.Location) + 1), Mapping: m, Address: uint64(f.PC),
					Line: []profile.Line{{Function: fn, Line: int64(f.Line)}}}
				locs[k] = loc
				p.Location = append(p.Location, loc)
			}
			s.Location = append(s.Location, loc)
		}
		p.Sample = append(p.Sample, s)
	}
	return p
}

// round rounds a scaled count to the profile's int64, saturating (a tiny Buffer sampled at a huge
// rate can weigh more than an int64 holds).
func round(f float64) int64 {
	if f >= math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(math.Round(f))
}

// creationFrames symbolises a recorded stack, leaf first, and drops its leading ferry frames, so
// that the leaf is the function that called ferry; call names the outermost ferry frame dropped
// ("New", "(*Buffer).Slice", ...). A stack that ferry's own code started (a Buffer that a callback
// from Rust receives, say) has no caller outside ferry and is kept whole.
func creationFrames(stack []uintptr, prefix string) (frames []runtime.Frame, call string) {
	it := runtime.CallersFrames(stack)
	for {
		f, more := it.Next()
		if f.Function != "" || f.File != "" {
			frames = append(frames, f)
		}
		if !more {
			break
		}
	}
	k := 0
	for k < len(frames) && strings.HasPrefix(frames[k].Function, prefix) {
		k++
	}
	if k == 0 || k == len(frames) || strings.HasPrefix(frames[k].Function, "runtime.") {
		return frames, ""
	}
	return frames[k:], strings.TrimPrefix(frames[k-1].Function, prefix)
}

// ferryFuncPrefix returns the prefix of the full names of this package's functions, e.g.
// "github.com/ferry/ferry/golang.".
func ferryFuncPrefix() string {
	pc, _, _, _ := runtime.Caller(0)
	return strings.TrimSuffix(runtime.FuncForPC(pc).Name(), "ferryFuncPrefix")
}
