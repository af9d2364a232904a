# ferry build and test entry points. `make test` runs every test; `make demo` runs the main job.
# Each area adds its own targets in mk/*.mk and appends its test target to TEST_TARGETS.

CARGO ?= cargo
GO    ?= go
CC    ?= cc

LIB_DIR    := target/release
STATIC_LIB := $(LIB_DIR)/libferry.a
SHARED_LIB := $(LIB_DIR)/libferry.so
HEADER     := ffi/ferry.h
# The crate's version, and the C ABI version (FERRY_ABI_VERSION in the header), which is also the
# shared library's SONAME major: libferry.so.$(ABI_VERSION).
VERSION     := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
ABI_VERSION := $(shell sed -n 's/^\#define FERRY_ABI_VERSION \([0-9][0-9]*\)$$/\1/p' $(HEADER))

# The Go package links the library that pkg-config finds as "ferry" (golang/link.go). `make lib`
# writes build/pkgconfig/ferry-uninstalled.pc (and ferry-static-uninstalled.pc) for this checkout's
# target/release/libferry.a, and every recipe runs with build/pkgconfig first on PKG_CONFIG_PATH:
# pkg-config prefers a NAME-uninstalled.pc to any installed NAME.pc, so `make test` and `make demo`
# work on a fresh clone with no install step. To run go commands by hand in golang/, after `make
# lib`: export PKG_CONFIG_PATH=$$PWD/build/pkgconfig (from the repository root).
PC_UNINSTALLED := $(CURDIR)/build/pkgconfig
ifeq ($(findstring $(PC_UNINSTALLED),$(PKG_CONFIG_PATH)),)
export PKG_CONFIG_PATH := $(PC_UNINSTALLED)$(if $(PKG_CONFIG_PATH),:$(PKG_CONFIG_PATH))
endif
# The go command's build cache keys a cgo package by its #cgo and CGO_* flags, not by what pkg-config
# prints (golang/go#24544): a build of golang/ against another ferry (another PKG_CONFIG_PATH) would
# hand these builds its cached package, link line included. A define of no other use keys the
# builds made through this Makefile apart.
CGO_KEY := -DFERRY_UNINSTALLED_BUILD
ifeq ($(findstring $(CGO_KEY),$(CGO_CPPFLAGS)),)
export CGO_CPPFLAGS := $(strip $(CGO_CPPFLAGS) $(CGO_KEY))
endif

TEST_TARGETS := test-rust lint

.DEFAULT_GOAL := all
include $(sort $(wildcard mk/*.mk))

.PHONY: all lib test check test-rust lint header bench-rust bench-pages clean
all: lib

# The static and shared libraries (always rebuilt through cargo, which knows when they are stale),
# and the uninstalled pkg-config files that point at them (both link the static archive, so test
# binaries and the demo run without a library path).
lib:
	$(CARGO) build --release --lib
	@mkdir -p $(PC_UNINSTALLED)
	@for name in ferry ferry-static; do \
		sed -e 's|@PREFIX@|$(CURDIR)|' -e 's|@LIBDIR@|$${prefix}/$(LIB_DIR)|' \
			-e 's|@INCLUDEDIR@|$${prefix}/$(patsubst %/,%,$(dir $(HEADER)))|' -e 's|@VERSION@|$(VERSION)|' \
			-e "s|^Name: .*|Name: $$name (uninstalled: this checkout's $(LIB_DIR))|" \
			ffi/ferry-static.pc.in > $(PC_UNINSTALLED)/$$name-uninstalled.pc; \
	done

# Unit, integration (including the header check) and doc tests, and each bench run once as a test.
test-rust:
	$(CARGO) test --all-targets
	$(CARGO) test --doc

# Formatting, and clippy with every warning an error: among them, every `unsafe` block must say
# why it is sound (clippy::undocumented_unsafe_blocks, also set in src/lib.rs).
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --features fault-injection -- -D warnings -D clippy::undocumented_unsafe_blocks
	@bad=$$(gofmt -l golang examples 2>/dev/null); if [ -n "$$bad" ]; then echo "gofmt: $$bad" >&2; exit 1; fi

# Regenerates ffi/ferry.h (cbindgen, from src/ffi), its identical copy golang/ferry.h (the Go
# module's own) and golang/status_gen.go (the Go status constants, from the one status list in
# src/error.rs); tests/header.rs fails while any of them is stale.
header:
	FERRY_UPDATE_HEADER=1 $(CARGO) test --test header

bench-rust:
	$(CARGO) bench --bench buffers

# Where large buffers come from: malloc against fresh, huge-page and reused mappings (src/pages.rs).
bench-pages:
	$(CARGO) bench --bench pages

# make stops at the first failing suite, so reaching the echo means every suite passed.
test: $(TEST_TARGETS)
	@echo "make test: $(TEST_TARGETS)"
	@echo "suites: $(words $(TEST_TARGETS)) passed, 0 failed"

# The quick loop (a minute or two, not a substitute for make test): Rust unit tests, the header and
# status checks, formatting, the C programs plain (no valgrind, no ASan), and the Go tests once,
# short, without -race.
check: lib
	$(CARGO) test --lib --test header --test statuses
	$(CARGO) fmt --check
	@$(MAKE) --no-print-directory c-tests-build
	@C_TEST_TIMEOUT=$(C_TEST_TIMEOUT) C_TEST_LOGS=$(C_OUT)/logs c_tests/run.sh --mode plain $(C_PLAIN_BINS)
	cd $(GO_DIR) && $(GO) vet ./... && $(GO) test -short -count=1 -timeout $(GO_TEST_TIMEOUT) ./...

clean:
	$(CARGO) clean
	rm -rf c_tests/bin build results
