package main

// Phase 4: ping-pong between two processes. The demo starts itself again as the peer process
// (-shm-peer) and measures round trips of a payload, 64 B to 64 MiB, two ways in the same run:
//
//   - ferry region: the payload is a buffer in a shared-memory region; its id goes to the peer on
//     the message ring, the peer reads the first and last byte and sends the id back (an in-place
//     reply). Both sides wait for the other in Go's netpoller: every trip has two real wake-ups.
//   - Unix socket: the payload's bytes are written to a Unix stream socket, the peer reads them all,
//     reads the first and last byte and writes them all back: two copies each way.
//
// Then the same ferry ping-pong at 64 B with busy-polling on both sides (bounded spin before
// parking), whose round trip halves to the one-way latency.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sort"
	"syscall"
	"time"

	ferry "github.com/ferry/ferry/golang"
	"github.com/ferry/ferry/golang/internal/report"
)

// Tags of the demo's region messages.
const (
	tagPing = 1
	tagSpin = 2
	tagQuit = 3
)

// shmRounds is how many turns each way takes per payload size.
const shmRounds = 5

// median returns the middle value of v (v is reordered).
func median(v []float64) float64 {
	sort.Float64s(v)
	return v[len(v)/2]
}

// shmResult is one payload size's round trips (ns each, the median of shmRounds rounds).
type shmResult struct {
	Size                  int
	FerryNs, SocketNs     float64
	FerryTrips, SockTrips int
}

// shmRun is the whole phase.
type shmRun struct {
	Results []shmResult
	// SpinRTTNs is the 64 B round trip with busy-polling on both sides (one-way is half of it).
	SpinRTTNs float64
	SpinTrips int
}

// shmPeerMain is the peer process: it receives the region on fd 3, answers pings on the region and
// echoes payloads on the same socket, until told to quit.
func shmPeerMain() int {
	f := os.NewFile(3, "shm-sock")
	c, err := net.FileConn(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, "shm peer:", err)
		return 2
	}
	conn := c.(*net.UnixConn)
	r, err := ferry.ReceiveRegion(conn, 10*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, "shm peer:", err)
		return 2
	}
	defer r.Close()
	done := make(chan error, 1)
	go func() { done <- shmRegionServer(r) }()
	if err := shmSocketServer(conn); err != nil {
		fmt.Fprintln(os.Stderr, "shm peer socket:", err)
		return 3
	}
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, "shm peer region:", err)
		return 3
	}
	return 0
}

func shmRegionServer(r *ferry.Region) error {
	var ms [64]ferry.Message
	for {
		n, err := r.Receive(context.Background(), ms[:])
		if err != nil {
			return err
		}
		for i := range ms[:n] {
			m := &ms[i]
			switch {
			case m.Tag == tagQuit:
				return nil
			case m.Tag == tagSpin:
				if err := r.SetSpin(time.Duration(m.Value)); err != nil {
					return err
				}
				if err := r.Send(nil, tagSpin, 0); err != nil {
					return err
				}
			case m.Buf != nil:
				p := m.Buf.Bytes()
				sink += int(p[0]) + int(p[len(p)-1])
				if err := r.SendMove(m.Buf, m.Tag, m.Value); err != nil {
					return err
				}
			}
			ms[i] = ferry.Message{}
		}
	}
}

func shmSocketServer(conn *net.UnixConn) error {
	var hdr [8]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			return err
		}
		n := int(binary.LittleEndian.Uint64(hdr[:]))
		if n == 0 {
			return nil
		}
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		p := buf[:n]
		if _, err := io.ReadFull(conn, p); err != nil {
			return err
		}
		sink += int(p[0]) + int(p[n-1])
		if _, err := conn.Write(p); err != nil {
			return err
		}
	}
}

