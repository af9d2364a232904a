package ferry_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	ferry "github.com/ferry/ferry/golang"
)

// The whole life of a buffer: Rust memory, written and read in place from Go, then released.
func Example() {
	buf, err := ferry.New(16) // 16 zeroed bytes in Rust memory
	if err != nil {
		panic(err)
	}
	defer buf.Close() // releases the id; a cleanup would do it too, later

	p := buf.Bytes() // no copy, no cgo call: valid until Close
	copy(p, "hello, ferry")

	head, _ := buf.Slice(0, 5) // a second id over the same memory
	defer head.Close()

	_ = head.View(func(b []byte) { // keeps head alive and open while it reads
		fmt.Printf("%s\n", b)
	})
	fmt.Println(buf.Len(), head.Len())
	// Output:
	// hello
	// 16 5
}

// After Close, methods that can return an error return one matching ErrClosed.
func ExampleBuffer_Close() {
	buf, _ := ferry.Copy([]byte("bytes"))
	fmt.Println(buf.Close(), buf.Close()) // idempotent
	_, err := buf.CopyBytes()
	fmt.Println(errors.Is(err, ferry.ErrClosed), err)
	// Output:
	// <nil> <nil>
	// true ferry: buffer is closed
}

// WriteTo hands the Rust memory straight to a writer (a file, a net.Conn) with no copy in Go.
func ExampleBuffer_WriteTo() {
	buf, _ := ferry.Copy([]byte("straight from Rust memory\n"))
	defer buf.Close()
	_, _ = buf.WriteTo(os.Stdout)
	// Output:
	// straight from Rust memory
}

// A Buffer is an io.ReaderAt, so io.NewSectionReader gives any part of it as an io.Reader (and
// io.Seeker): each reader keeps its own offset, and the Buffer itself has no cursor, which keeps
// every Buffer method safe for concurrent use.
func ExampleBuffer_ReadAt() {
	buf, _ := ferry.Copy([]byte("header\nline one\nline two\n"))
	defer buf.Close()
	body := io.NewSectionReader(buf, 7, int64(buf.Len())-7) // skip "header\n"
	lines := bufio.NewScanner(body)
	for lines.Scan() {
		fmt.Println(lines.Text())
	}
	// Output:
	// line one
	// line two
}

// ReadStats shows the process-wide table: every id issued, released and still live.
func ExampleReadStats() {
	buf, _ := ferry.New(1 << 20)
	st, _ := ferry.ReadStats()
	fmt.Println(st.LiveIDs >= 1, st.TrackedBytes >= 1<<20)
	buf.Close()
	// Output:
	// true true
}
