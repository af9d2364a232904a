package ferry

import "io"

// Compile-time checks of the standard interfaces Buffer implements.
var (
	_ io.ReaderAt = (*Buffer)(nil)
	_ io.WriterAt = (*Buffer)(nil)
	_ io.WriterTo = (*Buffer)(nil)
	_ io.Closer   = (*Buffer)(nil)
)

// ReadAt copies bytes starting at off into p (io.ReaderAt). It returns io.EOF when fewer than
// len(p) bytes remain, and an error matching ErrClosed after Close. Wrap a Buffer in
// io.NewSectionReader for an io.Reader or io.Seeker.
func (b *Buffer) ReadAt(p []byte, off int64) (int, error) {
	debugCollect()
	if off < 0 {
		return 0, &Error{Status: StatusOutOfRange, Msg: "ReadAt: negative offset"}
	}
	if !b.acquire() {
		return 0, errClosed
	}
	defer b.unlease()
	if off >= int64(b.n) {
		return 0, io.EOF
	}
	n := copy(p, b.data()[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt copies p into the buffer starting at off (io.WriterAt). The buffer never grows: writing
// past its end writes what fits and returns an error matching ErrOutOfRange.
func (b *Buffer) WriteAt(p []byte, off int64) (int, error) {
	debugCollect()
	if off < 0 {
		return 0, &Error{Status: StatusOutOfRange, Msg: "WriteAt: negative offset"}
	}
	if !b.acquire() {
		return 0, errClosed
	}
	defer b.unlease()
	if off > int64(b.n) {
		return 0, &Error{Status: StatusOutOfRange, Msg: "WriteAt: offset past the end of the buffer"}
	}
	n := copy(b.data()[off:], p)
	if n < len(p) {
		return n, &Error{Status: StatusOutOfRange, Msg: "WriteAt: write past the end of the buffer"}
	}
	return n, nil
}

// WriteTo writes the whole buffer to w in one Write call, straight from Rust memory with no copy
// on the Go side (io.WriterTo, so io.Copy to a file or net.Conn uses it). The buffer stays open and
// alive until Write returns, even if another goroutine calls Close meanwhile.
func (b *Buffer) WriteTo(w io.Writer) (int64, error) {
	debugCollect()
	if !b.acquire() {
		return 0, errClosed
	}
	defer b.unlease()
	if b.n == 0 {
		return 0, nil
	}
	n, err := w.Write(b.data())
	if err == nil && n != b.n {
		err = io.ErrShortWrite
	}
	return int64(n), err
}