// runShm starts the peer and measures every size both ways, then the busy-poll round trip.
func runShm(sizes []int, budget time.Duration, logf func(string, ...any)) (shmRun, error) {
	var out shmRun
	maxSize := 0
	for _, s := range sizes {
		maxSize = max(maxSize, s)
	}
	r, err := ferry.CreateRegion(&ferry.RegionConfig{Ring: 64, Slots: 64, Arena: uint64(maxSize) + 1<<20})
	if err != nil {
		return out, err
	}
	defer r.Close()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return out, err
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "shm-sock"), os.NewFile(uintptr(fds[1]), "shm-peer-sock")
	self, err := os.Executable()
	if err != nil {
		return out, err
	}
	cmd := exec.Command(self, "-shm-peer")
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return out, err
	}
	theirs.Close()
	c, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		return out, err
	}
	conn := c.(*net.UnixConn)
	defer conn.Close()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	if err := r.Share(conn); err != nil {
		return out, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err = r.AwaitPeer(ctx)
	cancel()
	if err != nil {
		return out, fmt.Errorf("peer did not attach: %w", err)
	}
	for _, size := range sizes {
		// The two ways take turns, in shmRounds rounds of budget/shmRounds each, and each way's
		// figure is the median of its rounds: a burst of load on the machine hits one round of
		// each, not one way's whole measurement.
		res := shmResult{Size: size}
		var fs, ss []float64
		for range shmRounds {
			ns, n, err := shmFerry(r, size, budget/shmRounds)
			if err != nil {
				return out, fmt.Errorf("ferry %s: %w", sizeName(size), err)
			}
			fs, res.FerryTrips = append(fs, ns), res.FerryTrips+n
			if ns, n, err = shmSocket(conn, size, budget/shmRounds); err != nil {
				return out, fmt.Errorf("socket %s: %w", sizeName(size), err)
			}
			ss, res.SockTrips = append(ss, ns), res.SockTrips+n
		}
		res.FerryNs, res.SocketNs = median(fs), median(ss)
		logf("  %8s  ferry region %10s  unix socket %10s  (%d and %d round trips)", sizeName(size),
			nsName(res.FerryNs), nsName(res.SocketNs), res.FerryTrips, res.SockTrips)
		out.Results = append(out.Results, res)
	}
	// Busy-poll: both sides spin up to 200 µs before parking.
	const spin = 200 * time.Microsecond
	if err := shmSetSpin(r, spin); err != nil {
		return out, err
	}
	var sp []float64
	for range shmRounds {
		ns, n, err := shmFerry(r, 64, budget/shmRounds)
		if err != nil {
			return out, fmt.Errorf("busy-poll: %w", err)
		}
		sp, out.SpinTrips = append(sp, ns), out.SpinTrips+n
	}
	out.SpinRTTNs = median(sp)
	if err := shmSetSpin(r, 0); err != nil {
		return out, err
	}
	logf("  busy-poll (spin ≤ %v): 64 B round trip %s, one way %s", spin, nsName(out.SpinRTTNs), nsName(out.SpinRTTNs/2))
	// Quit the peer: an empty socket frame and a quit message.
	var zero [8]byte
	if _, err := conn.Write(zero[:]); err != nil {
		return out, err
	}
	if err := r.Send(nil, tagQuit, 0); err != nil {
		return out, err
	}
	if err := cmd.Wait(); err != nil {
		return out, fmt.Errorf("peer: %w", err)
	}
	st, err := r.Stats()
	if err != nil {
		return out, err
	}
	if st.OwnBuffers != 0 || st.Lent != 0 || st.Held != 0 {
		return out, fmt.Errorf("region not clean after the phase: %+v", st)
	}
	return out, nil
}

func shmSetSpin(r *ferry.Region, d time.Duration) error {
	if err := r.SetSpin(d); err != nil {
		return err
	}
	if err := r.Send(nil, tagSpin, uint64(d)); err != nil {
		return err
	}
	var ms [1]ferry.Message
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := r.Receive(ctx, ms[:]); err != nil {
		return err
	}
	if ms[0].Tag != tagSpin {
		return fmt.Errorf("unexpected message %+v", ms[0])
	}
	return nil
}

