package ferry

import (
	"sync"
	"testing"
)

// TestLookupGoRefusesStaleKeys checks lookupGo's one-load lookup: a key whose slot was freed and
// reused finds nothing (never the new function), and so do keys that name no slot.
func TestLookupGoRefusesStaleKeys(t *testing.T) {
	first := registerGo(func(in Payload) (Payload, error) { return Payload{Value: 1}, nil })
	dropCallback(first)
	if lookupGo(first) != nil {
		t.Fatal("a dropped key still finds a function")
	}
	// Register until the freed slot is handed out again, under a new generation (at once, unless
	// a late drop elsewhere freed another slot meanwhile).
	var second uint64
	for range 64 {
		k := registerGo(func(in Payload) (Payload, error) { return Payload{Value: 2}, nil })
		defer dropCallback(k)
		if uint32(k) == uint32(first) {
			second = k
			break
		}
	}
	if second == 0 || second == first {
		t.Fatalf("key %#x: its slot was not handed out again under a new key (%#x)", first, second)
	}
	if lookupGo(first) != nil {
		t.Fatal("a stale key finds the function now in its slot")
	}
	if fn := lookupGo(second); fn == nil {
		t.Fatal("a live key finds nothing")
	} else if out, _ := fn(Payload{}); out.Value != 2 {
		t.Fatalf("the live key finds the wrong function (it returned %d)", out.Value)
	}
	for _, k := range []uint64{0, second &^ 0xFFFFFFFF, second>>32<<32 | (slotMax + 1), ^uint64(0)} {
		if lookupGo(k) != nil {
			t.Fatalf("key %#x names no slot but finds a function", k)
		}
	}
}

// TestLookupGoUnderChurn runs lookups of one live key while other goroutines register and drop
// functions in the slots around it (run it with -race too): the live key always finds its
// function, and a dropped key never finds another's.
func TestLookupGoUnderChurn(t *testing.T) {
	mine := registerGo(func(in Payload) (Payload, error) { return Payload{Value: 7}, nil })
	defer dropCallback(mine)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	defer func() {
		close(stop)
		wg.Wait()
	}()
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				k := registerGo(func(in Payload) (Payload, error) { return Payload{Value: 9}, nil })
				dropCallback(k)
				if lookupGo(k) != nil {
					t.Error("a dropped key finds a function")
					return
				}
			}
		}()
	}
	for range 20000 {
		fn := lookupGo(mine)
		if fn == nil {
			t.Fatal("the live key finds nothing")
		}
		if out, _ := fn(Payload{}); out.Value != 7 {
			t.Fatalf("the live key finds another function (it returned %d)", out.Value)
		}
	}
}
