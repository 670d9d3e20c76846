#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# xenstore faults under the daemon built with the fake Xen libraries (backend/xen.c over
# tests/fakexen, real clock), injected through FAKEXEN_FAULT_FILE: the connection lost
# and back, transaction conflicts (a few: retried; endless: the write fails), watch
# bursts within and beyond the event queue, a domain destroyed at the read and inside
# the transaction of a transfer. After each: the daemon keeps serving, the cache was
# rebuilt where events were lost (status cache.rebuilds), the reservations are all
# there, and /status agrees with the fake host's truth.
. "$(dirname "$0")/lib.sh"
# SQUEEZED_FAKEXEN_BIN: another binary to run instead (the valgrind stage's wrapper).
SQUEEZED_BIN=${SQUEEZED_FAKEXEN_BIN:-$BUILD/squeezed-fakexen}
e2e_init fakexen_faults 60
cd "$E2E_ROOT" || exit 1
FAKEXEN_SCENARIO=scenarios/e2e-flow.json
FAKEXEN_FAULT_FILE=$TMPD/fault
export FAKEXEN_SCENARIO FAKEXEN_FAULT_FILE
expected=$TMPD/expected # the reservations granted, one id per line
: >"$expected"

# fault LINE...: hand the fake its next faults (renamed into place: read whole).
fault() {
    printf '%s\n' "$@" >"$TMPD/fault.tmp"
    mv "$TMPD/fault.tmp" "$FAKEXEN_FAULT_FILE"
}

# taken NAME: the fault file was consumed (it is, at the next call into the fake).
taken() {
    _t=$((5 * E2E_LIMIT_SCALE * 20))
    while [ "$_t" -gt 0 ] && [ -e "$FAKEXEN_FAULT_FILE" ]; do
        sleep 0.05
        _t=$((_t - 1))
    done
    assert_true "$1" test ! -e "$FAKEXEN_FAULT_FILE"
}

cache() {
    http_get /status | jget ".cache.$1"
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
    fail "$1" "not within $2 s: $3; last: $(printf '%s' "$_s" | head -c 400)"
    return 1
}

reserve() {
    _r=$(rpc reserve_memory "[\"dbg\", \"xenopsd\", $2]")
    _id=$(printf '%s' "$_r" | jget 'typeof j.result == "string" ? j.result : ""')
    if [ -n "$_id" ]; then
        pass "$1"
        echo "$_id" >>"$expected"
        echo "$_id" >"$TMPD/last"
    else
        fail "$1" "$_r"
        : >"$TMPD/last"
    fi
}

# all_there NAME: /status lists exactly the reservations granted.
all_there() {
    assert_eq "$1" "$(sort "$expected" | paste -sd, -)" \
        "$(http_get /status | jget 'j.reservations.map(r => r.id).sort().join(",")')"
}

# truth NAME: /status says what the fake host says: the same domains, targets, maxmem
# (dom0's is not used), ranges, actual to the page. Asked again a few times: the two
# are read one after the other while the daemon may be publishing.
truth() {
    _t=$((3 * E2E_LIMIT_SCALE * 10))
    while :; do
        _s=$(http_get /status)
        _w=$(rpc sim.state '[]')
        _v=$(printf '{"s":%s,"w":%s}' "$_s" "$_w" | jget '(() => {
            const w = j.w.result.domains, s = j.s.domains;
            if (w.map(d => d.domid).join() != s.map(d => d.domid).join())
                return "domains " + s.map(d => d.domid) + " vs " + w.map(d => d.domid);
            for (const t of w) {
                const d = s.find(x => x.domid == t.domid);
                if (d.target_kib != t.target_kib || (d.domid != 0 && d.maxmem_kib != t.maxmem_kib)
                    || Math.abs(d.actual_kib - t.actual_kib) >= 4 || d.can_balloon != t.can_balloon
                    || (d.can_balloon && (d.dynamic_min_kib != t.dynamic_min_kib ||
                                          d.dynamic_max_kib != t.dynamic_max_kib)))
                    return "domid " + t.domid + ": " + JSON.stringify(d) + " vs " + JSON.stringify(t);
            }
            return "ok";
        })()')
        [ "$_v" = ok ] && break
        _t=$((_t - 1))
        [ "$_t" -gt 0 ] || break
        sleep 0.1
    done
    assert_eq "$1" ok "$_v"
}

start_daemon --backend xen --clock real || e2e_finish
rpc login '["dbg", "xenopsd"]' >/dev/null
reserve "a first reservation" 262144
rebuilds=$(cache rebuilds)

# ---- the xenstore connection lost and back ----------------------------------------------
fault drop-connection
reserve "connection lost: the reservation that meets it is granted" 131072
taken "connection lost: the fault was injected"
assert_match "connection lost: the daemon reconnected" "connection lost; reconnecting" \
    "$(cat "$DAEMON_LOG")"
