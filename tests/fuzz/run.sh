#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# Run the request-path fuzzer (tests/fuzz/fuzz_rpc.c) for SECONDS: `make fuzz` and
# tests/stages/fuzz.sh call it.
#
# Usage: sh tests/fuzz/run.sh BIN SECONDS
#
# libFuzzer works on build/fuzz/corpus, a copy: the seeds (tests/fuzz/corpus, one body
# each, and tests/fuzz/sequences, conversations) are copied in at every run, and what
# earlier runs found stays there; the committed seeds only grow by deliberate additions.
# A crash, leak, timeout or out-of-memory input is saved under build/fuzz/artifacts/ and
# its path printed with the command that replays it. Prints PASS:/FAIL: lines (for
# tests/run.sh) and the run's figures; exits 0, or 1 on any finding.
# FUZZ_FRESH_CORPUS=1 starts again from the seeds alone.
set -u
cd "$(dirname "$0")/../.." || exit 1

bin=${1:?usage: run.sh BIN SECONDS}
secs=${2:?usage: run.sh BIN SECONDS}
dir=build/fuzz
corpus=$dir/corpus
art=$dir/artifacts
# This run's log; renamed fuzz.log at the end of a clean run (runs may overlap in a
# shared checkout), kept under its own name after a finding.
log=$dir/fuzz.$$.log

case "$secs" in
'' | *[!0-9]*)
    echo "FAIL: fuzz_rpc: FUZZ_SECONDS must be a whole number of seconds, not '$secs'"
    exit 1
    ;;
esac
if [ ! -x "$bin" ]; then
    echo "FAIL: fuzz_rpc: $bin is not built"
    exit 1
fi
[ "${FUZZ_FRESH_CORPUS:-0}" = 1 ] && rm -rf "$corpus"
mkdir -p "$corpus" "$art"
cp tests/fuzz/corpus/* tests/fuzz/sequences/* "$corpus"/ || exit 1

echo "# fuzz_rpc: $secs s on $corpus ($(ls "$corpus" | wc -l) inputs)"
# -timeout: one input (a fresh service and up to 8 requests) takes a few ms, 0.1 s at most.
# The outer timeout only guards against libFuzzer itself hanging.
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    timeout -k 10 $((secs + 600)) "$bin" -max_total_time="$secs" -max_len=65536 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -dict=tests/fuzz/rpc.dict \
    -artifact_prefix="$art/" "$corpus" >"$log" 2>&1
rc=$?

# The figures: libFuzzer's last status line and its final stats.
last=$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -n 1)
stat() {
    sed -n "s/^stat::$1: *//p" "$log" | tail -n 1
}
echo "# fuzz_rpc: exit $rc; $(stat number_of_executed_units) inputs," \
    "$(stat average_exec_per_sec) exec/s, $(stat new_units_added) new," \
    "slowest $(stat slowest_unit_time_sec) s, peak RSS $(stat peak_rss_mb) MB"
[ -n "$last" ] && echo "# fuzz_rpc: $last"

found=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
    echo "FAIL: fuzz_rpc: libFuzzer exited with status $rc; log $log:"
    # The finding, without the daemon's own warnings (refused, cannot free, ...).
    grep -v -E '^[0-9:.]+ (warn|info|debug): ' "$log" | tail -n 60 | sed 's/^/#   /'
    if [ -n "$found" ]; then
        echo "FAIL: fuzz_rpc: the input is $found (replay: FUZZ_RPC_TRACE=1 $bin $found)"
    fi
    exit 1
fi
mv "$log" "$dir/fuzz.log"
echo "PASS: fuzz_rpc: $secs s without a crash, leak or timeout (log $dir/fuzz.log)"
exit 0
