#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# `make run`: start the daemon in the foreground on the simulated host (demo scenario,
# real clock) and say how to talk to it. PORT, SCENARIO and SQUEEZED_ARGS override.
set -eu
bin=${1:-build/squeezed}
if [ ! -x "$bin" ]; then
    echo "run: $bin is not built (make failed?)" >&2
    exit 1
fi
port=${PORT:-8799}
scenario=${SCENARIO:-scenarios/demo.json}
url="http://127.0.0.1:$port/"
cat <<EOF
Starting squeezed on a simulated Xen host ($scenario, real clock).
Once it says "ready", open the dashboard: ${url}ui
or try from another terminal:
  curl -s ${url}status
  curl -s -d '{"method": "login", "params": ["demo", "me"], "id": 1}' $url
  curl -s -d '{"method": "reserve_memory", "params": ["demo", "me", 4194304], "id": 2}' $url
  curl -s -d '{"method": "get_diagnostics", "params": ["demo"], "id": 3}' $url
  curl -s ${url}metrics
  build/squeezed-cli --url $url status
Ctrl-C stops it.

EOF
# shellcheck disable=SC2086
exec "$bin" -d --backend sim --scenario "$scenario" --clock real \
    --listen "127.0.0.1:$port" ${SQUEEZED_ARGS:-}
