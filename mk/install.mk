# make install PREFIX=/some/prefix [DESTDIR=/staging]: the header, static and shared libraries, and
# a pkg-config file (ferry.pc). test-install installs into a scratch prefix and builds a C program
# against it with `pkg-config --cflags --libs ferry`, shared and static, and runs both.

PREFIX  ?= /usr/local
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
INSTALL_TEST_PREFIX := $(CURDIR)/build/install-test

.PHONY: install test-install
install: lib
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 $(HEADER) $(DESTDIR)$(PREFIX)/include/ferry.h
	install -m 644 $(STATIC_LIB) $(DESTDIR)$(PREFIX)/lib/libferry.a
	install -m 755 $(SHARED_LIB) $(DESTDIR)$(PREFIX)/lib/libferry.so.$(VERSION)
	ln -sf libferry.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libferry.so.0
	ln -sf libferry.so.0 $(DESTDIR)$(PREFIX)/lib/libferry.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' ffi/ferry.pc.in \
		> $(DESTDIR)$(PREFIX)/lib/pkgconfig/ferry.pc

test-install:
	rm -rf $(INSTALL_TEST_PREFIX)
	$(MAKE) --no-print-directory install PREFIX=$(INSTALL_TEST_PREFIX)
	PKG_CONFIG_PATH=$(INSTALL_TEST_PREFIX)/lib/pkgconfig sh -c '\
		set -e; \
		$(CC) -Wall -Wextra -Werror -o build/install-test/hello-shared examples/c/hello.c $$(pkg-config --cflags --libs ferry); \
		$(CC) -Wall -Wextra -Werror -o build/install-test/hello-static examples/c/hello.c $$(pkg-config --cflags ferry) \
			$(INSTALL_TEST_PREFIX)/lib/libferry.a $$(pkg-config --libs-only-other --static ferry) -lpthread -ldl -lm'
	LD_LIBRARY_PATH=$(INSTALL_TEST_PREFIX)/lib build/install-test/hello-shared > /dev/null
	build/install-test/hello-static > /dev/null
	@if ldd build/install-test/hello-static | grep -q libferry; then echo "static build linked libferry.so" >&2; exit 1; fi
	@echo "test-install: 2 passed, 0 failed"

TEST_TARGETS += test-install
