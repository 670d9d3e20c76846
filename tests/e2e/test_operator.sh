#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# The operator's view (issue 14, points 4-7): a failed reservation explained guest by
# guest (/status, the 2.0 error's data, one log line; the xapi reply unchanged), the
# running operation named in /status with its progress and the clients waiting, each
# operation's start, queue wait, dbg and session, the log an operator follows (dbg at
# start and end, target changes with their reason, stuck once, dated lines, a clean stop
# without warnings), /metrics in base units clean under promtool, JSON-RPC 2.0 batches
# and notifications over HTTP.
. "$(dirname "$0")/lib.sh"
e2e_init operator 120
cd "$E2E_ROOT" || exit 1

# ---- a refused reservation, explained (virtual clock) ------------------------------
start_daemon --scenario scenarios/e2e-stuck.json || e2e_finish
rpc login '["vm-start-1", "xenopsd"]' >/dev/null
x=$(rpc reserve_memory '["vm-start-1", "xenopsd", 1572864]')
assert_eq "xapi reply: the bare variant, as before" \
    '{"result":null,"error":["Domains_refused_to_cooperate",[2]],"id":1}' "$x"
r=$(rpc2 '{"jsonrpc": "2.0", "id": 2, "method": "reserve_memory",
    "params": ["vm-start-2", "xenopsd", 1572864]}')
assert_json "2.0: data[0] is the variant's tag" "$r" '.error.data[0]' \
    Domains_refused_to_cooperate
assert_json "2.0: data[1] its argument" "$r" '.error.data[1]' '[2]'
assert_json "2.0: data[2] the breakdown names guest 2 as stuck" "$r" \
    'j.error.data[2].domains.find(d => d.domid == 2).reason' stuck
assert_json_true "2.0: guest 2 held 1 GiB above its dynamic-min and gave nothing" "$r" \
    'j.error.data[2].domains.find(d => d.domid == 2).held_above_min_kib == 1048576 &&
     j.error.data[2].domains.find(d => d.domid == 2).gave_kib == 0'
assert_json_true "2.0: stuck since an ISO 8601 UTC time" "$r" \
    '/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(
        j.error.data[2].domains.find(d => d.domid == 2).stuck_since)'
assert_json "2.0: needed = asked + host reserve" "$r" '.error.data[2].needed_kib' 1646592
s=$(http_get /status)
assert_json_true "status: the operation record has start, wait, dbg, session" "$s" \
    'o = j.operations[j.operations.length - 1],
     o.dbg == "vm-start-2" && o.session == "xenopsd" && o.waited_ms >= 0 &&
     /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(o.started) && o.duration_ms > 0'
assert_json "status: and the same breakdown" "$s" \
    'j.operations[j.operations.length - 1].breakdown.domains.find(d => d.domid == 2).reason' \
    stuck
assert_json "status: guest 2 stuck since" "$s" \
    '!!j.domains.find(d => d.domid == 2).stuck_since' true
assert_json "status: nothing running now" "$s" 'j.running === undefined' true
n=$(grep -c 'domid 2: balloon stuck' "$DAEMON_LOG")
assert_eq "log: guest 2's stuck balloon logged once over two operations" 1 "$n"
assert_true "log: the breakdown in one line with the dbg" \
    grep -q 'warn: dbg vm-start-2: reserve 1572864 KiB: refused.*domid 2: held 1048576 KiB above dynamic-min, gave 0 KiB.*stuck since' "$DAEMON_LOG"
assert_true "log: the call's start at info with its dbg" \
    grep -q 'info: dbg vm-start-1: reserve_memory session xenopsd, 1572864 KiB: started after [0-9]* ms in the queue' "$DAEMON_LOG"
assert_true "log: its end with outcome and duration" \
    grep -q 'info: dbg vm-start-1: reserve_memory session xenopsd, 1572864 KiB: Domains_refused_to_cooperate in [0-9]* ms' "$DAEMON_LOG"
assert_true "log: one line per target change, with its reason" \
    grep -q 'info: domid 1: target 2097152 -> [0-9]* KiB: squeeze for reserve 1572864 KiB (dbg vm-start-1)' "$DAEMON_LOG"
assert_true "log: every line dated (ISO 8601, ms, UTC)" \
    sh -c "! grep -v '^squeezed: ready' '$DAEMON_LOG' | grep -qvE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z (info|warn|error|debug): '"
