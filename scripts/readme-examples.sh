#!/usr/bin/env bash
# Runs what README.md shows, so that what a newcomer copies is known to work:
#   - the blocks marked `<!-- readme-test: go -->` and `<!-- readme-test: c -->`, built against this
#     checkout and run;
#   - the new-user sections ("Use ferry from your own Go module", "... Rust crate", "Finding who
#     holds ferry memory"): their blocks marked `<!-- readme-test: sh start -->` (a flow starts
#     again from the scratch directory), `<!-- readme-test: sh -->` (continues) and
#     `<!-- readme-test: file NAME -->` (writes NAME in the current directory) become one bash
#     script, run in order with `set -euo pipefail` from a fresh directory outside the repository,
#     with FERRY (this checkout) and PREFIX (an install prefix in that directory) set, a module
#     cache of its own, no go.work, and no Go toolchain download. Afterwards the programs' output
#     (go tool pprof's included) and the binaries' dynamic dependencies are checked.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/build/readme"
rm -rf "$out" && mkdir -p "$out/go" "$out/c"

# Outside the repository, at a path fixed per checkout (so that a re-run hits the Go build cache).
scratch="${TMPDIR:-/tmp}/ferry-readme-$(printf '%s' "$root" | cksum | cut -d' ' -f1)"
chmod -R u+w "$scratch" 2>/dev/null || true
rm -rf "$scratch" && mkdir -p "$scratch"

python3 - "$root/README.md" "$out" "$scratch" <<'PY'
import re, sys, pathlib
readme, out, scratch = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
text = open(readme).read()
found = {"go": 0, "c": 0, "python": 0, "start": 0, "sh": 0, "file": 0}
script = ['cd "$README_SCRATCH"']
for m in re.finditer(r"<!-- readme-test: (go|c|python|sh start|sh|file [^ ]+) -->\s*```\w*\n(.*?)```", text, re.S):
    kind, code = m.group(1), m.group(2)
    if kind in ("go", "c", "python"):
        found[kind] += 1
        name = {"go": "main.go", "python": "example.py"}.get(kind, f"example{found[kind]}.c")
        (out / kind).mkdir(exist_ok=True)
        (out / kind / name).write_text(code)
    elif kind.startswith("sh"):
        if kind == "sh start":
            found["start"] += 1
            script.append(f'\necho "== readme flow {found["start"]}" >&2\ncd "$README_SCRATCH"')
        else:
            found["sh"] += 1
        script.append(code)
    else:
        found["file"] += 1
        name = kind.split(" ", 1)[1]
        if "FERRY_README_EOF" in code:
            sys.exit(f"readme-examples: {name} contains the heredoc delimiter")
        script.append(f"cat > {name} <<'FERRY_README_EOF'\n{code}FERRY_README_EOF")
want = {"go": 1, "c": 1, "python": 1, "start": 3, "sh": 4, "file": 4}
if found != want:
    sys.exit(f"readme-examples: expected blocks {want}, found {found}")
(out / "new-user.sh").write_text("\n".join(script) + "\n")
PY

# Go: a throwaway module that uses the local package through a replace directive; `go mod tidy`
# records ferry's dependency (github.com/google/pprof), from the module cache that `make test-go` filled.
cat > "$out/go/go.mod" <<MOD
module readmeexample

go 1.24

require github.com/ferry/ferry/golang v0.0.0

replace github.com/ferry/ferry/golang => $root/golang
MOD
(cd "$out/go" && go mod tidy && PKG_CONFIG_PATH="$root/build/pkgconfig" go run . > "$out/go/output.txt")
echo "README Go example ran:" && sed 's/^/    /' "$out/go/output.txt"
grep -qx 'hello from Rust memory' "$out/go/output.txt"
grep -qx 'live ids after Close: 0' "$out/go/output.txt"
grep -qx 'batch of 3 total 6' "$out/go/output.txt"

# C: compiled with the same warnings as the C tests, linked with the static library.
${CC:-cc} -std=c11 -Wall -Wextra -Werror -I"$root/ffi" -o "$out/c/example" "$out/c/example1.c" \
    "$root/target/release/libferry.a" -lpthread -ldl -lm
"$out/c/example" > "$out/c/output.txt"
echo "README C example ran:" && sed 's/^/    /' "$out/c/output.txt"
grep -qx 'ferry' "$out/c/output.txt"

