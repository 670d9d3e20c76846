#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# GET /history on the simulated host (virtual clock): the newest point of each series is
# what /status says, a reservation's squeeze shows as steps, window_s and domids narrow
# it, bad arguments are 400 and change nothing; GET / and GET /ui are pages.
. "$(dirname "$0")/lib.sh"
e2e_init history 60
start_daemon --scenario scenarios/demo.json || e2e_finish

rpc2 '{"jsonrpc": "2.0", "method": "sim.advance", "params": {"seconds": 30}, "id": 1}' >/dev/null
r=$(rpc login '["h", "hist"]')
r=$(rpc reserve_memory '["h", "hist", 4194304]')
assert_match "a 4 GiB reservation is granted" '"result":"[0-9a-f-]{36}"' "$r"
rpc2 '{"jsonrpc": "2.0", "method": "sim.advance", "params": {"seconds": 30}, "id": 1}' >/dev/null
st=$(http_get /status)
h=$(http_get '/history?window_s=600')
assert_json_true "the newest host free point is /status's host.free_kib" \
    "[$st, $h]" "j[1].host.free_kib[j[1].host.free_kib.length - 1] == j[0].host.free_kib"
assert_json_true "every domain's newest target and actual are /status's" "[$st, $h]" \
    "j[0].domains.every(d => { const s = j[1].domains.find(x => x.domid == d.domid); return s && s.target_kib[s.target_kib.length - 1] == d.target_kib && s.actual_kib[s.actual_kib.length - 1] == d.actual_kib; })"
assert_json_true "the squeeze shows as several host free points" "$h" "j.host.t_ms.length >= 3"
assert_json_true "times ascend and stay within the window" "$h" \
    "j.host.t_ms.every((t, i, a) => t >= j.from_ms && t <= j.now_ms && (i == 0 || a[i - 1] < t))"
assert_json_true "a series has as many values as times" "$h" \
    "j.domains.every(d => d.t_ms.length == d.target_kib.length && d.t_ms.length == d.actual_kib.length)"
assert_json_true "the memory bound is stated and under 4 MiB" "$h" \
    "j.capacity.bytes > 0 && j.capacity.bytes <= 4 * 1048576 && j.capacity.samples == 3600"
h2=$(http_get '/history?window_s=5&domids=3,1,999')
assert_json "domids keeps the order asked and skips unknown domains" "$h2" \
    'j.domains.map(d => d.domid).join(",")' "3,1"
assert_json "window_s=5: one point per quiet series (the value in force)" "$h2" \
    'j.host.t_ms.length' 1
assert_json "window_ms is window_s in ms" "$h2" .window_ms 5000
for q in 'window_s=0' 'window_s=abc' 'window_s=86401' 'domids=1,,2' 'domids=-1' 'domids=x'; do
    code=$(http_request GET "/history?$q")
    assert_eq "GET /history?$q is 400" 400 "$code"
done
code=$(http_request POST /history "$TMPD/body")
assert_eq "POST /history is 405" 405 "$code"
code=$(http_request GET /ui)
assert_eq "GET /ui is 200" 200 "$code"
assert_match "GET /ui is the dashboard" '<title>squeezed' "$(head -c 2000 "$TMPD/body")"
code=$(http_request GET /)
assert_eq "GET / is 200" 200 "$code"
r=$(rpc get_host_reserved_memory '["h"]')
assert_match "POST / is still JSON-RPC" '"result":[0-9]+' "$r"
assert_true "the daemon is still alive" daemon_alive
stop_daemon
e2e_finish
