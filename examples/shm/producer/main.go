// Command producer is the Go side of examples/shm: it publishes a named region, starts the C
// consumer (another process) on it, and sends it frames of 64 B to 4 MiB as requests. Each frame
// is written once into the region and crosses by id (no copy); the consumer writes the frame's
// FNV-1a sum into its first 8 bytes in place and replies with the same buffer.
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"time"

	ferry "github.com/ferry/ferry/golang"
)

func fnv(p []byte) uint64 {
	h := uint64(0xcbf29ce484222325)
	for _, b := range p {
		h = (h ^ uint64(b)) * 0x100000001b3
	}
	return h
}

func main() {
	consumer := flag.String("consumer", "", "path of the C consumer program")
	frames := flag.Int("frames", 200, "frames to send")
	flag.Parse()
	if err := run(*consumer, *frames); err != nil {
		fmt.Fprintln(os.Stderr, "producer:", err)
		os.Exit(1)
	}
}

func run(consumer string, frames int) error {
	name := fmt.Sprintf("ferry-example-%d", os.Getpid())
	r, err := ferry.CreateNamedRegion(name, &ferry.RegionConfig{Arena: 16 << 20}) // mode 0600
	if err != nil {
		return err
	}
	defer r.Close()
	cmd := exec.Command(consumer, name)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.AwaitPeer(ctx); err != nil { // the consumer opened the name
		return err
	}
	c := ferry.NewClient(r, nil)
	start := time.Now()
	var bytes int
	for i := 0; i < frames; i++ {
		size := 64 << (i % 17) // 64 B .. 4 MiB
		buf, err := r.Alloc(size)
		if err != nil {
			return err
		}
		p := buf.Bytes() // shared memory: the consumer reads these very bytes
		for j := 8; j < len(p); j += 4096 {
			p[j] = byte(i + j)
		}
		p[len(p)-1] = byte(i)
		want := fnv(p[8:])
		rep, err := c.Call(ctx, buf, 1, uint64(i), true) // the buffer moves to the consumer
		if err != nil {
			return err
		}
		got := binary.LittleEndian.Uint64(rep.Buf.Bytes()[:8])
		if got != want || rep.Value != uint64(i) {
			return fmt.Errorf("frame %d: sum %x, want %x", i, got, want)
		}
		bytes += size
		rep.Buf.Close()
	}
	c.Close()
	st, _ := r.Stats()
	fmt.Printf("producer: %d frames (%.1f MiB) checked by the C consumer in %v; leases out %d, buffers live %d\n",
		frames, float64(bytes)/(1<<20), time.Since(start).Round(time.Millisecond), st.Lent, st.OwnBuffers)
	r.Close() // the consumer sees the region close and exits
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	if st.Lent != 0 || st.OwnBuffers != 0 {
		return fmt.Errorf("leak: %+v", st)
	}
	return nil
}
