#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# use-switch = true against a message-switch (tests/fakeswitch, the frames of xen-api's
# ocaml/message-switch) and a client sending xenopsd's Memory_client frames:
#  - the daemon starts before the switch is up and says so once, not at every retry;
#  - a VM start (login, reserve, create the domain, transfer, query, delete) through
#    the queue org.xen.xapi.memory; the frames are kept in $TMPD/vm-start-frames.log;
#  - the switch restarts: the daemon connects again and serves;
#  - at-most-once: the daemon is SIGKILLed after it sent the answer of reserve_memory
#    and before its ack (the switch withholds its answer to that response); the
#    restarted daemon gets the message again, answers it with the same reservation id,
#    does not run it again (one reservation, its memory held once, per /status).
. "$(dirname "$0")/lib.sh"
e2e_init switch 120
cd "$E2E_ROOT" || exit 1

SW=$TMPD/switch.sock
SW_PID=""
trap 'kill $SW_PID 2>/dev/null; _e2e_cleanup' EXIT

# start_switch LOG [ARGS...]: run the fake switch on $SW, wait until it listens.
start_switch() {
    _log=$1
    shift
    # Emptied here, not only by the background job's redirection, which may come after
    # the loop below has read the previous switch's "ready" line.
    : >"$TMPD/switch.out"
    node tests/fakeswitch/fakeswitch.js --path "$SW" --log "$_log" "$@" \
        >"$TMPD/switch.out" 2>&1 &
    SW_PID=$!
    _t=100
    while [ "$_t" -gt 0 ] && ! grep -q ready "$TMPD/switch.out" 2>/dev/null; do
        sleep 0.05
        _t=$((_t - 1))
    done
}

stop_switch() {
    kill "$SW_PID" 2>/dev/null
    wait "$SW_PID" 2>/dev/null
    SW_PID=""
}

# wait_for FILE PATTERN SECONDS: until a line of FILE matches; 0 if one does.
wait_for() {
    _t=$(($3 * 20 * E2E_LIMIT_SCALE))
    while [ "$_t" -gt 0 ]; do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
        _t=$((_t - 1))
    done
    return 1
}

# wait_for_count FILE PATTERN N SECONDS: until N lines of FILE match; 0 if they do.
wait_for_count() {
    _t=$(($4 * 20 * E2E_LIMIT_SCALE))
    while [ "$_t" -gt 0 ]; do
        [ "$(grep -c -- "$2" "$1" 2>/dev/null)" -ge "$3" ] && return 0
        sleep 0.05
        _t=$((_t - 1))
    done
    return 1
}

# calls FILE: run the xenopsd-like client with the calls in FILE; output in $TMPD/out.
calls() {
    timeout 60 node tests/fakeswitch/msclient.js "$SW" "$1" --timeout-s 30 \
        >"$TMPD/out" 2>"$TMPD/client.err"
}

# reply METHOD: the payload the client printed for METHOD.
reply() {
    sed -n "s/^$1 //p" "$TMPD/out" | head -n 1
}

# ---- started before the switch -------------------------------------------------------
start_daemon --scenario scenarios/e2e-flow.json --use-switch true --switch-path "$SW" ||
    e2e_finish
sleep 2.5 # three retries at least (0.5, 1 and 2 s apart)
n=$(grep -c "cannot connect" "$DAEMON_LOG")
assert_eq "no switch yet: said once, not at every retry" 1 "$n"
assert_true "no switch yet: the daemon runs" daemon_alive

start_switch "$TMPD/frames.log"
assert_true "connects once the switch is up" \
    wait_for "$DAEMON_LOG" "serving queue org.xen.xapi.memory" 10

# ---- a VM start through the switch -----------------------------------------------------
cat >"$TMPD/vm-start.json" <<'EOF'
[["login", ["vm-start", "xenopsd"]],
 ["reserve_memory", ["vm-start", "xenopsd", 1572864]],
 ["sim.create_domain", [{"domid": 10, "dynamic_min_kib": 1048576,
   "dynamic_max_kib": 1572864, "target_kib": 1572864,
   "initial_reservation_kib": 1572864, "boot_after_s": 1}]],
 ["transfer_reservation_to_domain", ["vm-start", "xenopsd", "$1", 10]],
 ["query_reservation_of_domain", ["vm-start", "xenopsd", 10]],
 ["delete_reservation", ["vm-start", "xenopsd", "$1"]],
 ["delete_reservation", ["vm-start", "xenopsd", "$1"]]]
EOF
before=$(wc -l <"$TMPD/frames.log")
calls "$TMPD/vm-start.json"
assert_eq "client: every call answered" 0 "$?"
tail -n +"$((before + 1))" "$TMPD/frames.log" >"$TMPD/vm-start-frames.log"
assert_json "login through the switch" "$(reply login)" .result xenopsd
id=$(reply reserve_memory | jget .result)
assert_match "reserve_memory through the switch: a reservation id" \
    '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' "$id"
