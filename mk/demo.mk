# The demo (golang/cmd/ferry-demo) and its benchmark report.
#
# make demo       builds the Rust library and the demo, and runs it: frames of Rust memory to Go
#                 zero-copy vs C.GoBytes, async completions per item vs batched, and buffers dropped
#                 without Close. Prints a table per phase and writes results/report.md with two SVG
#                 charts (results/frames.svg, results/callbacks.svg). Fails if a check fails or an
#                 id is still live at the end. DEMO_FLAGS passes extra flags (e.g. -quick).
#                 Then the Python demo (demo-python, mk/python.mk) prints its table and appends a
#                 Python section to the same report.
# make test-demo  runs the report package's tests and the demo's quick mode (-quick, a few
#                 seconds), writing its report to build/demo-quick/.

DEMO_BIN     := build/ferry-demo
DEMO_OUT     ?= results
DEMO_FLAGS   ?=
DEMO_GOFLAGS ?=

.PHONY: demo test-demo demo-build

# cgo does not track target/release/libferry.a, so the binary is removed first: `go build` then
# always links the library that `lib` just built.
demo-build: lib
	@mkdir -p $(dir $(DEMO_BIN))
	rm -f $(DEMO_BIN)
	cd golang && $(GO) build $(DEMO_GOFLAGS) -o ../$(DEMO_BIN) ./cmd/ferry-demo

demo: demo-build
	$(DEMO_BIN) -out $(DEMO_OUT) $(DEMO_FLAGS)
	@$(MAKE) --no-print-directory demo-python

test-demo: demo-build
	cd golang && $(GO) vet ./cmd/ferry-demo ./internal/report
	cd golang && $(GO) test -count=1 -race ./internal/report
	$(DEMO_BIN) -quick -out build/demo-quick
	@test -s build/demo-quick/report.md && test -s build/demo-quick/frames.svg && test -s build/demo-quick/callbacks.svg
	@echo "test-demo: report tests and quick demo passed"

TEST_TARGETS += test-demo
