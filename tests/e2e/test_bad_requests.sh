#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# Bad requests against the real daemon: each gets the right error (xapi style, JSON-RPC
# 2.0, HTTP), nothing changes (reservations, the daemon's picture, the simulated host),
# and the daemon keeps serving.
. "$(dirname "$0")/lib.sh"
e2e_init bad_requests 120
cd "$E2E_ROOT" || exit 1

start_daemon --scenario scenarios/e2e-flow.json || e2e_finish

# A world with something in it: a session and a reservation, then settled.
assert_json "login" "$(rpc login '["dbg", "e2e"]')" .result e2e
rid=$(rpc reserve_memory '["dbg", "e2e", 65536]' | jget .result)
assert_ne "a reservation to keep" "" "$rid"
assert_json "balance" "$(rpc balance_memory '["dbg"]')" .error null

# What must not change: the host, the reservations and each domain as the daemon sees
# them, and the simulated host's truth (the virtual clock does not move by itself).
picture() {
    http_get /status | jget 'JSON.stringify({host: j.host, reservations: j.reservations,
        domains: j.domains.map(d => [d.domid, d.target_kib, d.actual_kib, d.maxmem_kib,
                                     d.dynamic_min_kib, d.dynamic_max_kib])})'
}
world() {
    rpc sim.state '[]' | jget 'JSON.stringify(j.result)'
}
picture_before=$(picture)
world_before=$(world)
assert_ne "status picture read" "" "$picture_before"
assert_ne "sim.state read" "" "$world_before"

# post BODY: POST BODY (bytes as given) to /, print the HTTP status; the reply body is
# left in $TMPD/body.
post() {
    printf '%s' "$1" >"$TMPD/req"
    http_request POST / "$TMPD/req"
}

# xapi NAME BODY EXPR EXPECTED: an xapi-style reply, HTTP 200, EXPR of it is EXPECTED.
xapi() {
    _code=$(post "$2")
    _r=$(cat "$TMPD/body")
    if [ "$_code" != 200 ]; then
        fail "$1" "HTTP $_code, expected 200: $_r"
        return
    fi
    assert_json "$1" "$_r" "$3" "$4"
    assert_json_true "$1: reply is an xapi envelope" "$_r" \
        'j.result === null && !("jsonrpc" in j) && "id" in j'
}