assert_json "sim.create_domain through the switch" "$(reply sim.create_domain)" .error null
assert_json "transfer through the switch" "$(reply transfer_reservation_to_domain)" .error null
assert_json "query through the switch: the transferred id" \
    "$(reply query_reservation_of_domain)" .result "$id"
d=$(sed -n 's/^delete_reservation //p' "$TMPD/out")
assert_json "delete through the switch" "$(echo "$d" | sed -n 1p)" .error null
assert_json "a second delete: Unknown_reservation" "$(echo "$d" | sed -n 2p)" \
    '.error[0]' Unknown_reservation
assert_json "the reply echoes the request id" "$(echo "$d" | sed -n 1p)" .id 6
assert_json "no reservation left" "$(http_get /status)" .reservations.length 0
f=$TMPD/vm-start-frames.log
assert_true "frames: the request on the memory queue" \
    grep -q 'POST /request/org.xen.xapi.memory/xenopsd-test' "$f"
assert_true "frames: the answer on the reply queue, as a response to the message" \
    grep -q 'POST /response/xenopsd-test:[0-9]*/org.xen.xapi.memory/[0-9]' "$f"
assert_true "frames: acknowledged on the memory queue" \
    grep -q 'GET /ack/org.xen.xapi.memory/[0-9]' "$f"
acks=$(grep -c '> c[0-9]* GET /ack/org.xen.xapi.memory/' "$f")
assert_eq "frames: one ack per call" 7 "$acks"
if [ -n "${SWITCH_FRAMES_OUT:-}" ]; then
    cp "$f" "$SWITCH_FRAMES_OUT"
fi
r=$(rpc_unix get_diagnostics '["dbg"]')
assert_json "the JSON-RPC interface still answers beside the switch" "$r" .error null

# ---- the switch restarts ------------------------------------------------------------------
# The line of the first connection says "(connected again)" too (the daemon came up
# before the switch): wait for one more.
again="serving queue org.xen.xapi.memory .*(connected again)"
served=$(grep -c -- "$again" "$DAEMON_LOG")
stop_switch
start_switch "$TMPD/frames2.log"
assert_true "connects again after a switch restart" \
    wait_for_count "$DAEMON_LOG" "$again" $((served + 1)) 15
echo '[["get_host_reserved_memory", ["dbg"]]]' >"$TMPD/one.json"
calls "$TMPD/one.json"
assert_json "served after the switch restart" "$(reply get_host_reserved_memory)" .result 73728
stop_daemon
stop_switch

# ---- killed between the answer and the ack -----------------------------------------------
world=$TMPD/world.json
start_switch "$TMPD/frames3.log" --stall-response 2
start_daemon --scenario scenarios/e2e-flow.json --sim-state "$world" --use-switch true \
    --switch-path "$SW" || e2e_finish
cat >"$TMPD/reserve.json" <<'EOF'
[["login", ["kill", "xenopsd"]], ["reserve_memory", ["kill", "xenopsd", 524288]]]
EOF
calls "$TMPD/reserve.json" &
client=$!
assert_true "the switch holds back its answer to the reserve_memory response" \
    wait_for "$TMPD/frames3.log" STALLED 20
kill_daemon KILL
wait "$client"
first=$(reply reserve_memory | jget .result)
assert_match "the client got its reservation id" '^[0-9a-f-]{36}$' "$first"
assert_eq "not acknowledged before the kill" 0 \
    "$(grep -c '> c[0-9]* GET /ack/org.xen.xapi.memory/1 ' "$TMPD/frames3.log")"
start_daemon --scenario scenarios/e2e-flow.json --sim-state "$world" --use-switch true \
    --switch-path "$SW" || e2e_finish
assert_true "the restarted daemon acknowledges the message" \
    wait_for "$TMPD/frames3.log" '> c[0-9]* GET /ack/org.xen.xapi.memory/1 ' 20
bodies=$(grep '> c[0-9]* POST /response/[^ ]*/org.xen.xapi.memory/1 ' "$TMPD/frames3.log" |
    sed 's/.*\] //' | sort | uniq -c | sed 's/^ *//')
assert_match "the message was answered twice, with the same reply" \
    "^2 \\{\"result\":\"$first\",\"error\":null,\"id\":2\\}$" "$bodies"
assert_true "the daemon says it answered from the stored reply" \
    grep -q "delivered again: answered with the reply stored before" "$DAEMON_LOG"
s=$(http_get /status)
assert_json "one reservation, not two" "$s" .reservations.length 1
assert_json "the reservation is the one answered" "$s" '.reservations[0].id' "$first"
assert_json "its memory held once" "$s" .host.reservations_kib 524288
stop_daemon
stop_switch
e2e_finish
