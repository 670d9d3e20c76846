#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# Validate openapi.json with a real OpenAPI validator and check its schemas and examples
# (tests/openapi/validate.mjs), lint it with Redocly's recommended rules (no error
# allowed), and check real replies of the daemon against it (validate.mjs --live, the
# daemon started here on the simulated host). The tools are pinned in
# tests/openapi/package-lock.json and installed with `npm ci` into tests/openapi/node_modules
# when missing or stale. BUILD: the build directory holding squeezed (default build).
# Prints PASS:/FAIL: lines; exits 1 on any failure.
set -u
cd "$(dirname "$0")/../.." || exit 1
dir=tests/openapi
stamp=$dir/node_modules/.squeezed-lock

for cmd in node npm; do
    if ! command -v "$cmd" >/dev/null 2>&1; then
        echo "FAIL: openapi: $cmd is not installed (sh scripts/deps.sh test installs it)"
        exit 1
    fi
done

# Install exactly what the lock file says, once (and again when the lock file changes).
if ! cmp -s "$dir/package-lock.json" "$stamp" 2>/dev/null; then
    echo "# openapi: npm ci in $dir"
    # Its log outside the source tree: the deb stage may be copying the tree meanwhile.
    npmlog=$(mktemp "${TMPDIR:-/tmp}/squeezed-npm-ci.XXXXXX") || exit 1
    if ! (cd "$dir" && timeout 600 npm ci --no-audit --no-fund >"$npmlog" 2>&1); then
        echo "FAIL: openapi: npm ci failed (network?); log:"
        sed 's/^/#   /' "$npmlog" | tail -n 20
        rm -f "$npmlog"
        exit 1
    fi
    rm -f "$npmlog"
    cp "$dir/package-lock.json" "$stamp"
fi

rc=0
timeout 120 node "$dir/validate.mjs" openapi.json || rc=1

# Redocly's recommended ruleset: errors fail, warnings are shown.
if out=$(cd "$dir" && REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
    timeout 300 node_modules/.bin/redocly lint --extends recommended --format=stylish \
    ../../openapi.json 2>&1); then
    echo "PASS: openapi: Redocly lint (recommended) without error"
    printf '%s\n' "$out" | grep -E '^ +[0-9]+:[0-9]+ +warning' | sed 's/^/# /'
else
    echo "FAIL: openapi: Redocly lint (recommended) without error"
    printf '%s\n' "$out" | grep -E '^ +[0-9]+:[0-9]+ |failed' | head -n 20 | sed 's/^/#   /'
    rc=1
fi

# Real replies of a running daemon against the document.
bin=${BUILD:-build}/squeezed
tmp=$(mktemp -d "${TMPDIR:-/tmp}/squeezed-openapi.XXXXXX") || exit 1
if [ ! -x "$bin" ]; then
    echo "FAIL: openapi: live replies: $bin is not built"
    rm -rf "$tmp"
    exit 1
fi
# Changing calls over TCP need the bearer token (issue 11).
(umask 077 && od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$tmp/token")
"$bin" -d -f /dev/null --config-dir "$tmp/no-conf.d" --backend sim --clock virtual \
    --scenario scenarios/e2e-stuck.json --listen 127.0.0.1:0 --socket "$tmp/sock" \
    --token-file "$tmp/token" >"$tmp/log" 2>&1 &
pid=$!
port=""
for _ in $(seq 1 100); do
    port=$(sed -n 's/^squeezed: ready on http:\/\/127\.0\.0\.1:\([0-9]*\)\/.*/\1/p' "$tmp/log")
    [ -n "$port" ] && break
    sleep 0.1
done
if [ -z "$port" ]; then
    echo "FAIL: openapi: live replies: the daemon did not start"
    sed 's/^/#   /' "$tmp/log" | tail -n 10
    rc=1
else
    timeout 120 node "$dir/validate.mjs" openapi.json --live "http://127.0.0.1:$port" \
        --token-file "$tmp/token" || rc=1
fi
kill -TERM "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
rm -rf "$tmp"
exit $rc
