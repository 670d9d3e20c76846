#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# `make install` into a DESTDIR: the file list, the systemd unit (systemd-analyze verify,
# no running systemd needed), the man page (groff, no warning), the installed daemon
# finding its openapi.json, a kept configuration, `make uninstall`. About 5 s.
. "$(dirname "$0")/../e2e/lib.sh"
e2e_init install 120
cd "$E2E_ROOT" || exit 1

D=$TMPD/root
make --no-print-directory install DESTDIR="$D" PREFIX=/usr UNITDIR=/lib/systemd/system \
    >"$TMPD/install.log" 2>&1
assert_eq "make install DESTDIR=... PREFIX=/usr succeeds" 0 $?
want="/etc/squeezed.conf
/lib/systemd/system/squeezed.service
/usr/bin/squeezed-cli
/usr/sbin/squeezed
/usr/share/man/man1/squeezed-cli.1
/usr/share/man/man8/squeezed.8
/usr/share/squeezed/openapi.json"
got=$(cd "$D" && find . -type f | sed 's|^\.||' | LC_ALL=C sort)
assert_eq "it installs exactly the daemon, the CLI, the man pages, the config, the unit, openapi.json" \
    "$want" "$got"
assert_true "the daemon is executable" test -x "$D/usr/sbin/squeezed"
assert_true "the CLI is executable" test -x "$D/usr/bin/squeezed-cli"
assert_match "and runs (usage)" "usage: squeezed-cli" "$("$D/usr/bin/squeezed-cli" --help 2>&1)"
assert_eq "the unit runs the installed path" "ExecStart=/usr/sbin/squeezed \$SQUEEZED_OPTIONS" \
    "$(grep '^ExecStart=' "$D/lib/systemd/system/squeezed.service")"
assert_eq "the sample configuration is dist/squeezed.conf" "" \
    "$(cmp "$D/etc/squeezed.conf" dist/squeezed.conf 2>&1)"

# The unit: verified as installed, with ExecStart pointing into the DESTDIR copy (verify
# checks that the binary exists) and MANPATH at the installed man page (it runs
# `man squeezed(8)` for Documentation=). Any complaint on stderr fails.
unit=$D/lib/systemd/system/squeezed.service
if command -v systemd-analyze >/dev/null 2>&1; then
    mkdir -p "$TMPD/verify"
    sed "s|^ExecStart=/usr/sbin/squeezed|ExecStart=$D/usr/sbin/squeezed|" "$unit" \
        >"$TMPD/verify/squeezed.service"
    MANPATH=$D/usr/share/man SYSTEMD_LOG_LEVEL=notice \
        systemd-analyze verify "$TMPD/verify/squeezed.service" >"$TMPD/verify.out" 2>&1
    rc=$?
    assert_eq "systemd-analyze verify accepts the unit" 0 "$rc"
    assert_eq "and says nothing about it" "" "$(cat "$TMPD/verify.out")"
    # the check can fail: a unit with a typo is refused
    sed 's/^Type=notify/Type=notfy/' "$TMPD/verify/squeezed.service" >"$TMPD/verify/bad.service"
    MANPATH=$D/usr/share/man systemd-analyze verify "$TMPD/verify/bad.service" \
        >"$TMPD/verify-bad.out" 2>&1
    assert_match "while a broken unit is complained about" "service type.*notfy" \
        "$(cat "$TMPD/verify-bad.out")"
else
    fail "systemd-analyze verify" "systemd-analyze is missing (scripts/deps.sh test)"
fi
for k in "Type=notify" "Restart=on-failure" "After=xenstored.service message-switch.service" \
    "WantedBy=multi-user.target"; do
    assert_true "the unit has $k" grep -q "^$k\$" "$unit"
done

# The man page renders with no warning (groff -ww) and names every option and key.
man8=$D/usr/share/man/man8/squeezed.8
LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$man8" >"$TMPD/groff.out" 2>&1
assert_eq "groff -man -ww renders squeezed(8) with no warning" "0:" \
    "$?:$(cat "$TMPD/groff.out")"
man1=$D/usr/share/man/man1/squeezed-cli.1
LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$man1" >"$TMPD/groff1.out" 2>&1
assert_eq "groff -man -ww renders squeezed-cli(1) with no warning" "0:" \
    "$?:$(cat "$TMPD/groff1.out")"
text1=$(LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$man1" 2>/dev/null)
undoc=""
for w in $("$D/usr/bin/squeezed-cli" --help 2>&1 | grep -o -- '--[a-z][a-z-]*' | sort -u) \
    status reserve delete balance diagnostics; do
    printf '%s\n' "$text1" | grep -qF -- "$w" || undoc="$undoc $w"
done
assert_eq "squeezed-cli(1) names every option and command of squeezed-cli --help" "" "$undoc"
text=$(LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$man8" 2>/dev/null)
missing=""
for w in -d -h -n -v -f --config-dir --pidfile --loglevel --backend --scenario --clock \
    --listen --socket --use-switch --switch-path --xml-socket --reserved-host-memory-kib \
    --balance-interval-s --poll-interval-s --sim-state --no-watches --version \
    balance-check-interval manage-domain-zero domain-zero-dynamic-min \
    domain-zero-dynamic-max use-switch switch-path pidfile "log =" loglevel daemon \
    config-dir disable-logging-for inventory backend scenario clock sim-state listen \
    socket xml-socket reserved-host-memory-kib poll-interval-s watches SIGTERM SIGHUP \
    "EXIT STATUS" /etc/squeezed.conf local5; do
    printf '%s\n' "$text" | grep -qF -- "$w" || missing="$missing $w"
done
assert_eq "the man page names every option, key, signal and file" "" "$missing"
# and every option the daemon accepts is in it
opts=$("$D/usr/sbin/squeezed" -h | grep -o -- '--[a-z][a-z-]*' | sort -u)
undoc=""
for w in $opts; do printf '%s\n' "$text" | grep -qF -- "$w" || undoc="$undoc $w"; done
assert_eq "every option of squeezed -h is in the man page" "" "$undoc"

# The installed daemon finds openapi.json in PREFIX/share/squeezed.
SQUEEZED_BIN=$D/usr/sbin/squeezed start_daemon --scenario scenarios/e2e-flow.json \
    || e2e_finish
code=$(http_request GET /openapi.json)
assert_eq "the installed daemon serves /openapi.json from share/squeezed" 200 "$code"
assert_eq "the installed file" "" "$(cmp "$TMPD/body" openapi.json 2>&1)"
stop_daemon

# A changed configuration is kept by install and uninstall.
echo "balance-check-interval = 5" >>"$D/etc/squeezed.conf"
make --no-print-directory install DESTDIR="$D" PREFIX=/usr UNITDIR=/lib/systemd/system \
    >"$TMPD/install2.log" 2>&1
assert_match "make install again keeps a changed /etc/squeezed.conf" \
    "keeping .*/etc/squeezed.conf" "$(cat "$TMPD/install2.log")"
assert_true "with its change" grep -q "^balance-check-interval = 5" "$D/etc/squeezed.conf"
make --no-print-directory uninstall DESTDIR="$D" PREFIX=/usr UNITDIR=/lib/systemd/system \
    >"$TMPD/uninstall.log" 2>&1
assert_eq "make uninstall succeeds" 0 $?
assert_eq "and leaves only the changed configuration" "/etc/squeezed.conf" \
    "$(cd "$D" && find . -type f | sed 's|^\.||')"
e2e_finish
