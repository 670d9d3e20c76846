#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# The fuzz stage of `make test`: build the libFuzzer target (clang, into build/fuzz) and
# run it for FUZZ_STAGE_SECONDS (default 30; `make fuzz` runs it longer). Prints
# PASS:/FAIL: lines; exits 1 on a build failure or any finding (see tests/fuzz/run.sh).
set -u
cd "$(dirname "$0")/../.." || exit 1
secs=${FUZZ_STAGE_SECONDS:-30}

if ! command -v clang >/dev/null 2>&1; then
    echo "FAIL: fuzz: clang is not installed (sh scripts/deps.sh test installs it)"
    exit 1
fi
mkdir -p build/fuzz
if ! make --no-print-directory build/fuzz/fuzz_rpc >build/fuzz/build.log 2>&1; then
    echo "FAIL: fuzz: cannot build build/fuzz/fuzz_rpc; log:"
    tail -n 30 build/fuzz/build.log | sed 's/^/#   /'
    exit 1
fi
echo "PASS: fuzz: build/fuzz/fuzz_rpc builds with clang and libFuzzer"
exec sh tests/fuzz/run.sh build/fuzz/fuzz_rpc "$secs"
