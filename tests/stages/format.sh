#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# The format stage of `make test`: every tracked .c/.h file must be as clang-format (the
# repository's .clang-format) writes it; `make format` rewrites them. Prints one PASS: or
# FAIL: line naming the files that drift; exits 1 on drift or without clang-format.
# CLANG_FORMAT=name picks the binary (default clang-format-14 when present, else
# clang-format: other major versions may format a few constructs differently).
set -u
cd "$(dirname "$0")/../.." || exit 1

cf=${CLANG_FORMAT:-}
if [ -z "$cf" ]; then
    if command -v clang-format-14 >/dev/null 2>&1; then
        cf=clang-format-14
    else
        cf=clang-format
    fi
fi
if ! command -v "$cf" >/dev/null 2>&1; then
    echo "FAIL: format: $cf is not installed (sh scripts/deps.sh test installs clang)"
    exit 1
fi

files=$(git ls-files '*.c' '*.h')
if [ -z "$files" ]; then
    echo "FAIL: format: no tracked .c/.h files (not a git checkout?)"
    exit 1
fi
drift=""
n=0
for f in $files; do
    [ -f "$f" ] || continue
    n=$((n + 1))
    if ! "$cf" --dry-run -Werror "$f" >/dev/null 2>&1; then
        drift="$drift $f"
    fi
done
if [ -n "$drift" ]; then
    echo "FAIL: format: these files drift from .clang-format (run make format):$drift"
    exit 1
fi
echo "PASS: format: $n tracked .c/.h files as $cf formats them"
