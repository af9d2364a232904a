#!/usr/bin/env bash
# Runs every Rust test binary under valgrind (memcheck): any memory error, or any block definitely
# lost, fails. Builds the binaries first (the test profile, as `cargo test` does, and the
# fault-injection test in its own target dir). Prints one line per binary and "N passed, N failed" (binaries) last.
#
#   scripts/valgrind-rust.sh            (make valgrind-rust)
#
# FERRY_MODEL_OPS (default 50000 here) and FERRY_CB_MODEL_OPS (default 20000) bound the two model
# tests, which run ~50x slower under valgrind.
# The unit tests leak their private tables on purpose: scripts/valgrind-rust.supp names exactly those.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo=${CARGO:-cargo}
logs=build/rel/valgrind
mkdir -p "$logs"
export FERRY_MODEL_OPS=${FERRY_MODEL_OPS:-50000}
export FERRY_CB_MODEL_OPS=${FERRY_CB_MODEL_OPS:-20000}

list_tests() { # cargo args... -> executables of the test targets, one per line
    "$cargo" test --no-run --message-format=json "$@" 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])
'
}

"$cargo" test --no-run --lib --tests
"$cargo" test --no-run --features fault-injection --target-dir target/fault --test fault
bins=$(list_tests --lib --tests; list_tests --features fault-injection --target-dir target/fault --test fault)

pass=0
fail=0
for b in $bins; do
    name=$(basename "$b")
    log="$logs/$name.log"
    start=$(date +%s)
    if valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite \
        --errors-for-leak-kinds=definite --suppressions=scripts/valgrind-rust.supp \
        "$b" --test-threads=2 >"$log" 2>&1; then
        pass=$((pass + 1))
        result=$(grep -h '^test result' "$log" | tail -1 | sed 's/^test result: ok\. //; s/; [0-9]* ignored.*//')
        echo "valgrind ok   $name: $result, $(($(date +%s) - start)) s"
    else
        fail=$((fail + 1))
        echo "valgrind FAIL $name (log: $log)"
        tail -40 "$log"
    fi
done
echo "valgrind-rust: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
