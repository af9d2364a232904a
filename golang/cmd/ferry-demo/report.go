package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ferry/ferry/golang/internal/report"
)

// Files written into the -out directory.
const (
	reportFile    = "report.md"
	framesChart   = "frames.svg"
	callbackChart = "callbacks.svg"
	shmChartFile  = "shm.svg"
)

// writeReport writes the Markdown report and its two charts into c.out and returns their paths.
func writeReport(c config, m report.Machine, elapsed time.Duration, frames []frameResult, async asyncResult,
	gcr gcResult, shm shmRun, end endState) ([]string, error) {
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	write := func(name string, data []byte) error {
		p := filepath.Join(c.out, name)
		paths = append(paths, p)
		return os.WriteFile(p, data, 0o644)
	}

	// Chart 1: time per frame against frame size, log-log.
	var sizes []float64
	var rz, rc, sz, sc []report.Point
	for _, r := range frames {
		x := float64(r.Size)
		sizes = append(sizes, x)
		_, rb := best(r.RecvZeroNs, r.RecvReadNs)
		_, sb := best(r.SumZeroNs, r.SumReadNs)
		rz = append(rz, report.Point{X: x, Y: rb})
		rc = append(rc, report.Point{X: x, Y: r.RecvCopyNs})
		sz = append(sz, report.Point{X: x, Y: sb})
		sc = append(sc, report.Point{X: x, Y: r.SumCopyNs})
	}
	var svg bytes.Buffer
	err := (&report.LineChart{
		Title:  "Rust frame to Go: time per frame (lower is better)",
		XLabel: "frame size (log scale)", YLabel: "ns per frame (log scale)",
		LogX: true, LogY: true, XTicks: sizes, XFormat: func(v float64) string { return sizeName(int(v)) },
		Series: []report.Series{
			{Name: "receive, ferry's path", Points: rz},
			{Name: "receive, C.GoBytes", Points: rc},
			{Name: "+crc32c, ferry's path", Points: sz, Dashed: true},
			{Name: "+crc32c, C.GoBytes", Points: sc, Dashed: true},
		},
	}).WriteSVG(&svg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", framesChart, err)
	}
	if err := write(framesChart, svg.Bytes()); err != nil {
		return nil, err
	}

	// Chart 2: completions per second, per delivery mode and batch size.
	svg.Reset()
	if err := asyncChart(async).WriteSVG(&svg); err != nil {
		return nil, fmt.Errorf("%s: %w", callbackChart, err)
	}
	if err := write(callbackChart, svg.Bytes()); err != nil {
		return nil, err
	}

	svg.Reset()
	if err := shmChart(shm).WriteSVG(&svg); err != nil {
		return nil, fmt.Errorf("%s: %w", shmChartFile, err)
	}
	if err := write(shmChartFile, svg.Bytes()); err != nil {
		return nil, err
	}

	var d report.Doc
	d.Heading(1, "ferry benchmark report")
	mode := "full run"
	if c.quick {
		mode = "quick run (-quick): short measurements, rough figures"
	}
	d.List(
		"Date: "+m.Date.Format("2006-01-02 15:04:05 MST"),
		"Machine: "+m.String(),
		"Mode: "+mode+fmt.Sprintf("; the whole demo took %.1f s", elapsed.Seconds()),
		"Made by `make demo` (golang/cmd/ferry-demo); every figure below was measured in this run.",
	)

	d.Heading(2, "1. Rust frames to Go: zero-copy vs copy")
	d.Para(`Each frame is Rust memory: ferry allocates it (ferry_buffer_new) and Go writes a pseudo-random
pattern into it once, through the zero-copy slice. What is measured is the hand-off of that frame to
Go, over and over, three ways:`)
	d.List(
		"**zero-copy (ferry)**: Rust issues a new id over the frame's memory (`Buffer.Share`, one cgo call, no copy); Go reads the bytes in place (`Bytes`, no cgo call) and releases the id (`Close`, no cgo call of its own: closed ids go to Rust in batches of 64).",
		"**ReadID (ferry)**: one cgo call copies the bytes of the frame's id into a Go buffer that the reader reuses from frame to frame (`ferry.ReadID`): no Buffer, no allocation; the id stays with its owner.",
		"**copy (C.GoBytes)**: one cgo call returns the frame's address and length (`ferry_buffer_view`), and `C.GoBytes` copies the bytes into a new Go slice, which Go then reads.",
	)
	d.Para(`"receive" is the hand-off alone (Go touches the first and last byte); "+crc32c" adds a CRC-32C of
every byte (hash/crc32, hardware-accelerated), which must equal the frame's checksum on every path:
the demo fails otherwise. "ferry's path" is the faster of ferry's two at that size, the one to pick:
a copy is cheapest for small frames, the zero-copy hand-off (a fixed cost: one cgo call, the Buffer
and its GC cleanup) for large ones. "copy / ferry" is C.GoBytes's time over ferry's path (above 1:
ferry is faster); the chart draws ferry's path against C.GoBytes.`)
	d.Para(frameSummary(frames))
	d.Table(frameTable(frames))
	d.Image("time per frame against frame size, log-log", framesChart)

	d.Heading(2, "2. Async work: completions per second, per item vs batched")
	asyncDoc(&d, async)
	d.Image("completions per second by delivery mode", callbackChart)

	d.Heading(2, "3. Buffers dropped without Close")
	d.Para(fmt.Sprintf(`%d buffers of %s (%s in all) are made, written (one byte per page) and dropped without
Close. Go's collector sees only the small Buffer objects, so on its own it would let the Rust bytes
pile up; ferry counts them and triggers a collection when they pass the soft limit (%s), and the
core refuses creates past twice that (%s), which ferry answers by collecting and retrying. The
cleanups' releases are batched into few cgo calls.`,
		gcr.Buffers, sizeName(int(gcr.BufSize)), sizeName(int(gcr.Total)), sizeName(int(gcr.SoftLimit)),
		sizeName(int(gcr.HardLimit))))
	d.Table(gcTable(gcr))

	d.Heading(2, "4. Two processes: ferry region vs Unix socket")
	d.Para(`The demo starts itself again as a peer process and plays ping-pong with it. **ferry region**: the
payload is a buffer in a shared-memory region (` + "`ferry.CreateRegion`" + `, shared over a Unix socket with
SCM_RIGHTS); only its id crosses, on the region's message ring, with a lease for the peer, which reads
the first and last byte and sends the id back (an in-place reply). Both processes wait in Go's
netpoller, so each round trip has two real wake-ups (eventfd doorbells). **Unix socket**: the payload's
bytes are written to a Unix stream socket, read in full by the peer and written back (copies both
ways). Busy-poll: both sides spin up to 200 µs before they park. The two ways take turns in five
rounds per size; each figure is the median of its rounds.`)
	d.Para(shmSummary(shm))
	d.Table(shmTable(shm))
	d.Image("round trip against payload size, log-log", shmChartFile)

	d.Heading(2, "End state")
	d.Para(fmt.Sprintf("After closing everything and a garbage collection: live ids %d, live Rust bytes %d, pending releases %d%s.",
		end.LiveIDs, end.LiveBytes, end.PendingReleases, end.callbackSummary()))
	if err := write(reportFile, []byte(d.String())); err != nil {
		return nil, err
	}
	return paths, nil
}
