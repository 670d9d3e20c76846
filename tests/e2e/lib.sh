# SPDX-License-Identifier: LGPL-2.1-only
# Shared helpers for the end-to-end tests: start the real daemon on loopback, talk to it
# with curl, check JSON with node, report "PASS: name" / "FAIL: name reason" lines.
#
# Usage in a test script (run with `sh`, POSIX shell):
#   . "$(dirname "$0")/lib.sh"
#   e2e_init my_test 60            # name used in messages, overall time limit in seconds
#   start_daemon --scenario scenarios/e2e-two-guests.json
#   r=$(rpc login '["dbg", "xenopsd"]')
#   assert_json "login returns the session" "$r" .result xenopsd
#   stop_daemon
#   e2e_finish                     # exits 0, or 1 if any FAIL was reported
#
# Environment:
#   BUILD          build directory holding squeezed (default build)
#   SQUEEZED_BIN   the daemon binary to run (default $BUILD/squeezed)
#   E2E_KEEP=1     keep the temporary directory (logs) after the run
#   E2E_CURL_MAX_S, E2E_READY_MAX_S, E2E_STOP_MAX_S, E2E_RUN_MAX_S  the bounds below
#   E2E_LIMIT_SCALE  whole factor for each script's overall time limit and fixed waits
#                  (default 1; the valgrind stage sets 3)
#   VALGRIND=1     set by the valgrind stage (the daemon runs under memcheck): a script
#                  may relax a latency threshold on it, nothing else (none needs to yet)
#
# Variables set: TMPD (temporary directory, removed at exit), PORT, SOCK, DAEMON_PID,
# DAEMON_LOG (the current daemon's stdout+stderr), E2E_FAILED (number of FAIL lines).
#
# Every curl call has --max-time; everything listens on 127.0.0.1 or a unix socket
# inside $TMPD only.

: "${BUILD:=build}"
E2E_NAME=${E2E_NAME:-$(basename "$0" .sh)}
E2E_FAILED=0
E2E_PASSED=0
E2E_CURL_MAX_S=${E2E_CURL_MAX_S:-10}
E2E_READY_MAX_S=${E2E_READY_MAX_S:-20}
E2E_STOP_MAX_S=${E2E_STOP_MAX_S:-15}
E2E_RUN_MAX_S=${E2E_RUN_MAX_S:-20}
E2E_LIMIT_SCALE=${E2E_LIMIT_SCALE:-1}
E2E_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DAEMON_PID=""
DAEMON_LOG=""
PORT=""
SOCK=""
WATCHDOG_PID=""
_e2e_starts=0

TMPD=$(mktemp -d "${TMPDIR:-/tmp}/squeezed-e2e.XXXXXX") || {
    echo "FAIL: $E2E_NAME cannot create a temporary directory"
    exit 1
}

# ---- reporting -------------------------------------------------------------------

# pass NAME: report a passed check.
pass() {
    E2E_PASSED=$((E2E_PASSED + 1))
    echo "PASS: $1"
}

# fail NAME REASON...: report a failed check (the script goes on; e2e_finish exits 1).
fail() {
    _n=$1
    shift
    E2E_FAILED=$((E2E_FAILED + 1))
    echo "FAIL: $_n $*"
}

# note TEXT: a line of context that is neither PASS nor FAIL.
note() {
    echo "# $*"
}

# assert_eq NAME EXPECTED ACTUAL
assert_eq() {
    if [ "$2" = "$3" ]; then
        pass "$1"
    else
        fail "$1" "expected '$2', got '$3'"
    fi
}

# assert_ne NAME UNEXPECTED ACTUAL
assert_ne() {
    if [ "$2" != "$3" ]; then
        pass "$1"
    else
        fail "$1" "did not expect '$3'"
    fi
}

# assert_true NAME COMMAND...: passes if the command succeeds.
assert_true() {
    _n=$1
    shift
    if "$@"; then
        pass "$_n"
    else
        fail "$_n" "command failed: $*"
    fi
}

# assert_range NAME VALUE MIN MAX: MIN <= VALUE <= MAX (integers).
assert_range() {
    case "$2" in
    '' | *[!0-9-]*)
        fail "$1" "'$2' is not an integer"
        return
        ;;
    esac
    if [ "$2" -ge "$3" ] && [ "$2" -le "$4" ]; then
        pass "$1"
    else
        fail "$1" "$2 is not within [$3, $4]"
    fi
}

