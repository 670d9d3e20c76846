#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# The errors xenopsd must be able to tell apart, from the real daemon on the simulated
# host (virtual clock): Cannot_free_this_much_memory with the right figures,
# Domains_refused_to_cooperate naming the stuck guest, Unknown_reservation,
# No_reservation, a missing domain, an unknown session, bad sizes. Nothing changes on
# any of them.
. "$(dirname "$0")/lib.sh"
e2e_init failures 90
cd "$E2E_ROOT" || exit 1

# dynamic-mins too high: 512 MiB free + 512 MiB guest 1 can give = 1 GiB at most.
start_daemon --scenario scenarios/e2e-cannot-free.json || e2e_finish
rpc login '["dbg", "xenopsd"]' >/dev/null
r=$(rpc reserve_memory '["dbg", "xenopsd", 2097152]')
assert_json "Cannot_free_this_much_memory" "$r" '.error[0]' Cannot_free_this_much_memory
assert_json "Cannot_free: needed = asked + host reserve" "$r" '.error[1][0]' 2170880
assert_range "Cannot_free: free = what the guests could give" \
    "$(printf '%s' "$r" | jget '.error[1][1]')" 1048560 1048576
r=$(rpc2 '{"jsonrpc": "2.0", "id": 7, "method": "reserve_memory_range",
    "params": {"session_id": "xenopsd", "min_kib": 1572864, "max_kib": 3145728}}')
assert_json "range: Cannot_free in JSON-RPC 2.0 data" "$r" '.error.data[0]' \
    Cannot_free_this_much_memory
assert_json "range: needed = min + host reserve" "$r" '.error.data[1][0]' 1646592
s=$(http_get /status)
assert_json "nothing reserved after the failures" "$s" .reservations.length 0
assert_json_true "status records the cannot_free outcomes" "$s" \
    'j.operation_totals.find(t => t.kind == "reserve" && t.outcome == "cannot_free").count == 1
     && j.operation_totals.find(t => t.kind == "reserve_range"
                                && t.outcome == "cannot_free").count == 1'
assert_no_violations "no violation while failing to free"
stop_daemon

# A stuck guest holds the memory that is missing.
start_daemon --scenario scenarios/e2e-stuck.json || e2e_finish
rpc login '["dbg", "xenopsd"]' >/dev/null
r=$(rpc reserve_memory '["dbg", "xenopsd", 1572864]')
assert_json "Domains_refused_to_cooperate" "$r" '.error[0]' Domains_refused_to_cooperate
assert_json "the stuck guest is named" "$r" '.error[1]' '[2]'
s=$(http_get /status)
assert_json "status: guest 2 stuck" "$s" 'j.domains.find(d => d.domid == 2).stuck' true
assert_json "status: guest 1 not stuck" "$s" 'j.domains.find(d => d.domid == 1).stuck' false
assert_json "status: refused outcome" "$s" \
    'j.operations[j.operations.length - 1].outcome' refused
# The toolstack lowers guest 2's range below what it holds: the balance lowers its
# target, the stuck balloon does not follow, and 20 s later it is uncooperative.
r=$(rpc sim.set_dynamic_range '[2, 1048576, 1572864]')
assert_json "sim.set_dynamic_range" "$r" .error null
rpc sim.advance '[30]' >/dev/null
s=$(http_get /status)
assert_json_true "status: guest 2's target follows its new range" "$s" \
    'j.domains.find(d => d.domid == 2).target_kib <= 1572864'
assert_json "status: guest 2 uncooperative after 20 s away from its target" "$s" \
    'j.domains.find(d => d.domid == 2).uncooperative' true
w=$(rpc sim.state '[]')
assert_json "sim: memory/uncooperative written for guest 2" "$w" \
    'j.result.domains.find(d => d.domid == 2).uncooperative' true

# Ids and domains that do not exist.
fake=01234567-89ab-4cde-8f01-23456789abcd
r=$(rpc delete_reservation "[\"dbg\", \"xenopsd\", \"$fake\"]")
assert_json "delete of an unknown id" "$r" '.error' "[\"Unknown_reservation\",\"$fake\"]"
r=$(rpc transfer_reservation_to_domain "[\"dbg\", \"xenopsd\", \"$fake\", 1]")
assert_json "transfer of an unknown id" "$r" '.error[0]' Unknown_reservation
r=$(rpc query_reservation_of_domain '["dbg", "xenopsd", 1]')
assert_json "query of a domain without one: No_reservation" "$r" .error No_reservation
r=$(rpc query_reservation_of_domain '["dbg", "xenopsd", 4000]')
assert_json "query of a missing domain: No_reservation" "$r" .error No_reservation

r=$(rpc reserve_memory '["dbg", "xenopsd", 65536]')
id=$(printf '%s' "$r" | jget .result)
assert_ne "a small reservation still succeeds" "" "$id"
r=$(rpc transfer_reservation_to_domain "[\"dbg\", \"xenopsd\", \"$id\", 99]")
assert_json "transfer to a missing domain" "$r" .error \
    '["Internal_error","domain 99 does not exist"]'
s=$(http_get /status)
assert_json_true "the reservation is untouched" "$s" \
    "j.reservations.length == 1 && j.reservations[0].id == '$id' && j.reservations[0].domid === undefined"

r=$(rpc reserve_memory '["dbg", "ghost", 65536]')
assert_json "an unknown session" "$r" '.error[0]' Internal_error
assert_match "the message says to log in" "unknown session 'ghost'" \
    "$(printf '%s' "$r" | jget '.error[1]')"
r=$(rpc reserve_memory '["dbg", "xenopsd", -1]')
assert_json "a negative size" "$r" .error '["Invalid_memory_value",-1]'
r=$(rpc reserve_memory '["dbg", "xenopsd", 0]')
assert_json "a zero size is a valid reservation of 0 KiB" "$r" .error null
zid=$(printf '%s' "$r" | jget .result)
r=$(rpc delete_reservation "[\"dbg\", \"xenopsd\", \"$zid\"]")
assert_json "the 0 KiB reservation is deleted" "$r" .error null
r=$(rpc reserve_memory_range '["dbg", "xenopsd", 4096, 1024]')
assert_json "an upside-down range" "$r" '.error[0]' Invalid_memory_value
s=$(http_get /status)
assert_json "still one reservation" "$s" .reservations.length 1
assert_no_violations "no violation with a stuck guest"
assert_true "daemon still alive" daemon_alive
stop_daemon
e2e_finish
