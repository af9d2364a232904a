package ferry

import (
	"context"
	"testing"
)

// BenchmarkRoundTripResult chooses InlineThreshold: async echo results of each size, lent as a
// Buffer (read with Bytes, then closed) or copied into Go memory in the delivery batch, in batches
// of 64 requests (SubmitBatch). One op is one result; where inline's ns/op is below lend's, the
// copy is the cheaper way to hand the result over.
func BenchmarkRoundTripResult(b *testing.B) {
	const batch = 64
	ctx := context.Background()
	for _, sz := range []struct {
		name string
		n    int
	}{{"64B", 64}, {"256B", 256}, {"512B", 512}, {"1KiB", 1 << 10}, {"4KiB", 4 << 10}} {
		src := filledBuffer(b, sz.n)
		for _, m := range []struct {
			name string
			mode ResultMode
		}{{"lend", ResultLend}, {"inline", ResultInline}} {
			reqs := make([]Request, batch)
			for i := range reqs {
				reqs[i] = Request{Op: OpEcho, Input: src, Result: m.mode}
			}
			b.Run(m.name+"/"+sz.name, func(b *testing.B) {
				for done := 0; done < b.N; done += batch {
					futs, err := SubmitBatch(ctx, reqs[:min(batch, b.N-done)])
					if err != nil {
						b.Fatal(err)
					}
					for _, f := range futs {
						out, err := f.Wait()
						if err != nil {
							b.Fatal(err)
						}
						if out.Buffer != nil {
							sinkInt += len(out.Buffer.Bytes())
							out.Buffer.Close()
						} else {
							sinkInt += len(out.Data)
						}
					}
				}
			})
		}
		src.Close()
	}
}