// shmFerry measures round trips of a size-byte region buffer: send its id (the peer gets a
// lease), receive it back, release the returned hold.
func shmFerry(r *ferry.Region, size int, budget time.Duration) (float64, int, error) {
	buf, err := r.Alloc(size)
	if err != nil {
		return 0, 0, err
	}
	defer buf.Close()
	fill(buf.Bytes(), uint64(size))
	var ms [1]ferry.Message
	ctx := context.Background()
	trip := func(i int) error {
		if err := r.Send(buf, tagPing, uint64(i)); err != nil {
			return err
		}
		n, err := r.Receive(ctx, ms[:])
		if err != nil {
			return err
		}
		m := ms[0]
		if n != 1 || m.Buf == nil || m.Buf.ID() != buf.ID() || m.Value != uint64(i) {
			return fmt.Errorf("unexpected reply %+v", m)
		}
		m.Buf.Close()
		return nil
	}
	for i := range 20 {
		if err := trip(i); err != nil {
			return 0, 0, err
		}
	}
	trips := 0
	start := time.Now()
	for time.Since(start) < budget || trips < 10 {
		if err := trip(trips); err != nil {
			return 0, 0, err
		}
		trips++
	}
	return float64(time.Since(start).Nanoseconds()) / float64(trips), trips, nil
}

// shmSocket measures round trips of size bytes over the Unix socket: write them, read them back.
func shmSocket(conn *net.UnixConn, size int, budget time.Duration) (float64, int, error) {
	p := make([]byte, 8+size)
	binary.LittleEndian.PutUint64(p, uint64(size))
	fill(p[8:], uint64(size))
	back := make([]byte, size)
	trip := func() error {
		if _, err := conn.Write(p); err != nil {
			return err
		}
		if _, err := io.ReadFull(conn, back); err != nil {
			return err
		}
		if back[0] != p[8] || back[size-1] != p[len(p)-1] {
			return errors.New("echo differs")
		}
		return nil
	}
	for range 5 {
		if err := trip(); err != nil {
			return 0, 0, err
		}
	}
	trips := 0
	start := time.Now()
	for time.Since(start) < budget || trips < 5 {
		if err := trip(); err != nil {
			return 0, 0, err
		}
		trips++
	}
	return float64(time.Since(start).Nanoseconds()) / float64(trips), trips, nil
}

func shmTable(s shmRun) *report.Table {
	t := &report.Table{Header: []string{"payload", "ferry region round trip", "unix socket round trip", "socket / ferry",
		"ferry trips", "socket trips"}}
	for _, r := range s.Results {
		t.AddRow(sizeName(r.Size), nsName(r.FerryNs), nsName(r.SocketNs), ratio(r.SocketNs/r.FerryNs),
			fmt.Sprint(r.FerryTrips), fmt.Sprint(r.SockTrips))
	}
	return t
}

func shmChart(s shmRun) *report.LineChart {
	var sizes []float64
	var fz, us []report.Point
	for _, r := range s.Results {
		x := float64(r.Size)
		sizes = append(sizes, x)
		fz = append(fz, report.Point{X: x, Y: r.FerryNs})
		us = append(us, report.Point{X: x, Y: r.SocketNs})
	}
	return &report.LineChart{
		Title:  "Ping-pong between two processes: round trip (lower is better)",
		XLabel: "payload (log scale)", YLabel: "ns per round trip (log scale)",
		LogX: true, LogY: true, XTicks: sizes, XFormat: func(v float64) string { return sizeName(int(v)) },
		Series: []report.Series{
			{Name: "ferry region (wake-ups)", Points: fz},
			{Name: "unix socket (copies)", Points: us},
		},
	}
}

// shmSummary states the goals' figures from the measurements.
func shmSummary(s shmRun) string {
	first, last := s.Results[0], s.Results[len(s.Results)-1]
	msg := fmt.Sprintf("ferry round trip %s at %s and %s at %s (%.2f×: flat); the socket %s and %s.",
		nsName(first.FerryNs), sizeName(first.Size), nsName(last.FerryNs), sizeName(last.Size),
		last.FerryNs/first.FerryNs, nsName(first.SocketNs), nsName(last.SocketNs))
	for _, r := range s.Results {
		if r.Size == 4<<20 {
			msg += fmt.Sprintf(" At 4 MiB: ferry %s, socket %s, %s faster.", nsName(r.FerryNs), nsName(r.SocketNs),
				ratio(r.SocketNs/r.FerryNs))
		}
	}
	msg += fmt.Sprintf(" Busy-poll at 64 B: round trip %s, one way %s.", nsName(s.SpinRTTNs), nsName(s.SpinRTTNs/2))
	return msg
}
