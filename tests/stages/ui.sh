#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# The dashboard in a real browser: start the daemon on the simulated host (virtual clock),
# load GET /ui in headless Chromium (/usr/bin/chromium, driven by puppeteer-core pinned in
# tests/ui/package-lock.json and installed with `npm ci` when missing or stale) and check
# it against /status (tests/ui/check.mjs); once with scenarios/demo.json (a reservation
# made during the test must show up; screenshot build/ui/dashboard.png) and once with
# scenarios/thousand-guests.json (render time printed). Prints PASS:/FAIL: lines.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/e2e/lib.sh
e2e_init ui 300
dir=tests/ui
stamp=$dir/node_modules/.squeezed-lock
out=$BUILD/ui
chromium=${CHROMIUM:-/usr/bin/chromium}
mkdir -p "$out"

for cmd in node npm; do
    if ! command -v "$cmd" >/dev/null 2>&1; then
        fail "ui: $cmd is not installed (sh scripts/deps.sh test installs it)"
        e2e_finish
    fi
done
if [ ! -x "$chromium" ]; then
    fail "ui: $chromium is not installed (sh scripts/deps.sh test installs chromium)"
    e2e_finish
fi
if ! cmp -s "$dir/package-lock.json" "$stamp" 2>/dev/null; then
    note "ui: npm ci in $dir"
    # Its log outside the source tree: the deb stage may be copying the tree meanwhile.
    if ! (cd "$dir" && timeout 600 npm ci --no-audit --no-fund >"$TMPD/npm-ci.log" 2>&1); then
        fail "ui: npm ci failed (network?); log: $(tail -n 20 "$TMPD/npm-ci.log")"
        e2e_finish
    fi
    cp "$dir/package-lock.json" "$stamp"
fi

# The browser's own profile and crash files stay in the test's temporary directory.
export HOME="$TMPD"

if start_daemon --scenario scenarios/demo.json; then
    code=$(http_request GET /)
    assert_eq "GET / is a page (POST / stays JSON-RPC)" 200 "$code"
    assert_match "GET / links to the dashboard" 'href="/ui"' "$(cat "$TMPD/body")"
    timeout 120 node "$dir/check.mjs" --url "http://127.0.0.1:$PORT" --out "$out" \
        --mode demo --chromium "$chromium" --token-file "$TOKEN_FILE"
    [ $? -eq 0 ] || E2E_FAILED=$((E2E_FAILED + 1))
    stop_daemon
fi
if start_daemon --scenario scenarios/thousand-guests.json; then
    timeout 120 node "$dir/check.mjs" --url "http://127.0.0.1:$PORT" --out "$out" \
        --mode thousand --chromium "$chromium" --token-file "$TOKEN_FILE"
    [ $? -eq 0 ] || E2E_FAILED=$((E2E_FAILED + 1))
    stop_daemon
fi
e2e_finish
