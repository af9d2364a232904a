# The Go module as users outside this repository get it (issue 11).
#
# make go-proxy [GOPROXY_DIR=dir]  writes golang/ as module version v$(VERSION) into a directory laid
#                                  out as a Go module proxy (GOPROXY=file://dir), until the module
#                                  is published; see README "Use ferry from your own Go module".
# make test-abi                    a deliberately mismatched build (FERRY_ABI_VERSION + 1, from a copy
#                                  of the checkout, in target/abi-mismatch): SONAMEs differ, the Go
#                                  package refuses it with ErrABIMismatch linked statically and
#                                  shared, and the dynamic linker refuses it to a program built for
#                                  the right ABI (scripts/abi-mismatch.sh).
# The new-user test (the README's sections on using ferry from your own Go module and Rust crate,
# run from a directory outside the repository) is part of test-readme (scripts/readme-examples.sh).

GOPROXY_DIR       ?= $(CURDIR)/build/goproxy
GO_MODULE_VERSION := v$(VERSION)

.PHONY: go-proxy test-abi
go-proxy:
	scripts/go-proxy.py $(GO_DIR) $(GO_MODULE_VERSION) $(GOPROXY_DIR)

test-abi: lib
	scripts/abi-mismatch.sh

TEST_TARGETS += test-abi
