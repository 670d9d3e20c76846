#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# SIGKILL in the middle of reservations, then a restart on the same simulated host
# (--sim-state, SPEC 6): the restarted daemon finds every reservation it had granted and
# none it had not. Real clock and slow balloons (scenarios/fault-kill.json: 512 MiB/s),
# so that a kill lands mid-squeeze (/status says busy just before it). The kill comes
# before the grant, right after it, at several moments of a reservation in flight, while
# a transferred reservation's domain is still allocating it, and racing a transfer.
# After each restart: the set of reservations exactly, the memory they hold still free
# on the simulated host (exact check, below), and at the end every one deleted, nothing
# back after one more restart, no violation recorded by the simulated host.
. "$(dirname "$0")/lib.sh"
e2e_init kill_restart 90
cd "$E2E_ROOT" || exit 1
world=$TMPD/world.json
expected=$TMPD/expected # one "id:kib:domid" line per reservation granted ("-": none)
: >"$expected"
booting='{}' # domid -> initial reservation of the domains still booting
restarts=0

up() {
    start_daemon --scenario scenarios/fault-kill.json --clock real --sim-state "$world" ||
        e2e_finish
}

restart() {
    kill_daemon KILL
    restarts=$((restarts + 1))
    up
}

# The reservations /status lists, as sorted "id:kib:domid" lines joined with commas.
listed() {
    http_get /status | jget 'j.reservations.map(r => r.id + ":" + r.kib + ":" +
        (r.domid === undefined ? "-" : r.domid)).sort().join(",")'
}

# rid: the reservation id in the reply on stdin (nothing if it is not a success).
rid() {
    jget 'typeof j.result == "string" ? j.result : Array.isArray(j.result) ? j.result[0] :
        undefined' 2>/dev/null
}

want() {
    sort "$expected" | paste -sd, -
}

# expect_set NAME: /status lists exactly the expected reservations.
expect_set() {
    assert_eq "$1" "$(want)" "$(listed)"
}

# wait_busy SECONDS: until /status says a squeeze is running; 0 if it does.
wait_busy() {
    _t=$(($1 * E2E_LIMIT_SCALE * 20))
    while [ "$_t" -gt 0 ]; do
        [ "$(http_get /status | jget .daemon.busy)" = true ] && return 0
        sleep 0.05
        _t=$((_t - 1))
    done
    return 1
}

# memory_held NAME: the reservations' memory is free on the simulated host. Exact, with
# nothing in flight: free_kib (the sim's truth) minus what every guest may still take -
# a booting one up to min(initial reservation, maxmem), one whose balloon driver is up
# up to min(target + 4, maxmem) (the inaccuracy the daemon allows it), one without a
# driver nothing - must cover the host reserve plus every reservation not held by a
# live domain it was transferred to (that domain's own allocation is counted instead).
# Moving balloons only raise this margin and the daemon only hands out what is above
# it, so it holds at any moment between requests. A balance first: a reservation the
# restarted daemon had forgotten would be handed back to the guests.
memory_held() {
    _b=$(rpc balance_memory '["dbg"]')
    _s=$(http_get /status)
    _w=$(rpc sim.state '[]')
    _v=$(printf '{"s":%s,"w":%s,"b":%s,"bal":%s}' "$_s" "$_w" "$booting" "$_b" | jget '(() => {
        const w = j.w.result, live = new Set(w.domains.map(d => d.domid));
        const held = j.s.reservations.filter(r => r.domid === undefined || !live.has(r.domid))
            .reduce((a, r) => a + r.kib, 0);
        let grow = 0;
        for (const d of w.domains) {
            let reach = d.actual_kib;
            if (j.b[d.domid] !== undefined) reach = Math.min(j.b[d.domid], d.maxmem_kib);
            else if (d.can_balloon) reach = Math.min(d.target_kib + 4, d.maxmem_kib);
            grow += Math.max(0, reach - d.actual_kib);
        }
        const need = held + j.s.host.reserved_kib, have = w.free_kib - grow;
        return need <= have ? "ok" : `balance: ${JSON.stringify(j.bal)}; reservations ${held} + reserve ${j.s.host.reserved_kib}` +
            ` = ${need} KiB > free ${w.free_kib} - growth ${grow} = ${have} KiB`;
    })()')
    assert_eq "$1" ok "$_v"
}

