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

// The noescape and nocallback lines mark the C functions that never call Go, directly or through
// a callback, a drop function or the release function of adopted memory (FerryReleaseFn), and
// keep no Go pointer: a call of one then needs no preparation for a callback, and a Go pointer
// passed to it need not escape to the heap (a Copy from a stack array allocates nothing for it).
// Never add one that can release an id (the last release of adopted memory runs its release
// function, which may be Go code), register or unregister a callback, submit, cancel, wait on a
// queue or close one: with nocallback, a call back into Go is a fatal error
// (TestNoCallbackIsEnforced shows it). ferry_go_new and ferry_go_copy release an id only when
// claiming the id they just made fails, memory ferry allocated and no release function owns.

/*
#cgo CPPFLAGS: -I${SRCDIR}
#cgo noescape ferry_go_new
#cgo nocallback ferry_go_new
#cgo noescape ferry_go_copy
#cgo nocallback ferry_go_copy
#cgo noescape ferry_go_claim
#cgo nocallback ferry_go_claim
#cgo noescape ferry_buffer_disclaim
#cgo nocallback ferry_buffer_disclaim
#cgo noescape ferry_stats_get
#cgo nocallback ferry_stats_get
#cgo noescape ferry_callback_stats
#cgo nocallback ferry_callback_stats
#cgo noescape ferry_limit_set
#cgo nocallback ferry_limit_set
#cgo noescape ferry_peak_reset
#cgo nocallback ferry_peak_reset
#cgo noescape ferry_abi_version
#cgo nocallback ferry_abi_version
#cgo noescape ferry_status_message
#cgo nocallback ferry_status_message
#cgo noescape ferry_go_on_worker
#cgo nocallback ferry_go_on_worker
#cgo noescape ferry_go_queue_new
#cgo nocallback ferry_go_queue_new
#include "ferry.h"
#include "shims.h"
*/
import "C"
