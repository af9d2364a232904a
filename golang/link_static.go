//go:build ferry_static && !ferry_external

package ferry

// The link line of the ferry_static build tag: the static archive libferry.a of the installed
// ferry, from ferry-static.pc (written next to ferry.pc by `make install`). The program then needs
// no ferry library at run time. See link.go for the default and doc.go for all link modes.

/*
#cgo pkg-config: ferry-static
*/
import "C"
