#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# Check the Grafana dashboard (contrib/grafana/squeezed.json) offline: against Grafana's
# dashboard schema (@grafana/schema's types, with TypeScript; both pinned in
# tests/grafana/package-lock.json and installed with `npm ci` when missing or stale), its
# layout and variables, the metric names it queries, and its PromQL (promtool).
# Prints PASS:/FAIL: lines; exits 1 on any failure.
set -u
cd "$(dirname "$0")/../.." || exit 1
dir=tests/grafana
stamp=$dir/node_modules/.squeezed-lock

for cmd in node npm; do
    if ! command -v "$cmd" >/dev/null 2>&1; then
        echo "FAIL: grafana: $cmd is not installed (sh scripts/deps.sh test installs it)"
        exit 1
    fi
done
if ! cmp -s "$dir/package-lock.json" "$stamp" 2>/dev/null; then
    echo "# grafana: npm ci in $dir"
    # Its log outside the source tree: the deb stage may be copying the tree meanwhile.
    npmlog=$(mktemp "${TMPDIR:-/tmp}/squeezed-npm-ci.XXXXXX") || exit 1
    if ! (cd "$dir" && timeout 600 npm ci --no-audit --no-fund >"$npmlog" 2>&1); then
        echo "FAIL: grafana: npm ci failed (network?); log:"
        sed 's/^/#   /' "$npmlog" | tail -n 20
        rm -f "$npmlog"
        exit 1
    fi
    rm -f "$npmlog"
    cp "$dir/package-lock.json" "$stamp"
fi
timeout 300 node "$dir/check.mjs" contrib/grafana/squeezed.json
