#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# squeezed-cli against the real daemon (simulated host, virtual clock): the status table
# shows what /status says, reserve / delete / balance / diagnostics do what the JSON-RPC
# calls do, over the unix socket and over --url; errors give the documented exit status.
. "$(dirname "$0")/lib.sh"
e2e_init cli 120
CLI=${SQUEEZED_CLI:-$BUILD/squeezed-cli}
if [ ! -x "$CLI" ]; then
    fail "cli: $CLI is not built"
    e2e_finish
fi

start_daemon --scenario scenarios/demo.json || e2e_finish
cli() {
    timeout 60 "$CLI" --socket "$SOCK" "$@"
}

# status: one row per domain, the figures of /status (MiB, or KiB with --kib).
st=$(http_get /status)
n=$(printf '%s' "$st" | jget '.domains.length')
out=$(cli status)
assert_eq "status exits 0" 0 $?
assert_match "status has the xl-list-like header" \
    '^domid +name +min +target +actual +max +flags' "$(printf '%s\n' "$out" | head -n 1)"
rows=$(printf '%s\n' "$out" | grep -cE '^ *[0-9]+ ')
assert_eq "status has one row per domain" "$n" "$rows"
out_kib=$(cli --kib status)
want=$(printf '%s' "$st" | jget 'j.domains.map(d => [d.domid, "-", d.dynamic_min_kib, d.target_kib, d.actual_kib, d.dynamic_max_kib].join(" ")).join("\n")')
got=$(printf '%s\n' "$out_kib" | grep -E '^ *[0-9]+ ' | awk '{print $1, $2, $3, $4, $5, $6}')
assert_eq "status --kib shows each domain's min, target, actual, max exactly (name '-' when absent)" \
    "$want" "$got"
want=$(printf '%s' "$st" | jget 'j.domains.map(d => [d.domid, Math.floor(d.target_kib / 1024)].join(" ")).join("\n")')
got=$(printf '%s\n' "$out" | grep -E '^ *[0-9]+ ' | awk '{print $1, $4}')
assert_eq "status shows targets in MiB" "$want" "$got"
stuck=$(printf '%s' "$st" | jget 'j.domains.filter(d => d.booting).map(d => d.domid).join(" ")')
for d in $stuck; do
    assert_match "status marks booting domain $d with b" "^ *$d .* --b--\$" \
        "$(printf '%s\n' "$out" | grep -E "^ *$d ")"
done

# reserve / reserve range / delete, the session logged in on first use only.
id1=$(cli reserve 1GiB)
assert_eq "reserve 1GiB exits 0" 0 $?
assert_match "reserve prints the id" '^[0-9a-f-]{36}$' "$id1"
st=$(http_get /status)
assert_json "the reservation is in /status with the CLI's session and 1 GiB" "$st" \
    "j.reservations.find(r => r.id == '$id1').session + ' ' + j.reservations.find(r => r.id == '$id1').kib" \
    "squeezed-cli 1048576"
out=$(cli reserve 524288 1048576)
assert_eq "reserve KIB MAX exits 0" 0 $?
id2=${out%% *}
size=${out#* }
assert_range "reserve KIB MAX prints a size within the range" "$size" 524288 1048576
st=$(http_get /status)
assert_json_true "a second reserve did not log in again (the first reservation is kept)" "$st" \
    "j.reservations.some(r => r.id == '$id1') && j.reservations.some(r => r.id == '$id2')"
assert_match "status lists the reservations" "$id1 +squeezed-cli +1024 " "$(cli status)"
cli delete "$id1"
assert_eq "delete exits 0" 0 $?
st=$(http_get /status)
assert_json_true "the deleted reservation is gone, the other kept" "$st" \
    "!j.reservations.some(r => r.id == '$id1') && j.reservations.some(r => r.id == '$id2')"
err=$(cli delete "$id1" 2>&1)
assert_eq "deleting it again exits 1" 1 $?
assert_match "and says which" "no reservation $id1" "$err"
err=$(cli --session other delete "$id2" 2>&1)
assert_eq "another session cannot delete it" 1 $?
err=$(cli reserve 100000GiB 2>&1)
assert_eq "an impossible reserve exits 1" 1 $?
assert_match "and says why" 'cannot free|refused to cooperate' "$err"

# balance, diagnostics, --url.
cli balance
assert_eq "balance exits 0" 0 $?
out=$(cli diagnostics)
assert_eq "diagnostics exits 0" 0 $?
assert_match "diagnostics prints the daemon's text" '^squeezed ' "$out"
out=$(timeout 60 "$CLI" --url "http://127.0.0.1:$PORT/" status)
assert_eq "status over --url exits 0" 0 $?
assert_eq "status over --url has the same rows" "$n" "$(printf '%s\n' "$out" | grep -cE '^ *[0-9]+ ')"

# Exit statuses.
timeout 10 "$CLI" --socket "$TMPD/none.sock" status >/dev/null 2>&1
assert_eq "no daemon: exit 3" 3 $?
cli frobnicate >/dev/null 2>&1
assert_eq "unknown command: exit 2" 2 $?
cli reserve -5 >/dev/null 2>&1
assert_eq "a bad size: exit 2" 2 $?
cli delete >/dev/null 2>&1
assert_eq "a missing argument: exit 2" 2 $?

assert_true "the daemon is still alive" daemon_alive
stop_daemon
e2e_finish
