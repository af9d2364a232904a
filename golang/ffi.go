package ferry

// This file and the link files hold the cgo directives of the package. Every file includes
// "ferry.h", which is the copy of ffi/ferry.h in this directory (kept identical by `make header`),
// so the package compiles from its module zip alone: no cgo path leaves the module. The include
// path is a CPPFLAGS entry because the go command puts those before pkg-config's flags: the
// package compiles against its own header even when an installed ferry.h of another version sits
// in pkg-config's include directory (then the ABI check reports the mismatch). The link line
// is chosen by build tag (doc.go): link.go (default, pkg-config package "ferry"), link_static.go
// (ferry_static, "ferry-static"), or none (ferry_external). The other files `import "C"` with only
// their #include lines and no #cgo lines.

/*
#cgo CPPFLAGS: -I${SRCDIR}
#include "ferry.h"
*/
import "C"
