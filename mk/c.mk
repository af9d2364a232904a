# The C test suite (c_tests/) and the C example (examples/c/hello.c).
#
# make test-c     builds every c_tests/*.c (except rel_*.c, which the reliability fragment builds
#                 itself) as one program against ffi/ferry.h and target/release/libferry.a, twice:
#                 plain and with -fsanitize=address,undefined. Runs the plain build as is and under
#                 valgrind, then the sanitizer build; c_tests/run.sh prints one line per run and the
#                 total "N passed, N failed" last.
# make c-example  builds and runs examples/c/hello.c.
# Outputs go to build/c/ (bin/, asan/, logs/, example/).

C_OUT        := build/c
C_CFLAGS     := -std=c11 -Wall -Wextra -Werror -pedantic -O1 -g -I$(dir $(HEADER)) -Ic_tests
C_SANITIZE   := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
C_LIBS       := $(STATIC_LIB) -lpthread -ldl -lm
C_TEST_SRCS  := $(sort $(filter-out c_tests/rel_%.c,$(wildcard c_tests/*.c)))
C_TEST_NAMES := $(notdir $(C_TEST_SRCS:.c=))
C_PLAIN_BINS := $(addprefix $(C_OUT)/bin/,$(C_TEST_NAMES))
C_ASAN_BINS  := $(addprefix $(C_OUT)/asan/,$(C_TEST_NAMES))
# Per-program time limit in seconds (valgrind gets twice this).
C_TEST_TIMEOUT ?= 60

.PHONY: test-c c-tests-build c-example

# `lib` always goes through cargo; the binaries are built in a second make so that they see the
# library's fresh timestamp.
test-c: lib
	@$(MAKE) --no-print-directory c-tests-build
	@C_TEST_TIMEOUT=$(C_TEST_TIMEOUT) C_TEST_LOGS=$(C_OUT)/logs c_tests/run.sh \
		--mode plain $(C_PLAIN_BINS) --mode valgrind $(C_PLAIN_BINS) --mode asan $(C_ASAN_BINS)

c-tests-build: $(C_PLAIN_BINS) $(C_ASAN_BINS)

$(C_OUT)/bin/%: c_tests/%.c c_tests/check.h $(HEADER) $(STATIC_LIB)
	@mkdir -p $(@D)
	$(CC) $(C_CFLAGS) -o $@ $< $(C_LIBS)

$(C_OUT)/asan/%: c_tests/%.c c_tests/check.h $(HEADER) $(STATIC_LIB)
	@mkdir -p $(@D)
	$(CC) $(C_CFLAGS) $(C_SANITIZE) -o $@ $< $(C_LIBS)

c-example: lib
	@$(MAKE) --no-print-directory $(C_OUT)/example/hello
	$(C_OUT)/example/hello

$(C_OUT)/example/hello: examples/c/hello.c $(HEADER) $(STATIC_LIB)
	@mkdir -p $(@D)
	$(CC) -std=c11 -Wall -Wextra -Werror -pedantic -O2 -I$(dir $(HEADER)) -o $@ $< $(C_LIBS)

TEST_TARGETS += test-c
