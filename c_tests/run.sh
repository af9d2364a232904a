#!/usr/bin/env bash
# Runs C test programs and adds up their closing lines.
#
#   c_tests/run.sh --mode MODE PROG... [--mode MODE PROG...]
#
# MODE is plain, valgrind or asan; each PROG (a program, or a directory: every executable in it)
# runs once in the mode named before it:
#   plain     as is
#   valgrind  under valgrind: any error, or any byte definitely or possibly lost, fails the program
#   asan      as is, with ASAN_OPTIONS/UBSAN_OPTIONS set (PROG must be a -fsanitize=address,undefined build)
# Each program must end its output with "N passed, N failed". A program that crashes, times out
# (C_TEST_TIMEOUT seconds, default 60; valgrind gets twice that), prints no closing line, or exits
# non-zero with 0 failed (a valgrind or sanitizer report) counts as one more failure. Output of a
# failing run is shown; every run's output is kept in C_TEST_LOGS (default build/c/logs).
# The last line printed is the total: "N passed, N failed". Exits non-zero if anything failed.
set -u

timeout_s=${C_TEST_TIMEOUT:-60}
logs=${C_TEST_LOGS:-build/c/logs}
valgrind=${VALGRIND:-valgrind}
mkdir -p "$logs"

total_pass=0
total_fail=0
summary=()

# Groups the arguments: modes[i] runs the programs in lists[i] (newline-separated).
modes=()
lists=()
while [ $# -gt 0 ]; do
    if [ "$1" = "--mode" ] && [ $# -ge 2 ]; then
        modes+=("$2")
        lists+=("")
        shift 2
        continue
    fi
    if [ ${#modes[@]} -eq 0 ]; then
        echo "run.sh: give --mode before the programs" >&2
        exit 2
    fi
    i=$((${#modes[@]} - 1))
    if [ -d "$1" ]; then
        for f in "$1"/*; do
            [ -f "$f" ] && [ -x "$f" ] && lists[i]+="$f"$'\n'
        done
    else
        lists[i]+="$1"$'\n'
    fi
    shift
done

for i in "${!modes[@]}"; do
    mode=${modes[i]}
    case $mode in
        plain) prefix=(); limit=$timeout_s ;;
        valgrind)
            if ! command -v "$valgrind" >/dev/null 2>&1; then
                echo "run.sh: valgrind not found (set VALGRIND or install it)" >&2
                total_fail=$((total_fail + 1))
                summary+=("valgrind: not run, valgrind missing")
                continue
            fi
            # valgrind's own defaults for what counts: a leak definitely *or possibly* lost fails.
            prefix=("$valgrind" -q --error-exitcode=1 --leak-check=full --track-origins=yes
                --child-silent-after-fork=yes)
            limit=$((timeout_s * 2)) ;;
        asan) prefix=(); limit=$timeout_s ;;
        *) echo "run.sh: unknown mode '$mode' (plain, valgrind, asan)" >&2; exit 2 ;;
    esac
    mode_pass=0
    mode_fail=0
    mapfile -t progs < <(printf '%s' "${lists[i]}")
    if [ ${#progs[@]} -eq 0 ]; then
        echo "run.sh: no programs for mode $mode" >&2
        mode_fail=1
    fi
    for prog in "${progs[@]}"; do
        name=$(basename "$prog")
        log="$logs/$mode-$name.log"
        start=$(date +%s.%N)
        # halt_on_error: stop at the first report; allocator_may_return_null: a huge malloc returns
        # NULL as glibc's does instead of aborting (args.c asks for 1 TiB on purpose).
        # (The braces keep bash's own "Aborted" notice out of the way; the log has the details.)
        {
            ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1} \
            UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
                timeout -k 5 "$limit" "${prefix[@]}" "$prog" >"$log" 2>&1
        } 2>/dev/null
        rc=$?
        secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
        line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
        pass=0
        fail=0
        why=""
        if [ -z "$line" ]; then
            fail=1
            case $rc in
                124|137) why="timed out after ${limit}s" ;;
                *) if [ "$rc" -gt 128 ]; then
                       why="no closing line (killed by signal $((rc - 128)))"
                   else
                       why="no closing line (exit status $rc)"
                   fi ;;
            esac
        else
            pass=${line%% passed*}
            fail=${line#*passed, }
            fail=${fail%% failed}
            if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
                fail=1
                why="exit status $rc with 0 failed checks: reported by $mode"
            fi
        fi
        mode_pass=$((mode_pass + pass))
        mode_fail=$((mode_fail + fail))
        printf '  %-9s %-22s %6d passed, %d failed  (%ss)%s\n' "$mode" "$name" "$pass" "$fail" "$secs" \
            "${why:+  -- $why}"
        if [ "$fail" -ne 0 ]; then
            echo "  ---- $log (last 60 lines) ----"
            tail -n 60 "$log" | sed 's/^/  | /'
            echo "  ----"
        fi
    done
    summary+=("$mode: $mode_pass passed, $mode_fail failed")
    total_pass=$((total_pass + mode_pass))
    total_fail=$((total_fail + mode_fail))
done

for s in "${summary[@]}"; do echo "  $s"; done
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
