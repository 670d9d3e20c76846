#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# The daemon as an operator and systemd meet it: -h, -n (the backend is opened), the
# pidfile (written once ready, removed on a clean stop), the log without -d (syslog at
# local5 as "squeezed[pid]", or stderr with one warning when no syslog listens, never
# nowhere), and sd_notify readiness (READY=1 from the main process, STOPPING=1).
. "$(dirname "$0")/lib.sh"
e2e_init daemon_life 90
cd "$E2E_ROOT" || exit 1
BIN=$(squeezed_bin)
case "$BIN" in /*) ;; *) BIN=$E2E_ROOT/$BIN ;; esac
SCEN=$E2E_ROOT/scenarios/e2e-flow.json

# wait_for FILE PATTERN SECONDS: 0 once FILE has a line matching PATTERN (grep -E).
wait_for() {
    _t=$(($3 * 20))
    while [ "$_t" -gt 0 ]; do
        grep -Eq -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
        _t=$((_t - 1))
    done
    return 1
}

# stop_pid PID: SIGTERM a daemon that is not our child; 0 once it is gone.
stop_pid() {
    kill -TERM "$1" 2>/dev/null
    _wait_gone "$1" "$E2E_STOP_MAX_S" && return 0
    kill -KILL "$1" 2>/dev/null
    return 1
}

# ---- -h, -n --------------------------------------------------------------------------
run_squeezed -h
assert_eq "-h exits 0" 0 $?
assert_match "-h prints the usage" "^usage: squeezed .*-f CONFIG" "$(cat "$TMPD/run.out")"
assert_match "and the options" "--pidfile FILE" "$(cat "$TMPD/run.out")"
run_squeezed --bogus
assert_eq "an unknown option exits 1" 1 $?

if [ -e /proc/xen/privcmd ] || [ -e /dev/xen/privcmd ]; then
    note "a Xen host: the failing xen backend check of -n is skipped"
else
    run_squeezed -n
    assert_eq "-n on the xen backend without a hypervisor exits 1" 1 $?
    assert_match "and says the hypervisor cannot be opened" \
        "cannot use the Xen hypervisor" "$(cat "$TMPD/run.out")"
    assert_eq "and does not claim the configuration is fine" "" \
        "$(grep 'configuration OK' "$TMPD/run.out")"
fi
run_squeezed -n --backend sim --scenario "$SCEN"
assert_eq "-n on the sim backend with a scenario exits 0" 0 $?
assert_match "and says so" "configuration OK" "$(cat "$TMPD/run.out")"
if [ -x "$BUILD/squeezed-fakexen" ]; then
    FAKEXEN_SCENARIO=$SCEN SQUEEZED_BIN=$BUILD/squeezed-fakexen run_squeezed -n
    assert_eq "-n opens the xen backend (fake libxenctrl) and exits 0" 0 $?
fi

# ---- pidfile -------------------------------------------------------------------------
start_daemon --scenario "$SCEN" --pidfile "$TMPD/opt.pid" || e2e_finish
assert_eq "--pidfile: the pid is written once ready" "$DAEMON_PID" "$(cat "$TMPD/opt.pid")"
stop_daemon
assert_true "and the pidfile is removed on a clean stop" test ! -e "$TMPD/opt.pid"

printf 'pidfile = %s\n' "$TMPD/conf.pid" >"$TMPD/pid.conf"
start_daemon --scenario "$SCEN" -f "$TMPD/pid.conf" || e2e_finish
assert_eq "pidfile = from squeezed.conf is written" "$DAEMON_PID" "$(cat "$TMPD/conf.pid")"
stop_daemon
assert_true "and removed" test ! -e "$TMPD/conf.pid"

# ---- without -d and without syslog: stderr, one warning, the log goes on ---------------
if [ -S /dev/log ]; then
    note "a syslog socket exists at /dev/log: the stderr fallback is checked in a" \
        "mount namespace below only"
else
    "$BIN" -f /dev/null --config-dir "$TMPD/no-conf.d" --backend sim --scenario "$SCEN" \
        --listen 127.0.0.1:0 --socket "$TMPD/bg.sock" --pidfile "$TMPD/bg.pid" \
        >"$TMPD/bg.out" 2>"$TMPD/bg.err"
    assert_eq "without -d the parent exits 0 once the daemon is ready" 0 $?
    assert_match "and prints the ready line" "ready on http://127.0.0.1:" "$(cat "$TMPD/bg.out")"
    bgpid=$(cat "$TMPD/bg.pid" 2>/dev/null)
    assert_match "the daemon's pidfile names it" '^[0-9]+$' "$bgpid"
    assert_eq "one warning says there is no syslog" 1 \
        "$(grep -c 'no syslog daemon listens on /dev/log: logging to stderr' "$TMPD/bg.err")"
    if [ -n "$bgpid" ]; then
        assert_true "the daemon runs in the background" kill -0 "$bgpid"
        assert_true "SIGTERM stops it" stop_pid "$bgpid"
        assert_true "and its log still reaches stderr after detaching" \
            wait_for "$TMPD/bg.err" "info: stopped" 5
        assert_true "the pidfile is removed" test ! -e "$TMPD/bg.pid"
    fi
fi

# ---- with a syslog socket: local5, "squeezed[pid]" ------------------------------------
# /dev/log is replaced, in a private mount namespace only, by a directory holding our
# sink's socket and the device nodes the daemon opens.
if ! command -v python3 >/dev/null 2>&1; then
    fail "syslog and sd_notify checks" "python3 is missing (scripts/deps.sh test)"
elif [ "$(id -u)" != 0 ] || ! unshare -m --propagation private true 2>/dev/null; then
    note "no private mount namespace here (needs root): the syslog check is skipped"
else
    mkdir -p "$TMPD/dev"
    for n in null zero random urandom; do : >"$TMPD/dev/$n"; done
    python3 tests/e2e/dgram_sink.py "$TMPD/dev/log" "$TMPD/syslog.txt" &
    sink=$!
    wait_for "$TMPD/syslog.txt" "^# listening" 5
    unshare -m --propagation private sh -c '
        d=$1; shift
        for n in null zero random urandom; do mount --bind /dev/$n "$d/$n" || exit 3; done
        mount --bind "$d" /dev || exit 3
        exec "$@"' sh "$TMPD/dev" \
        "$BIN" -f /dev/null --config-dir "$TMPD/no-conf.d" --backend sim --scenario "$SCEN" \
        --listen 127.0.0.1:0 --socket "$TMPD/sl.sock" --pidfile "$TMPD/sl.pid" \
        >"$TMPD/sl.out" 2>"$TMPD/sl.err"
    rc=$?
    assert_eq "with a syslog socket, the daemon starts (exit 0 from the parent)" 0 "$rc"
    slpid=$(cat "$TMPD/sl.pid" 2>/dev/null)
    # local5.info = 21 * 8 + 6 = 174
    assert_true "the ready line reaches syslog at local5.info as squeezed[pid]" \
        wait_for "$TMPD/syslog.txt" "^<174>.*squeezed\\[$slpid\\]: squeezed: ready on" 5
    assert_true "so do the start-up lines before it" \
        grep -Eq "^<174>.*squeezed\\[$slpid\\]: simulated host: scenario" "$TMPD/syslog.txt"
    assert_match "which the terminal sees too, until the daemon detaches" \
        "info: simulated host: scenario" "$(cat "$TMPD/sl.err")"
    assert_eq "no word of a missing syslog" "" "$(grep -i 'syslog' "$TMPD/sl.err")"
    if [ -n "$slpid" ]; then
        stop_pid "$slpid"
        assert_true "the stop is logged to syslog too" \
            wait_for "$TMPD/syslog.txt" "^<174>.*squeezed\\[$slpid\\]: stopped" 5
    fi
    kill "$sink" 2>/dev/null
    wait "$sink" 2>/dev/null
fi

# ---- sd_notify ----------------------------------------------------------------------
if command -v python3 >/dev/null 2>&1; then
    python3 tests/e2e/dgram_sink.py "$TMPD/notify" "$TMPD/notify.txt" &
    sink=$!
    wait_for "$TMPD/notify.txt" "^# listening" 5
    NOTIFY_SOCKET=$TMPD/notify "$BIN" -f /dev/null --config-dir "$TMPD/no-conf.d" \
        --backend sim --scenario "$SCEN" --listen 127.0.0.1:0 --socket "$TMPD/nt.sock" \
        >"$TMPD/nt.out" 2>"$TMPD/nt.err" &
    ntpid=$!
    echo "$ntpid" >"$TMPD/daemon.pid" # the watchdog's to kill
    assert_true "under systemd (NOTIFY_SOCKET) READY=1 is sent once listening" \
        wait_for "$TMPD/notify.txt" "READY=1" "$E2E_READY_MAX_S"
    assert_true "from the process systemd started: no fork (MAINPID=$ntpid)" \
        grep -q "MAINPID=$ntpid\\\\n" "$TMPD/notify.txt"
    assert_true "with the ready line as STATUS" grep -q "STATUS=squeezed: ready on" \
        "$TMPD/notify.txt"
    assert_true "it is still running in the foreground" kill -0 "$ntpid"
    kill -TERM "$ntpid"
    _wait_gone "$ntpid" "$E2E_STOP_MAX_S" || kill -KILL "$ntpid"
    wait "$ntpid"
    assert_eq "SIGTERM stops it with status 0" 0 $?
    rm -f "$TMPD/daemon.pid"
    assert_true "after STOPPING=1" grep -q "^STOPPING=1" "$TMPD/notify.txt"
    kill "$sink" 2>/dev/null
    wait "$sink" 2>/dev/null
fi
e2e_finish
