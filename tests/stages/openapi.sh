#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# Validate openapi.json with a real OpenAPI validator and check its schemas and examples
# (tests/openapi/validate.mjs). The validator is pinned in tests/openapi/package-lock.json
# and installed with `npm ci` into tests/openapi/node_modules when missing or stale.
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
    if ! (cd "$dir" && timeout 600 npm ci --no-audit --no-fund >npm-ci.log 2>&1); then
        echo "FAIL: openapi: npm ci failed (network?); log:"
        sed 's/^/#   /' "$dir/npm-ci.log" | tail -n 20
        rm -f "$dir/npm-ci.log"
        exit 1
    fi
    rm -f "$dir/npm-ci.log"
    cp "$dir/package-lock.json" "$stamp"
fi

timeout 120 node "$dir/validate.mjs" openapi.json
