package ferry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// unixPair returns the two ends of a connected Unix stream socket.
func unixPair(tb testing.TB) (*net.UnixConn, *net.UnixConn) {
	tb.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "unix")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			tb.Fatal(err)
		}
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

// regionPair makes a region and attaches a second handle to it in this process.
func regionPair(tb testing.TB, cfg *RegionConfig) (*Region, *Region) {
	tb.Helper()
	a, err := CreateRegion(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ca, cb := unixPair(tb)
	defer ca.Close()
	defer cb.Close()
	if err := a.Share(ca); err != nil {
		tb.Fatal(err)
	}
	b, err := ReceiveRegion(cb, 2*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	return a, b
}

func recvOne(tb testing.TB, r *Region) Message {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var m [1]Message
	for {
		if _, err := r.Receive(ctx, m[:]); err != nil {
			tb.Fatal(err)
		}
		if m[0].Flags&MsgPeerJoined == 0 {
			return m[0]
		}
	}
}

func procCount(tb testing.TB, what string) int {
	tb.Helper()
	switch what {
	case "fd":
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			tb.Fatal(err)
		}
		return len(ents)
	case "maps":
		b, err := os.ReadFile("/proc/self/maps")
		if err != nil {
			tb.Fatal(err)
		}
		return bytes.Count(b, []byte("ferry-region"))
	default:
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			tb.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "Threads:"); ok {
				n, _ := strconv.Atoi(strings.TrimSpace(v))
				return n
			}
		}
		tb.Fatal("no Threads line")
		return 0
	}
}

func TestRegionSendReceiveInPlaceReply(t *testing.T) {
	base := OpenRegions()
	a, b := regionPair(t, &RegionConfig{Ring: 16, Slots: 64, Arena: 1 << 20})
	buf, err := a.Alloc(1000)
	if err != nil {
		t.Fatal(err)
	}
	copy(buf.Bytes(), "hello from a")
	id := buf.ID()
	if err := a.SendMove(buf, 7, 99); err != nil {
		t.Fatal(err)
	}
	if buf.ID() != 0 {
		t.Fatal("SendMove left the buffer open")
	}
	m := recvOne(t, b)
	if m.Buf == nil || m.Buf.ID() != id || m.Tag != 7 || m.Value != 99 || m.Buf.Len() != 1000 {
		t.Fatalf("got %+v", m)
	}
	if got := string(m.Buf.Bytes()[:12]); got != "hello from a" {
		t.Fatalf("peer read %q", got)
	}
	copy(m.Buf.Bytes(), "HELLO")
	if err := b.SendMove(m.Buf, 8, 0); err != nil {
		t.Fatal(err)
	}
	r := recvOne(t, a)
	if r.Buf == nil || r.Flags&MsgReturn == 0 || string(r.Buf.Bytes()[:5]) != "HELLO" {
		t.Fatalf("reply %+v", r)
	}
	r.Buf.Close()
	st, _ := a.Stats()
	if st.OwnBuffers != 0 || st.Lent != 0 {
		t.Fatalf("stats after close: %+v", st)
	}
	a.Close()
	b.Close()
	if OpenRegions() != base {
		t.Fatalf("open regions %d, want %d", OpenRegions(), base)
	}
}

func TestRegionErrors(t *testing.T) {
	a, b := regionPair(t, &RegionConfig{Ring: 2, Slots: 2, Arena: 4096})
	defer a.Close()
	defer b.Close()
	if _, err := a.Alloc(8192); !errors.Is(err, ErrRegionFull) {
		t.Fatalf("oversize alloc: %v", err)
	}
	x, _ := a.Alloc(8)
	y, _ := a.Alloc(8)
	if _, err := a.Alloc(8); !errors.Is(err, ErrRegionFull) {
		t.Fatalf("no slot: %v", err)
	}
	if err := b.Send(x, 0, 0); !errors.Is(err, ErrInvalidHandle) {
		t.Fatalf("a buffer of another handle: %v", err)
	}
	for i := 0; i < 2; i++ {
		if err := a.Send(nil, 0, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Send(nil, 0, 2); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("full ring: %v", err)
	}
	x.Close()
	if err := a.Send(x, 0, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed buffer: %v", err)
	}
	y.Close()
	if _, err := OpenRegion("ferry-no-such-region"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open missing: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	var ms [4]Message
	b.Receive(ctx, ms[:]) // drains the two messages
	if _, err := b.Receive(ctx, ms[:]); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("receive past the deadline: %v", err)
	}
}

func TestRegionClientServer(t *testing.T) {
	a, b := regionPair(t, nil)
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, b, func(req *Message) (*RegionBuffer, uint64, error) {
			if req.Tag == 2 {
				return nil, 77, errors.New("refused")
			}
			if req.Buf == nil {
				return nil, req.Value * 2, nil
			}
			p := req.Buf.Bytes()
			for i := range p {
				p[i]++
			}
			return req.Buf, uint64(len(p)), nil
		})
	}()
	c := NewClient(a, nil)
	defer c.Close()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				buf, err := a.Alloc(64 + i)
				if err != nil {
					t.Error(err)
					return
				}
				buf.Bytes()[0] = byte(i)
				rep, err := c.Call(context.Background(), buf, 1, 0, true)
				if err != nil {
					t.Error(err)
					return
				}
				if rep.Buf == nil || rep.Buf.Bytes()[0] != byte(i)+1 || rep.Value != uint64(64+i) {
					t.Errorf("reply %+v", rep)
				}
				rep.Buf.Close()
				rep, err = c.Call(context.Background(), nil, 0, uint64(i), false)
				if err != nil || rep.Value != uint64(2*i) {
					t.Errorf("value call: %+v %v", rep, err)
				}
			}
		}()
	}
	wg.Wait()
	if rep, err := c.Call(context.Background(), nil, 2, 0, false); !errors.Is(err, ErrCallbackFailed) || rep.Value != 77 {
		t.Fatalf("error reply: %+v %v", rep, err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve: %v", err)
	}
	st, _ := a.Stats()
	if st.OwnBuffers != 0 || st.Lent != 0 {
		t.Fatalf("client stats %+v", st)
	}
}

