#!/usr/bin/env bash
# A deliberately mismatched build: ferry's library rebuilt from a copy of this checkout with
# FERRY_ABI_VERSION one higher (in the source and its header, as `make header` would write it), and
# installed into a prefix of its own. Then:
#   1. SONAMEs: this checkout's libferry.so is libferry.so.N, the mismatched one libferry.so.N+1;
#   2. the Go package linked statically against the mismatched library (-tags ferry_static) reports
#      ErrABIMismatch, naming both versions, from every entry point (golang/abi_test.go,
#      TestLinkedABI), and calls nothing else in the library; it also compiles against its own copy
#      of ferry.h although the mismatched install's include directory comes first on its -I path;
#   3. the same against the mismatched shared library (default link mode);
#   4. a program linked against a matching install (libferry.so.N) runs, and the dynamic linker
#      refuses to start it with only the mismatched library (libferry.so.N+1) on its path.
# Usage: abi-mismatch.sh (from make test-abi; needs `make lib` first).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/build/abi-mismatch"
abi=$(sed -n 's/^#define FERRY_ABI_VERSION \([0-9]*\)$/\1/p' "$root/ffi/ferry.h")
bad=$((abi + 1))
[ -n "$abi" ] || { echo "abi-mismatch: no FERRY_ABI_VERSION in ffi/ferry.h" >&2; exit 1; }
fail() { echo "abi-mismatch: $*" >&2; exit 1; }

# The copy: the files the library's build and install need, as git sees them in the working tree.
rm -rf "$out" && mkdir -p "$out/src"
(cd "$root" && git ls-files -z --cached --others --exclude-standard -- Cargo.toml Cargo.lock build.rs src benches ffi Makefile mk |
    xargs -0 sh -c 'for f; do [ -f "$f" ] && printf "%s\0" "$f"; done' sh) |
    (cd "$root" && tar --null -T - -cf -) | tar -xf - -C "$out/src"
grep -rl "pub const FERRY_ABI_VERSION: u32 = $abi;" "$out/src/src/ffi" | while read -r f; do
    sed -i "s/pub const FERRY_ABI_VERSION: u32 = $abi;/pub const FERRY_ABI_VERSION: u32 = $bad;/" "$f"
done
sed -i "s/^#define FERRY_ABI_VERSION $abi\$/#define FERRY_ABI_VERSION $bad/" "$out/src/ffi/ferry.h"
grep -rq "pub const FERRY_ABI_VERSION: u32 = $bad;" "$out/src/src/ffi" || fail "could not change the ABI version in the copy"
# Its own target directory, kept between runs, so a re-run rebuilds only ferry itself.
mkdir -p "$root/target/abi-mismatch"
ln -s "$root/target/abi-mismatch" "$out/src/target"

# Unoptimised and without debug information: the test needs the ABI version, not speed, and this
# roughly halves the build.
CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_DEBUG=0 \
    make --no-print-directory -C "$out/src" install PREFIX="$out/bad" > "$out/build-bad.log" 2>&1 ||
    { tail -30 "$out/build-bad.log" >&2; fail "building the mismatched library failed"; }
make --no-print-directory -C "$root" install PREFIX="$out/good" > "$out/install-good.log" 2>&1 ||
    { tail -30 "$out/install-good.log" >&2; fail "installing this checkout failed"; }

# 1. SONAMEs.
soname() { readelf -d "$1" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p'; }
[ "$(soname "$root/target/release/libferry.so")" = "libferry.so.$abi" ] || fail "target/release/libferry.so: SONAME $(soname "$root/target/release/libferry.so"), want libferry.so.$abi"
[ "$(soname "$out/bad/lib/libferry.so")" = "libferry.so.$bad" ] || fail "mismatched libferry.so: SONAME $(soname "$out/bad/lib/libferry.so"), want libferry.so.$bad"
[ -e "$out/bad/lib/libferry.so.$bad" ] || fail "the mismatched install lacks libferry.so.$bad"
echo "abi-mismatch: SONAMEs libferry.so.$abi (this checkout) and libferry.so.$bad (mismatched build)"

cd "$root/golang"
run='^TestLinkedABI$'
# The go command's build cache keys a cgo package by its #cgo and CGO_* flags but not by what
# pkg-config prints (golang/go#24544): two builds of golang/ that differ only in PKG_CONFIG_PATH
# would share one cached package, and with it the other build's link line. A -L of the prefix in
# CGO_LDFLAGS (harmless: pkg-config gives the same) makes each prefix's build its own.
# 2. Static, mismatched.
PKG_CONFIG_PATH="$out/bad/lib/pkgconfig" CGO_LDFLAGS="-L$out/bad/lib" FERRY_TEST_LINKED_ABI=$bad \
    go test -tags ferry_static -count=1 -v -run "$run" . > "$out/static.log" 2>&1 ||
    { cat "$out/static.log" >&2; fail "static link against ABI $bad"; }
grep -q "ABI mismatch: this Go package was written for ferry ABI version $abi but the linked ferry library has ABI version $bad" "$out/static.log" ||
    { cat "$out/static.log" >&2; fail "static: the error does not name both versions"; }
echo "abi-mismatch: static link against ABI $bad refused by every entry point:"
sed -n 's/^ *abi_test.go:[0-9]*: every entry point refused the library: /    /p' "$out/static.log"

# 3. Shared, mismatched.
PKG_CONFIG_PATH="$out/bad/lib/pkgconfig" CGO_LDFLAGS="-L$out/bad/lib" go test -c -o "$out/bad-shared.test" . > "$out/shared.log" 2>&1 ||
    { cat "$out/shared.log" >&2; fail "building against the mismatched shared library"; }
readelf -d "$out/bad-shared.test" | grep -q "NEEDED.*\[libferry\.so\.$bad\]" || fail "bad-shared.test does not need libferry.so.$bad"
LD_LIBRARY_PATH="$out/bad/lib" FERRY_TEST_LINKED_ABI=$bad "$out/bad-shared.test" -test.count=1 -test.v -test.run "$run" >> "$out/shared.log" 2>&1 ||
    { cat "$out/shared.log" >&2; fail "shared link against ABI $bad"; }
echo "abi-mismatch: shared link against libferry.so.$bad refused by every entry point"

# 4. The dynamic linker: a program built against the matching install needs libferry.so.N, and
#    will not start with only the mismatched library (libferry.so.N+1) on its path. A C program
#    shows it as well as a Go one, at a fraction of the build time.
cc=${CC:-cc}
"$cc" -o "$out/hello-good" "$root/examples/c/hello.c" -I"$out/good/include" -L"$out/good/lib" -lferry
LD_LIBRARY_PATH="$out/good/lib" "$out/hello-good" > /dev/null || fail "hello-good with libferry.so.$abi"
if LD_LIBRARY_PATH="$out/bad/lib" "$out/hello-good" > "$out/loader.log" 2>&1; then
    fail "a program built for libferry.so.$abi started with only libferry.so.$bad present"
fi
grep -q "libferry.so.$abi" "$out/loader.log" || { cat "$out/loader.log" >&2; fail "unexpected loader error"; }
echo "abi-mismatch: built for libferry.so.$abi, run with only libferry.so.$bad: $(head -1 "$out/loader.log")"
echo "abi-mismatch: 4 passed, 0 failed"
