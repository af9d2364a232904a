package ferry

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// checkWriter fails on any byte that is not want.
type checkWriter struct{ want byte }

func (w checkWriter) Write(p []byte) (int, error) {
	for i, c := range p {
		if c != w.want {
			return i, fmt.Errorf("byte %d is %#x, want %#x", i, c, w.want)
		}
	}
	return len(p), nil
}

func checkPattern(p []byte, want byte) error {
	_, err := checkWriter{want}.Write(p)
	return err
}

// TestStressCloseRacesUse has 8 goroutines use one buffer in every way while one of them closes it.
// Every operation must either succeed on intact bytes or fail with ErrClosed; Close must release
// each id exactly once; and a churn goroutine keeps reusing freed memory with another pattern, so a
// release that came too early (under a running View, say) shows up as a wrong byte.
func TestStressCloseRacesUse(t *testing.T) {
	const goroutines = 8
	rounds := 1500
	if testing.Short() {
		rounds = 300
	}
	if debugMode {
		rounds = 15
	}
	base := baseStats(t)

	stopChurn := make(chan struct{})
	var churnWG sync.WaitGroup
	churnWG.Add(1)
	go func() {
		defer churnWG.Done()
		for i := 0; ; i++ {
			select {
			case <-stopChurn:
				return
			default:
			}
			c, err := New(1 + i%4096)
			if err != nil {
				t.Error(err)
				return
			}
			p := c.Bytes()
			for j := range p {
				p[j] = 0xEE
			}
			c.Close()
		}
	}()

	var ops, closedErrs atomic.Int64
	for r := range rounds {
		size := 1 + (r*37)%4096
		pattern := byte(r%200 + 1)
		b := mustNew(t, size)
		p := b.Bytes()
		for i := range p {
			p[i] = pattern
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, goroutines)
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for k := range 24 {
					ops.Add(1)
					err := stressOp(b, (g+k)%10, k, size, pattern)
					if errors.Is(err, ErrClosed) {
						closedErrs.Add(1)
					} else if err != nil {
						errs <- fmt.Errorf("round %d goroutine %d op %d: %w", r, g, (g+k)%10, err)
						return
					}
				}
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	close(stopChurn)
	churnWG.Wait()
	st := waitLive(t, base.LiveIDs, 10*time.Second)
	created, released := st.Created-base.Created, st.Released-base.Released
	t.Logf("%d rounds, %d operations, %d refused with ErrClosed; %d ids created, %d released",
		rounds, ops.Load(), closedErrs.Load(), created, released)
	if created != released {
		t.Fatalf("%d ids created but %d released", created, released)
	}
	if closedErrs.Load() == 0 {
		t.Fatal("no operation ever saw the buffer closed: the race was not exercised")
	}
}

// stressOp runs one operation on b; the goroutine with k == 12 on op 9 closes it.
func stressOp(b *Buffer, op, k, size int, pattern byte) error {
	switch op {
	case 0:
		var inner error
		err := b.View(func(p []byte) {
			if len(p) != size {
				inner = fmt.Errorf("View len %d, want %d", len(p), size)
				return
			}
			inner = checkPattern(p, pattern)
			runtime.Gosched() // give a racing Close its chance, then look again
			if inner == nil {
				inner = checkPattern(p, pattern)
			}
		})
		if err != nil {
			return err
		}
		return inner
	case 1:
		c, err := b.CopyBytes()
		if err != nil {
			return err
		}
		return checkPattern(c, pattern)
	case 2:
		p := make([]byte, size)
		n, err := b.ReadAt(p, 0)
		if err != nil {
			return err
		}
		return checkPattern(p[:n], pattern)
	case 3:
		_, err := b.WriteTo(checkWriter{pattern})
		return err
	case 4:
		s, err := b.Slice(size/4, size/2)
		if err != nil {
			return err
		}
		defer s.Close()
		return s.View(func(p []byte) { err = checkPattern(p, pattern) })
	case 5:
		s, err := b.Share()
		if err != nil {
			return err
		}
		if err := s.View(func(p []byte) { err = checkPattern(p, pattern) }); err != nil {
			return err
		}
		return s.Close()
	case 6:
		err := error(nil)
		func() {
			defer func() {
				if r := recover(); r != nil {
					err, _ = r.(error)
				}
			}()
			if n := len(b.Bytes()); n != size { // racing Close: the slice must not be read
				err = fmt.Errorf("Bytes len %d, want %d", n, size)
			}
		}()
		return err
	case 7:
		_, err := b.WriteAt([]byte{pattern}, int64(size-1))
		return err
	case 8:
		if n := b.Len(); n != size && n != 0 {
			return fmt.Errorf("Len %d", n)
		}
		return nil
	default:
		if k == 12 {
			return b.Close()
		}
		return nil
	}
}
