#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# `make run`: start the daemon in the foreground on the simulated host (demo scenario).
set -eu
bin=${1:-build/squeezed}
if [ ! -x "$bin" ]; then
    echo "run: $bin is not built (make failed?)" >&2
    exit 1
fi
exec "$bin" -d --backend sim --scenario scenarios/demo.json --clock real \
    --listen 127.0.0.1:${PORT:-8799} ${SQUEEZED_ARGS:-}
