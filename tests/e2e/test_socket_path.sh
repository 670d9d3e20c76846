#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# The unix socket path already taken, against the whole daemon (tests/test_http.c checks
# api_start alone): a stale socket left by a SIGKILLed daemon is replaced and served on;
# a live one (another daemon serving) makes start-up fail with a clear message and exit
# status 1, and the refused daemon touches nothing of the other (its socket, its
# listeners, its host: not a key of the simulated host's saved state is written); a
# regular file or a symlink at the path is refused and left in place.
. "$(dirname "$0")/lib.sh"
e2e_init socket_path 60
cd "$E2E_ROOT" || exit 1

# ---- a stale socket -----------------------------------------------------------------
start_daemon --scenario scenarios/e2e-flow.json || e2e_finish
kill_daemon KILL
assert_true "SIGKILL leaves the socket file behind" test -S "$SOCK"
start_daemon --scenario scenarios/e2e-flow.json || e2e_finish
r=$(rpc_unix get_host_reserved_memory '["dbg"]')
assert_json "stale socket: the new daemon serves on the same path" "$r" .result 73728
assert_match "stale socket: the log says it was replaced" "removed the stale socket" \
    "$(cat "$DAEMON_LOG")"
stop_daemon "stale socket: the new daemon stops cleanly"
assert_true "stale socket: removed at the clean stop" test ! -e "$SOCK"

# ---- a live socket --------------------------------------------------------------------
# The first daemon marks guest 2 uncooperative (a stuck balloon 30 s away from a lowered
# target), a flag a second daemon's fresh tracker would take away if it ever got to
# look at the host.
world=$TMPD/world.json
start_daemon --scenario scenarios/e2e-stuck.json --sim-state "$world" || e2e_finish
rpc sim.set_dynamic_range '[2, 1048576, 1572864]' >/dev/null
rpc sim.advance '[30]' >/dev/null
w=$(rpc sim.state '[]')
assert_json "live socket: the first daemon flagged guest 2 uncooperative" "$w" \
    'j.result.domains.find(d => d.domid == 2).uncooperative' true
ino=$(stat -c %i "$SOCK")
sum=$(sha256sum "$world" | cut -d' ' -f1)
mtime=$(stat -c %Y.%y "$world")
first_pid=$DAEMON_PID

run_squeezed -d --backend sim --clock virtual --scenario scenarios/e2e-stuck.json \
    --sim-state "$world" --listen 127.0.0.1:0 --socket "$SOCK"
assert_eq "live socket: a second daemon exits with status 1" 1 $?
out=$(cat "$TMPD/run.out")
assert_match "live socket: the message names the path and says it is in use" \
    "$SOCK is in use: another process is serving on it" "$out"
assert_true "live socket: the second daemon never said it was ready" \
    sh -c "! grep -q 'ready on' '$TMPD/run.out'"
assert_true "live socket: it did not even open the host" \
    sh -c "! grep -q 'simulated host:' '$TMPD/run.out'"
assert_eq "live socket: the host's saved state is byte for byte the same" "$sum" \
    "$(sha256sum "$world" | cut -d' ' -f1)"
assert_eq "live socket: the saved state was not rewritten" "$mtime" "$(stat -c %Y.%y "$world")"
assert_eq "live socket: the socket file is the first daemon's" "$ino" "$(stat -c %i "$SOCK")"
r=$(rpc_unix get_host_reserved_memory '["dbg"]')
assert_json "live socket: the first daemon still serves on the unix socket" "$r" .result 73728
w=$(rpc sim.state '[]')
assert_json "live socket: and on TCP, its flag in place" "$w" \
    'j.result.domains.find(d => d.domid == 2).uncooperative' true

# The same for the first daemon's TCP port, with a socket path of its own.
run_squeezed -d --backend sim --clock virtual --scenario scenarios/e2e-stuck.json \
    --sim-state "$world" --listen "127.0.0.1:$PORT" --socket "$TMPD/other.sock"
assert_eq "live TCP port: a second daemon exits with status 1" 1 $?
assert_match "live TCP port: the message names the address" "127.0.0.1.*$PORT" \
    "$(cat "$TMPD/run.out")"
assert_true "live TCP port: it leaves no socket file of its own" test ! -e "$TMPD/other.sock"
assert_eq "live TCP port: the host's saved state is the same" "$sum" \
    "$(sha256sum "$world" | cut -d' ' -f1)"
assert_json "live TCP port: the first daemon still serves" "$(http_get /status)" \
    .daemon.backend sim
assert_eq "the first daemon is the one still running" "$first_pid" "$DAEMON_PID"
stop_daemon "live socket: the first daemon stops cleanly"
assert_true "live socket: and removes its socket" test ! -e "$SOCK"

# ---- not a socket ---------------------------------------------------------------------
printf 'precious\n' >"$TMPD/file.sock"
run_squeezed -d --backend sim --scenario scenarios/e2e-flow.json --listen 127.0.0.1:0 \
    --socket "$TMPD/file.sock"
assert_eq "a regular file: start-up fails with status 1" 1 $?
assert_match "a regular file: the message says it is not a socket" \
    "$TMPD/file.sock exists and is not a socket" "$(cat "$TMPD/run.out")"
assert_eq "a regular file: left as it was" precious "$(cat "$TMPD/file.sock")"

start_daemon --scenario scenarios/e2e-flow.json || e2e_finish
ln -s "$SOCK" "$TMPD/link.sock"
run_squeezed -d --backend sim --scenario scenarios/e2e-flow.json --listen 127.0.0.1:0 \
    --socket "$TMPD/link.sock"
assert_eq "a symlink (to a live socket): start-up fails with status 1" 1 $?
assert_true "a symlink: left in place" test -L "$TMPD/link.sock"
r=$(rpc_unix get_host_reserved_memory '["dbg"]')
assert_json "a symlink: the socket it points to still serves" "$r" .result 73728
stop_daemon
e2e_finish
