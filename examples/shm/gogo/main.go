// Command gogo is the Go-to-Go half of examples/shm: the program starts itself again as a server
// process, shares a region with it over a Unix socket (SCM_RIGHTS), and makes requests whose text
// payloads the server upper-cases in place: request and response are the same shared buffer.
package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"

	ferry "github.com/ferry/ferry/golang"
)

func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == "-serve" {
		err = serve()
	} else {
		err = client()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gogo:", err)
		os.Exit(1)
	}
}

// serve receives the region on descriptor 3 and upper-cases every request in place.
func serve() error {
	c, err := net.FileConn(os.NewFile(3, "sock"))
	if err != nil {
		return err
	}
	r, err := ferry.ReceiveRegion(c.(*net.UnixConn), 10*time.Second)
	if err != nil {
		return err
	}
	defer r.Close()
	err = ferry.Serve(context.Background(), r, func(req *ferry.Message) (*ferry.RegionBuffer, uint64, error) {
		p := req.Buf.Bytes()
		copy(p, bytes.ToUpper(p))
		return req.Buf, uint64(len(p)), nil
	})
	if err != nil && !isGone(err) {
		return err
	}
	return nil
}

func isGone(err error) bool {
	e, ok := err.(*ferry.Error)
	return ok && e.Status == ferry.StatusPeerGone
}

func client() error {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "sock"), os.NewFile(uintptr(fds[1]), "peer")
	self, _ := os.Executable()
	cmd := exec.Command(self, "-serve")
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	theirs.Close()
	c, err := net.FileConn(mine)
	if err != nil {
		return err
	}
	r, err := ferry.CreateRegion(nil)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := r.Share(c.(*net.UnixConn)); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.AwaitPeer(ctx); err != nil {
		return err
	}
	cl := ferry.NewClient(r, nil)
	for _, s := range []string{"hello from go", "zero-copy both ways", "same buffer, two processes"} {
		buf, err := r.Alloc(len(s))
		if err != nil {
			return err
		}
		copy(buf.Bytes(), s)
		rep, err := cl.Call(ctx, buf, 0, 0, false) // keep buf: the reply is the same memory
		if err != nil {
			return err
		}
		fmt.Printf("gogo: %q -> %q (same id: %v)\n", s, buf.Bytes(), rep.Buf.ID() == buf.ID())
		rep.Buf.Close()
		buf.Close()
	}
	cl.Close()
	r.Close()
	return cmd.Wait()
}
