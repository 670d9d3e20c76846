#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# Install the Debian packages the build and the tests need, if any are missing.
# Usage: scripts/deps.sh [build|test|bench]
set -eu

what=${1:-build}
pkgs="gcc make pkg-config libxen-dev libjansson-dev libmicrohttpd-dev libxml2-dev libsystemd-dev libcurl4-openssl-dev"
case "$what" in
test) pkgs="$pkgs libcmocka-dev curl valgrind clang libclang-rt-14-dev clang-format nodejs npm python3 debhelper lintian fakeroot groff-base systemd chromium prometheus" ;;
bench) pkgs="$pkgs libcmocka-dev curl wrk" ;;
esac

# A package whose command is already on the PATH (from Debian or elsewhere) is
# not installed again.
provides() {
    case "$1" in
    gcc | make | curl | valgrind | clang | clang-format | wrk | pkg-config | python3 | lintian | fakeroot) echo "$1" ;;
    groff-base) echo groff ;;
    systemd) echo systemd-analyze ;;
    prometheus) echo promtool ;;
    nodejs) echo node ;;
    npm) echo npm ;;
    *) echo "" ;;
    esac
}

missing=""
for p in $pkgs; do
    cmd=$(provides "$p")
    if [ -n "$cmd" ] && command -v "$cmd" >/dev/null 2>&1; then
        continue
    fi
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "deps: installing$missing" >&2
sudo=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo="sudo"
    else
        echo "deps: missing packages:$missing; run as root or install them" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >&2
# shellcheck disable=SC2086
$sudo apt-get install -y -q --no-install-recommends $missing >&2
