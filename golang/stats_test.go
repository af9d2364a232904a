package ferry

import (
	"encoding/json"
	"expvar"
	"testing"
)

func TestPublishExpvar(t *testing.T) {
	if expvar.Get("ferry_test") != nil {
		t.Fatal("published before PublishExpvar was called")
	}
	PublishExpvar("ferry_test")
	b := mustNew(t, 1234)
	defer b.Close()
	var got Stats
	if err := json.Unmarshal([]byte(expvar.Get("ferry_test").String()), &got); err != nil {
		t.Fatal(err)
	}
	if got.LiveIDs == 0 || got.LiveBytes < 1234 || got.Created == 0 || got.TrackedBytes < 1234 {
		t.Fatalf("expvar stats %+v", got)
	}
}

func TestResetPeak(t *testing.T) {
	b := mustNew(t, 5<<20)
	// Reading the stats raises the peak to the exact live total (the running peak itself can trail
	// by the per-thread accounting grain, see src/stats.rs).
	live := mustStats(t).LiveBytes
	b.Close()
	if st := mustStats(t); st.PeakBytes < live || live < 5<<20 {
		t.Fatalf("peak %d below the live bytes %d seen with a 5 MiB buffer open", st.PeakBytes, live)
	}
	if err := ResetPeak(); err != nil {
		t.Fatal(err)
	}
	if st := mustStats(t); st.PeakBytes != st.LiveBytes || st.PeakBytes >= live {
		t.Fatalf("after ResetPeak: peak %d, live %d (was %d)", st.PeakBytes, st.LiveBytes, live)
	}
}
