# The README's Go and C examples are compiled and run, so they stay true.
.PHONY: test-readme
test-readme: lib
	scripts/readme-examples.sh

TEST_TARGETS += test-readme
