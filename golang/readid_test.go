package ferry

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestReadIDCopiesWithoutTakingTheID(t *testing.T) {
	b, err := Copy([]byte("hello, ferry"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p := make([]byte, 64)
	n, err := ReadID(b.ID(), p)
	if err != nil || n != 12 || !bytes.Equal(p[:n], []byte("hello, ferry")) {
		t.Fatalf("ReadID = %d, %v, %q", n, err, p[:n])
	}
	// The id is still the Buffer's: its bytes read the same, and no second owner could take it.
	if got := string(b.Bytes()); got != "hello, ferry" {
		t.Fatalf("Bytes after ReadID = %q", got)
	}
	if _, err := AdoptID(b.ID()); !errors.Is(err, ErrInvalidHandle) {
		t.Fatalf("AdoptID of a Buffer's id after ReadID: %v, want ErrInvalidHandle", err)
	}
	// A short p is filled and says so; an empty one reads nothing.
	short := make([]byte, 5)
	if n, err := ReadID(b.ID(), short); n != 5 || !errors.Is(err, io.ErrShortBuffer) || string(short) != "hello" {
		t.Fatalf("short ReadID = %d, %v, %q", n, err, short)
	}
	if n, err := ReadID(b.ID(), nil); n != 0 || !errors.Is(err, io.ErrShortBuffer) {
		t.Fatalf("ReadID into nil = %d, %v", n, err)
	}
}

func TestReadIDOfAnEmptyBuffer(t *testing.T) {
	b, err := New(0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if n, err := ReadID(b.ID(), nil); n != 0 || err != nil {
		t.Fatalf("ReadID of an empty buffer = %d, %v", n, err)
	}
}

func TestReadIDRefusesIDsThatNameNoBuffer(t *testing.T) {
	b, err := New(8)
	if err != nil {
		t.Fatal(err)
	}
	id := b.ID()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	cb, err := NewCallback(func(in Payload) (Payload, error) { return in, nil })
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	p := make([]byte, 8)
	for name, bad := range map[string]uint64{"zero": 0, "forged": 0xdead_beef_0000_0001, "closed": id, "callback": cb.ID()} {
		if n, err := ReadID(bad, p); n != 0 || !errors.Is(err, ErrInvalidHandle) {
			t.Errorf("ReadID(%s id) = %d, %v, want ErrInvalidHandle", name, n, err)
		}
	}
}
