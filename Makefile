# ferry build and test entry points. `make test` runs every test; `make demo` runs the main job.
# Each area adds its own targets in mk/*.mk and appends its test target to TEST_TARGETS.

CARGO ?= cargo
GO    ?= go
CC    ?= cc

LIB_DIR    := target/release
STATIC_LIB := $(LIB_DIR)/libferry.a
SHARED_LIB := $(LIB_DIR)/libferry.so
HEADER     := ffi/ferry.h

TEST_TARGETS := test-rust

.DEFAULT_GOAL := all
include $(sort $(wildcard mk/*.mk))

.PHONY: all lib test test-rust header bench-rust bench-pages clean
all: lib

# The static and shared libraries (always rebuilt through cargo, which knows when they are stale).
lib:
	$(CARGO) build --release --lib

# Unit, integration (including the header check) and doc tests, and each bench run once as a test.
test-rust:
	$(CARGO) test --all-targets
	$(CARGO) test --doc

# Regenerates ffi/ferry.h from src/ffi.
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

clean:
	$(CARGO) clean
	rm -rf c_tests/bin build results
