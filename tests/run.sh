#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# Run every test: unit tests (cmocka) and end-to-end tests (the real daemon driven with
# curl), once in the normal build and once under ASan+UBSan, then the extra stages
# (valgrind, fuzz) where present. Ends with one summary line "N passed, N failed".
set -u
cd "$(dirname "$0")/.."

passed=0
failed=0
failures=""
log=build/test-logs
mkdir -p "$log"

# run_one NAME CMD...: run a test program, count the tests it reports.
run_one() {
    name=$1
    shift
    out="$log/$(echo "$name" | tr '/ ' '__').log"
    start=$(date +%s)
    "$@" >"$out" 2>&1
    rc=$?
    secs=$(($(date +%s) - start))
    # cmocka: "[  PASSED  ] 7 test(s)." / "[  FAILED  ] 1 test(s), listed below:"
    # e2e scripts: "PASS: name" / "FAIL: name" lines.
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -n 1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -n 1)
    [ -z "$p" ] && p=$(grep -c '^PASS: ' "$out")
    [ -z "$f" ] && f=$(grep -c '^FAIL: ' "$out")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1
    fi
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$f" -ne 0 ]; then
        failures="$failures $name"
        echo "FAILED $name (${secs}s, exit $rc): $p passed, $f failed; log follows" >&2
        tail -n 60 "$out" >&2
    else
        echo "ok     $name (${secs}s): $p passed"
    fi
}

for b in build build/asan; do
    [ -d "$b/tests" ] || continue
    for t in "$b"/tests/test_*; do
        [ -x "$t" ] || continue
        run_one "$t" "$t"
    done
    for t in tests/e2e/test_*.sh; do
        [ -f "$t" ] || continue
        run_one "$b:$t" env BUILD="$b" sh "$t"
    done
done

for stage in tests/stages/*.sh; do
    [ -f "$stage" ] || continue
    run_one "$stage" sh "$stage"
done

echo
[ -n "$failures" ] && echo "failed:$failures"
echo "$passed passed, $failed failed"
# The same totals in cmocka's words, last, as every unit binary ends.
echo "[==========] $((passed + failed)) test(s) run."
echo "[  PASSED  ] $passed test(s)."
if [ "$failed" -ne 0 ]; then
    echo "[  FAILED  ] $failed test(s), listed below:"
    for n in $failures; do echo "[  FAILED  ] $n"; done
    exit 1
fi
exit 0
