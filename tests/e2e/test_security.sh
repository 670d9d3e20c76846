#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# Issue 11, as a hostile local user would try it: changing calls over TCP without the
# token, a bad token file, a socket directory others could write, a state file's temporary
# path planted with a link or made unwritable, 1,000 slowloris connections, a session
# that reserves without end, and the accounting of transfers over the wire. Each check
# names the README threat-model claim it shows.
. "$(dirname "$0")/lib.sh"
e2e_init security 240
cd "$E2E_ROOT" || exit 1

# code_of CURL-ARGS...: the HTTP status of a request; its body in $TMPD/body.
code_of() {
    curl -sS --max-time "$E2E_CURL_MAX_S" -o "$TMPD/body" -w '%{http_code}' "$@"
}
post_anon() {
    code_of -H 'Content-Type: application/json' --data-binary "$1" "$(_url /)"
}

# ---- who may change memory --------------------------------------------------------------
start_daemon --scenario scenarios/e2e-flow.json || e2e_finish
c=$(post_anon '{"method": "login", "params": ["dbg", "xenopsd"], "id": 1}')
assert_eq "TCP without the token: login refused with 403" 403 "$c"
assert_match "the refusal says why and how" 'permission denied.*Bearer' "$(cat "$TMPD/body")"
c=$(post_anon '{"jsonrpc": "2.0", "method": "sim.destroy_domain", "params": {"domid": 1}, "id": 1}')
assert_eq "TCP without the token: sim.destroy_domain refused" 403 "$c"
c=$(code_of -H "Authorization: Bearer not-$E2E_TOKEN" --data-binary \
    '{"method": "reserve_memory", "params": ["dbg", "xenopsd", 1024], "id": 1}' "$(_url /)")
assert_eq "TCP with a wrong token: refused" 403 "$c"
s=$(rpc2_anon '{"jsonrpc": "2.0", "method": "sim.state", "id": 1}')
assert_json "readers need nothing: sim.state" "$s" '.result.domains.length' 3
r=$(rpc_anon get_host_reserved_memory '["dbg"]')
assert_json "readers need nothing: get_host_reserved_memory" "$r" .result 73728
for p in /status /metrics /healthz /openapi.json; do
    c=$(code_of "$(_url $p)")
    assert_eq "readers need nothing: GET $p" 200 "$c"
done
r=$(rpc login '["dbg", "xenopsd"]')
assert_json "TCP with the token: login" "$r" .result xenopsd
r=$(rpc_unix reserve_memory '["dbg", "xenopsd", 65536]')
id_unix=$(printf '%s' "$r" | jget .result)
assert_ne "the unix socket: reserve without a token" "" "$id_unix"
assert_true "changing calls are logged with the unix peer's pid and uid" \
    grep -q "rpc: reserve_memory (dbg dbg) by unix pid [0-9]* uid $(id -u)" "$DAEMON_LOG"
assert_true "changing calls over TCP are logged as such" \
    grep -q "rpc: login (dbg dbg) by tcp 127.0.0.1 (token)" "$DAEMON_LOG"
s=$(http_get /status)
assert_json "the refused calls changed nothing (1 reservation, 3 domains)" "$s" \
    'String([j.reservations.length, j.domains.length])' "1,3"

# ---- the accounting rule over the wire (F2, F3) ----------------------------------------
rpc2 '{"jsonrpc": "2.0", "method": "sim.create_domain", "params": {"domain": {"domid": 7, "target_kib": 65536}}, "id": 1}' >/dev/null
rpc2 '{"jsonrpc": "2.0", "method": "sim.create_domain", "params": {"domain": {"domid": 8, "target_kib": 65536}}, "id": 1}' >/dev/null
a=$(rpc reserve_memory '["dbg", "xenopsd", 131072]' | jget .result)
r=$(rpc transfer_reservation_to_domain "[\"dbg\", \"xenopsd\", \"$a\", 7]")
assert_json "transfer to domain 7" "$r" .error null
r=$(rpc transfer_reservation_to_domain "[\"dbg\", \"xenopsd\", \"$a\", 7]")
assert_json "the same transfer again is idempotent" "$r" .error null
r=$(rpc transfer_reservation_to_domain "[\"dbg\", \"xenopsd\", \"$a\", 8]")
assert_json "F3: the same reservation to another domain is refused" "$r" '.error[0]' Internal_error
r=$(rpc transfer_reservation_to_domain "[\"dbg\", \"xenopsd\", \"$id_unix\", 7]")
assert_json "F2: a second reservation to domain 7 is refused" "$r" '.error[0]' Internal_error
r=$(rpc transfer_reservation_to_domain "[\"dbg\", \"xenopsd\", \"$id_unix\", 99]")
assert_json "a transfer to a domain that does not exist is refused" "$r" '.error[1]' \
    "domain 99 does not exist"