// TestRegionIdleReceiversUseNoThreads waits on 1,000 idle regions and compares the OS threads
// with waiting on one: each Receiver parks its goroutine in the netpoller.
func TestRegionIdleReceiversUseNoThreads(t *testing.T) {
	fd0, maps0 := procCount(t, "fd"), procCount(t, "maps")
	cfg := &RegionConfig{Ring: 2, Slots: 1, Arena: 4096}
	open := func(n int) ([]*Region, []*Receiver) {
		var rs []*Region
		var rcs []*Receiver
		for i := 0; i < n; i++ {
			r, err := CreateRegion(cfg)
			if err != nil {
				t.Fatal(err)
			}
			rs = append(rs, r)
			rcs = append(rcs, r.NewReceiver(func(m *Message) {}))
		}
		return rs, rcs
	}
	settle := func() int {
		// Let every receiver reach its wait; the count only grows if waits hold threads.
		for i := 0; i < 20; i++ {
			runtime.Gosched()
			time.Sleep(time.Millisecond)
		}
		return procCount(t, "threads")
	}
	closeAll := func(rs []*Region, rcs []*Receiver) {
		for i := range rs {
			rcs[i].Close()
			rs[i].Close()
		}
	}
	rs, rcs := open(1)
	one := settle()
	closeAll(rs, rcs)
	rs, rcs = open(1000)
	many := settle()
	t.Logf("OS threads: %d waiting on 1 region, %d waiting on 1,000", one, many)
	// A thread per waiting receiver would be 1,000 more. The margin is for the Ms that Go's
	// scheduler may start (and keep) while 1,000 goroutines make their first cgo call at once on
	// a loaded machine; make bench-shm reports the two counts.
	if many > one+20 {
		t.Fatalf("waiting on 1,000 regions took %d OS threads, on 1 region %d", many, one)
	}
	closeAll(rs, rcs)
	if fd, maps := procCount(t, "fd"), procCount(t, "maps"); fd != fd0 || maps != maps0 {
		t.Fatalf("descriptors %d -> %d, region mappings %d -> %d", fd0, fd, maps0, maps)
	}
}

// The cross-process tests run this test binary again as the peer (FERRY_REGION_PEER says what to
// do); see regionPeerMain.
func TestMain(m *testing.M) {
	if mode := os.Getenv("FERRY_REGION_PEER"); mode != "" {
		os.Exit(regionPeerMain(mode))
	}
	os.Exit(m.Run())
}

// regionPeerMain is the peer process: "echo NAME" serves in-place increments on a named region;
// "hold" receives a region on fd 3 and keeps every buffer it gets (until it is killed).
func regionPeerMain(mode string) int {
	name, _ := strings.CutPrefix(mode, "echo ")
	switch {
	case strings.HasPrefix(mode, "echo "):
		r, err := OpenRegion(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, "peer:", err)
			return 2
		}
		defer r.Close()
		err = Serve(context.Background(), r, func(req *Message) (*RegionBuffer, uint64, error) {
			if req.Buf == nil {
				return nil, req.Value + 1, nil
			}
			req.Buf.Bytes()[0]++
			return req.Buf, 0, nil
		})
		if !errors.Is(err, ErrPeerGone) {
			fmt.Fprintln(os.Stderr, "peer serve:", err)
			return 3
		}
		return 0
	case mode == "hold":
		f := os.NewFile(3, "sock")
		c, err := net.FileConn(f)
		if err != nil {
			return 2
		}
		r, err := ReceiveRegion(c.(*net.UnixConn), 5*time.Second)
		if err != nil {
			fmt.Fprintln(os.Stderr, "peer:", err)
			return 2
		}
		var held []*RegionBuffer
		var ms [64]Message
		for {
			n, err := r.Receive(context.Background(), ms[:])
			if err != nil {
				return 3
			}
			for _, m := range ms[:n] {
				if m.Buf != nil {
					held = append(held, m.Buf)
					// Send some back: the parent then holds the peer's buffers too.
					if m.Value%3 == 0 {
						if own, err := r.Alloc(128); err == nil {
							r.SendMove(own, 1, 0)
						}
					}
				}
				if m.Value%5 == 0 && len(held) > 0 {
					held[0].Close()
					held = held[1:]
				}
			}
		}
	}
	return 1
}

