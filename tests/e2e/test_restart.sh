#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# Reservations live in xenstore: a daemon stopped with SIGTERM, or killed with SIGKILL,
# finds them again when it restarts on the same host (--sim-state keeps the simulated
# host, as Xen would), and they can still be deleted.
. "$(dirname "$0")/lib.sh"
e2e_init restart 90
cd "$E2E_ROOT" || exit 1
world=$TMPD/world.json

start_daemon --scenario scenarios/e2e-flow.json --sim-state "$world" || e2e_finish
rpc login '["dbg", "xenopsd"]' >/dev/null
rpc login '["dbg", "other"]' >/dev/null
id1=$(rpc reserve_memory '["dbg", "xenopsd", 262144]' | jget .result)
assert_ne "reserve before the restart" "" "$id1"
rpc sim.advance '[3]' >/dev/null
t1=$(rpc sim.state '[]' | jget .result.time_s)
assert_true "the simulated host is saved" test -s "$world"
stop_daemon "SIGTERM stops the daemon with status 0"

start_daemon --scenario scenarios/e2e-flow.json --sim-state "$world" || e2e_finish
s=$(http_get /status)
assert_json "after SIGTERM + restart: the reservation is listed" "$s" \
    'j.reservations.map(r => r.id + ":" + r.kib + ":" + r.session).join(",")' \
    "$id1:262144:xenopsd"
assert_json "after restart: still subtracted from host free" "$s" .host.reservations_kib 262144
t2=$(rpc sim.state '[]' | jget .result.time_s)
assert_eq "after restart: the same simulated host (its clock went on from the file)" \
    "$t1" "$t2"
# The session survived too: no login needed.
id2=$(rpc reserve_memory '["dbg", "other", 65536]' | jget .result)
assert_ne "the other session reserves without logging in again" "" "$id2"
kill_daemon KILL
assert_true "SIGKILL: the daemon is gone" sh -c "! kill -0 $DAEMON_PID 2>/dev/null"

start_daemon --scenario scenarios/e2e-flow.json --sim-state "$world" || e2e_finish
s=$(http_get /status)
assert_json "after SIGKILL + restart: both reservations are listed" "$s" \
    'j.reservations.map(r => r.id).sort().join(",")' \
    "$(printf '%s\n%s\n' "$id1" "$id2" | sort | paste -sd, -)"
r=$(rpc delete_reservation "[\"dbg\", \"xenopsd\", \"$id1\"]")
assert_json "the first reservation can be deleted" "$r" .error null
r=$(rpc delete_reservation "[\"dbg\", \"other\", \"$id2\"]")
assert_json "the second reservation can be deleted" "$r" .error null
s=$(http_get /status)
assert_json "none left" "$s" .reservations.length 0
stop_daemon

start_daemon --scenario scenarios/e2e-flow.json --sim-state "$world" || e2e_finish
s=$(http_get /status)
assert_json "deleted reservations stay deleted after a restart" "$s" .reservations.length 0
assert_no_violations "no violation across restarts"
stop_daemon
e2e_finish