s=$(http_get /status)
assert_json "the refused one still counts in full, the transferred one not" "$s" \
    .host.reservations_kib 65536
rpc2 '{"jsonrpc": "2.0", "method": "sim.destroy_domain", "params": {"domid": 7}, "id": 1}' >/dev/null
s=$(http_get /status)
assert_json "F1: after its domain is gone, the transferred one never counts again" "$s" \
    .host.reservations_kib 65536
assert_json_true "F1: host free is not below zero" "$s" 'j.host.free_kib >= 0'
assert_no_violations "no violation in sim.state"

# ---- slowloris ------------------------------------------------------------------------
node tests/e2e/slowloris.mjs "$PORT" 1000 20 2000 >"$TMPD/slow.out" 2>&1 &
slow_pid=$!
t=0
while ! grep -q '^held' "$TMPD/slow.out" && [ $t -lt 100 ]; do
    sleep 0.2
    t=$((t + 1))
done
assert_true "1,000 slow connections are held open" grep -q '^held 1000' "$TMPD/slow.out"
sleep 3 # they have sent more header bytes since
bound_ms=$((3000 * E2E_LIMIT_SCALE))
t0=$(now_ms)
c=$(code_of "$(_url /status)")
t1=$(now_ms)
assert_eq "during slowloris: GET /status answered" 200 "$c"
assert_range "during slowloris: GET /status within ${bound_ms} ms" $((t1 - t0)) 0 "$bound_ms"
t0=$(now_ms)
r=$(rpc reserve_memory '["dbg", "xenopsd", 4096]')
t1=$(now_ms)
assert_ne "during slowloris: a reservation with the token" "" "$(printf '%s' "$r" | jget .result)"
assert_range "during slowloris: the reservation within ${bound_ms} ms" $((t1 - t0)) 0 "$bound_ms"
t0=$(now_ms)
r=$(rpc_unix reserve_memory '["dbg", "xenopsd", 4096]')
t1=$(now_ms)
assert_ne "during slowloris: a reservation over the unix socket" "" \
    "$(printf '%s' "$r" | jget .result)"
assert_range "during slowloris: over the unix socket within ${bound_ms} ms" $((t1 - t0)) 0 \
    "$bound_ms"
note "slowloris: $(tail -n 1 "$TMPD/slow.out")"
kill "$slow_pid" 2>/dev/null
wait "$slow_pid" 2>/dev/null
stop_daemon "stops cleanly after slowloris"

# ---- a session that reserves without end (F10) ----------------------------------------
start_daemon --scenario scenarios/e2e-flow.json --max-reservations-per-session 3 || e2e_finish
rpc login '["dbg", "greedy"]' >/dev/null
for i in 1 2 3; do rpc reserve_memory '["dbg", "greedy", 1024]' >/dev/null; done
r=$(rpc reserve_memory '["dbg", "greedy", 1024]')
assert_match "a 4th reservation over the limit is refused, naming it" \
    'Internal_error.*max-reservations-per-session' "$r"
rpc login '["dbg", "other"]' >/dev/null
r=$(rpc reserve_memory '["dbg", "other", 1024]')
assert_ne "another session is not affected" "" "$(printf '%s' "$r" | jget .result)"
stop_daemon "stops"

# ---- start-up refusals --------------------------------------------------------------------
cp "$TOKEN_FILE" "$TMPD/loose-token"
chmod 0644 "$TMPD/loose-token"
run_squeezed -d --backend sim --scenario scenarios/e2e-flow.json --listen 127.0.0.1:0 \
    --socket "$TMPD/x.sock" --token-file "$TMPD/loose-token"
assert_ne "a group/world-readable token file stops start-up" 0 $?
assert_true "... saying so" grep -q "mode 0644" "$TMPD/run.out"
mkdir -m 0777 "$TMPD/open"
chmod 0777 "$TMPD/open"
run_squeezed -d --backend sim --scenario scenarios/e2e-flow.json --listen none \
    --socket "$TMPD/open/sq.sock"
