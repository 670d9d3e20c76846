#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# Soak: the real daemon on the simulated host (scenarios/soak.json) under many concurrent
# clients and a chaos client for SOAK_SECONDS (default 20), loopback only; the clients
# and every check are in tests/soak/soak.mjs (node's http module only).
#
# The virtual clock: time passes only through requests (sim.advance, the squeezes' own
# waits), so when every client stops between two requests the simulated host stands
# still and the memory check can be exact (no tolerance), at every such quiescent point
# (a few each second). It also makes a squeeze of many rounds cost milliseconds, so the
# soak does thousands of operations instead of a few; the real clock under faults is
# exercised by test_kill_restart.sh and test_fakexen_faults.sh.
#
# Environment: SOAK_SECONDS (20), SOAK_CLIENTS (8 workers; a chaos client comes on top),
# SOAK_SEED (a number: replay a run; default random, printed).
. "$(dirname "$0")/lib.sh"
SOAK_SECONDS=${SOAK_SECONDS:-20}
SOAK_CLIENTS=${SOAK_CLIENTS:-8}
SOAK_SEED=${SOAK_SEED:-$(od -An -N3 -tu4 /dev/urandom | tr -d ' ')}
e2e_init soak $((SOAK_SECONDS + 60))
cd "$E2E_ROOT" || exit 1

# Under AddressSanitizer freed memory is kept in quarantine (256 MiB by default), which
# a soak of churning requests fills at its own pace: the daemon's RSS would grow with it.
# A small quarantine fills during the warm-up, so what grows after it is the daemon's.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=16"
export ASAN_OPTIONS

start_daemon --scenario scenarios/soak.json || e2e_finish
note "soak: $SOAK_SECONDS s, $SOAK_CLIENTS workers + chaos, seed $SOAK_SEED, pid $DAEMON_PID"
node tests/soak/soak.mjs --port "$PORT" --pid "$DAEMON_PID" --seconds "$SOAK_SECONDS" \
    --clients "$SOAK_CLIENTS" --seed "$SOAK_SEED" --scale "$E2E_LIMIT_SCALE" --token "$E2E_TOKEN" \
    >"$TMPD/soak.out" 2>&1
rc=$?
cat "$TMPD/soak.out"
grep -q '^FAIL: ' "$TMPD/soak.out" || [ "$rc" -eq 0 ] ||
    fail "soak: the clients" "exit status $rc"
assert_true "soak: the daemon is alive at the end" daemon_alive
assert_json "soak: and answers" "$(http_get /status)" .reservations.length 0
assert_no_violations "soak: no violation on the simulated host, none in the daemon log"
stop_daemon "soak: the daemon stops cleanly"
assert_true "soak: the daemon logs no sanitizer report" \
    sh -c "! grep -q Sanitizer '$DAEMON_LOG'"
# The only warnings expected: operations that ended refused or short of memory (and the
# calls of a coalesced batch they refused).
odd=$(grep 'warn:' "$DAEMON_LOG" | grep -Ev \
    'warn: ((dbg [^ ]*: )?(reserve|reserve_range|balance|periodic_balance) [0-9]+ KiB( \(coalesced\))?: (refused|cannot_free)|reserve batch: )' |
    head -n 3)
assert_eq "soak: the daemon warns of nothing but refused or short operations" "" "$odd"
e2e_finish