# assert_match NAME PATTERN TEXT: TEXT contains PATTERN (grep -E).
assert_match() {
    if printf '%s\n' "$3" | grep -Eq -- "$2"; then
        pass "$1"
    else
        fail "$1" "'$3' does not match /$2/"
    fi
}

# ---- JSON (node is a test dependency; jq and python3 may be missing) -------------------

# jget EXPR: read JSON from stdin and print EXPR evaluated with the document bound to
# `j`. EXPR starting with '.' or '[' is a path into the document (".result[0]"); anything
# else is a JavaScript expression over j ("j.domains.find(d => d.domid == 1).target_kib").
# Strings print raw, other values as compact JSON, undefined as nothing (exit 1).
# Bad JSON on stdin: prints nothing, exit 2.
jget() {
    node -e '
let src = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (c) => { src += c; });
process.stdin.on("end", () => {
    let j;
    try { j = JSON.parse(src); } catch (e) { process.exit(2); }
    let expr = process.argv[1];
    if (expr.startsWith(".") || expr.startsWith("[")) expr = "j" + expr;
    let v;
    try { v = (new Function("j", "return (" + expr + ");"))(j); } catch (e) { v = undefined; }
    if (v === undefined) process.exit(1);
    process.stdout.write(typeof v === "string" ? v : JSON.stringify(v));
    process.stdout.write("\n");
});' "$1"
}

# assert_json NAME JSON EXPR EXPECTED: jget EXPR of JSON equals EXPECTED (as jget prints).
assert_json() {
    _v=$(printf '%s' "$2" | jget "$3")
    if [ "$_v" = "$4" ]; then
        pass "$1"
    else
        fail "$1" "$3 is '$_v', expected '$4' in: $(printf '%s' "$2" | head -c 600)"
    fi
}

# assert_json_true NAME JSON EXPR: the JavaScript expression over j is true.
assert_json_true() {
    _v=$(printf '%s' "$2" | jget "!!($3)")
    if [ "$_v" = "true" ]; then
        pass "$1"
    else
        fail "$1" "not true: $3 in: $(printf '%s' "$2" | head -c 600)"
    fi
}

# ---- HTTP ---------------------------------------------------------------------------

_url() {
    echo "http://127.0.0.1:$PORT$1"
}

# rpc METHOD 'JSON-PARAMS-ARRAY': an xapi-style call (no "jsonrpc" key); prints the body.
rpc() {
    curl -sS --max-time "$E2E_CURL_MAX_S" -H 'Content-Type: application/json' \
        --data-binary "{\"method\": \"$1\", \"params\": $2, \"id\": 1}" "$(_url /)"
}

# rpc2 'JSON-RPC-2.0-BODY': post a whole body as is; prints the reply body.
rpc2() {
    curl -sS --max-time "$E2E_CURL_MAX_S" -H 'Content-Type: application/json' \
        --data-binary "$1" "$(_url /)"
}

# rpc_unix METHOD 'JSON-PARAMS-ARRAY': as rpc, over the unix socket $SOCK.
rpc_unix() {
    curl -sS --max-time "$E2E_CURL_MAX_S" --unix-socket "$SOCK" \
        -H 'Content-Type: application/json' \
        --data-binary "{\"method\": \"$1\", \"params\": $2, \"id\": 1}" http://localhost/
}

# http_get PATH: prints the body of GET PATH.
http_get() {
    curl -sS --max-time "$E2E_CURL_MAX_S" "$(_url "$1")"
}

