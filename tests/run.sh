#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# Run every test: unit tests (cmocka) and end-to-end tests (the real daemon driven with
# curl), once in the normal build and once under ASan+UBSan, then the extra stages
# (valgrind, fuzz, ...) where present. Ends with one summary line "N passed, N failed".
#
# TEST_JOBS tests run at once (default 2, 1 on a single CPU; 1: one after the other). Side
# by side is safe: every e2e script has its own temporary directory (unix sockets, state
# and pid files) and port 0, every unit binary mkstemp/mkdtemp files, and the stages build
# into directories of their own (build/vg, build/fuzz, build/deb). The valgrind stage takes
# longest by far (over 5 minutes alone), so it starts first and the others run beside it.
# Each test's output goes to build/test-logs/NAME.log; its "ok" or "FAILED" line (with the
# log's tail) is printed when it ends, the totals at the end. Each test runs in a session
# of its own (setsid): an interrupted run stops every test it started, with their daemons.
set -u
cd "$(dirname "$0")/.."

log=build/test-logs
mkdir -p "$log"
cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
jobs=${TEST_JOBS:-$([ "$cpus" = 1 ] && echo 1 || echo 2)}
case "$jobs" in
'' | 0 | *[!0-9]*)
    echo "tests/run.sh: TEST_JOBS must be a whole number above 0, not '$jobs'" >&2
    exit 2
    ;;
esac
# This run's bookkeeping: N.job (what to run), N.pid (the test's session while it runs),
# N.result ("PASSED FAILED"), the free slots (a FIFO), a lock for the printing.
run=$(mktemp -d "$log/.run.XXXXXX") || exit 1
setsid=""
command -v setsid >/dev/null 2>&1 && setsid=setsid

# The tests, in the order they start.
n=0
add() {
    n=$((n + 1))
    echo "$*" >"$run/$n.job"
}
for stage in tests/stages/valgrind.sh tests/stages/fuzz.sh; do
    [ -f "$stage" ] && add stage "$stage"
done
for b in build build/asan; do
    [ -d "$b/tests" ] || continue
    for t in "$b"/tests/test_*; do
        [ -x "$t" ] && add unit "$t"
    done
    for t in tests/e2e/test_*.sh; do
        [ -f "$t" ] && add e2e "$b" "$t"
    done
done
for stage in tests/stages/*.sh; do
    case "$stage" in tests/stages/valgrind.sh | tests/stages/fuzz.sh) continue ;; esac
    [ -f "$stage" ] && add stage "$stage"
done

# job_name N: the name test N is reported under.
job_name() {
    read -r _kind _a _b <"$run/$1.job"
    case "$_kind" in
    e2e) echo "$_a:$_b" ;;
    *) echo "$_a" ;;
    esac
}

# run_one N NAME CMD...: run a test program, count the tests it reports (into N.result),
# print its line.
run_one() {
    idx=$1
    name=$2
    shift 2
    out="$log/$(echo "$name" | tr '/ ' '__').log"
    start=$(date +%s)
    $setsid "$@" >"$out" 2>&1 9>&- &
    echo $! >"$run/$idx.pid"
    wait $!
    rc=$?
    rm -f "$run/$idx.pid"
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
    echo "$p $f" >"$run/$idx.result"
    # One test's lines at a time.
    until mkdir "$run/lock" 2>/dev/null; do sleep 0.1; done
    if [ "$f" -ne 0 ]; then
        echo "FAILED $name (${secs}s, exit $rc): $p passed, $f failed; log follows" >&2
        tail -n 60 "$out" >&2
    else
        echo "ok     $name (${secs}s): $p passed"
    fi
    rmdir "$run/lock"
}

# Interrupted: stop every test still running (its whole session), then leave.
stop_all() {
    trap '' INT TERM HUP
    for pf in "$run"/*.pid; do
        [ -f "$pf" ] || continue
        pid=$(cat "$pf")
        [ -n "$setsid" ] && kill -TERM "-$pid" 2>/dev/null
        kill -TERM "$pid" 2>/dev/null
    done
    wait
    rm -rf "$run"
    echo "tests/run.sh: interrupted" >&2
    exit 130
}
trap stop_all INT TERM HUP

# TEST_JOBS slots: a test takes one from the FIFO before it starts, puts it back when done.
mkfifo "$run/slots" || exit 1
exec 9<>"$run/slots"
i=0
while [ "$i" -lt "$jobs" ]; do
    echo >&9
    i=$((i + 1))
done
i=1
while [ "$i" -le "$n" ]; do
    read -r _ <&9
    read -r kind a b <"$run/$i.job"
    case "$kind" in
    unit) (run_one "$i" "$a" "$a"; echo >&9) & ;;
    e2e) (run_one "$i" "$a:$b" env BUILD="$a" sh "$b"; echo >&9) & ;;
    stage) (run_one "$i" "$a" sh "$a"; echo >&9) & ;;
    esac
    i=$((i + 1))
done
wait
exec 9>&-

passed=0
failed=0
failures=""
i=1
while [ "$i" -le "$n" ]; do
    p=0
    f=1
    [ -f "$run/$i.result" ] && read -r p f <"$run/$i.result"
    passed=$((passed + p))
    failed=$((failed + f))
    [ "$f" -ne 0 ] && failures="$failures $(job_name "$i")"
    i=$((i + 1))
done
rm -rf "$run"

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
