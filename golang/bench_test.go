package ferry

import (
	"runtime"
	"runtime/cgo"
	"testing"
	"unsafe"

	"github.com/ferry/ferry/golang/internal/abitest"
	"github.com/ferry/ferry/golang/internal/cgotest"
)

var benchSizes = []struct {
	name string
	n    int
}{
	{"64B", 64}, {"4KiB", 4 << 10}, {"64KiB", 64 << 10}, {"1MiB", 1 << 20}, {"16MiB", 16 << 20}, {"64MiB", 64 << 20},
}

var (
	sinkSlice []byte
	sinkInt   int
	sinkAny   any
)

// BenchmarkBytes measures the zero-copy view: a []byte over the Rust memory, no cgo call.
func BenchmarkBytes(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			buf := filledBuffer(b, sz.n)
			defer buf.Close()
			b.SetBytes(int64(sz.n))
			b.ResetTimer()
			for range b.N {
				sinkSlice = buf.Bytes()
			}
		})
	}
}

// BenchmarkGoBytes measures the copying alternative: C.GoBytes over the same Rust buffer.
func BenchmarkGoBytes(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			buf := filledBuffer(b, sz.n)
			defer buf.Close()
			p := unsafe.Pointer(unsafe.SliceData(buf.Bytes()))
			b.SetBytes(int64(sz.n))
			b.ResetTimer()
			for range b.N {
				sinkSlice = cgotest.GoBytes(p, sz.n)
			}
		})
	}
}

// BenchmarkCgoCall is the baseline: one bare cgo call to an empty C function.
func BenchmarkCgoCall(b *testing.B) {
	for range b.N {
		cgotest.Empty()
	}
}

// BenchmarkRoundTrip is a 64-byte buffer's whole life: New, Bytes, Close.
func BenchmarkRoundTrip(b *testing.B) {
	for range b.N {
		buf, err := New(64)
		if err != nil {
			b.Fatal(err)
		}
		sinkInt += len(buf.Bytes())
		buf.Close()
	}
}

// BenchmarkRoundTripParallel is BenchmarkRoundTrip from GOMAXPROCS goroutines (2 on the CI
// machine); compare its ns/op with BenchmarkRoundTrip's for the scaling.
func BenchmarkRoundTripParallel(b *testing.B) {
	b.RunParallel(func(pb *testing.PB) {
		n := 0
		for pb.Next() {
			buf, err := New(64)
			if err != nil {
				b.Error(err)
				return
			}
			n += len(buf.Bytes())
			buf.Close()
		}
		_ = n
	})
}

// BenchmarkLifecycle is ferry's handle lifecycle (create an id, look it up, release it) from Go,
// to compare with BenchmarkCgoHandle.
func BenchmarkLifecycle(b *testing.B) {
	for range b.N {
		buf, err := New(64)
		if err != nil {
			b.Fatal(err)
		}
		sinkSlice = buf.Bytes()
		buf.Close()
	}
}

// BenchmarkRawNewRelease is the floor under BenchmarkRoundTrip: the same two C ABI calls (create,
// release) with no Buffer, no cleanup and no accounting.
func BenchmarkRawNewRelease(b *testing.B) {
	for range b.N {
		if st := abitest.RawNewRelease(64); st != 0 {
			b.Fatal(Status(st))
		}
	}
}

// BenchmarkAddCleanupStop is the Go runtime's share of BenchmarkRoundTrip: allocate a small object,
// attach a cleanup, stop it.
func BenchmarkAddCleanupStop(b *testing.B) {
	for range b.N {
		o := &Buffer{}
		c := runtime.AddCleanup(o, func(int) {}, 0)
		c.Stop()
		runtime.KeepAlive(o)
	}
}

// BenchmarkCgoHandle is the standard alternative's lifecycle: runtime/cgo.Handle New, Value, Delete.
func BenchmarkCgoHandle(b *testing.B) {
	v := make([]byte, 64)
	for range b.N {
		h := cgo.NewHandle(v)
		sinkAny = h.Value()
		h.Delete()
	}
}

// filledBuffer returns a buffer of n bytes with every page written, so that a copy reads real
// memory and not the kernel's shared zero page.
func filledBuffer(tb testing.TB, n int) *Buffer {
	tb.Helper()
	buf := mustNew(tb, n)
	p := buf.Bytes()
	for i := range p {
		p[i] = byte(i)
	}
	return buf
}

func mustNew(tb testing.TB, n int) *Buffer {
	tb.Helper()
	buf, err := New(n)
	if err != nil {
		tb.Fatal(err)
	}
	return buf
}
