package ferry

import (
	"testing"

	"github.com/ferry/ferry/golang/internal/abitest"
)

// scopeBenchSize is how many Buffers a scope holds in the scope benchmarks before it is closed.
const scopeBenchSize = 64

// BenchmarkScope is a scoped 64-byte buffer's life: Scope.New and Bytes, in scopes of 64 closed
// at once (one crossing for the 64 releases). One op is one buffer, its share of NewScope and
// Close included; compare with BenchmarkCgoCall and BenchmarkCgoHandle.
func BenchmarkScope(b *testing.B) {
	s := NewScope()
	for i := range b.N {
		buf, err := s.New(64)
		if err != nil {
			b.Fatal(err)
		}
		sinkSlice = buf.Bytes()
		if i%scopeBenchSize == scopeBenchSize-1 {
			s.Close()
			s = NewScope()
		}
	}
	s.Close()
}

// BenchmarkRoundTripScoped is BenchmarkScope by another name, beside BenchmarkRoundTripScopedParallel
// for the scaling.
func BenchmarkRoundTripScoped(b *testing.B) {
	BenchmarkScope(b)
}

// BenchmarkRoundTripScopedParallel is BenchmarkRoundTripScoped from GOMAXPROCS goroutines (2 on the
// CI machine), each with its own scopes; ns/op of BenchmarkRoundTripScoped over this ns/op is the
// throughput ratio.
func BenchmarkRoundTripScopedParallel(b *testing.B) {
	b.RunParallel(func(pb *testing.PB) {
		s := NewScope()
		n := 0
		for i := 0; pb.Next(); i++ {
			buf, err := s.New(64)
			if err != nil {
				b.Error(err)
				return
			}
			n += len(buf.Bytes())
			if i%scopeBenchSize == scopeBenchSize-1 {
				s.Close()
				s = NewScope()
			}
		}
		s.Close()
		_ = n
	})
}

// BenchmarkScopeFloor is the floor under BenchmarkScope in Rust: one crossing that makes a 64-byte
// id and releases it (ferry_buffer_new and ferry_buffer_release from C), with no claim, no Buffer
// and no accounting.
func BenchmarkScopeFloor(b *testing.B) {
	for range b.N {
		if st := abitest.RawNewRelease(64); st != 0 {
			b.Fatal(Status(st))
		}
	}
}
