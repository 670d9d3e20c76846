#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# The path xenopsd takes to start a VM, against the real daemon on the simulated host
# (virtual clock): login, reserve a range, create the domain, transfer, query, let it
# boot, delete; /status and sim.state checked at every step, no violation anywhere.
. "$(dirname "$0")/lib.sh"
e2e_init xenopsd_flow 90
cd "$E2E_ROOT" || exit 1

start_daemon --scenario scenarios/e2e-flow.json || e2e_finish

r=$(rpc login '["dbg", "xenopsd"]')
assert_json "login returns the session id" "$r" .result xenopsd
s=$(http_get /status)
assert_json "no reservation at start" "$s" .reservations.length 0
assert_json "status names the backend" "$s" .daemon.backend sim
assert_json "status names the clock" "$s" .daemon.clock virtual
assert_json "not busy at start" "$s" .daemon.busy false
assert_json "reserve in status" "$s" .host.reserved_kib 73728

r=$(rpc get_host_reserved_memory '["dbg"]')
assert_json "get_host_reserved_memory (KiB)" "$r" .result 73728
r=$(rpc get_host_initial_free_memory '["dbg"]')
assert_json "get_host_initial_free_memory (bytes)" "$r" .result 1073741824
r=$(rpc get_domain_zero_policy '["dbg"]')
assert_json "get_domain_zero_policy: dom0 is left alone at its size" "$r" .result \
    '["Fixed_size",1073741824]'

r=$(rpc reserve_memory_range '["dbg", "xenopsd", 1572864, 2097152]')
id=$(printf '%s' "$r" | jget '.result[0]')
kib=$(printf '%s' "$r" | jget '.result[1]')
assert_json "reserve_memory_range succeeds" "$r" .error null
assert_match "reservation id is a UUID" \
    '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' "$id"
assert_range "reserved kib within [min, max]" "$kib" 1572864 2097152

s=$(http_get /status)
assert_json "status lists the reservation" "$s" '.reservations[0].id' "$id"
assert_json "status: reservation kib" "$s" '.reservations[0].kib' "$kib"
assert_json "status: reservation session" "$s" '.reservations[0].session' xenopsd
assert_json_true "status: untransferred reservation has no domid" "$s" \
    'j.reservations[0].domid === undefined'
assert_json "status: untransferred reservation subtracted" "$s" .host.reservations_kib "$kib"
assert_json "status: operation recorded" "$s" \
    'j.operations[j.operations.length - 1].kind + "/" + j.operations[j.operations.length - 1].outcome' \
    reserve_range/success
assert_json_true "status: totals count it" "$s" \
    'j.operation_totals.find(t => t.kind == "reserve_range" && t.outcome == "success").count == 1'
w=$(rpc sim.state '[]')
assert_json_true "the simulated host really has the memory free" "$w" \
    "j.result.free_kib >= $kib + 73728"

# xenopsd builds the domain with the reserved memory as its initial reservation.
r=$(rpc sim.create_domain "[{\"domid\": 10, \"dynamic_min_kib\": 1048576,
    \"dynamic_max_kib\": $kib, \"target_kib\": $kib, \"initial_reservation_kib\": $kib,
    \"boot_after_s\": 10}]")
assert_json "sim.create_domain" "$r" .error null
r=$(rpc transfer_reservation_to_domain "[\"dbg\", \"xenopsd\", \"$id\", 10]")
assert_json "transfer_reservation_to_domain" "$r" .error null
s=$(http_get /status)
assert_json "status: reservation now names the domain" "$s" '.reservations[0].domid' 10
assert_json "status: transferred reservation not counted twice" "$s" \
    .host.reservations_kib 0
assert_json "status: the new domain is booting" "$s" \
    'j.domains.find(d => d.domid == 10).booting' true

r=$(rpc query_reservation_of_domain '["dbg", "xenopsd", 10]')
assert_json "query_reservation_of_domain finds it" "$r" .result "$id"
r=$(rpc query_reservation_of_domain '["dbg", "xenopsd", 1]')
assert_json "a domain without reservation: No_reservation" "$r" .error No_reservation

