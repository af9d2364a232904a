package ferry

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestSubmitBatch(t *testing.T) {
	ctx := context.Background()
	bufs := make([]*Buffer, 50)
	reqs := make([]Request, 0, 100)
	for i := range bufs {
		bufs[i] = mustCopy(t, []byte(fmt.Sprintf("payload %d", i)))
		reqs = append(reqs, Request{Op: OpChecksum, Input: bufs[i]}, Request{Op: OpEcho, Value: uint64(i)})
	}
	futs, err := SubmitBatch(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if len(futs) != len(reqs) {
		t.Fatalf("%d futures for %d requests", len(futs), len(reqs))
	}
	for i, f := range futs {
		out, err := f.Wait()
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if i%2 == 0 {
			want, err := Checksum(ctx, bufs[i/2])
			if err != nil {
				t.Fatal(err)
			}
			if out.Value != want {
				t.Fatalf("request %d: checksum %#x, want %#x", i, out.Value, want)
			}
		} else if out.Value != uint64(i/2) {
			t.Fatalf("request %d: value %d, want %d", i, out.Value, i/2)
		}
	}
	for _, b := range bufs {
		b.Close()
	}
}

// The pool stops at the first request it refuses: the Futures before it resolve, and the error is
// the refused request's.
func TestSubmitBatchStopsAtTheRefusedRequest(t *testing.T) {
	ctx := context.Background()
	reqs := []Request{{Op: OpEcho, Value: 1}, {Op: OpEcho, Value: 2}, {Op: Op(9999)}, {Op: OpEcho, Value: 4}}
	futs, err := SubmitBatch(ctx, reqs)
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("a batch with a bad op: %v", err)
	}
	if len(futs) != 2 {
		t.Fatalf("%d futures, want the 2 before the refused request", len(futs))
	}
	for i, f := range futs {
		out, err := f.Wait()
		if err != nil || out.Value != uint64(i+1) {
			t.Fatalf("future %d: %+v, %v", i, out, err)
		}
	}
}

func TestSubmitBatchRefusals(t *testing.T) {
	ctx := context.Background()
	if futs, err := SubmitBatch(ctx, nil); futs != nil || err != nil {
		t.Fatalf("empty batch: %v, %v", futs, err)
	}
	b := mustNew(t, 8)
	c := mustNew(t, 8)
	c.Close()
	if _, err := SubmitBatch(ctx, []Request{{Op: OpChecksum, Input: b}, {Op: OpChecksum, Input: c}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("a closed input: %v", err)
	}
	if b.state.Load() != 0 {
		t.Fatalf("b's lease was not given back: state %#x", b.state.Load())
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := SubmitBatch(cctx, []Request{{Op: OpEcho}}); !errors.Is(err, ErrCancelled) {
		t.Fatalf("a cancelled context: %v", err)
	}
}
