# Callbacks from Rust into Go and C (src/callback, src/ffi/callback.rs, golang/callback*.go,
# golang/async*.go). The tests run with everyone else's: the Rust unit tests in test-rust, the C
# test c_tests/callback_c.c in test-c (plain, valgrind, ASan+UBSan), the Go tests in test-go.
#
# make bench-callbacks       both benchmark sets below.
# make bench-callbacks-rust  criterion benches/callbacks.rs: registry lookup, delivery, round trip.
# make bench-callbacks-go    the Go benchmarks: sync callback against a bare C-to-Go call, delivery
#                            one completion per crossing against batches, async round trips with 1
#                            and 2 submitting goroutines. CB_BENCHTIME and CB_BENCHCOUNT tune them.

CB_BENCHTIME  ?= 300000x
CB_BENCHCOUNT ?= 3

.PHONY: bench-callbacks bench-callbacks-rust bench-callbacks-go

bench-callbacks: bench-callbacks-rust bench-callbacks-go

bench-callbacks-rust:
	$(CARGO) bench --bench callbacks

bench-callbacks-go: lib
	cd golang && $(GO) test -run '^$$' -bench 'SyncCallback|CompletionDelivery|AsyncRoundTrip' \
		-benchtime $(CB_BENCHTIME) -count $(CB_BENCHCOUNT) .