# Unbooted for 10 s: it allocates its initial reservation (at 256 MiB/s) meanwhile.
r=$(rpc sim.advance '[8]')
assert_json "sim.advance 8 s" "$r" .error null
w=$(rpc sim.state '[]')
assert_json_true "the booting domain has allocated its reservation" "$w" \
    "j.result.domains.find(d => d.domid == 10).actual_kib >= $kib - 4"
assert_json_true "the host did not give the reservation away meanwhile" "$w" \
    'j.result.free_kib >= 0'
s=$(http_get /status)
assert_json "status: still booting after 8 s" "$s" \
    'j.domains.find(d => d.domid == 10).booting' true
r=$(rpc sim.advance '[30]')
assert_json "sim.advance 30 s" "$r" .error null
w=$(rpc sim.state '[]')
assert_json "the domain has booted (balloon driver up)" "$w" \
    'j.result.domains.find(d => d.domid == 10).can_balloon' true
s=$(http_get /status)
assert_json "status: the domain is no longer booting" "$s" \
    'j.domains.find(d => d.domid == 10).booting' false
assert_json_true "status: once booted it is balanced within its range" "$s" \
    "(d => d.can_balloon && d.target_kib >= 1048576 && d.target_kib <= $kib)(j.domains.find(d => d.domid == 10))"
assert_json_true "status: now_ms follows the virtual clock" "$s" 'j.daemon.now_ms >= 30000'

# The /status document has exactly the agreed shape (every object's keys and types).
assert_json "status: the agreed shape" "$s" '(() => {
    const keys = (o) => Object.keys(o).sort().join(",");
    const types = (o) => Object.keys(o).sort().map(k => k + ":" + typeof o[k]).join(",");
    const out = [keys(j), types(j.host), types(j.domains[0]), types(j.reservations[0]),
                 types(j.operations[0]), types(j.operation_totals[0]), types(j.cache),
                 types(j.daemon)];
    return out.join(" | ");
})()' "cache,client_waits,daemon,domains,histogram_bounds_s,host,operation_totals,operations,reservations | booting_unused_kib:number,claims_kib:number,free_kib:number,reservations_kib:number,reserved_kib:number,scrub_kib:number,total_kib:number,xen_free_kib:number | actual_kib:number,booting:boolean,can_balloon:boolean,domid:number,dynamic_max_kib:number,dynamic_min_kib:number,maxmem_kib:number,paused:boolean,stuck:boolean,target_kib:number,type:string,uncooperative:boolean | domid:number,id:string,kib:number,session:string | at_ms:number,dbg:string,duration_ms:number,kib:number,kind:string,outcome:string,reservations:number,rounds:number,session:string,started:string,wait_ms:number,waited_ms:number | buckets:object,count:number,duration_ms_sum:number,kind:string,outcome:string | hypercalls:number,rebuilds:number,snapshots:number,watch_events:number,watching:boolean,xenstore_reads:number,xenstore_writes:number | backend:string,busy:boolean,clock:string,now_ms:number,uptime_s:number,version:string"
r=$(rpc delete_reservation "[\"dbg\", \"xenopsd\", \"$id\"]")
assert_json "delete_reservation" "$r" .error null
s=$(http_get /status)
assert_json "status: no reservation left" "$s" .reservations.length 0
r=$(rpc delete_reservation "[\"dbg\", \"xenopsd\", \"$id\"]")
assert_json "a second delete: Unknown_reservation" "$r" '.error[0]' Unknown_reservation

r=$(rpc balance_memory '["dbg"]')
assert_json "balance_memory" "$r" .error null
r=$(rpc sim.advance '[20]')
w=$(rpc sim.state '[]')
assert_json_true "host free memory never below the reserve after balancing" "$w" \
    'j.result.free_kib >= 73728 - 512'
assert_no_violations "no violation in the whole flow"
assert_true "daemon still alive" daemon_alive
stop_daemon
e2e_finish
