#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# The daemon at scale on the simulated host (issue 13): each figure is printed with the
# reference measured in the same run and their ratio.
#   reserve   a reserve that needs no ballooning, by host size; reference: two snapshots
#             and one policy round of the same host in-process (BUILD/bench/bench_snapshot)
#   held      reserve / transfer / delete / login / GET /status with HELD reservations
#             held; reference: the same calls with none held
#   state     --sim-state: a reserve with it against without; start-up with it by size;
#             SIGTERM during start-up
#   rss       RSS idle and after an hour of periodic balances (virtual clock), by size;
#             RSS per domain and per reservation
# Hosts are generated into BUILD/scenarios by bench/gen_scenario.sh.
# Usage: [BUILD=build] [BIN=BUILD/squeezed] [PARTS="reserve held state rss"]
#        [RESERVE_SIZES="10000 32000"] [HELD=10000] [STATE_SIZES="1000 10000"]
#        [RSS_SIZE=32000] [REPEAT=7] sh bench/bench_scale.sh
set -u
cd "$(dirname "$0")/.." || exit 1
: "${BUILD:=build}"
: "${BIN:=$BUILD/squeezed}"
: "${PARTS=reserve held state rss}"
: "${RESERVE_SIZES=10000 32000}"
: "${HELD:=10000}"
: "${STATE_SIZES=1000 10000}"
: "${RSS_SIZE:=32000}"
: "${REPEAT:=7}"
pid=""
tmp=$(mktemp -d "${TMPDIR:-/tmp}/squeezed-scale.XXXXXX") || exit 1
scen=$BUILD/scenarios
mkdir -p "$scen" || exit 1

pid0=""
cleanup() {
    [ -n "$pid0" ] && kill -KILL "$pid0" 2>/dev/null && wait "$pid0" 2>/dev/null
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

die() {
    echo "bench_scale: $*" >&2
    exit 1
}
say() {
    echo "bench_scale: $*"
}

command -v curl >/dev/null 2>&1 || die "curl is not installed"
command -v wrk >/dev/null 2>&1 || die "wrk is not installed"
[ -x "$BIN" ] || die "$BIN is not built (make)"

# Changing calls over TCP need the bearer token (issue 11).
token=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
(umask 077 && printf '%s\n' "$token" >"$tmp/token")

# host N: the path of a generated N-domain scenario ("demo" is scenarios/demo.json).
host() {
    case $1 in
    demo) echo scenarios/demo.json ;;
    *)
        f=$scen/generated-$1.json
        [ -s "$f" ] || sh bench/gen_scenario.sh "$1" >"$f" || die "cannot generate $f"
        echo "$f"
        ;;
    esac
}

now_ms() {
    echo $(($(date +%s%N) / 1000000))
}

# start ARGS...: the daemon on a free loopback port; sets pid, url and startup_ms.
start() {
    log=$tmp/daemon${SOCK_TAG:-}.log
    t0=$(now_ms)
    "$BIN" -d --backend sim --listen 127.0.0.1:0 --socket "$tmp/sq${SOCK_TAG:-}.sock" \
        --token-file "$tmp/token" "$@" >"$log" 2>&1 &
    pid=$!
    port=""
    while [ -z "$port" ]; do
        kill -0 "$pid" 2>/dev/null || die "the daemon exited: $(tail -n 5 "$log")"
        port=$(sed -n 's|.*ready on http://127\.0\.0\.1:\([0-9][0-9]*\)/.*|\1|p' "$log" \
            2>/dev/null | head -n 1)
        [ -n "$port" ] || sleep 0.02
        [ $(($(now_ms) - t0)) -lt 1200000 ] || die "no ready line after 20 min"
    done
    startup_ms=$(($(now_ms) - t0))
    url=http://127.0.0.1:$port
}

stop() {
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    pid=""
}

rss_kib() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status"
}

# rpc METHOD PARAMS: the reply body.
rpc() {
    curl -sS --max-time 600 -H "Authorization: Bearer $token" \
        --data-binary "{\"method\": \"$1\", \"params\": $2, \"id\": 1}" "$url/"
}

# timed METHOD PARAMS: the call's time in ms (3 decimals); the body in $tmp/reply.
timed() {
    curl -sS --max-time 600 -o "$tmp/reply" -w '%{time_total}' \
        -H "Authorization: Bearer $token" \
        --data-binary "{\"method\": \"$1\", \"params\": $2, \"id\": 1}" "$url/" |
        awk '{ printf "%.3f", $1 * 1000 }'
}

median() {
    sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else print v[int((NR + 1) / 2)] }'
}

# spread: the smallest and largest of the values on stdin, "MIN-MAX".
spread() {
    sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "-" hi }'
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'
}

