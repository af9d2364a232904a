# Shared-memory regions between processes (src/region/, src/ffi/region.rs, golang/region*.go,
# examples/shm/). Their tests mostly run with everyone else's: the Rust unit tests and
# tests/shm.rs (40 peers killed at random points, either seat; a peer scribbling random bytes over
# the region) in test-rust, and under AddressSanitizer in test-reliability's asan; the ring's
# wake-up protocol in the loom model (rel-loom); c_tests/shm_region.c in test-c (plain, valgrind,
# ASan+UBSan); golang/region_test.go in test-go; the ping-pong phase in test-demo.
#
# make test-shm    (in make test) builds and runs examples/shm: a Go producer and a C consumer in
#                  two processes over a named region, and a Go client and server (Go<->Go) over a
#                  region shared by SCM_RIGHTS. A few seconds.
# make bench-shm   the figures: ping-pong round trip 64 B..64 MiB, ferry region vs a Unix socket
#                  that copies, and busy-poll (ferry-demo -shm-only); 1,000 peers killed at random
#                  points (SHM_KILLS); OS threads of a Go receiver waiting on 1,000 idle regions.

SHM_OUT   := build/shm
SHM_KILLS ?= 1000

.PHONY: test-shm shm-example-build bench-shm

# As for the demo (mk/demo.mk), the Go binaries are removed first: cgo does not track
# target/release/libferry.a, so `go build` would keep a binary linked with an older library.
shm-example-build: lib
	@mkdir -p $(SHM_OUT)
	rm -f $(SHM_OUT)/producer $(SHM_OUT)/gogo
	$(CC) -std=c11 -Wall -Wextra -Werror -pedantic -O2 -I$(dir $(HEADER)) -o $(SHM_OUT)/consumer \
		examples/shm/consumer.c $(C_LIBS)
	cd examples/shm && $(GO) vet ./... && $(GO) build -o ../../$(SHM_OUT)/producer ./producer && \
		$(GO) build -o ../../$(SHM_OUT)/gogo ./gogo

test-shm: shm-example-build
	$(SHM_OUT)/producer -consumer $(SHM_OUT)/consumer
	$(SHM_OUT)/gogo
	@echo "test-shm: examples/shm passed (Go producer + C consumer, Go <-> Go)"

bench-shm: demo-build
	$(DEMO_BIN) -shm-only
	FERRY_SHM_KILLS=$(SHM_KILLS) $(CARGO) test --release --test shm peers_killed -- --nocapture
	cd $(GO_DIR) && $(GO) test -count=1 -v -run '^TestRegionIdleReceiversUseNoThreads$$' . | grep -E 'OS threads|ok|FAIL'

TEST_TARGETS += test-shm
