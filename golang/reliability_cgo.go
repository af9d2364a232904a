//go:build ferry_reliability

package ferry

// C helpers for the reliability tests (build tag ferry_reliability; Go allows no cgo in _test.go
// files). Nothing in the package uses them.

/*
#include <signal.h>
#include <stdint.h>
#include <string.h>

// Reads signal sig's disposition without changing it: handler address, sa_flags and whether the
// query worked (glibc refuses the signals it reserves for itself).
static int ferry_rel_sigaction(int sig, uintptr_t *handler, int *flags) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	if (sigaction(sig, NULL, &sa) != 0) {
		return -1;
	}
	*handler = (sa.sa_flags & SA_SIGINFO) ? (uintptr_t)sa.sa_sigaction : (uintptr_t)sa.sa_handler;
	*flags = sa.sa_flags;
	return 0;
}
*/
import "C"

// sigDisposition is one signal's handler address and flags, as sigaction reports them.
type sigDisposition struct {
	OK      bool
	Handler uintptr
	Flags   int
}

// saOnStack is SA_ONSTACK: the handler runs on the thread's alternate signal stack.
const saOnStack = int(C.SA_ONSTACK)

// readSigaction returns the current disposition of signal sig.
func readSigaction(sig int) sigDisposition {
	var h C.uintptr_t
	var f C.int
	if C.ferry_rel_sigaction(C.int(sig), &h, &f) != 0 {
		return sigDisposition{}
	}
	return sigDisposition{OK: true, Handler: uintptr(h), Flags: int(f)}
}