# Python: run with the venv that `make python-install` filled (FERRY_PYTHON overrides).
"${FERRY_PYTHON:-$root/build/venv/bin/python}" "$out/python/example.py" > "$out/python/output.txt"
echo "README Python example ran:" && sed 's/^/    /' "$out/python/output.txt"
grep -qx 'hello' "$out/python/output.txt"
grep -qx '42' "$out/python/output.txt"
grep -qx 'live ids: 0' "$out/python/output.txt"

# The new user, in $scratch: nothing from this shell's Go, cgo or pkg-config settings leaks in.
# GODEBUG=goindex=0: the go command indexes the files of a module-cache package in the shared
# build cache by module and version, as if a version never changed; every run serves v0.1.0 again
# with this checkout's files, so a file added to golang/ since an earlier run would be missed.
log="$out/new-user.log"
start=$(date +%s)
if ! env -u PKG_CONFIG_PATH -u GOPROXY -u GONOSUMDB -u GOPRIVATE -u GONOPROXY -u GOFLAGS \
        -u CGO_CPPFLAGS -u CGO_CFLAGS -u CGO_LDFLAGS -u CARGO_TARGET_DIR -u LD_LIBRARY_PATH \
        README_SCRATCH="$scratch" FERRY="$root" PREFIX="$scratch/prefix" \
        GOMODCACHE="$scratch/gomodcache" GOFLAGS=-modcacherw GOWORK=off GOTOOLCHAIN=local GODEBUG=goindex=0 \
        bash -euo pipefail "$out/new-user.sh" > "$log" 2>&1; then
    echo "README new-user commands failed (script $out/new-user.sh, left in $scratch):" >&2
    tail -40 "$log" >&2
    exit 1
fi
echo "README new-user commands ran in $(( $(date +%s) - start )) s; their programs printed:"
grep -E '^(ferry ABI|zero-copy|callback|open:|after Close|frame of)' "$log" | sed 's/^/    /'
echo "and go tool pprof -top on heap-demo's profile, from the file and over HTTP:"
grep -E '^ +[0-9.]+MB +[0-9.]+% .*main\.(loadFrames|forget)$' "$log" | sed 's/^/    /'

app="$scratch/hello-ferry"
fail() { echo "readme-examples: $*" >&2; exit 1; }
[ "$(grep -c '^after Close: live ids 0 live bytes 0$' "$log")" = 2 ] || fail "hello-ferry did not run twice cleanly"
[ "$(grep -c '^callback from a Rust worker thread: 42$' "$log")" = 2 ] || fail "hello-ferry's callback"
grep -qx 'after Close: live ids 0' "$log" || fail "frames-go did not release the crate's frame"
grep -qE '^(require +|[[:space:]]+)github.com/ferry/ferry/golang v' "$app/go.mod" || fail "hello-ferry does not require ferry by version"
if grep -q '^replace' "$app/go.mod" "$scratch/frames-go/go.mod"; then fail "a replace directive"; fi
[ ! -e "$scratch/go.work" ] || fail "a go.work"
abi=$(sed -n 's/^#define FERRY_ABI_VERSION \([0-9]*\)$/\1/p' "$root/ffi/ferry.h")
readelf -d "$app/hello-shared" | grep -q "NEEDED.*\[libferry\.so\.$abi\]" || fail "hello-shared does not need libferry.so.$abi"
readelf -d "$app/hello-shared" | grep -q "RUNPATH.*\[$scratch/prefix/lib\]" || fail "hello-shared has no rpath to \$PREFIX/lib"
if readelf -d "$app/hello-static" | grep -q 'NEEDED.*libferry'; then fail "hello-static needs libferry.so"; fi
if readelf -d "$scratch/frames-go/frames-go" | grep -q 'NEEDED.*libferry'; then fail "frames-go needs libferry.so"; fi
# heap-demo: loadFrames holds its 64 MiB at the top of inuse_space (from the file and over HTTP),
# and forget's 32 MiB are what the cleanup released (dropped_space).
[ "$(grep -cE '^ +64MB +100% +100% +64MB +100% +main\.loadFrames$' "$log")" = 2 ] || fail "pprof -top does not show loadFrames holding 64MB, twice"
grep -qE '^ +32MB +100% +100% +32MB +100% +main\.forget$' "$log" || fail "pprof -top -sample_index=dropped_space does not show forget's 32MB"
chmod -R u+w "$scratch" && rm -rf "$scratch"
echo "readme examples: 7 passed, 0 failed (Go, C, Python, Go module shared and static, Rust crate, heap profile)"
