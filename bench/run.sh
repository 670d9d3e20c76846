#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# `make bench`: run every benchmark, the C ones (BUILD/bench/bench_*) then the scripts
# (bench/bench_*.sh, which get BUILD in the environment). Usage: bench/run.sh [BUILD]
set -u
cd "$(dirname "$0")/.." || exit 1
build=${1:-build}
failed=""

for b in "$build"/bench/bench_*; do
    [ -x "$b" ] || continue
    echo "== $b"
    if ! "$b"; then
        failed="$failed $b"
    fi
done
for s in bench/bench_*.sh; do
    [ -f "$s" ] || continue
    echo "== $s"
    if ! BUILD="$build" sh "$s"; then
        failed="$failed $s"
    fi
done

if [ -n "$failed" ]; then
    echo "bench: failed:$failed" >&2
    exit 1
fi
echo "bench: all done"
