#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# SIGTERM and SIGINT stop the daemon cleanly (exit 0, unix socket removed), idle and
# while a reservation is being squeezed (real clock, slow balloon).
. "$(dirname "$0")/lib.sh"
e2e_init signals 90
cd "$E2E_ROOT" || exit 1

start_daemon --scenario scenarios/e2e-slow.json --clock real || e2e_finish
assert_true "the unix socket exists" test -S "$SOCK"
assert_eq "the unix socket is private (0600)" 600 "$(stat -c %a "$SOCK")"
stop_daemon "idle: SIGTERM stops with status 0"
assert_true "idle: the unix socket is removed" test ! -e "$SOCK"

start_daemon --scenario scenarios/e2e-slow.json --clock real || e2e_finish
kill -INT "$DAEMON_PID"
if _wait_gone "$DAEMON_PID" $((10 * E2E_LIMIT_SCALE)); then
    wait "$DAEMON_PID"
    assert_eq "idle: SIGINT stops with status 0" 0 $?
else
    fail "idle: SIGINT stops the daemon" "still running after 10 s"
fi
DAEMON_PID=""
rm -f "$TMPD/daemon.pid"

start_daemon --scenario scenarios/e2e-slow.json --clock real || e2e_finish
rpc login '["dbg", "xenopsd"]' >/dev/null
# About 7 s of ballooning at 64 MiB/s.
rpc reserve_memory '["dbg", "xenopsd", 655360]' >"$TMPD/bg.out" 2>&1 &
bg=$!
sleep 1
assert_json "a reservation is running" "$(http_get /status)" .daemon.busy true
t0=$(now_ms)
kill -TERM "$DAEMON_PID"
if _wait_gone "$DAEMON_PID" $((10 * E2E_LIMIT_SCALE)); then
    wait "$DAEMON_PID"
    rc=$?
    t1=$(now_ms)
    assert_eq "busy: SIGTERM stops with status 0" 0 "$rc"
    assert_range "busy: it stops within 3 s (the squeeze is cancelled)" $((t1 - t0)) 0 3000
else
    fail "busy: SIGTERM stops the daemon" "still running after 10 s"
    kill -KILL "$DAEMON_PID" 2>/dev/null
fi
DAEMON_PID=""
rm -f "$TMPD/daemon.pid"
wait "$bg"
out=$(cat "$TMPD/bg.out")
case "$out" in
*'"result"'*)
    assert_json "the interrupted reservation is not reported as done" "$out" \
        .error '["Internal_error","shutting down"]'
    ;;
*) pass "the interrupted reservation's connection was closed" ;;
esac
assert_true "busy: the unix socket is removed" test ! -e "$SOCK"
assert_true "no sanitizer report in the log" sh -c "! grep -q 'Sanitizer' '$DAEMON_LOG'"
e2e_finish
