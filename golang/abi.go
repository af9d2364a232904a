package ferry

/*
#include "ferry.h"
*/
import "C"

import (
	"errors"
	"strconv"
)

// ABIVersion is the version of ferry's C ABI this package was written for. The library it links
// must report the same version (ferry_abi_version); otherwise every entry point of the package
// returns an error matching ErrABIMismatch and calls nothing else in the library.
const ABIVersion = 1

// The package compiles against ferry.h in its own directory, a copy of ffi/ferry.h that `make
// header` keeps identical. When that header brings a new FERRY_ABI_VERSION, these two constants
// stop compiling ("overflows uint") until the Go code has been checked against the new ABI and
// ABIVersion moved to match.
const (
	_ uint = ABIVersion - C.FERRY_ABI_VERSION // ABIVersion is below the header's FERRY_ABI_VERSION
	_ uint = C.FERRY_ABI_VERSION - ABIVersion // ABIVersion is above the header's FERRY_ABI_VERSION
)

// ErrABIMismatch is matched (errors.Is) by the error the package returns when the linked ferry
// library was built for another ABI version than ABIVersion. The error itself is an
// *ABIMismatchError, which names both versions.
var ErrABIMismatch = errors.New("ferry: ABI version mismatch")

// ABIMismatchError reports a linked library whose ABI version is not the one this package was
// written for. It matches ErrABIMismatch.
type ABIMismatchError struct {
	// Package is ABIVersion, the version this package was written for.
	Package uint32
	// Library is the version the linked library reports (ferry_abi_version).
	Library uint32
}

// Error names both versions and what to do.
func (e *ABIMismatchError) Error() string {
	p, l := strconv.FormatUint(uint64(e.Package), 10), strconv.FormatUint(uint64(e.Library), 10)
	return "ferry: ABI mismatch: this Go package was written for ferry ABI version " + p +
		" but the linked ferry library has ABI version " + l +
		"; link a ferry library of ABI version " + p + " (libferry.so." + p +
		"), or use the version of the Go module made for ABI version " + l
}

// Is reports whether target is ErrABIMismatch.
func (e *ABIMismatchError) Is(target error) bool { return target == ErrABIMismatch }

// checkABI compares the version the package was written for with the library's.
func checkABI(pkg, lib uint32) error {
	if pkg == lib {
		return nil
	}
	return &ABIMismatchError{Package: pkg, Library: lib}
}

// abiErr is set once, when the package is initialised, by asking the linked library for its ABI
// version (ferry_abi_version, a function every ABI version keeps). Every entry point that reaches
// the library returns it before anything else, so a mismatched library is never called again.
var abiErr = checkABI(ABIVersion, uint32(C.ferry_abi_version()))

// LinkedABIVersion returns the ABI version of the ferry library this program is linked with (the
// value of ferry_abi_version). It equals ABIVersion unless the package reports ErrABIMismatch.
func LinkedABIVersion() uint32 { return uint32(C.ferry_abi_version()) }
