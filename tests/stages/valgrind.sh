#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# The valgrind stage of `make test`: the whole unit and end-to-end suite once more under
# memcheck, on a separate build (build/vg, -O1 with DWARF 4: valgrind 3.19 cannot read
# gcc 12's default DWARF 5). Every unit binary runs under valgrind; every e2e script runs
# its daemons (squeezed and squeezed-fakexen) through a wrapper that execs them under
# valgrind with a log file per process. Any memcheck error or definite leak fails:
# --error-exitcode turns it into a non-zero exit (a failed cmocka binary, a failed
# "stops cleanly" check of a daemon), and the logs are searched for it as well.
# Prints PASS:/FAIL: lines (cmocka results translated one per test); exits 1 on failure.
# VG_ONLY=pattern runs only the unit binaries and e2e scripts whose name matches.
# Logs: build/vg/valgrind-logs/PID, one directory per run (runs may overlap in a shared
# checkout); a later run removes those of runs that have ended.
set -u
cd "$(dirname "$0")/../.." || exit 1
root=$(pwd)
vg=build/vg
logs=$vg/valgrind-logs/$$
# --child-silent-after-fork: a unit test that forks a child to crash it on purpose
# (test_sim's journal replay after SIGKILL) must not have that child's unfreed world
# reported as a leak; the daemons are exec'd through wrappers, each with its own log.
VG_FLAGS="--error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --track-fds=no --child-silent-after-fork=yes"
failed=0

fail() {
    echo "FAIL: $*"
    failed=1
}

if ! command -v valgrind >/dev/null 2>&1; then
    echo "FAIL: valgrind: valgrind is not installed (sh scripts/deps.sh test installs it)"
    exit 1
fi
mkdir -p "$vg"
if ! make --no-print-directory BUILD=$vg CFLAGS="-O1 -gdwarf-4" tests >$vg/build.log 2>&1; then
    echo "FAIL: valgrind: cannot build $vg; log:"
    tail -n 30 $vg/build.log | sed 's/^/#   /'
    exit 1
fi
for d in $vg/valgrind-logs/*; do
    [ -d "$d" ] || continue
    pid=$(basename "$d")
    case "$pid" in
    *[!0-9]*) rm -rf "$d" ;;
    *) kill -0 "$pid" 2>/dev/null || rm -rf "$d" ;;
    esac
done
rm -f $vg/valgrind-logs/*.log $vg/valgrind-logs/*.out
mkdir -p "$logs"

# The daemons' wrappers: same pid as the daemon (exec), so the e2e library's signals and
# exit-status checks reach valgrind, which passes them on and exits with the daemon's
# status, or 99 on an error. VG_LOGDIR and VG_TEST place and name the log files.
for bin in squeezed squeezed-fakexen; do
    cat >"$vg/$bin-vg.$$" <<EOF
#!/bin/sh
exec valgrind $VG_FLAGS \\
    --log-file="\${VG_LOGDIR:-$root/$vg/valgrind-logs}/\${VG_TEST:-daemon}.$bin.%p.log" \\
    "$root/$vg/$bin" "\$@"
EOF
    chmod +x "$vg/$bin-vg.$$"
    mv "$vg/$bin-vg.$$" "$vg/$bin-vg"
done

# check_logs NAME: report the valgrind logs of NAME with an error or a definite leak.
check_logs() {
    _bad=0
    for _l in "$logs/$1".*.log; do
        [ -f "$_l" ] || continue
        if grep -q -E 'ERROR SUMMARY: [1-9]|definitely lost: [1-9]' "$_l"; then
            fail "valgrind: $1: memcheck errors or definite leaks in $_l:"
            # Each error or definite leak with the first frames of its stack.
            grep -E -A 6 '^==[0-9]+== +(Invalid|Conditional|Use of|Syscall|Mismatched|'\
'Source|[0-9,]+ bytes in [0-9,]+ blocks are definitely)' "$_l" | head -n 40 |
                sed 's/^/#   /'
            _bad=1
        fi
    done
    return $_bad
}

selected() {
    [ -z "${VG_ONLY:-}" ] && return 0
    case "$1" in *$VG_ONLY*) return 0 ;; esac
    return 1
}

# Unit tests: cmocka's per-test lines become PASS:/FAIL: lines. VALGRIND=1 lets a test use
# smaller sizes under memcheck (test_status, test_cache), never other checks.
for t in $vg/tests/test_*; do
    [ -x "$t" ] && [ -f "$t" ] || continue
    name=$(basename "$t")
    selected "$name" || continue
    out=$logs/$name.out
    start=$(date +%s)
    VALGRIND=1 valgrind $VG_FLAGS --log-file="$logs/$name.%p.log" "$t" >"$out" 2>&1
    rc=$?
    secs=$(($(date +%s) - start))
    sed -n "s/^\[       OK \] \(.*\)/PASS: valgrind $name: \1/p" "$out"
    sed -n "s/^\[  FAILED  \] \([^ ]*\)$/FAIL: valgrind $name: \1/p" "$out" | sort -u
    nfail=$(sed -n 's/^\[  FAILED  \] \([^ ]*\)$/\1/p' "$out" | sort -u | wc -l)
    echo "# valgrind $name: exit $rc, ${secs}s"
    check_logs "$name" || true
    if [ "$rc" -ne 0 ] && [ "$nfail" -eq 0 ]; then
        fail "valgrind $name: exit status $rc (99: memcheck errors); output $out, logs $logs/$name.*"
        tail -n 20 "$out" | sed 's/^/#   /'
    fi
done

# End-to-end tests: the daemons under valgrind, through the wrappers. Everything is
# slower: bounds on waits are raised (latency thresholds are relaxed by the scripts
# themselves where VALGRIND=1), never the checks.
for t in tests/e2e/test_*.sh; do
    [ -f "$t" ] || continue
    name=e2e_$(basename "$t" .sh)
    selected "$name" || continue
    out=$logs/$name.out
    start=$(date +%s)
    env BUILD=$vg VG_TEST="$name" VG_LOGDIR="$root/$logs" VALGRIND=1 \
        SQUEEZED_BIN="$root/$vg/squeezed-vg" SQUEEZED_FAKEXEN_BIN="$root/$vg/squeezed-fakexen-vg" \
        E2E_CURL_MAX_S=30 E2E_READY_MAX_S=60 E2E_STOP_MAX_S=60 E2E_RUN_MAX_S=60 \
        E2E_LIMIT_SCALE=3 sh "$t" >"$out" 2>&1
    rc=$?
    secs=$(($(date +%s) - start))
    sed -n "s/^PASS: /PASS: valgrind $name: /p; s/^FAIL: /FAIL: valgrind $name: /p" "$out"
    grep -q '^FAIL: ' "$out" && failed=1
    echo "# valgrind $name: exit $rc, ${secs}s"
    check_logs "$name" || true
    if [ "$rc" -ne 0 ] && ! grep -q '^FAIL: ' "$out"; then
        fail "valgrind $name: exit status $rc; output $out"
        tail -n 20 "$out" | sed 's/^/#   /'
    fi
done

n=$(ls "$logs"/*.log 2>/dev/null | wc -l)
if [ "$failed" -eq 0 ]; then
    echo "PASS: valgrind: no memcheck error and no definite leak in $n logs ($logs)"
    exit 0
fi
echo "# valgrind: logs in $logs"
exit 1
