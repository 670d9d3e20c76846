#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# While a reservation takes seconds of ballooning (real clock, slow balloon), GET /status
# and RPCs that do not touch the host answer at once and show the operation running.
. "$(dirname "$0")/lib.sh"
e2e_init status_during_reservation 90
cd "$E2E_ROOT" || exit 1

start_daemon --scenario scenarios/e2e-slow.json --clock real || e2e_finish
rpc login '["dbg", "xenopsd"]' >/dev/null
# 640 MiB + the reserve with 256 MiB free: guest 1 gives ~456 MiB at 64 MiB/s, ~7 s.
rpc reserve_memory '["dbg", "xenopsd", 655360]' >"$TMPD/bg.out" 2>&1 &
bg=$!
sleep 1
prev=""
for i in 1 2 3; do
    t0=$(now_ms)
    s=$(http_get /status)
    t1=$(now_ms)
    assert_range "GET /status #$i answers within 1 s (times E2E_LIMIT_SCALE)" $((t1 - t0)) 0 $((1000 * E2E_LIMIT_SCALE))
    assert_json "GET /status #$i: busy" "$s" .daemon.busy true
    a=$(printf '%s' "$s" | jget 'j.domains.find(d => d.domid == 1).actual_kib')
    if [ -n "$prev" ]; then
        assert_range "GET /status #$i: guest 1's balloon seen moving" "$a" 0 $((prev - 1))
    fi
    prev=$a
    t0=$(now_ms)
    r=$(rpc get_host_reserved_memory '["dbg"]')
    t1=$(now_ms)
    assert_range "get_host_reserved_memory #$i answers within 1 s (times E2E_LIMIT_SCALE)" $((t1 - t0)) 0 $((1000 * E2E_LIMIT_SCALE))
    assert_json "get_host_reserved_memory #$i" "$r" .result 73728
    t0=$(now_ms)
    http_get /metrics >/dev/null
    t1=$(now_ms)
    assert_range "GET /metrics #$i answers within 1 s (times E2E_LIMIT_SCALE)" $((t1 - t0)) 0 $((1000 * E2E_LIMIT_SCALE))
    sleep 1
done
wait "$bg"
r=$(cat "$TMPD/bg.out")
assert_json "the reservation succeeds" "$r" .error null
s=$(http_get /status)
assert_json "not busy afterwards" "$s" .daemon.busy false
assert_json "the operation is recorded as a success" "$s" \
    'j.operations[j.operations.length - 1].kind + "/" + j.operations[j.operations.length - 1].outcome' \
    reserve/success
assert_range "it took seconds of ballooning" \
    "$(printf '%s' "$s" | jget 'j.operations[j.operations.length - 1].duration_ms')" 3000 60000
assert_no_violations "no violation"
stop_daemon
e2e_finish
