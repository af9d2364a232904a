package ferry

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// Echo results of every mode and around the threshold: ResultLend lends, ResultAuto copies up to
// InlineThreshold bytes and lends above, ResultInline always copies; the bytes are right and no
// id is left behind.
func TestResultModes(t *testing.T) {
	ctx := context.Background()
	base := mustStats(t)
	for _, n := range []int{0, 1, 64, InlineThreshold, InlineThreshold + 1, 64 << 10} {
		src := mustNew(t, n)
		p := src.Bytes()
		for i := range p {
			p[i] = byte(i * 7)
		}
		want := append([]byte(nil), src.Bytes()...)
		for _, mode := range []ResultMode{ResultLend, ResultAuto, ResultInline} {
			reqs := []Request{{Op: OpEcho, Input: src, Result: mode}, {Op: OpEcho, Input: src, Result: mode}}
			futs, err := SubmitBatch(ctx, reqs)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range futs {
				out, err := f.Wait()
				if err != nil {
					t.Fatalf("n=%d mode=%d: %v", n, mode, err)
				}
				inline := mode == ResultInline || (mode == ResultAuto && n <= InlineThreshold)
				if inline {
					if out.Buffer != nil || out.Data == nil || !bytes.Equal(out.Data, want) {
						t.Fatalf("n=%d mode=%d: want the bytes in Data, got Buffer %v, %d bytes", n, mode, out.Buffer, len(out.Data))
					}
					continue
				}
				if out.Buffer == nil || out.Data != nil || !bytes.Equal(out.Buffer.Bytes(), want) {
					t.Fatalf("n=%d mode=%d: want a Buffer, got %+v", n, mode, out)
				}
				out.Buffer.Close()
			}
		}
		src.Close()
	}
	if st := mustStats(t); st.LiveIDs != base.LiveIDs || st.LiveBytes != base.LiveBytes {
		t.Fatalf("ids left behind: %d live, %d bytes over base", st.LiveIDs-base.LiveIDs, st.LiveBytes-base.LiveBytes)
	}
}

// A small result for a Future whose context ended first is copied and released all the same: no id
// is left behind.
func TestInlineResultOfCancelledFuture(t *testing.T) {
	base := mustStats(t)
	src := mustCopy(t, []byte("small"))
	ctx, cancel := context.WithCancel(context.Background())
	f, err := Submit(ctx, Request{Op: OpEcho, Input: src, Result: ResultAuto})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := f.Wait(); err != nil && !errors.Is(err, ErrCancelled) {
		t.Fatal(err)
	}
	src.Close()
	waitFor(t, 10e9, "the late result released", func() bool {
		st := mustStats(t)
		return st.LiveIDs == base.LiveIDs
	})
}
