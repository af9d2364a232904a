//go:build !ferry_external && !ferry_static

package ferry

// The default link line: the ferry library that pkg-config finds as package "ferry", i.e. the
// ferry.pc that `make install` writes to $PREFIX/lib/pkgconfig. It links libferry.so (SONAME
// libferry.so.N, N the ABI version), so the program needs it at run time (LD_LIBRARY_PATH, an
// rpath, or an install in a directory the dynamic linker searches). Other link modes (doc.go):
// ferry_static links libferry.a instead (link_static.go); ferry_external links nothing.
//
// Inside ferry's own repository, the Makefile puts build/pkgconfig on PKG_CONFIG_PATH, where `make
// lib` writes ferry-uninstalled.pc; pkg-config prefers that uninstalled file, which links this
// checkout's target/release/libferry.a, so ferry's tests and demo need no install step.

/*
#cgo pkg-config: ferry
*/
import "C"
