# ferry build and test entry points. `make test` runs every test; `make demo` runs the main job.
# Each area adds its own targets in mk/*.mk and appends its test target to TEST_TARGETS.

CARGO ?= cargo
GO    ?= go
CC    ?= cc

LIB_DIR    := target/release
STATIC_LIB := $(LIB_DIR)/libferry.a
SHARED_LIB := $(LIB_DIR)/libferry.so
HEADER     := ffi/ferry.h

TEST_TARGETS := test-rust lint

.DEFAULT_GOAL := all
include $(sort $(wildcard mk/*.mk))

.PHONY: all lib test test-rust lint header bench-rust clean
all: lib

# The static and shared libraries (always rebuilt through cargo, which knows when they are stale).
lib:
	$(CARGO) build --release --lib

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

# Regenerates ffi/ferry.h (cbindgen, from src/ffi) and golang/status_gen.go (the Go status constants),
# both from the one status list in src/error.rs; tests/header.rs fails while either is stale.
header:
	FERRY_UPDATE_HEADER=1 $(CARGO) test --test header

bench-rust:
	$(CARGO) bench --bench buffers

# make stops at the first failing suite, so reaching the echo means every suite passed.
test: $(TEST_TARGETS)
	@echo "make test: $(TEST_TARGETS)"
	@echo "suites: $(words $(TEST_TARGETS)) passed, 0 failed"

clean:
	$(CARGO) clean
	rm -rf c_tests/bin build results
