#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# The verdicts of issue 10 from the real daemon on the simulated host (virtual clock):
# reserve_memory(0) is a reservation; a request no squeeze could meet is answered
# Cannot_free_this_much_memory at once, with no target changed and nobody blamed;
# claims (sim.set_claim) are memory that is not free and are never handed to guests;
# a paused guest (sim.pause_domain) gets no increase.
. "$(dirname "$0")/lib.sh"
e2e_init verdicts 90
cd "$E2E_ROOT" || exit 1

start_daemon --scenario scenarios/demo.json || e2e_finish
rpc login '["dbg", "xenopsd"]' >/dev/null

# 0 KiB is a size.
r=$(rpc reserve_memory '["dbg", "xenopsd", 0]')
assert_json "reserve_memory(0) is a reservation" "$r" .error null
assert_json_true "reserve_memory(0) returns an id" "$r" 'typeof j.result == "string"'
r=$(rpc reserve_memory '["dbg", "xenopsd", -1]')
assert_json "a negative size is still refused" "$r" .error '["Invalid_memory_value",-1]'

# 64 TiB on the demo host: impossible whatever the guests do.
before=$(rpc sim.state '[]' | jget 'JSON.stringify(j.result.domains.map(d => d.target_kib))')
t0=$(now_ms)
r=$(rpc reserve_memory '["dbg", "xenopsd", 68719476736]')
t1=$(now_ms)
assert_json "impossible: Cannot_free_this_much_memory" "$r" '.error[0]' \
    Cannot_free_this_much_memory
assert_json "impossible: needed = asked + host reserve" "$r" '.error[1][0]' 68719550464
assert_json_true "impossible: free < needed" "$r" 'j.error[1][1] < j.error[1][0]'
note "64 TiB answered in $((t1 - t0)) ms of wall time: $r"
s=$(http_get /status)
assert_json "impossible: one round" "$s" 'j.operations[j.operations.length - 1].rounds' 1
assert_json "impossible: no virtual time spent" "$s" \
    'j.operations[j.operations.length - 1].duration_ms' 0
assert_json "impossible: nobody found stuck" "$s" 'j.domains.filter(d => d.stuck).length' 0
after=$(rpc sim.state '[]' | jget 'JSON.stringify(j.result.domains.map(d => d.target_kib))')
assert_eq "impossible: no target changed" "$before" "$after"

# A claim is memory that is not free.
r=$(rpc sim.set_claim '[2, 1048576]')
assert_json "sim.set_claim" "$r" .error null
w=$(rpc sim.state '[]')
assert_json "sim.state: host claimed_kib" "$w" .result.claimed_kib 1048576
assert_json "sim.state: the domain's claim_kib" "$w" \
    'j.result.domains.find(d => d.domid == 2).claim_kib' 1048576
rpc balance_memory '["dbg"]' >/dev/null
r=$(rpc reserve_memory '["dbg", "xenopsd", 1048576]')
assert_json "a reservation next to the claim" "$r" .error null
s=$(http_get /status)
c=$(rpc sim.state '[]' | jget .result.claimed_kib)
# Domain 2 balloons up during the balance: its own allocations come out of its claim.
assert_json_true "status: the claim (what is left of it) counted out of free memory" "$s" \
    "j.host.claims_kib == Math.ceil($c / 4) * 4 && j.host.claims_kib > 0"
assert_json_true "status: free = Xen free - claims - reservations" "$s" \
    'j.host.free_kib == j.host.xen_free_kib + j.host.scrub_kib - j.host.claims_kib
     - j.host.reservations_kib - j.host.booting_unused_kib'
w=$(rpc sim.state '[]')
assert_json_true "sim: what is free covers the claim, the reservations and the reserve" "$w" \
    'j.result.free_kib - j.result.claimed_kib >= 1048576 + 73728'
r=$(rpc sim.set_claim '[2, 0]')
assert_json "sim.set_claim 0 clears it" "$r" .error null
assert_json "sim.state: nothing claimed" "$(rpc sim.state '[]')" .result.claimed_kib 0
r=$(rpc sim.set_claim '[2, 1099511627776]')
assert_json "a claim beyond free memory is refused" "$r" '.error[0]' Internal_error
r=$(rpc2 '{"jsonrpc": "2.0", "id": 3, "method": "sim.set_claim",
    "params": {"domid": 2, "kib": 1099511627776}}')
assert_json "in JSON-RPC 2.0: invalid params" "$r" .error.code -32602

# A paused guest gets no increase.
r=$(rpc sim.pause_domain '[1, true]')
assert_json "sim.pause_domain" "$r" .error null
assert_json "sim.state: paused" "$(rpc sim.state '[]')" \
    'j.result.domains.find(d => d.domid == 1).paused' true
t1=$(rpc sim.state '[]' | jget 'j.result.domains.find(d => d.domid == 1).target_kib')
s=$(http_get /status)
for id in $(printf '%s' "$s" | jget 'j.reservations.map(r => r.id).join(" ")'); do
    rpc delete_reservation "[\"dbg\", \"xenopsd\", \"$id\"]" >/dev/null
done
r=$(rpc balance_memory '["dbg"]')
assert_json "balance with a paused guest" "$r" .error null
assert_json "/status marks the guest paused (the dashboard shows it)" "$(http_get /status)" \
    '.domains.find(d => d.domid == 1).paused' true
w=$(rpc sim.state '[]')
assert_json_true "the paused guest's target did not go up" "$w" \
    "j.result.domains.find(d => d.domid == 1).target_kib <= $t1"
r=$(rpc2 '{"jsonrpc": "2.0", "id": 4, "method": "sim.pause_domain",
    "params": {"domid": 1, "paused": "yes"}}')
assert_json "paused must be a boolean" "$r" .error.code -32602
r=$(rpc sim.pause_domain '[1, false]')
assert_json "unpaused" "$r" .error null

assert_no_violations "no violation"
assert_true "daemon still alive" daemon_alive
stop_daemon
e2e_finish