# v2 NAME BODY CODE [DATA]: a JSON-RPC 2.0 error reply with CODE (and data DATA).
v2() {
    _code=$(post "$2")
    _r=$(cat "$TMPD/body")
    if [ "$_code" != 200 ]; then
        fail "$1" "HTTP $_code, expected 200: $_r"
        return
    fi
    assert_json "$1" "$_r" .error.code "$3"
    assert_json_true "$1: 2.0 envelope with a message" "$_r" \
        'j.jsonrpc === "2.0" && !("result" in j) && j.error.message.length > 0 && "data" in j.error'
    if [ $# -ge 4 ]; then
        assert_json "$1: data" "$_r" 'JSON.stringify(j.error.data)' "$4"
    fi
}

# ---- xapi style: always HTTP 200 and the error variant --------------------------------
xapi "xapi: malformed JSON" '{"method": "login", "params": ["d", ' '.error[0]' Internal_error
assert_json "xapi: malformed JSON has id null" "$(cat "$TMPD/body")" .id null
xapi "xapi: not an object" '42' '.error[0]' Internal_error
xapi "xapi: no method" '{"params": [], "id": 3}' '.error[0]' Internal_error
xapi "xapi: unknown method" '{"method": "reserve", "params": ["d"], "id": 4}' \
    '.error[0]' Internal_error
assert_json "xapi: the id is echoed" "$(cat "$TMPD/body")" .id 4
xapi "xapi: too few params" '{"method": "reserve_memory", "params": ["d", "e2e"], "id": 1}' \
    '.error[0]' Internal_error
xapi "xapi: too many params" \
    '{"method": "balance_memory", "params": ["d", "x"], "id": 1}' '.error[0]' Internal_error
xapi "xapi: string for a size" \
    '{"method": "reserve_memory", "params": ["d", "e2e", "1024"], "id": 1}' \
    '.error[0]' Internal_error
xapi "xapi: float for a size" \
    '{"method": "reserve_memory", "params": ["d", "e2e", 1024.0], "id": 1}' \
    '.error[0]' Internal_error
xapi "xapi: boolean for a size" \
    '{"method": "reserve_memory", "params": ["d", "e2e", true], "id": 1}' \
    '.error[0]' Internal_error
xapi "xapi: negative size" '{"method": "reserve_memory", "params": ["d", "e2e", -1], "id": 1}' \
    'JSON.stringify(j.error)' '["Invalid_memory_value",-1]'
xapi "xapi: negative range max (0 KiB is a valid size)" \
    '{"method": "reserve_memory_range", "params": ["d", "e2e", 0, -1], "id": 1}' \
    'JSON.stringify(j.error)' '["Invalid_memory_value",-1]'
xapi "xapi: absurd size" \
    '{"method": "reserve_memory", "params": ["d", "e2e", 1099511627777], "id": 1}' \
    'JSON.stringify(j.error)' '["Invalid_memory_value",1099511627777]'
xapi "xapi: range upside down" \
    '{"method": "reserve_memory_range", "params": ["d", "e2e", 20000, 10000], "id": 1}' \
    'JSON.stringify(j.error)' '["Invalid_memory_value",20000]'
xapi "xapi: domid out of range" \
    "{\"method\": \"transfer_reservation_to_domain\", \"params\": [\"d\", \"e2e\", \"$rid\", 32752], \"id\": 1}" \
    '.error[0]' Internal_error
xapi "xapi: negative domid" \
    '{"method": "query_reservation_of_domain", "params": ["d", "e2e", -1], "id": 1}' \
    '.error[0]' Internal_error
xapi "xapi: unknown reservation" \
    '{"method": "delete_reservation", "params": ["d", "e2e", "no-such-id"], "id": 1}' \
    'JSON.stringify(j.error)' '["Unknown_reservation","no-such-id"]'
xapi "xapi: a reservation id that is a path" \
    '{"method": "delete_reservation", "params": ["d", "e2e", "../../local"], "id": 1}' \
    '.error[0]' Unknown_reservation
xapi "xapi: a service name that is a path" '{"method": "login", "params": ["d", "a/b"], "id": 1}' \
    '.error[0]' Internal_error
xapi "xapi: integer beyond 64 bits" \
    '{"method": "reserve_memory", "params": ["d", "e2e", 99999999999999999999], "id": 1}' \
    '.error[0]' Internal_error

# ---- JSON-RPC 2.0: the standard codes ---------------------------------------------------
v2 "2.0: parse error" '{"jsonrpc": "2.0", "method": "login", ' -32700
v2 "2.0: batch refused" \
    '[{"jsonrpc": "2.0", "method": "balance_memory", "params": ["d"], "id": 1}]' -32600
v2 "2.0: no method" '{"jsonrpc": "2.0", "params": [], "id": 1}' -32600
v2 "2.0: params neither array nor object" \
    '{"jsonrpc": "2.0", "method": "login", "params": "e2e", "id": 1}' -32600
v2 "2.0: wrong version" '{"jsonrpc": "1.0", "method": "balance_memory", "params": ["d"], "id": 1}' \
    -32600
v2 "2.0: unknown method" '{"jsonrpc": "2.0", "method": "nope", "params": [], "id": 1}' -32601
v2 "2.0: wrong param count" \
    '{"jsonrpc": "2.0", "method": "reserve_memory", "params": ["d", "e2e"], "id": 1}' -32602
v2 "2.0: unknown named param" \
    '{"jsonrpc": "2.0", "method": "reserve_memory", "params": {"session_id": "e2e", "kib": 1, "kb": 1}, "id": 1}' \
    -32602
v2 "2.0: missing named param" \
    '{"jsonrpc": "2.0", "method": "reserve_memory", "params": {"session_id": "e2e"}, "id": 1}' \
    -32602
v2 "2.0: float for a domid" \
    '{"jsonrpc": "2.0", "method": "query_reservation_of_domain", "params": ["d", "e2e", 1.5], "id": 1}' \
    -32602
v2 "2.0: negative size" \
    '{"jsonrpc": "2.0", "method": "reserve_memory", "params": {"session_id": "e2e", "kib": -5}, "id": 1}' \
    -32000 '["Invalid_memory_value",-5]'
v2 "2.0: unknown reservation" \
    '{"jsonrpc": "2.0", "method": "delete_reservation", "params": {"session_id": "e2e", "reservation_id": "x"}, "id": 1}' \
    -32000 '["Unknown_reservation","x"]'
v2 "2.0: sim.advance needs a positive time" \
    '{"jsonrpc": "2.0", "method": "sim.advance", "params": [-1], "id": 1}' -32602
v2 "2.0: sim.destroy_domain of a domid out of range" \
    '{"jsonrpc": "2.0", "method": "sim.destroy_domain", "params": [40000], "id": 1}' -32602

# ---- HTTP ---------------------------------------------------------------------------------
big=$TMPD/big.json
printf '{"method": "balance_memory", "params": ["d"], "id": 1}' >"$big"
head -c 2097152 /dev/zero | tr '\0' ' ' >>"$big"
code=$(http_request POST / "$big")
assert_eq "a 2 MiB body is refused with 413" 413 "$code"
assert_json "413 comes with a JSON error" "$(cat "$TMPD/body")" .error.code 413
# The same without curl's "Expect: 100-continue": the body is actually sent.
code=$(http_request POST /jsonrpc "$big" -H 'Expect:')
assert_eq "a 2 MiB body sent at once is refused with 413" 413 "$code"

for m in PUT DELETE; do
    code=$(http_request "$m" /)
    assert_eq "$m / is 405" 405 "$code"
done
code=$(http_request GET /jsonrpc)
assert_eq "GET /jsonrpc is 405 (GET / is the landing page)" 405 "$code"
allow=$(curl -sS --max-time "$E2E_CURL_MAX_S" -o /dev/null -D - "http://127.0.0.1:$PORT/jsonrpc" |
    tr -d '\r' | sed -n 's/^[Aa]llow: *//p')
assert_eq "405 says Allow: POST" POST "$allow"
code=$(http_request GET /nope)
assert_eq "an unknown path is 404" 404 "$code"
assert_json "404 comes with a JSON error" "$(cat "$TMPD/body")" .error.code 404
printf '{}' >"$TMPD/empty.json"
code=$(http_request POST /status "$TMPD/empty.json")
assert_eq "POST /status is 405" 405 "$code"

# Over the unix socket too.
r=$(curl -sS --max-time "$E2E_CURL_MAX_S" --unix-socket "$SOCK" --data-binary '{"method": ' \
    http://localhost/)
assert_json "malformed JSON over the unix socket" "$r" '.error[0]' Internal_error

# ---- nothing changed, still serving ----------------------------------------------------
assert_eq "the daemon's picture is unchanged" "$picture_before" "$(picture)"
assert_eq "the simulated host is unchanged" "$world_before" "$(world)"
assert_json "the reservation is still there" "$(http_get /status)" \
    'j.reservations.map(r => r.id).join(",")' "$rid"
assert_eq "healthz" ok "$(http_get /healthz)"
assert_json "a good request still works" "$(rpc get_host_reserved_memory '["dbg"]')" \
    .result 73728
assert_json "the reservation can still be deleted" \
    "$(rpc delete_reservation "[\"dbg\", \"e2e\", \"$rid\"]")" .error null
assert_true "daemon still alive" daemon_alive
assert_no_violations "no violations on the simulated host"
stop_daemon
e2e_finish
