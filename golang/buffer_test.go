package ferry

import (
	"bytes"
	"errors"
	"testing"
)

func TestNewCopyBytesClose(t *testing.T) {
	b, err := Copy([]byte("hello ferry"))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b.Bytes()); got != "hello ferry" {
		t.Fatalf("Bytes = %q", got)
	}
	if b.Len() != 11 || b.ID() == 0 {
		t.Fatalf("Len %d ID %d", b.Len(), b.ID())
	}
	n, err := New(4096)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(n.Bytes(), make([]byte, 4096)) {
		t.Fatal("New is not zeroed")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if _, err := b.CopyBytes(); !errors.Is(err, ErrClosed) {
		t.Fatalf("CopyBytes after Close: %v", err)
	}
	n.Close()
}