up
rpc login '["dbg", "xenopsd"]' >/dev/null
id=$(rpc reserve_memory '["dbg", "xenopsd", 65536]' | rid)
assert_ne "a first reservation (no squeeze needed)" "" "$id"
echo "$id:65536:-" >>"$expected"

# ---- 1. before the grant: killed mid-squeeze ------------------------------------------
rpc reserve_memory '["dbg", "xenopsd", 1048576]' >"$TMPD/bg.out" 2>&1 &
bg=$!
if wait_busy 5; then
    sleep 0.2
    assert_json "before the grant: the kill lands mid-squeeze" "$(http_get /status)" \
        .daemon.busy true
else
    fail "before the grant: the squeeze is running" "/status never said busy"
fi
restart
wait "$bg"
assert_true "before the grant: the caller got no reservation" \
    sh -c "! grep -q '\"result\": *\"' '$TMPD/bg.out'"
expect_set "before the grant: after the restart only the granted reservation is there"
memory_held "before the grant: its memory is still free after the restart"

# ---- 2. right after the grant ---------------------------------------------------------
r=$(rpc reserve_memory '["dbg", "xenopsd", 524288]')
restart
id=$(printf '%s' "$r" | rid)
assert_ne "after the grant: reserved" "" "$id"
echo "$id:524288:-" >>"$expected"
expect_set "after the grant: after the restart both reservations are there"
memory_held "after the grant: their memory is still free after the restart"

# ---- 3. at several moments of a reservation in flight ---------------------------------
# Before, around and after the squeeze ends (256 MiB and more at 1 GiB/s): the restarted
# daemon has what it answered, and at most the one in flight, if it recorded it before
# the kill (granted, its answer lost: xenopsd's next login purges it).
for delay in 0.1 0.2 0.4; do
    rpc reserve_memory '["dbg", "xenopsd", 262144]' >"$TMPD/bg.out" 2>&1 &
    bg=$!
    sleep "$delay"
    restart
    wait "$bg"
    id=$(rid <"$TMPD/bg.out")
    [ -n "$id" ] && echo "$id:262144:-" >>"$expected"
    note "killed ${delay} s into a reservation: $([ -n "$id" ] && echo answered ||
        echo 'no answer'): $(head -c 120 "$TMPD/bg.out")"
    now=$(listed)
    extra=$(printf '%s\n' "$now" | tr , '\n' | grep -v -x -F -f "$expected" | grep -v '^$')
    if [ -z "$extra" ]; then
        expect_set "killed ${delay} s into a reservation: exactly the ones answered"
    elif [ -z "$id" ] && [ "$(printf '%s\n' "$extra" | wc -l)" -eq 1 ] &&
        printf '%s\n' "$extra" | grep -q ':262144:-$'; then
        pass "killed ${delay} s into a reservation: the ones answered, and the one in flight"
        note "recorded before the kill, its answer lost: $extra"
        echo "$extra" >>"$expected"
    else
        fail "killed ${delay} s into a reservation: exactly the ones answered" \
            "expected $(want) (+ at most the one in flight), got $now"
    fi
    memory_held "killed ${delay} s into a reservation: the memory of all is free"
done

# ---- 4. during a transfer: the domain is still allocating its reservation --------------
# It allocates at 64 MiB/s (4 s for 256 MiB), so it is still at it when killed also under
# valgrind, where the calls before the kill take seconds.
r=$(rpc reserve_memory '["dbg", "xenopsd", 262144]')
id=$(printf '%s' "$r" | rid)
assert_ne "transfer: reserved" "" "$id"
r=$(rpc sim.create_domain '[{"domid": 10, "dynamic_min_kib": 131072, "dynamic_max_kib": 262144,
    "target_kib": 262144, "maxmem_kib": 262144, "initial_reservation_kib": 262144,
    "boot_after_s": 600, "balloon": {"rate_kib_s": 65536}}]')