# reserve_delete N: N reserve/delete pairs of 1 MiB; medians in res_ms / del_ms.
reserve_delete() {
    : >"$tmp/res"
    : >"$tmp/del"
    i=0
    while [ "$i" -lt "$1" ]; do
        timed reserve_memory '["bench", "bench", 1024]' >>"$tmp/res"
        echo >>"$tmp/res"
        id=$(sed -n 's/.*"result":"\([^"]*\)".*/\1/p' "$tmp/reply")
        [ -n "$id" ] || die "reserve failed: $(cat "$tmp/reply")"
        timed delete_reservation "[\"bench\", \"bench\", \"$id\"]" >>"$tmp/del"
        echo >>"$tmp/del"
        grep -q '"error":null' "$tmp/reply" || die "delete failed: $(cat "$tmp/reply")"
        i=$((i + 1))
    done
    res_ms=$(median <"$tmp/res")
    del_ms=$(median <"$tmp/del")
}

status_ms() {
    : >"$tmp/st"
    i=0
    while [ "$i" -lt "$1" ]; do
        curl -sS --max-time 600 -o /dev/null -w '%{time_total}\n' "$url/status" |
            awk '{ printf "%.3f\n", $1 * 1000 }' >>"$tmp/st"
        i=$((i + 1))
    done
    median <"$tmp/st"
}

# hold N: N reservations of 1 KiB, four connections at a time. (wrk runs for its whole
# duration even once its threads have stopped: it is stopped once the count is reached.)
hold() {
    cat >"$tmp/hold.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"method": "reserve_memory", "params": ["bench", "bench", 1], "id": 1}'
wrk.headers["Authorization"] = "Bearer $token"
local total = 0
function response(status, headers, body)
    total = total + 1
    if total >= math.ceil($1 / 4) then wrk.thread:stop() end
end
LUA
    wrk -t4 -c4 -d3600s -s "$tmp/hold.lua" "$url/" >"$tmp/hold.out" 2>&1 &
    wrkpid=$!
    last=-1 since=$(now_ms)
    while :; do
        have=$(held_count)
        [ "$have" -lt "$1" ] || break
        kill -0 "$wrkpid" 2>/dev/null || die "wrk: $(cat "$tmp/hold.out")"
        if [ "$have" -ne "$last" ]; then
            last=$have since=$(now_ms)
        elif [ $(($(now_ms) - since)) -gt 30000 ]; then
            die "no reservation made in 30 s ($have held): $(tail -n 3 "$log")"
        fi
        sleep 0.5
    done
    kill "$wrkpid" 2>/dev/null
    wait "$wrkpid" 2>/dev/null
}

held_count() {
    curl -sS "$url/status" | grep -o '"session":"bench"' | wc -l
}