func peerCmd(t *testing.T, mode string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "FERRY_REGION_PEER="+mode)
	cmd.Stderr = os.Stderr
	return cmd
}

// TestRegionAcrossProcesses: a Go client and a Go server in two processes, over a named region,
// request/response with zero-copy payloads.
func TestRegionAcrossProcesses(t *testing.T) {
	name := fmt.Sprintf("ferry-gotest-%d", os.Getpid())
	r, err := CreateNamedRegion(name, &RegionConfig{Arena: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	cmd := peerCmd(t, "echo "+name)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.AwaitPeer(ctx); err != nil {
		t.Fatal(err)
	}
	c := NewClient(r, nil)
	for i := 0; i < 500; i++ {
		size := 1 << (i % 22)
		buf, err := r.Alloc(size)
		if err != nil {
			t.Fatal(err)
		}
		buf.Bytes()[0] = byte(i)
		rep, err := c.Call(ctx, buf, 0, 0, false)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Buf == nil || rep.Buf.ID() != buf.ID() || buf.Bytes()[0] != byte(i)+1 {
			t.Fatalf("call %d: reply %+v", i, rep)
		}
		rep.Buf.Close()
		buf.Close()
	}
	c.Close()
	st, _ := r.Stats()
	if st.OwnBuffers != 0 || st.Lent != 0 {
		t.Fatalf("stats %+v", st)
	}
	r.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("peer: %v", err)
	}
}

// TestRegionPeerKilled kills a peer that holds leases, at random points, and checks that the
// survivor gets every lease back and keeps working.
func TestRegionPeerKilled(t *testing.T) {
	rounds := 20
	if testing.Short() {
		rounds = 5
	}
	fd0 := procCount(t, "fd")
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for round := 0; round < rounds; round++ {
		r, err := CreateRegion(&RegionConfig{Ring: 64, Slots: 256, Arena: 4 << 20})
		if err != nil {
			t.Fatal(err)
		}
		ca, cb := unixPair(t)
		f, _ := cb.File()
		cmd := peerCmd(t, "hold")
		cmd.ExtraFiles = []*os.File{f}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		cb.Close()
		if err := r.Share(ca); err != nil {
			t.Fatal(err)
		}
		ca.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := r.AwaitPeer(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		var got []*RegionBuffer
		var mu sync.Mutex
		goneCh := make(chan struct{})
		rc := r.NewReceiver(func(m *Message) {
			if m.Buf != nil {
				mu.Lock()
				got = append(got, m.Buf)
				mu.Unlock()
			}
			if m.Flags&MsgPeerGone != 0 {
				close(goneCh)
			}
		})
		killAt := rng.Intn(300)
		for i := 0; i < 300; i++ {
			if i == killAt {
				cmd.Process.Kill()
			}
			b, err := r.Alloc(512)
			if err != nil {
				if errors.Is(err, ErrRegionFull) {
					continue
				}
				t.Fatal(err)
			}
			err = r.SendMove(b, 0, uint64(i))
			if err != nil {
				b.Close()
				if !errors.Is(err, ErrQueueFull) && !errors.Is(err, ErrPeerGone) {
					t.Fatal(err)
				}
				if errors.Is(err, ErrQueueFull) {
					runtime.Gosched()
				}
			}
		}
		cmd.Process.Kill()
		cmd.Wait()
		select {
		case <-goneCh:
		case <-time.After(10 * time.Second):
			st, _ := r.Stats()
			t.Fatalf("no PeerGone event after the kill: %+v, receiver %v", st, rc.Close())
		}
		rc.Close()
		st, _ := r.Stats()
		if st.Lent != 0 || st.OwnRefs != st.OwnBuffers-0 {
			t.Fatalf("round %d: after the kill %+v", round, st)
		}
		mu.Lock()
		for _, b := range got {
			b.Close()
		}
		mu.Unlock()
		st, _ = r.Stats()
		if st.Lent != 0 || st.Held != 0 || st.OwnBuffers != 0 {
			t.Fatalf("round %d: leaked %+v", round, st)
		}
		r.Close()
	}
	if fd := procCount(t, "fd"); fd != fd0 {
		t.Fatalf("descriptors %d -> %d", fd0, fd)
	}
}
