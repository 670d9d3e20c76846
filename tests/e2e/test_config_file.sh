#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# The daemon's settings from a squeezed.conf-style file: -n checks, clear messages for
# bad values, the file over the options (xapi's order), and a managed dom0
# (manage-domain-zero).
. "$(dirname "$0")/lib.sh"
e2e_init config_file 60
cd "$E2E_ROOT" || exit 1

conf=$TMPD/squeezed.conf
cat >"$conf" <<CONF
# as xapi ships it, plus ours
log = syslog:daemon
manage-domain-zero = true
domain-zero-dynamic-min = 536870912
domain-zero-dynamic-max = 1073741824
balance-check-interval = 5
reserved-host-memory-kib = 2048
CONF
run_squeezed -n -f "$conf" --backend sim --scenario scenarios/e2e-flow.json
assert_eq "-n accepts a good file" 0 $?
assert_match "-n says the configuration is fine" "configuration OK" "$(cat "$TMPD/run.out")"
assert_eq "-n takes xapi's log key without a word" "" "$(grep "log =\|'log'" "$TMPD/run.out")"
printf 'colour = blue\n' >"$TMPD/unknown.conf"
run_squeezed -n -f "$TMPD/unknown.conf" --backend sim --scenario scenarios/e2e-flow.json
assert_match "-n warns about keys it does not know" "unknown key 'colour'" "$(cat "$TMPD/run.out")"

printf 'reserved-host-memory-kib = 2048\nbalance-check-interval = soon\n' >"$TMPD/bad.conf"
run_squeezed -n -f "$TMPD/bad.conf"
assert_eq "-n refuses a bad value" 1 $?
assert_match "the message names file:line and the key" \
    "bad.conf:2: balance-check-interval = 'soon'" "$(cat "$TMPD/run.out")"
run_squeezed -d --backend sim --scenario scenarios/e2e-flow.json --listen 0.0.0.0:0
assert_eq "a listener off loopback is refused" 1 $?
assert_match "and the message says loopback" "loopback" "$(cat "$TMPD/run.out")"
run_squeezed -n --backend sim --scenario "$TMPD/missing.json"
assert_eq "-n refuses a missing scenario" 1 $?
printf '{"domains": [{"domid": 1, "balloon": {"model": "fast"}}]}' >"$TMPD/bad.json"
run_squeezed -n --backend sim --scenario "$TMPD/bad.json"
assert_eq "-n refuses a malformed scenario" 1 $?
assert_match "naming the field" "balloon.model" "$(cat "$TMPD/run.out")"
run_squeezed -d --listen 127.0.0.1:0 --socket "$TMPD/x.sock"
rc=$?
if [ -e /proc/xen/privcmd ] || [ -e /dev/xen/privcmd ]; then
    note "a Xen host: the xen backend check is skipped"
else
    assert_eq "--backend xen without Xen exits 1" 1 "$rc"
    assert_match "and says how to use the simulated host" \
        "--backend sim --scenario scenarios/demo.json" "$(cat "$TMPD/run.out")"
fi

start_daemon -f "$conf" --scenario scenarios/e2e-flow.json --reserved-host-memory-kib 4096 \
    --poll-interval-s 0.5 || e2e_finish
r=$(rpc get_host_reserved_memory '["dbg"]')
assert_json "the file wins over an option (xapi's order)" "$r" .result 2048
assert_match "and the overridden option is named in the log" \
    "option --reserved-host-memory-kib 4096: overridden by .*squeezed.conf:7" "$(cat "$DAEMON_LOG")"
assert_eq "an option the file does not set is not warned about" "" \
    "$(grep -e '--poll-interval-s' "$DAEMON_LOG")"
r=$(rpc get_domain_zero_policy '["dbg"]')
assert_json "manage-domain-zero: Auto_balloon with the configured range" "$r" .result \
    '["Auto_balloon",[536870912,1073741824]]'
w=$(rpc sim.state '[]')
assert_json "dom0's dynamic-min is written from the file" "$w" \
    'j.result.domains.find(d => d.domid == 0).dynamic_min_kib' 524288
s=$(http_get /status)
assert_json "status shows the reserve from the file" "$s" .host.reserved_kib 2048
stop_daemon
e2e_finish
