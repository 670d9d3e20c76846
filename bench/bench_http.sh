#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# HTTP throughput and latency of the daemon on the simulated host, with wrk on keep-alive
# connections: GET /status, one cheap JSON-RPC call (get_host_reserved_memory), and GET
# /status while a long reservation is running (real clock, slow balloon).
# Beside each GET figure, the reference measured in the same run: BUILD/bench/refserver, a
# bare libmicrohttpd server of the same version and threading mode returning the very
# same bytes (the body the daemon answered), and the ratio ours / reference. By host
# size (SIZES: "demo" or a number of generated domains): throughput of GET /status and
# /metrics; by P50_SIZES: /status p50 on one connection.
# Usage: [BUILD=build] [BIN=BUILD/squeezed] [DURATION_S=5] [CONNECTIONS=16] [THREADS=2]
#        [SIZES="demo 1000 10000"] [P50_SIZES="1000 32000"] sh bench/bench_http.sh
set -u
cd "$(dirname "$0")/.." || exit 1
: "${BUILD:=build}"
: "${DURATION_S:=5}"
: "${CONNECTIONS:=16}"
: "${THREADS:=2}"
: "${SIZES=demo 1000 10000}"
: "${P50_SIZES=1000 32000}"
: "${BIN:=$BUILD/squeezed}"
bin=$BIN
ref=$BUILD/bench/refserver
pid=""
refpid=""
tmp=$(mktemp -d "${TMPDIR:-/tmp}/squeezed-bench.XXXXXX") || exit 1

cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    [ -n "$refpid" ] && kill -KILL "$refpid" 2>/dev/null && wait "$refpid" 2>/dev/null
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
[ -x "$ref" ] || die "$ref is not built (make benches)"

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
    tries=6000
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

# host SIZE: the scenario of that size (generated into BUILD/scenarios).
host() {
    case $1 in
    demo) echo scenarios/demo.json ;;
    *)
        f=$BUILD/scenarios/generated-$1.json
        mkdir -p "$BUILD/scenarios"
        [ -s "$f" ] || sh bench/gen_scenario.sh "$1" >"$f" || die "cannot generate $f"
        echo "$f"
        ;;
    esac
}

# field NAME FILE: requests/s or p50 (in ms) from a wrk --latency output.
field() {
    awk -v what="$1" '
        function ms(v) {
            if (v ~ /us$/) return v / 1000
            if (v ~ /ms$/) return v + 0
            if (v ~ /s$/) return v * 1000
            return v
        }
        /Requests\/sec:/ && what == "rps" { print $2 }
        /^ +50%/ && what == "p50" { printf "%.3f\n", ms($2) }' "$2"
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'
}

# against NAME PATH CONTENT-TYPE WHAT WRK-ARGS...: wrk on the daemon's PATH, then on the
# bare server serving the same bytes; prints ours, the reference and the ratio.
against() {
    aname=$1 path=$2 ctype=$3 what=$4
    shift 4
    curl -sS --max-time 120 -o "$tmp/body" "$url$path" || die "GET $path failed"
    wrk_run "$aname" "$@" "$url$path"
    cp "$tmp/wrk.out" "$tmp/ours.out"
    "$ref" "$tmp/body" "$ctype" >"$tmp/ref.port" 2>&1 &
    refpid=$!
    rport=""
    while [ -z "$rport" ]; do
        kill -0 "$refpid" 2>/dev/null || die "refserver exited: $(cat "$tmp/ref.port")"
        rport=$(sed -n 's/^port \([0-9]*\)$/\1/p' "$tmp/ref.port")
        [ -n "$rport" ] || sleep 0.02
    done
    wrk_run "$aname (bare libmicrohttpd)" "$@" "http://127.0.0.1:$rport$path"
    kill -TERM "$refpid" 2>/dev/null
    wait "$refpid" 2>/dev/null
    refpid=""
    o=$(field "$what" "$tmp/ours.out")
    r=$(field "$what" "$tmp/wrk.out")
    unit="req/s"
    [ "$what" = p50 ] && unit="ms p50"
    echo "bench_http: $aname, $(wc -c <"$tmp/body") bytes: ours $o $unit, reference $r" \
        "$unit, ratio $(ratio "$o" "$r")"
}

echo "bench_http: wrk -t$THREADS -c$CONNECTIONS -d${DURATION_S}s, keep-alive, $(nproc) CPUs"

# 0. GET /status and /metrics by host size, against the bare server.
for n in $SIZES; do
    start --scenario "$(host "$n")" --clock virtual
    against "GET /status ($n)" /status application/json rps \
        -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION_S}s"
    against "GET /metrics ($n)" /metrics "text/plain; version=0.0.4; charset=utf-8" rps \
        -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION_S}s"
    stop
done
for n in $P50_SIZES; do
    start --scenario "$(host "$n")" --clock virtual
    against "GET /status one connection ($n)" /status application/json p50 \
        -t1 -c1 -d"${DURATION_S}s"
    stop
done

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