# http_request METHOD PATH [BODY-FILE [CURL-ARGS...]]: prints the HTTP status code; the
# body is left in $TMPD/body. With BODY-FILE, its bytes are sent as the request body.
http_request() {
    _m=$1
    _p=$2
    shift 2
    if [ $# -gt 0 ]; then
        _f=$1
        shift
        curl -sS --max-time "$E2E_CURL_MAX_S" -o "$TMPD/body" -w '%{http_code}' \
            -X "$_m" -H 'Content-Type: application/json' --data-binary "@$_f" "$@" \
            "$(_url "$_p")"
    else
        curl -sS --max-time "$E2E_CURL_MAX_S" -o "$TMPD/body" -w '%{http_code}' \
            -X "$_m" "$(_url "$_p")"
    fi
}

# now_ms: wall-clock milliseconds (for latency checks).
now_ms() {
    node -e 'process.stdout.write(String(Date.now()) + "\n")'
}

# ---- the daemon ---------------------------------------------------------------------

squeezed_bin() {
    echo "${SQUEEZED_BIN:-$BUILD/squeezed}"
}

# start_daemon [ARGS...]: start the daemon in the foreground (-d), simulated host, virtual
# clock, any free loopback port, unix socket $TMPD/sq.sock, no configuration file (not
# the host's /etc/squeezed.conf: -f /dev/null, an empty config-dir); ARGS come last and
# so win (e.g. --clock real, --backend xen, -f FILE). Waits for the ready line and sets PORT, SOCK,
# DAEMON_PID, DAEMON_LOG. Returns 1 (after a FAIL line) if it does not come up.
start_daemon() {
    _e2e_starts=$((_e2e_starts + 1))
    SOCK=$TMPD/sq.sock
    DAEMON_LOG=$TMPD/daemon.$_e2e_starts.log
    PORT=""
    _bin=$(squeezed_bin)
    if [ ! -x "$_bin" ]; then
        fail "$E2E_NAME: start_daemon" "$_bin is not built"
        return 1
    fi
    : >"$DAEMON_LOG"
    "$_bin" -d -f /dev/null --config-dir "$TMPD/no-conf.d" --backend sim --clock virtual \
        --listen 127.0.0.1:0 --socket "$SOCK" "$@" >"$DAEMON_LOG" 2>&1 &
    DAEMON_PID=$!
    echo "$DAEMON_PID" >"$TMPD/daemon.pid"
    _tries=$((E2E_READY_MAX_S * 20))
    while [ "$_tries" -gt 0 ]; do
        PORT=$(sed -n 's|.*ready on http://127\.0\.0\.1:\([0-9][0-9]*\)/.*|\1|p' \
            "$DAEMON_LOG" | head -n 1)
        [ -n "$PORT" ] && break
        if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
            wait "$DAEMON_PID"
            _rc=$?
            DAEMON_PID=""
            rm -f "$TMPD/daemon.pid"
            fail "$E2E_NAME: start_daemon" "daemon exited with status $_rc before ready;" \
                "log: $(tail -n 20 "$DAEMON_LOG")"
            return 1
        fi
        sleep 0.05
        _tries=$((_tries - 1))
    done
    if [ -z "$PORT" ]; then
        fail "$E2E_NAME: start_daemon" "no ready line within $E2E_READY_MAX_S s;" \
            "log: $(tail -n 20 "$DAEMON_LOG")"
        kill -KILL "$DAEMON_PID" 2>/dev/null
        wait "$DAEMON_PID" 2>/dev/null
        DAEMON_PID=""
        rm -f "$TMPD/daemon.pid"
        return 1
    fi
    return 0
}

# _wait_gone PID SECONDS: wait until PID has exited (bounded); 0 if it did.
_wait_gone() {
    _t=$(($2 * 20))
    while [ "$_t" -gt 0 ]; do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.05
        _t=$((_t - 1))
    done
    return 1
}

# stop_daemon [NAME]: SIGTERM, wait (bounded), check exit status 0 and that it is gone.
# Reports one PASS/FAIL line. Returns 0 on a clean stop.
stop_daemon() {
    _n=${1:-"$E2E_NAME: daemon stops cleanly on SIGTERM"}
    if [ -z "$DAEMON_PID" ]; then
        fail "$_n" "no daemon running"
        return 1
    fi
    kill -TERM "$DAEMON_PID" 2>/dev/null
    if ! _wait_gone "$DAEMON_PID" "$E2E_STOP_MAX_S"; then
        kill -KILL "$DAEMON_PID" 2>/dev/null
        wait "$DAEMON_PID" 2>/dev/null
        DAEMON_PID=""
        rm -f "$TMPD/daemon.pid"
        fail "$_n" "still running $E2E_STOP_MAX_S s after SIGTERM"
        return 1
    fi
    wait "$DAEMON_PID"
    _rc=$?
    DAEMON_PID=""
    rm -f "$TMPD/daemon.pid"
    if [ "$_rc" -ne 0 ]; then
        fail "$_n" "exit status $_rc; log: $(tail -n 30 "$DAEMON_LOG")"
        return 1
    fi
    pass "$_n"
    return 0
}

# kill_daemon SIGNAL: send SIGNAL (e.g. KILL), wait for the process, no status check.
kill_daemon() {
    [ -n "$DAEMON_PID" ] || return 0
    kill "-$1" "$DAEMON_PID" 2>/dev/null
    _wait_gone "$DAEMON_PID" "$E2E_STOP_MAX_S" || kill -KILL "$DAEMON_PID" 2>/dev/null
    wait "$DAEMON_PID" 2>/dev/null
    DAEMON_PID=""
    rm -f "$TMPD/daemon.pid"
}

# daemon_alive: 0 if the daemon process is still running.
daemon_alive() {
    [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null
}

# run_squeezed ARGS...: run the daemon binary in the foreground to completion (bounded
# to E2E_RUN_MAX_S, 20 s), e.g. for -n or bad options, without the host's configuration
# (as start_daemon; ARGS may name a -f FILE). Output (stdout+stderr) in $TMPD/run.out;
# returns its exit status (124 on timeout).
run_squeezed() {
    timeout -k 5 "$E2E_RUN_MAX_S" "$(squeezed_bin)" -f /dev/null \
        --config-dir "$TMPD/no-conf.d" "$@" >"$TMPD/run.out" 2>&1
}

# assert_no_violations NAME: the simulated host recorded no violation (sim.state) and
# the daemon log mentions none.
assert_no_violations() {
    _s=$(rpc sim.state '[]')
    _c=$(printf '%s' "$_s" | jget '.result.violations.length')
    if [ "$_c" != "0" ]; then
        fail "$1" "sim.state violations: $(printf '%s' "$_s" | jget '.result.violations')"
        return 1
    fi
    if grep -qi 'violation' "$DAEMON_LOG"; then
        fail "$1" "daemon log: $(grep -i 'violation' "$DAEMON_LOG" | head -n 3)"
        return 1
    fi
    pass "$1"
}

# ---- life cycle ---------------------------------------------------------------------

_e2e_cleanup() {
    if [ -n "$WATCHDOG_PID" ]; then
        kill "$WATCHDOG_PID" 2>/dev/null
        wait "$WATCHDOG_PID" 2>/dev/null
        WATCHDOG_PID=""
    fi
    if [ -n "$DAEMON_PID" ]; then
        kill -KILL "$DAEMON_PID" 2>/dev/null
        wait "$DAEMON_PID" 2>/dev/null
        DAEMON_PID=""
    fi
    if [ "${E2E_KEEP:-0}" = 1 ]; then
        echo "# kept $TMPD"
    else
        rm -rf "$TMPD"
    fi
}

# The watchdog: after the limit, report, kill the daemon and end the script.
_e2e_watchdog() {
    sleep "$1" &
    _sp=$!
    trap 'kill $_sp 2>/dev/null; exit 0' TERM
    wait "$_sp"
    echo "FAIL: $E2E_NAME overall time limit of $1 s exceeded"
    if [ -f "$TMPD/daemon.pid" ]; then
        kill -KILL "$(cat "$TMPD/daemon.pid")" 2>/dev/null
    fi
    kill -TERM "$2" 2>/dev/null
    exit 0
}

# e2e_init NAME [LIMIT-S]: name the test (messages), arm the overall time limit (default
# 90 s, times E2E_LIMIT_SCALE) and the cleanup trap.
e2e_init() {
    E2E_NAME=$1
    _limit=$((${2:-90} * E2E_LIMIT_SCALE))
    trap '_e2e_cleanup' EXIT
    trap 'E2E_FAILED=$((E2E_FAILED + 1)); exit 1' TERM INT HUP
    _e2e_watchdog "$_limit" $$ &
    WATCHDOG_PID=$!
    note "$E2E_NAME: daemon $(squeezed_bin), tmp $TMPD"
}

# e2e_finish: stop a daemon still running (reported), print a summary, exit 0 or 1.
e2e_finish() {
    if [ -n "$DAEMON_PID" ]; then
        stop_daemon
    fi
    note "$E2E_NAME: $E2E_PASSED passed, $E2E_FAILED failed"
    if [ "$E2E_FAILED" -ne 0 ]; then
        exit 1
    fi
    exit 0
}
