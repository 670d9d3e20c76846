#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# login(service) deletes what that service reserved before (a restarted client cannot
# leak memory) and nothing of the other services.
. "$(dirname "$0")/lib.sh"
e2e_init login_purge 60
cd "$E2E_ROOT" || exit 1

start_daemon --scenario scenarios/e2e-flow.json || e2e_finish
assert_json "login a" "$(rpc login '["dbg", "svc-a"]')" .result svc-a
# Over the unix socket and in JSON-RPC 2.0 with named params: the same service.
r=$(curl -sS --max-time 10 --unix-socket "$SOCK" -H 'Content-Type: application/json' \
    --data-binary '{"jsonrpc": "2.0", "id": 1, "method": "login",
                    "params": {"dbg": "x", "service_name": "svc-b"}}' http://localhost/)
assert_json "login b over the unix socket (JSON-RPC 2.0)" "$r" .result svc-b

a1=$(rpc reserve_memory '["dbg", "svc-a", 65536]' | jget .result)
a2=$(rpc reserve_memory '["dbg", "svc-a", 131072]' | jget .result)
b1=$(rpc_unix reserve_memory '["dbg", "svc-b", 32768]' | jget .result)
s=$(http_get /status)
assert_json "three reservations" "$s" .reservations.length 3
assert_json "all three subtracted from host free" "$s" .host.reservations_kib 229376
free_before=$(printf '%s' "$s" | jget .host.free_kib)

assert_json "login a again" "$(rpc login '["dbg", "svc-a"]')" .result svc-a
s=$(http_get /status)
assert_json "only b's reservation is left" "$s" \
    'j.reservations.map(r => r.id).join(",")' "$b1"
assert_json "host free grew by a's reservations" "$s" .host.free_kib \
    $((free_before + 196608))
r=$(rpc delete_reservation "[\"dbg\", \"svc-a\", \"$a1\"]")
assert_json "a's old reservation is gone" "$r" '.error[0]' Unknown_reservation
r=$(rpc delete_reservation "[\"dbg\", \"svc-a\", \"$a2\"]")
assert_json "a's other old reservation is gone" "$r" '.error[0]' Unknown_reservation
r=$(rpc delete_reservation "[\"dbg\", \"svc-b\", \"$b1\"]")
assert_json "b's reservation is still b's to delete" "$r" .error null
r=$(rpc login '["dbg", "bad/name"]')
assert_json "a service name that cannot be a xenstore key is refused" "$r" '.error[0]' \
    Internal_error
assert_true "daemon still alive" daemon_alive
stop_daemon
e2e_finish
