#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# Write a scenario of N booted, balloonable guests (domids 1..N) to stdout: each 64 MiB
# at its maximum, dynamic range [32 MiB, 64 MiB] (32,000 of them fit the simulated host's
# 2 TiB limit), with FREE_KIB (default 4 GiB) free on a host sized to fit. The benchmarks generate their large hosts with it into build/ rather than
# keeping 10 MB files in the repository. Usage: sh bench/gen_scenario.sh N [FREE_KIB]
set -eu
n=${1:?usage: gen_scenario.sh N [FREE_KIB]}
free=${2:-4194304}
case $n in *[!0-9]* | '') echo "gen_scenario: N must be a number" >&2; exit 1 ;; esac
[ "$n" -ge 1 ] && [ "$n" -le 32751 ] || { echo "gen_scenario: N in 1..32751" >&2; exit 1; }
awk -v n="$n" -v free="$free" 'BEGIN {
    dom_kib = 65536
    printf "{ \"name\": \"%d generated guests of 64 MiB in [32 MiB, 64 MiB]\",\n", n
    printf "  \"host\": { \"total_kib\": %d, \"free_kib\": %d },\n", \
           n * dom_kib + free + 4194304, free
    printf "  \"domains\": [\n"
    for (i = 1; i <= n; i++)
        printf "    { \"domid\": %d, \"dynamic_min_kib\": 32768, \"dynamic_max_kib\": %d, " \
               "\"target_kib\": %d, \"actual_kib\": %d }%s\n", i, dom_kib, dom_kib, dom_kib, \
               i < n ? "," : ""
    printf "  ]\n}\n"
}'