assert_json "transfer: the domain is created" "$r" .error null
r=$(rpc transfer_reservation_to_domain "[\"dbg\", \"xenopsd\", \"$id\", 10]")
assert_json "transfer: transferred" "$r" .error null
echo "$id:262144:10" >>"$expected"
booting='{"10": 262144}'
sleep 0.5
a=$(rpc sim.state '[]' | jget 'j.result.domains.find(d => d.domid == 10).actual_kib')
assert_range "transfer: the domain is still allocating when killed" "$a" 1 262143
restart
expect_set "transfer: after the restart the reservation is there, transferred"
r=$(rpc query_reservation_of_domain '["dbg", "xenopsd", 10]')
assert_json "transfer: query_reservation_of_domain finds it after the restart" "$r" .result "$id"
s=$(http_get /status)
assert_json_true "transfer: counted through the booting domain, not twice" "$s" \
    "j.host.reservations_kib == $(grep -v ':10$' "$expected" | awk -F: '{ s += $2 } END { print s }')
     && j.host.booting_unused_kib > 0 && j.domains.find(d => d.domid == 10).booting"
memory_held "transfer: the memory of all is free after the restart"
t=$((20 * E2E_LIMIT_SCALE * 5))
while [ "$t" -gt 0 ]; do
    a=$(rpc sim.state '[]' | jget 'j.result.domains.find(d => d.domid == 10).actual_kib')
    [ "$a" = 262144 ] && break
    sleep 0.2
    t=$((t - 1))
done
assert_eq "transfer: the domain finishes allocating its reservation" 262144 "$a"
assert_no_violations "transfer: nobody took the memory it was allocating"

# ---- 5. racing a transfer ----------------------------------------------------------------
r=$(rpc reserve_memory '["dbg", "xenopsd", 65536]')
id=$(printf '%s' "$r" | rid)
assert_ne "transfer race: reserved" "" "$id"
rpc sim.create_domain '[{"domid": 11, "target_kib": 65536, "maxmem_kib": 65536,
    "initial_reservation_kib": 65536, "boot_after_s": 600}]' >/dev/null
booting='{"10": 262144, "11": 65536}'
rpc transfer_reservation_to_domain "[\"dbg\", \"xenopsd\", \"$id\", 11]" >/dev/null 2>&1 &
bg=$!
sleep 0.01
restart
wait "$bg"
now=$(listed)
note "transfer race: after the restart: $now"
case ",$now," in
*",$id:65536:-,"* | *",$id:65536:11,"*)
    pass "transfer race: the reservation survives, transferred or not"
    ;;
*) fail "transfer race: the reservation survives" "$id not in $now" ;;
esac
case ",$now," in
*",$id:65536:11,"*)
    r=$(rpc query_reservation_of_domain '["dbg", "xenopsd", 11]')
    assert_json "transfer race: recorded as transferred, and the domain says so" "$r" .result "$id"
    ;;
esac
r=$(rpc transfer_reservation_to_domain "[\"dbg\", \"xenopsd\", \"$id\", 11]")
assert_json "transfer race: the transfer can be made (again) after the restart" "$r" .error null
echo "$id:65536:11" >>"$expected"
expect_set "transfer race: then the set is exactly as expected"
memory_held "transfer race: the memory of all is free"

# ---- the end: every one can be deleted, and stays deleted --------------------------------
ok=0
for line in $(cat "$expected"); do
    id=${line%%:*}
    r=$(rpc delete_reservation "[\"dbg\", \"xenopsd\", \"$id\"]")
    [ "$(printf '%s' "$r" | jget .error)" = null ] && ok=$((ok + 1))
done
assert_eq "every reservation found after the restarts can be deleted" \
    "$(wc -l <"$expected" | tr -d ' ')" "$ok"
: >"$expected"
expect_set "none left"
restart
expect_set "none back after one more restart"
memory_held "the domains' memory is still held for them after the deletes"
assert_no_violations "no violation on the simulated host across $restarts kills"
assert_true "the daemon logs no sanitizer report" \
    sh -c "! grep -q Sanitizer $TMPD/daemon.*.log"
stop_daemon
note "kill_restart: $restarts SIGKILLs and restarts"
e2e_finish
