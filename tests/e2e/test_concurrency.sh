#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# Issue 12 against the real daemon on the real clock: 8 reservations sent at once are
# squeezed as one operation and all answered, calls that move no memory answer while it
# runs, a reservation preempts a periodic balance, nothing is over-committed.
. "$(dirname "$0")/lib.sh"
e2e_init concurrency 120
cd "$E2E_ROOT" || exit 1
limit_ms=$((1000 * E2E_LIMIT_SCALE))

start_daemon --scenario scenarios/e2e-concurrency.json --clock real \
    --balance-interval-s 1 || e2e_finish
rpc login '["dbg", "xenopsd"]' >/dev/null

# 8 x 1 GiB with 1 GiB free: the guests must give 7 GiB and more, about 7 s.
i=1
while [ $i -le 8 ]; do
    rpc reserve_memory "[\"vm$i\", \"xenopsd\", 1048576]" >"$TMPD/r$i.out" 2>&1 &
    eval "bg$i=\$!"
    i=$((i + 1))
done
n=0
while [ $n -lt $((30 * E2E_LIMIT_SCALE)) ]; do
    b=$(http_get /status | jget 'j.daemon.busy')
    [ "$b" = true ] && break
    sleep 0.1
    n=$((n + 1))
done
assert_eq "busy while the reservations are squeezed" true "$b"
for k in 1 2 3 4 5; do
    t0=$(now_ms)
    r=$(rpc query_reservation_of_domain '["dbg", "xenopsd", 1]')
    t1=$(now_ms)
    assert_range "query_reservation_of_domain #$k answers during the squeeze" $((t1 - t0)) 0 "$limit_ms"
    t0=$(now_ms)
    r=$(rpc login '["dbg", "other"]')
    t1=$(now_ms)
    assert_range "login #$k answers during the squeeze" $((t1 - t0)) 0 "$limit_ms"
done
# (Each reservation is answered once its own memory is guaranteed: some early; the last
# only when the whole squeeze is done.)
running=0
for p in $bg1 $bg2 $bg3 $bg4 $bg5 $bg6 $bg7 $bg8; do
    kill -0 "$p" 2>/dev/null && running=$((running + 1))
done
if [ "$running" -gt 0 ]; then
    pass "the metadata calls were answered before the reservations"
else
    fail "the metadata calls were answered before the reservations" "(the squeeze ended first)"
fi
i=1
while [ $i -le 8 ]; do
    eval "wait \$bg$i"
    assert_json "reservation $i answered with an id" "$(cat "$TMPD/r$i.out")" .error null
    i=$((i + 1))
done
s=$(http_get /status)
ops=$(printf '%s' "$s" | jget 'j.operations.filter(o => o.kind == "reserve").length')
note "8 parallel reservations took $ops reserve operation(s)"
assert_range "8 parallel reservations coalesced into at most 2 operations" "$ops" 1 2
assert_json "8 GiB reserved" "$s" 'j.reservations.reduce((a, r) => a + r.kib, 0)' 8388608
assert_json "the host keeps the reservations and its reserve" "$s" \
    'j.host.xen_free_kib >= 8388608 + j.host.reserved_kib' true
assert_no_violations "no violation after the coalesced reservations"

# The login deletes the 8 GiB: the periodic balance hands it back, slowly (8 s).
rpc login '["dbg", "xenopsd"]' >/dev/null
n=0
while [ $n -lt 50 ]; do
    b=$(http_get /status | jget 'j.daemon.busy')
    [ "$b" = true ] && break
    sleep 0.1
    n=$((n + 1))
done
assert_eq "a periodic balance runs" true "$b"
sleep 0.5
t0=$(now_ms)
r=$(rpc reserve_memory '["vm9", "xenopsd", 1048576]')
t1=$(now_ms)
assert_json "the reservation sent during the balance succeeds" "$r" .error null
s=$(http_get /status)
assert_json "the periodic balance gave way" "$s" \
    'j.operations.some(o => o.kind == "periodic_balance" && o.outcome == "preempted")' true
w=$(printf '%s' "$s" | jget 'j.operations.filter(o => o.kind == "reserve").pop().wait_ms')
note "reservation during a balance: waited $w ms, answered in $((t1 - t0)) ms"
assert_range "it started within one poll interval" "$w" 0 $((250 * E2E_LIMIT_SCALE))
assert_no_violations "no violation"
stop_daemon
e2e_finish
