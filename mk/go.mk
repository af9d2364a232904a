# The Go package (golang/) and the downstream example (examples/downstream/).
#
# make test-go          go vet, then the Go tests four ways: -race, GOEXPERIMENT=cgocheck2 and
#                       -tags ferrydebug (all -short), and a plain run that includes the 4 GiB
#                       GC-pressure test and the runnable examples; then test-downstream.
# make test-downstream  builds examples/downstream (a Rust staticlib that bundles ferry, in
#                       target/downstream) and runs its Go test with -tags ferry_external.
# make bench-go         the Go benchmarks (not part of test-go); GO_BENCH picks them, e.g.
#                       make bench-go GO_BENCH='RoundTrip|CgoCall'.

GO_DIR            := golang
DOWNSTREAM_DIR    := examples/downstream
DOWNSTREAM_TARGET := target/downstream
GO_TEST_TIMEOUT   ?= 10m
GO_BENCH          ?= .
GO_BENCHTIME      ?= 1s

.PHONY: test-go test-downstream downstream-lib bench-go

test-go: lib
	cd $(GO_DIR) && $(GO) vet ./... && $(GO) vet -tags ferrydebug ./...
	cd $(GO_DIR) && $(GO) test -race -short -count=1 -timeout $(GO_TEST_TIMEOUT) ./...
	cd $(GO_DIR) && GOEXPERIMENT=cgocheck2 $(GO) test -short -count=1 -timeout $(GO_TEST_TIMEOUT) ./...
	cd $(GO_DIR) && $(GO) test -tags ferrydebug -short -count=1 -timeout $(GO_TEST_TIMEOUT) ./...
	cd $(GO_DIR) && $(GO) test -count=1 -timeout $(GO_TEST_TIMEOUT) ./...
	@$(MAKE) --no-print-directory test-downstream

downstream-lib:
	$(CARGO) build --release --manifest-path $(DOWNSTREAM_DIR)/Cargo.toml --target-dir $(DOWNSTREAM_TARGET)

test-downstream: downstream-lib
	$(CARGO) test --release --manifest-path $(DOWNSTREAM_DIR)/Cargo.toml --target-dir $(DOWNSTREAM_TARGET)
	cd $(DOWNSTREAM_DIR)/go && $(GO) vet -tags ferry_external ./... && \
		$(GO) test -tags ferry_external -count=1 -timeout $(GO_TEST_TIMEOUT) ./...

bench-go: lib
	cd $(GO_DIR) && $(GO) test -run '^$$' -bench '$(GO_BENCH)' -benchtime $(GO_BENCHTIME) -benchmem .

TEST_TARGETS += test-go
