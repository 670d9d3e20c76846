#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# HTTP throughput and latency of the daemon on the simulated host, with wrk on keep-alive
# connections: GET /status, one cheap JSON-RPC call (get_host_reserved_memory), and GET
# /status while a long reservation is running (real clock, slow balloon).
# Usage: [BUILD=build] [DURATION_S=5] [CONNECTIONS=16] [THREADS=2] sh bench/bench_http.sh
set -u
cd "$(dirname "$0")/.." || exit 1
: "${BUILD:=build}"
: "${DURATION_S:=5}"
: "${CONNECTIONS:=16}"
: "${THREADS:=2}"
bin=$BUILD/squeezed
pid=""
tmp=$(mktemp -d "${TMPDIR:-/tmp}/squeezed-bench.XXXXXX") || exit 1

cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

die() {
    echo "bench_http: $*" >&2
    exit 1
}

command -v wrk >/dev/null 2>&1 || die "wrk is not installed (sh scripts/deps.sh bench)"
command -v curl >/dev/null 2>&1 || die "curl is not installed (sh scripts/deps.sh bench)"
[ -x "$bin" ] || die "$bin is not built (make)"

# Changing calls over TCP need the bearer token (issue 11).
token=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
(umask 077 && printf '%s\n' "$token" >"$tmp/token")

# start ARGS...: start the daemon on any free loopback port; sets pid and url.
start() {
    log=$tmp/daemon.log
    "$bin" -d --backend sim --listen 127.0.0.1:0 --socket "$tmp/sq.sock" \
        --token-file "$tmp/token" "$@" >"$log" 2>&1 &
    pid=$!
    port=""
    tries=200
    while [ -z "$port" ] && [ "$tries" -gt 0 ]; do
        kill -0 "$pid" 2>/dev/null || die "the daemon exited: $(tail -n 5 "$log")"
        port=$(sed -n 's|.*ready on http://127\.0\.0\.1:\([0-9][0-9]*\)/.*|\1|p' "$log" |
            head -n 1)
        [ -n "$port" ] || sleep 0.05
        tries=$((tries - 1))
    done
    [ -n "$port" ] || die "no ready line: $(tail -n 5 "$log")"
    url=http://127.0.0.1:$port
}

stop() {
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    pid=""
}

rpc() {
    curl -sS --max-time 120 -H "Authorization: Bearer $token" \
        --data-binary "{\"method\": \"$1\", \"params\": $2, \"id\": 1}" "$url/"
}

# report NAME WRK-OUTPUT-FILE: one line with requests/s and latency percentiles; fails if
# any request failed.
report() {
    awk -v name="$1" '
        /Requests\/sec:/ { rps = $2 }
        /^ +50%/ { p50 = $2 } /^ +90%/ { p90 = $2 } /^ +99%/ { p99 = $2 }
        /requests in/ { n = $1 }
        /Non-2xx or 3xx responses:/ { bad = $NF }
        /Socket errors:/ { errs = $0 }
        END {
            printf "bench_http: %-34s %10s req/s  p50 %8s  p90 %8s  p99 %8s  (%s requests)\n",
                   name, rps, p50, p90, p99, n
            if (bad != "") { printf "bench_http: %s: %s non-2xx responses\n", name, bad; exit 1 }
            if (errs != "") { printf "bench_http: %s: %s\n", name, errs; exit 1 }
            if (rps == "") exit 1
        }' "$2"
}

failed=0
wrk_run() {
    name=$1
    shift
    if ! wrk --latency "$@" >"$tmp/wrk.out" 2>&1; then
        cat "$tmp/wrk.out" >&2
        die "wrk failed for $name"
    fi
    report "$name" "$tmp/wrk.out" || failed=1
}

echo "bench_http: wrk -t$THREADS -c$CONNECTIONS -d${DURATION_S}s, keep-alive, $(nproc) CPUs"

# 1. Idle daemon, the 15-guest demo host.
start --scenario scenarios/demo.json --clock virtual
curl -sS --max-time 10 "$url/status" | grep -q '"domains"' || die "GET /status does not answer"
wrk_run "GET /status (15 domains)" -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION_S}s" "$url/status"
wrk_run "GET /metrics (15 domains)" -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION_S}s" \
    "$url/metrics"
cat >"$tmp/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"method": "get_host_reserved_memory", "params": ["bench"], "id": 1}'
wrk.headers["Content-Type"] = "application/json"
LUA
rpc get_host_reserved_memory '["bench"]' | grep -q '"result":73728' ||
    die "get_host_reserved_memory does not answer 73728"
wrk_run "POST get_host_reserved_memory" -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION_S}s" \
    -s "$tmp/post.lua" "$url/"
stop

# 2. GET /status while a reservation balloons a guest down for seconds (real clock).
start --scenario scenarios/e2e-slow.json --clock real
rpc login '["bench", "bench"]' >/dev/null
t0=$(date +%s%N)
rpc reserve_memory '["bench", "bench", 655360]' >"$tmp/reserve.out" 2>&1 &
bg=$!
sleep 1
curl -sS --max-time 10 "$url/status" | grep -q '"busy":true' ||
    echo "bench_http: warning: the daemon was not busy when the measurement started" >&2
wrk_run "GET /status during a reservation" -t"$THREADS" -c4 -d3s "$url/status"
wait "$bg"
t1=$(date +%s%N)
grep -q '"error":null' "$tmp/reserve.out" || {
    echo "bench_http: the reservation failed: $(cat "$tmp/reserve.out")" >&2
    failed=1
}
echo "bench_http: the reservation took $(((t1 - t0) / 1000000)) ms of real time"
stop

exit "$failed"