r=$(rpc balance_memory '["rebalance-1"]')
assert_true "log: the balance moves guest 2 back and says why" \
    grep -q 'domid 2: target [0-9]* -> 2097152 KiB: balance (dbg rebalance-1)' "$DAEMON_LOG"
assert_true "log: moving again, once" \
    grep -q 'domid 2: balloon moving again (stuck since ' "$DAEMON_LOG"

# ---- JSON-RPC 2.0 batches and notifications over HTTP (with the token) ---------------
auth="Authorization: Bearer $E2E_TOKEN"
code=$(curl -sS --max-time 10 -o "$TMPD/batch.out" -w '%{http_code}' -H "$auth" \
    -H 'Content-Type: application/json' --data-binary \
    '[{"jsonrpc": "2.0", "id": 1, "method": "get_host_reserved_memory", "params": ["b"]},
      {"jsonrpc": "2.0", "method": "balance_memory", "params": ["b"]},
      {"jsonrpc": "2.0", "id": "q", "method": "query_reservation_of_domain",
       "params": ["b", "xenopsd", 1]}]' "$(_url /)")
assert_eq "batch: HTTP 200" 200 "$code"
b=$(cat "$TMPD/batch.out")
assert_json "batch: two replies (the notification has none)" "$b" .length 2
assert_json "batch: in order, ids kept" "$b" 'j.map(r => r.id).join(",")' 1,q
assert_json "batch: the first result" "$b" 'j[0].result' 73728
assert_json "batch: the second an error of its own" "$b" 'j[1].error.data' No_reservation
code=$(curl -sS --max-time 10 -o "$TMPD/empty.out" -w '%{http_code}' -H "$auth" \
    -H 'Content-Type: application/json' --data-binary \
    '[{"jsonrpc": "2.0", "method": "balance_memory", "params": ["n"]}]' "$(_url /)")
assert_eq "batch of notifications: HTTP 204" 204 "$code"
assert_eq "batch of notifications: no body" 0 "$(wc -c <"$TMPD/empty.out" | tr -d ' ')"
code=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -H "$auth" \
    -H 'Content-Type: application/json' --data-binary \
    '{"jsonrpc": "2.0", "method": "reserve_memory", "params": ["lost-1", "xenopsd", 1024]}' \
    "$(_url /)")
assert_eq "reserve as a notification: HTTP 204" 204 "$code"
assert_json "reserve as a notification: no reservation made" "$(http_get /status)" \
    .reservations.length 0
assert_true "reserve as a notification: logged" \
    grep -q 'warn: dbg lost-1: reserve_memory sent as a notification (no id): not run' "$DAEMON_LOG"
# Without the token, each element of a batch is checked on its own: the reader runs, the
# changing one is refused with the permission error; all refused is HTTP 403.
code=$(curl -sS --max-time 10 -o "$TMPD/anon.out" -w '%{http_code}' \
    -H 'Content-Type: application/json' --data-binary \
    '[{"jsonrpc": "2.0", "id": 1, "method": "get_host_reserved_memory", "params": ["a"]},
      {"jsonrpc": "2.0", "id": 2, "method": "reserve_memory", "params": ["a", "xenopsd", 1024]}]' \
    "$(_url /)")
assert_eq "batch without the token: HTTP 200" 200 "$code"
b=$(cat "$TMPD/anon.out")
assert_json "batch without the token: the reader answered" "$b" 'j[0].result' 73728
assert_json "batch without the token: the changing call refused" "$b" \
    'j[1].error.data.join(" ").startsWith("Internal_error permission denied")' true
code=$(curl -sS --max-time 10 -o "$TMPD/anon.out" -w '%{http_code}' \
    -H 'Content-Type: application/json' --data-binary \
    '[{"jsonrpc": "2.0", "id": 1, "method": "balance_memory", "params": ["a"]},
      {"jsonrpc": "2.0", "id": 2, "method": "reserve_memory", "params": ["a", "xenopsd", 1024]}]' \
    "$(_url /)")
assert_eq "batch of changing calls only, without the token: HTTP 403" 403 "$code"
assert_json "... no reservation made" "$(http_get /status)" .reservations.length 0

# ---- /metrics: base units, histograms, process_*, promtool -------------------------
m=$(http_get /metrics)
printf '%s\n' "$m" >"$TMPD/metrics.txt"
if command -v promtool >/dev/null 2>&1; then
    if out=$(promtool check metrics <"$TMPD/metrics.txt" 2>&1); then
        pass "promtool check metrics: clean on a real scrape"
    else
        fail "promtool check metrics: clean on a real scrape" "$(printf '%s' "$out" | head -n 5)"
    fi
