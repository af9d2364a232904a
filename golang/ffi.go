package ferry

// This file holds the cgo directives for the whole package: the include path of ferry.h here, and
// the link line in link_static.go (left out with the ferry_external build tag, see doc.go). Other
// files in the package `import "C"` with only `#include "ferry.h"` and no #cgo lines.

/*
#cgo CFLAGS: -I${SRCDIR}/../ffi
#include "ferry.h"
*/
import "C"
