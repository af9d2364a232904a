package downstream

import (
	"runtime"
	"testing"
	"time"

	ferry "github.com/ferry/ferry/golang"
)

func stats(t *testing.T) ferry.Stats {
	t.Helper()
	st, err := ferry.ReadStats()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestOneTable makes frames in the downstream crate and views and releases them through the ferry
// Go package. That works only if both reach the same handle table: with two copies of ferry,
// Adopt would find the crate's ids unknown and the Go package's stats would not see them.
func TestOneTable(t *testing.T) {
	base := stats(t)
	made := FramesMade()
	frames := make([]*ferry.Buffer, 0, 8)
	for seq := range uint64(8) {
		b, err := MakeFrame(seq, 4096)
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, b)
	}
	st := stats(t)
	if st.LiveIDs != base.LiveIDs+8 || st.Created != base.Created+8 || st.LiveBytes != base.LiveBytes+8*4096 {
		t.Fatalf("ferry's stats do not see the crate's frames: %+v, before %+v", st, base)
	}
	if FramesMade() != made+8 {
		t.Fatalf("the crate made %d frames, want %d", FramesMade()-made, 8)
	}
	for seq, b := range frames {
		err := b.View(func(p []byte) {
			for i := range p {
				if p[i] != FrameByte(uint64(seq), i) {
					t.Fatalf("frame %d byte %d = %d, want %d", seq, i, p[i], FrameByte(uint64(seq), i))
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	half, err := frames[0].Slice(0, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range frames {
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if half.Bytes()[7] != FrameByte(0, 7) {
		t.Fatal("a slice of a crate frame lost its bytes when the frame was closed")
	}
	half.Close()
	st = stats(t)
	if st.LiveIDs != base.LiveIDs || st.LiveBytes != base.LiveBytes {
		t.Fatalf("after Close: %+v, want live ids and bytes back to %d and %d", st, base.LiveIDs, base.LiveBytes)
	}
	t.Logf("one table: %d ids created and %d released in all, %d live", st.Created, st.Released, st.LiveIDs)
}

// TestCleanupReleasesCrateFrames drops frames without Close: the ferry package's GC backstop
// releases them into the crate's table, which drops the crate's Vecs.
func TestCleanupReleasesCrateFrames(t *testing.T) {
	base := stats(t)
	for seq := range uint64(100) {
		if _, err := MakeFrame(seq, 1000); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for stats(t).LiveIDs != base.LiveIDs {
		if time.Now().After(deadline) {
			t.Fatalf("live ids %d, want %d", stats(t).LiveIDs, base.LiveIDs)
		}
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
	if st := stats(t); st.LiveBytes != base.LiveBytes {
		t.Fatalf("live bytes %d, want %d", st.LiveBytes, base.LiveBytes)
	}
}
