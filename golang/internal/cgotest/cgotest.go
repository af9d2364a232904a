// Package cgotest holds the cgo helpers that ferry's tests and benchmarks need (Go does not allow
// cgo in _test.go files): a bare cgo call for the baseline, and C.GoBytes over Rust memory. It is
// internal, so it never reaches a program that imports ferry.
package cgotest

/*
static void ferry_cgotest_empty(void) {}
*/
import "C"

import "unsafe"

// Empty makes a bare cgo call to an empty C function: the cost of one crossing.
func Empty() { C.ferry_cgotest_empty() }

// GoBytes copies n bytes at p (C or Rust memory) into a new Go slice with C.GoBytes.
func GoBytes(p unsafe.Pointer, n int) []byte { return C.GoBytes(p, C.int(n)) }