assert_ne "a world-writable socket directory without the sticky bit stops start-up" 0 $?
assert_true "... saying so" grep -q "without the sticky bit" "$TMPD/run.out"

# ---- durable before acknowledged (F5, F6) ----------------------------------------------
# --sim-state keeps STATE plus an append-only journal STATE.journal (never opened through
# a link) and writes full saves through a new temporary file (STATE.tmp.<random>,
# O_EXCL|O_NOFOLLOW): nothing sits at a fixed temporary name to plant a link on.
mkdir "$TMPD/st"
world=$TMPD/st/world.json
echo "precious" >"$TMPD/victim"
start_daemon --scenario scenarios/e2e-flow.json --sim-state "$world" || e2e_finish
rpc login '["dbg", "xenopsd"]' >/dev/null
r=$(rpc reserve_memory '["dbg", "xenopsd", 65536]')
kept=$(printf '%s' "$r" | jget .result)
assert_match "a reservation with --sim-state" '^[0-9a-f-]{36}$' "$kept"
kill_daemon KILL
start_daemon --scenario scenarios/e2e-flow.json --sim-state "$world" || e2e_finish
s=$(http_get /status)
assert_json "after SIGKILL: exactly the acknowledged reservation" "$s" \
    'j.reservations.map(r => r.id + ":" + r.kib).join()' "$kept:65536"
stop_daemon "stops"
# F6: a link planted at the journal's path is not followed: start-up stops, the file the
# link names is untouched.
mkdir "$TMPD/st6"
ln -s "$TMPD/victim" "$TMPD/st6/world.json.journal"
run_squeezed -d --backend sim --clock virtual --scenario scenarios/e2e-flow.json \
    --sim-state "$TMPD/st6/world.json" --listen none --socket "$TMPD/st6/sq.sock"
assert_ne "F6: a link planted at the journal's path stops start-up" 0 $?
assert_true "... saying why" grep -q "symbolic links" "$TMPD/run.out"
assert_eq "F6: ... and is not followed" "precious" "$(cat "$TMPD/victim")"
# F5: a reservation that cannot be saved is refused and not recorded. The state goes on a
# 1 MiB tmpfs in the daemon's own mount namespace (root only), filled up once a first
# reservation is kept.
if [ "$(id -u)" != 0 ] || ! unshare -m --propagation private true 2>/dev/null; then
    note "no private mount namespace here (needs root): the F5 check is skipped"
else
    mkdir "$TMPD/small"
    cat >"$TMPD/small-squeezed" <<EOF
#!/bin/sh
exec unshare -m --propagation private sh -c 'mount -t tmpfs -o size=1m tmpfs "$TMPD/small" &&
    exec "\$0" "\$@"' "$(squeezed_bin)" "\$@"
EOF
    chmod +x "$TMPD/small-squeezed"
    _bin_before=${SQUEEZED_BIN:-}
    SQUEEZED_BIN=$TMPD/small-squeezed
    if start_daemon --scenario scenarios/e2e-flow.json --sim-state "$TMPD/small/world.json"; then
        rpc login '["dbg", "xenopsd"]' >/dev/null
        r=$(rpc reserve_memory '["dbg", "xenopsd", 65536]')
        kept=$(printf '%s' "$r" | jget .result)
        # Until the tmpfs is full; the journal's last page may still take a few records.
        dd if=/dev/zero of="/proc/$DAEMON_PID/root$TMPD/small/fill" bs=4096 >/dev/null 2>&1
        _i=0
        while [ $_i -lt 64 ]; do
            r=$(rpc reserve_memory '["dbg", "xenopsd", 1024]')
            _id=$(printf '%s' "$r" | jget .result)
            [ -n "$_id" ] && [ "$_id" != null ] || break
            kept="$kept,$_id"
            _i=$((_i + 1))
        done
        note "F5: $_i more reservations kept before the file system was full"
        assert_json "F5: a reservation that cannot be saved is not acknowledged" "$r" \
            '.error[0]' Internal_error
        s=$(http_get /status)
        assert_json "F5: ... and is not recorded" "$s" 'j.reservations.map(r => r.id).join()' \
            "$kept"
        stop_daemon "stops with a full state file system"
    fi
    SQUEEZED_BIN=$_bin_before
    [ -n "$SQUEEZED_BIN" ] || unset SQUEEZED_BIN
fi
e2e_finish