wait_status "connection lost: the cache was rebuilt" 5 "j.cache.rebuilds > $rebuilds"
assert_json "connection lost: watching again" "$(http_get /status)" .cache.watching true
all_there "connection lost: every reservation is there"
truth "connection lost: status agrees with the host"
# The watches were registered again: a new range is seen without asking.
rpc sim.set_dynamic_range '[1, 1048576, 1835008]' >/dev/null
wait_status "connection lost: a change after it is seen through the watches" 5 \
    'j.domains.find(d => d.domid == 1).dynamic_max_kib == 1835008'
truth "connection lost: and balanced on it"

# ---- transaction conflicts ---------------------------------------------------------------
fault "eagain 5"
reserve "5 conflicts: retried, the reservation is granted" 65536
taken "5 conflicts: the fault was injected"
fault "eagain 1000000"
r=$(rpc reserve_memory '["dbg", "xenopsd", 65536]')
taken "endless conflicts: the fault was injected"
assert_json "endless conflicts: the reservation cannot be recorded, and says so" "$r" \
    '.error[0]' Internal_error
all_there "endless conflicts: no reservation half-made"
fault "eagain 0"
reserve "conflicts over: reservations are granted again" 65536
taken "conflicts over: the fault was cleared"
all_there "conflicts: every reservation is there"

# ---- watch bursts ------------------------------------------------------------------------
events=$(cache watch_events)
rebuilds=$(cache rebuilds)
fault "burst 2000 /local/domain/2/memory/dynamic-max"
r=$(rpc balance_memory '["dbg"]')
taken "a burst of 2000 events: injected"
wait_status "a burst of 2000 events: all taken" 5 "j.cache.watch_events >= $events + 2000"
assert_eq "a burst of 2000 events: no rebuild needed" "$rebuilds" "$(cache rebuilds)"
fault "burst 70000 /local/domain/2/memory/dynamic-max"
r=$(rpc balance_memory '["dbg"]')
assert_json "a burst beyond the event queue: the daemon answers" "$r" .error null
taken "a burst beyond the event queue: injected"
wait_status "a burst beyond the event queue: connection dropped, cache rebuilt" 5 \
    "j.cache.rebuilds > $rebuilds && j.cache.watching"
all_there "bursts: every reservation is there"
truth "bursts: status agrees with the host"

# ---- a domain destroyed in the middle of a transfer ---------------------------------------
reserve "destroyed at the read: reserved" 65536
id=$(cat "$TMPD/last")
r=$(rpc sim.create_domain '[{"domid": 10, "target_kib": 65536, "maxmem_kib": 65536,
    "initial_reservation_kib": 65536, "boot_after_s": 600}]')
assert_json "destroyed at the read: the domain is created" "$r" .error null
fault "destroy-at-read 10"
r=$(rpc transfer_reservation_to_domain "[\"dbg\", \"xenopsd\", \"$id\", 10]")
taken "destroyed at the read: injected"
assert_json "destroyed at the read: the transfer says the domain is gone" "$r" .error \
    '["Internal_error","domain 10 does not exist"]'
assert_json_true "destroyed at the read: the reservation stays, not transferred" \
    "$(http_get /status)" "j.reservations.find(r => r.id == '$id').domid === undefined"

reserve "destroyed in the transaction: reserved" 65536
id=$(cat "$TMPD/last")
rpc sim.create_domain '[{"domid": 11, "target_kib": 65536, "maxmem_kib": 65536,
    "initial_reservation_kib": 65536, "boot_after_s": 600}]' >/dev/null
fault "destroy-in-transaction 11"
r=$(rpc transfer_reservation_to_domain "[\"dbg\", \"xenopsd\", \"$id\", 11]")
taken "destroyed in the transaction: injected"
assert_json "destroyed in the transaction: the transfer says the domain is gone" "$r" .error \
    '["Internal_error","domain 11 does not exist"]'
w=$(rpc sim.state '[]')
assert_json "the destroyed domains are gone" "$w" \
    'j.result.domains.filter(d => d.domid >= 10).length' 0
all_there "destroyed: every reservation is there"
truth "destroyed: status agrees with the host"

# ---- the end -----------------------------------------------------------------------------
ok=0
for id in $(cat "$expected"); do
    r=$(rpc delete_reservation "[\"dbg\", \"xenopsd\", \"$id\"]")
    [ "$(printf '%s' "$r" | jget .error)" = null ] && ok=$((ok + 1))
done
assert_eq "every reservation can be deleted" "$(wc -l <"$expected" | tr -d ' ')" "$ok"
assert_json "none left" "$(http_get /status)" .reservations.length 0
assert_no_violations "no violation on the fake host"
assert_true "daemon alive through every fault" daemon_alive
stop_daemon
assert_true "the daemon logs no sanitizer report" sh -c "! grep -q Sanitizer '$DAEMON_LOG'"
e2e_finish
