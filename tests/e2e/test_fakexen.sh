#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# The xenopsd flow and the failures against the real Xen backend (backend/xen.c) linked
# with the fake libxenctrl/libxenstore over a simulated host: build/squeezed-fakexen
# --backend xen, real clock.
. "$(dirname "$0")/lib.sh"
e2e_init fakexen 120
cd "$E2E_ROOT" || exit 1
# SQUEEZED_FAKEXEN_BIN: another binary to run instead (the valgrind stage's wrapper).
SQUEEZED_BIN=${SQUEEZED_FAKEXEN_BIN:-$BUILD/squeezed-fakexen}
export FAKEXEN_SCENARIO

# wait_until NAME SECONDS JS-EXPR: poll sim.state until the expression holds.
wait_until() {
    _n=$1
    _t=$(($2 * E2E_LIMIT_SCALE * 5))
    while [ "$_t" -gt 0 ]; do
        _w=$(rpc sim.state '[]')
        if [ "$(printf '%s' "$_w" | jget "!!($3)")" = true ]; then
            pass "$_n"
            return 0
        fi
        sleep 0.2
        _t=$((_t - 1))
    done
    fail "$_n" "not within $2 s: $3; last: $(printf '%s' "$_w" | head -c 400)"
    return 1
}

FAKEXEN_SCENARIO=scenarios/e2e-flow.json
start_daemon --backend xen --clock real || e2e_finish
s=$(http_get /status)
assert_json "the backend is xen" "$s" .daemon.backend xen
assert_json "the clock is real" "$s" .daemon.clock real
assert_json "the fake hypervisor lists the scenario's domains" "$s" \
    'j.domains.map(d => d.domid).join(",")' 0,1,2
assert_json_true "hypercalls are counted" "$s" 'j.cache.hypercalls > 0'
r=$(rpc sim.advance '[1]')
assert_json "sim.advance is refused on the real clock" "$r" '.error[0]' Internal_error

rpc login '["dbg", "xenopsd"]' >/dev/null
r=$(rpc reserve_memory_range '["dbg", "xenopsd", 1572864, 2097152]')
id=$(printf '%s' "$r" | jget '.result[0]')
kib=$(printf '%s' "$r" | jget '.result[1]')
assert_range "reserve_memory_range through xen.c" "$kib" 1572864 2097152
w=$(rpc sim.state '[]')
assert_json_true "the fake host really has the memory free" "$w" \
    "j.result.free_kib >= $kib + 73728"
r=$(rpc sim.create_domain "[{\"domid\": 10, \"dynamic_min_kib\": 1048576,
    \"dynamic_max_kib\": $kib, \"target_kib\": $kib, \"initial_reservation_kib\": $kib,
    \"boot_after_s\": 1, \"balloon\": {\"rate_kib_s\": 4194304}}]")
assert_json "sim.create_domain on the fake host" "$r" .error null
r=$(rpc transfer_reservation_to_domain "[\"dbg\", \"xenopsd\", \"$id\", 10]")
assert_json "transfer through xen.c" "$r" .error null
r=$(rpc query_reservation_of_domain '["dbg", "xenopsd", 10]')
assert_json "query through xen.c" "$r" .result "$id"
wait_until "the domain boots" 20 'j.result.domains.find(d => d.domid == 10 && d.can_balloon)'
# The daemon learns it from the watch event the boot fires, a moment later (under
# valgrind, a long one).
_t=$((5 * E2E_LIMIT_SCALE * 5))
while :; do
    s=$(http_get /status)
    b=$(printf '%s' "$s" | jget 'j.domains.find(d => d.domid == 10).booting')
    [ "$b" = false ] || [ "$_t" -le 0 ] && break
    sleep 0.2
    _t=$((_t - 1))
done
assert_json "status: the domain is no longer booting" "$s" \
    'j.domains.find(d => d.domid == 10).booting' false
r=$(rpc delete_reservation "[\"dbg\", \"xenopsd\", \"$id\"]")
assert_json "delete through xen.c" "$r" .error null
assert_no_violations "no violation in the flow over xen.c"
stop_daemon "fakexen flow: clean stop"

FAKEXEN_SCENARIO=scenarios/e2e-cannot-free.json
start_daemon --backend xen --clock real || e2e_finish
rpc login '["dbg", "xenopsd"]' >/dev/null
r=$(rpc reserve_memory '["dbg", "xenopsd", 2097152]')
assert_json "Cannot_free through xen.c" "$r" '.error[0]' Cannot_free_this_much_memory
assert_json "Cannot_free: needed" "$r" '.error[1][0]' 2170880
assert_range "Cannot_free: free" "$(printf '%s' "$r" | jget '.error[1][1]')" 1048560 1048576
stop_daemon "fakexen cannot-free: clean stop"

FAKEXEN_SCENARIO=scenarios/e2e-stuck.json
start_daemon --backend xen --clock real || e2e_finish
rpc login '["dbg", "xenopsd"]' >/dev/null
r=$(rpc reserve_memory '["dbg", "xenopsd", 1572864]')
assert_json "Domains_refused_to_cooperate through xen.c" "$r" .error \
    '["Domains_refused_to_cooperate",[2]]'
assert_no_violations "no violation with a stuck guest over xen.c"
stop_daemon "fakexen stuck: clean stop"
e2e_finish
