# make install PREFIX=/some/prefix [DESTDIR=/staging]: the header, the static and shared libraries,
# and two pkg-config files: ferry.pc (links libferry.so) and ferry-static.pc (links libferry.a).
# The shared library is libferry.so.$(VERSION), found through its SONAME libferry.so.$(ABI_VERSION)
# (the C ABI version, see build.rs). test-install installs into a scratch prefix and builds a C
# program against it with pkg-config, shared (ferry) and static (ferry-static), and runs both.

PREFIX  ?= /usr/local
INSTALL_TEST_PREFIX := $(CURDIR)/build/install-test

.PHONY: install test-install
install: lib
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 $(HEADER) $(DESTDIR)$(PREFIX)/include/ferry.h
	install -m 644 $(STATIC_LIB) $(DESTDIR)$(PREFIX)/lib/libferry.a
	install -m 755 $(SHARED_LIB) $(DESTDIR)$(PREFIX)/lib/libferry.so.$(VERSION)
	ln -sf libferry.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libferry.so.$(ABI_VERSION)
	ln -sf libferry.so.$(ABI_VERSION) $(DESTDIR)$(PREFIX)/lib/libferry.so
	for pc in ferry ferry-static; do \
		sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$${prefix}/lib|' -e 's|@INCLUDEDIR@|$${prefix}/include|' \
			-e 's|@VERSION@|$(VERSION)|' ffi/$$pc.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/$$pc.pc; \
	done

test-install:
	rm -rf $(INSTALL_TEST_PREFIX)
	$(MAKE) --no-print-directory install PREFIX=$(INSTALL_TEST_PREFIX)
	PKG_CONFIG_PATH=$(INSTALL_TEST_PREFIX)/lib/pkgconfig sh -c '\
		set -e; \
		$(CC) -Wall -Wextra -Werror -o build/install-test/hello-shared examples/c/hello.c $$(pkg-config --cflags --libs ferry); \
		$(CC) -Wall -Wextra -Werror -o build/install-test/hello-static examples/c/hello.c $$(pkg-config --cflags --libs ferry-static)'
	LD_LIBRARY_PATH=$(INSTALL_TEST_PREFIX)/lib build/install-test/hello-shared > /dev/null
	build/install-test/hello-static > /dev/null
	@if ldd build/install-test/hello-static | grep -q libferry; then echo "static build linked libferry.so" >&2; exit 1; fi
	@if ! readelf -d build/install-test/hello-shared | grep -q 'NEEDED.*\[libferry\.so\.$(ABI_VERSION)\]'; then \
		echo "shared build does not need libferry.so.$(ABI_VERSION)" >&2; exit 1; fi
	@echo "test-install: 2 passed, 0 failed"

TEST_TARGETS += test-install