for part in $PARTS; do
    case $part in
    reserve)
        for n in $RESERVE_SIZES; do
            start --scenario "$(host "$n")" --clock virtual
            rpc login '["bench", "bench"]' >/dev/null
            reserve_delete "$REPEAT"
            stop
            ref=$("$BUILD/bench/bench_snapshot" "$n" | awk '/^reference/ { print $2 }')
            say "reserve, no ballooning, $n domains: $res_ms ms;" \
                "reference (2 snapshots + 1 round) $ref ms; ratio $(ratio "$res_ms" "$ref")"
        done
        ;;
    held)
        # Two daemons side by side, one holding HELD reservations, one none; their calls
        # alternate, so that both see the same machine load. Each round, on each: reserve,
        # transfer to a new domain, delete, login of another session (which deletes the
        # one reservation it holds), GET /status.
        cap="--max-reservations-per-session $((HELD + 1024))"
        SOCK_TAG=none start --scenario scenarios/demo.json --clock virtual $cap
        pid0=$pid url0=$url
        rss0=$(rss_kib)
        SOCK_TAG=held start --scenario scenarios/demo.json --clock virtual $cap
        pid1=$pid url1=$url
        for u in "$url0" "$url1"; do
            url=$u
            rpc login '["bench", "bench"]' >/dev/null
            rpc login '["bench", "other"]' >/dev/null
        done
        url=$url1
        t0=$(now_ms)
        hold "$HELD"
        got=$(held_count)
        say "holding $got reservations took $(($(now_ms) - t0)) ms"
        rss1=$(rss_kib)
        for k in 0 1; do
            for f in r t d l s; do : >"$tmp/$f$k"; done
        done
        round=0
        while [ "$round" -lt "$REPEAT" ]; do
            domid=$((1000 + round))
            for k in 0 1; do
                eval "url=\$url$k"
                timed reserve_memory '["bench", "bench", 1024]' >>"$tmp/r$k"
                echo >>"$tmp/r$k"
                id=$(sed -n 's/.*"result":"\([^"]*\)".*/\1/p' "$tmp/reply")
                [ -n "$id" ] || die "reserve failed: $(cat "$tmp/reply")"
                rpc sim.create_domain "[{\"domid\": $domid, \"dynamic_min_kib\": 1024,
                    \"dynamic_max_kib\": 1024, \"target_kib\": 1024,
                    \"initial_reservation_kib\": 1024}]" | grep -q '"error":null' ||
                    die "sim.create_domain $domid failed"
                timed transfer_reservation_to_domain "[\"bench\", \"bench\", \"$id\", $domid]" \
                    >>"$tmp/t$k"
                echo >>"$tmp/t$k"
                grep -q '"error":null' "$tmp/reply" || die "transfer failed: $(cat "$tmp/reply")"
                timed delete_reservation "[\"bench\", \"bench\", \"$id\"]" >>"$tmp/d$k"
                echo >>"$tmp/d$k"
                grep -q '"error":null' "$tmp/reply" || die "delete failed: $(cat "$tmp/reply")"
                rpc sim.destroy_domain "[$domid]" | grep -q '"error":null' ||
                    die "sim.destroy_domain $domid failed"
                rpc reserve_memory '["bench", "other", 1024]' | grep -q '"error":null' ||
                    die "reserve for the other session failed"
                timed login '["bench", "other"]' >>"$tmp/l$k"
                echo >>"$tmp/l$k"
                grep -q '"error":null' "$tmp/reply" || die "login failed: $(cat "$tmp/reply")"
                status_ms 1 >>"$tmp/s$k"
            done
            round=$((round + 1))
        done
        kill -TERM "$pid0" 2>/dev/null
        wait "$pid0" 2>/dev/null
        pid0=""
        pid=$pid1
        stop
        line=""
        for f in r t d l s; do
            m0=$(median <"$tmp/${f}0") m1=$(median <"$tmp/${f}1")
            case $f in
            r) name=reserve ;; t) name=transfer ;; d) name=delete ;; l) name=login ;;
            s) name="GET /status" ;;
            esac
            say "with $got held: $name $m1 ms (spread $(spread <"$tmp/${f}1"));" \
                "with none: $m0 ms (spread $(spread <"$tmp/${f}0")); ratio $(ratio "$m1" "$m0")"
        done
        say "RSS per reservation: $(awk -v a="$rss1" -v b="$rss0" -v n="$got" \
            'BEGIN { printf "%.2f KiB", (a - b) / n }') ($rss0 -> $rss1 KiB)"
        ;;
    state)
        for n in $STATE_SIZES; do
            rm -f "$tmp/state.json" "$tmp/state.json.journal"
            start --scenario "$(host "$n")" --clock virtual --sim-state "$tmp/state.json"
            first_ms=$startup_ms
            rpc login '["bench", "bench"]' >/dev/null
            reserve_delete "$REPEAT"
            with_ms=$res_ms
            stop
            start --sim-state "$tmp/state.json" --clock virtual
            again_ms=$startup_ms
            stop
            start --scenario "$(host "$n")" --clock virtual
            plain_ms=$startup_ms
            rpc login '["bench", "bench"]' >/dev/null
            reserve_delete "$REPEAT"
            stop
            say "--sim-state, $n domains: reserve $with_ms ms, without $res_ms ms, ratio" \
                "$(ratio "$with_ms" "$res_ms"); start-up $first_ms ms (new state)," \
                "$again_ms ms (from the state), without $plain_ms ms"
        done
        # SIGTERM in the middle of a start-up from a state file.
        n=$(echo "$STATE_SIZES" | awk '{ print $NF }')
        rm -f "$tmp/state.json" "$tmp/state.json.journal"
        start --scenario "$(host "$n")" --clock virtual --sim-state "$tmp/state.json"
        stop
        "$BIN" -d --backend sim --listen 127.0.0.1:0 --socket "$tmp/sq.sock" \
            --sim-state "$tmp/state.json" --clock virtual >"$tmp/term.log" 2>&1 &
        pid=$!
        sleep 0.3
        t0=$(now_ms)
        kill -TERM "$pid"
        while kill -0 "$pid" 2>/dev/null && [ $(($(now_ms) - t0)) -lt 60000 ]; do
            sleep 0.02
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "SIGTERM during start-up ($n domains): still running after 60 s"
        else
            say "SIGTERM during start-up ($n domains): exited after $(($(now_ms) - t0)) ms"
        fi
        wait "$pid" 2>/dev/null
        pid=""
        ;;
    rss)
        start --scenario scenarios/demo.json --clock virtual
        base=$(rss_kib)
        stop
        start --scenario "$(host "$RSS_SIZE")" --clock virtual
        idle=$(rss_kib)
        t0=$(now_ms)
        rpc sim.advance '[3600]' | grep -q '"error":null' || die "sim.advance failed"
        hour=$(rss_kib)
        say "an hour of periodic balances (virtual) at $RSS_SIZE domains took" \
            "$(($(now_ms) - t0)) ms of real time"
        stop
        say "RSS at $RSS_SIZE domains: idle $idle KiB, after an hour of balances $hour KiB;" \
            "ratio $(ratio "$hour" "$idle")"
        say "RSS per domain: $(awk -v a="$idle" -v b="$base" -v n="$RSS_SIZE" \
            'BEGIN { printf "%.2f KiB", (a - b) / n }') (demo host $base KiB)"
        ;;
    *) die "unknown part $part" ;;
    esac
done
