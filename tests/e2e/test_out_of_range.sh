#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# A guest whose xenstore holds a value out of range (issue 8: memory/dynamic-max = 2^45
# KiB, above the 2^40 KiB limit) is left out of the snapshot, not ballooned, shown as
# such in /status, logged once; reservations from the other guests still succeed, and
# once repaired it is balanced again. The daemon built with the fake Xen libraries
# (backend/xen.c over tests/fakexen, real clock): the value is written into the fake
# xenstore as a toolstack would, through FAKEXEN_FAULT_FILE's "write PATH VALUE".
. "$(dirname "$0")/lib.sh"
SQUEEZED_BIN=${SQUEEZED_FAKEXEN_BIN:-$BUILD/squeezed-fakexen}
e2e_init out_of_range 60
cd "$E2E_ROOT" || exit 1
FAKEXEN_SCENARIO=scenarios/e2e-flow.json # 1 GiB free; guests 1, 2 at 2 GiB in [1, 2] GiB
FAKEXEN_FAULT_FILE=$TMPD/fault
export FAKEXEN_SCENARIO FAKEXEN_FAULT_FILE
REASON="memory/dynamic-max = 35184372088832: above the limit of 1099511627776 KiB"

fault() {
    printf '%s\n' "$@" >"$TMPD/fault.tmp"
    mv "$TMPD/fault.tmp" "$FAKEXEN_FAULT_FILE"
}

# wait_status NAME SECONDS JS-EXPR: poll /status until the expression holds.
wait_status() {
    _t=$(($2 * E2E_LIMIT_SCALE * 10))
    while [ "$_t" -gt 0 ]; do
        _s=$(http_get /status)
        if [ "$(printf '%s' "$_s" | jget "!!($3)")" = true ]; then
            pass "$1"
            return 0
        fi
        sleep 0.1
        _t=$((_t - 1))
    done
    fail "$1" "not within $2 s: $3; last: $(printf '%s' "$_s" | head -c 600)"
    return 1
}

# The fake reads its fault file only when the daemon calls into it: a 1 s balance check
# makes that happen within the waits below, whatever the load.
start_daemon --backend xen --clock real --balance-interval-s 1 || e2e_finish
rpc login '["dbg", "xenopsd"]' >/dev/null
fault "write /local/domain/1/memory/dynamic-max 35184372088832"
wait_status "the guest with dynamic-max = 2^45 KiB is shown as left out" 5 \
    "j.domains.find(d => d.domid == 1).excluded == \"$REASON\""
st=$(http_get /status)
assert_json "the left-out guest is not ballooned" "$st" \
    '.domains.find(d => d.domid == 1).can_balloon' false
assert_json "the other guest is balanced as before" "$st" \
    '.domains.find(d => d.domid == 2).can_balloon' true

# 1.5 GiB with 1 GiB free: guest 2 must give the rest (before the fix: "cannot read the
# host" for every reservation).
r=$(rpc reserve_memory '["dbg", "xenopsd", 1572864]')
assert_json "a reservation from the other guest succeeds" "$r" \
    'typeof j.result == "string" && j.error === null' true
r=$(rpc sim.state '[]')
assert_json "the left-out guest kept its target" "$r" \
    '.result.domains.find(d => d.domid == 1).target_kib' 2097152
assert_json "the other guest gave memory" "$r" \
    '.result.domains.find(d => d.domid == 2).target_kib < 2097152' true
r=$(rpc balance_memory '["dbg"]')
assert_json "balancing still succeeds" "$r" .error null
assert_match "diagnostics show the guest left out" "LEFT OUT: $REASON" \
    "$(rpc get_diagnostics '["dbg"]' | jget .result)"
assert_eq "logged once (domid, key, value), not at every snapshot" 1 \
    "$(grep -c "domid 1: left out of the snapshot, not ballooned: $REASON" "$DAEMON_LOG")"

# Repaired by the toolstack: back in, balanced again.
fault "write /local/domain/1/memory/dynamic-max 2097152"
wait_status "repaired: the guest is back in" 5 \
    "j.domains.find(d => d.domid == 1).excluded === undefined &&
     j.domains.find(d => d.domid == 1).can_balloon"
assert_match "repaired: logged" "domid 1: back in the snapshot" "$(cat "$DAEMON_LOG")"
assert_no_violations "no violation on the fake host"
assert_true "daemon alive" daemon_alive
stop_daemon
e2e_finish
