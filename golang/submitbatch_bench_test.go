package ferry

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkSubmitBatch measures async completions through the Go API: rounds of `size` echo
// requests submitted in one SubmitBatch (batched) or one Submit each (one-by-one), then waited
// for. One op is one completion, so ns/op of one-by-one over batched is the throughput ratio.
func BenchmarkSubmitBatch(b *testing.B) {
	const size = 256
	ctx := context.Background()
	if _, err := Do(ctx, Request{Op: OpEcho}); err != nil { // start the pool and the poller
		b.Fatal(err)
	}
	reqs := make([]Request, size)
	for i := range reqs {
		reqs[i] = Request{Op: OpEcho, Value: uint64(i)}
	}
	futs := make([]*Future, size)
	for _, mode := range []string{"batched", "one-by-one"} {
		b.Run(fmt.Sprintf("%s/%d", mode, size), func(b *testing.B) {
			for done := 0; done < b.N; done += size {
				n := min(size, b.N-done)
				if mode == "batched" {
					fs, err := SubmitBatch(ctx, reqs[:n])
					if err != nil {
						b.Fatal(err)
					}
					copy(futs, fs)
				} else {
					for i := range n {
						f, err := Submit(ctx, reqs[i])
						if err != nil {
							b.Fatal(err)
						}
						futs[i] = f
					}
				}
				for _, f := range futs[:n] {
					if _, err := f.Wait(); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
