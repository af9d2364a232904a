//go:build !ferry_external

package ferry

// The default link line: the static library that `make lib` builds (target/release/libferry.a).
// Build with -tags ferry_external to leave it out, when the program links a downstream staticlib
// that already bundles ferry, so that the process holds exactly one copy of ferry's handle table.

/*
#cgo LDFLAGS: ${SRCDIR}/../target/release/libferry.a -ldl -lpthread -lm
*/
import "C"
