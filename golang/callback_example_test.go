package ferry_test

import (
	"context"
	"errors"
	"fmt"

	ferry "github.com/ferry/ferry/golang"
)

// A Go function registered with ferry can be called by id from Rust, C or Go. A panic inside it
// comes back as an error, never as a crash.
func ExampleNewCallback() {
	double, err := ferry.NewCallback(func(in ferry.Payload) (ferry.Payload, error) {
		if in.Value == 0 {
			panic("zero")
		}
		return ferry.Payload{Value: 2 * in.Value}, nil
	})
	if err != nil {
		panic(err)
	}
	defer double.Close()

	out, err := double.Invoke(ferry.Payload{Value: 21}) // Go -> Rust -> Go, on this thread
	fmt.Println(out.Value, err)

	out, err = double.CallAsync(context.Background(), ferry.Payload{Value: 5}) // on a Rust worker
	fmt.Println(out.Value, err)

	_, err = double.Invoke(ferry.Payload{Value: 0})
	var ce *ferry.CallbackError
	fmt.Println(errors.Is(err, ferry.ErrCallbackPanic), errors.As(err, &ce) && ce.Panic == "zero")
	// Output:
	// 42 <nil>
	// 10 <nil>
	// true true
}

// Async operations run on ferry's Rust worker threads and resolve a Future; a context bounds the
// wait.
func ExampleChecksum() {
	b, err := ferry.Copy([]byte("foobar"))
	if err != nil {
		panic(err)
	}
	defer b.Close()
	sum, err := ferry.Checksum(context.Background(), b)
	fmt.Printf("%#x %v\n", sum, err)

	echo, err := ferry.Echo(context.Background(), b) // the same bytes under a new id, no copy
	if err != nil {
		panic(err)
	}
	defer echo.Close()
	fmt.Println(string(echo.Bytes()), &echo.Bytes()[0] == &b.Bytes()[0])
	// Output:
	// 0x85944171f73967e8 <nil>
	// foobar true
}

// Do runs one async request and gives its Result: a Payload, plus the bytes in Go memory when the
// request asks for a copy (ResultInline, or ResultAuto for a small result) instead of a lent Buffer.
func ExampleDo() {
	b, err := ferry.Copy([]byte("small reply"))
	if err != nil {
		panic(err)
	}
	defer b.Close()
	out, err := ferry.Do(context.Background(), ferry.Request{Op: ferry.OpEcho, Input: b, Value: 7,
		Result: ferry.ResultInline})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s %d %v\n", out.Data, out.Value, out.Buffer == nil) // nothing to close
	// Output:
	// small reply 7 true
}