else
    fail "promtool check metrics" "promtool is not installed (Debian package prometheus)"
fi
for name in squeezed_host_free_bytes squeezed_domain_target_bytes \
    squeezed_domain_actual_bytes process_cpu_seconds_total process_resident_memory_bytes \
    process_virtual_memory_bytes process_open_fds process_max_fds \
    process_start_time_seconds; do
    assert_true "metrics: $name" grep -q "^$name[ {]" "$TMPD/metrics.txt"
done
assert_true "metrics: no KiB left" sh -c "! grep -q '_kib' '$TMPD/metrics.txt'"
assert_true "metrics: host free in bytes = status' KiB x 1024" \
    grep -q "^squeezed_host_free_bytes $(($(http_get /status | jget .host.free_kib) * 1024))\$" \
    "$TMPD/metrics.txt"
assert_true "metrics: the refused reservations in the duration histogram" \
    grep -q '^squeezed_operation_duration_seconds_bucket{kind="reserve",outcome="refused",le="+Inf"} 2$' \
    "$TMPD/metrics.txt"
assert_true "metrics: the client wait histogram" \
    grep -q '^squeezed_client_wait_seconds_count{method="reserve_memory"} 2$' "$TMPD/metrics.txt"
stop_daemon

# ---- the running operation, clients waiting, a clean stop (real clock) -------------
start_daemon --scenario scenarios/e2e-slow.json --clock real || e2e_finish
rpc login '["dbg", "xenopsd"]' >/dev/null
# 640 MiB with 256 MiB free and a 64 MiB/s balloon: seconds of ballooning.
rpc reserve_memory '["vm-start-slow", "xenopsd", 655360]' >"$TMPD/bg1.out" 2>&1 &
bg1=$!
sleep 1
# A range reservation waits behind it (a plain reserve_memory would join its batch).
rpc reserve_memory_range '["vm-start-queued", "xenopsd", 1024, 1024]' >"$TMPD/bg2.out" 2>&1 &
bg2=$!
sleep 1
s=$(http_get /status)
assert_json "running: the reservation" "$s" '.running.kind' reserve
assert_json "running: its size" "$s" '.running.kib' 655360
assert_json "running: its dbg" "$s" '.running.dbg' vm-start-slow
assert_json "running: its session" "$s" '.running.session' xenopsd
assert_json_true "running: started, an ISO 8601 time" "$s" \
    '/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(j.running.started)'
assert_json_true "running: progress, KiB freed of KiB needed" "$s" \
    'j.running.progress.needed_kib > 0 && j.running.progress.freed_kib > 0 &&
     j.running.progress.freed_kib < j.running.progress.needed_kib'
assert_json "running: one client waiting behind it" "$s" '.running.waiting' 1
assert_true "metrics: one client waiting" sh -c \
    "curl -sS --max-time 10 '$(_url /metrics)' | grep -q '^squeezed_clients_waiting 1\$'"
wait "$bg1" "$bg2"
s=$(http_get /status)
assert_json_true "the queued call's record: waited seconds, ran in no time" "$s" \
    'o = j.operations[j.operations.length - 1],
     o.dbg == "vm-start-queued" && o.waited_ms >= 1000 && o.waited_ms > o.duration_ms'
assert_json "not running any more" "$s" 'j.running === undefined' true
# A stop in the middle of an operation: expected, so not a warning.
rpc reserve_memory '["vm-start-cut", "xenopsd", 655360]' >/dev/null 2>&1 &
bg3=$!
sleep 1
: >"$TMPD/mark"
lines_before=$(wc -l <"$DAEMON_LOG")
stop_daemon "SIGTERM during an operation: a clean stop"
wait "$bg3" 2>/dev/null
odd=$(tail -n +"$((lines_before + 1))" "$DAEMON_LOG" | grep -E ' (warn|error): ' | head -n 3)
assert_eq "a clean stop logs no warning" "" "$odd"

# ---- a fatal start-up error is logged at error ------------------------------------
run_squeezed --backend sim --scenario "$TMPD/none.json"
assert_true "a fatal start-up error is logged at error" \
    grep -qE '^[0-9T:.-]+Z error: ' "$TMPD/run.out"
e2e_finish
