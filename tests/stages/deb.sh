#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# `make deb`: the package builds with dpkg-buildpackage, lintian finds no error in it,
# and it installs, is enabled and purges cleanly with dpkg into a scratch root.
# About 30 s on a 2-core machine (build ~15 s, lintian ~10 s).
. "$(dirname "$0")/../e2e/lib.sh"
e2e_init deb 600
cd "$E2E_ROOT" || exit 1

for c in dpkg-buildpackage dh lintian; do
    if ! command -v "$c" >/dev/null 2>&1; then
        fail "make deb" "$c is missing (scripts/deps.sh test)"
        e2e_finish
    fi
done

make --no-print-directory deb >"$TMPD/deb.log" 2>&1
rc=$?
assert_eq "make deb succeeds" 0 "$rc"
[ "$rc" -eq 0 ] || {
    tail -n 30 "$TMPD/deb.log"
    e2e_finish
}
deb=$(ls build/deb/squeezed_*.deb 2>/dev/null | head -n 1)
assert_true "the package is in build/deb/" test -f "$deb"
assert_eq "nothing was written next to the source tree" "" \
    "$(ls ../squeezed_* 2>/dev/null)"

# lintian: no error; warnings are listed (and counted) here, not failed on.
lintian --tag-display-limit 0 "$deb" >"$TMPD/lintian.out" 2>&1
assert_eq "lintian reports no error" "" "$(grep '^E:' "$TMPD/lintian.out")"
note "lintian warnings: $(grep -c '^W:' "$TMPD/lintian.out")"
grep '^[WI]:' "$TMPD/lintian.out" | while read -r l; do note "$l"; done

# A scratch root: a dpkg database holding the host's records of the package's direct
# dependencies (so they are met), maintainer scripts run outside a chroot with DPKG_ROOT
# (debhelper's systemd snippets and deb-systemd-helper honour it), and a policy-rc.d
# that starts nothing.
R=$TMPD/scratch
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/usr/sbin"
: >"$R/var/lib/dpkg/status"
for p in $(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/(.*//; s/|.*//; s/ //g'); do
    dpkg-query -s "$p" >>"$R/var/lib/dpkg/status" 2>/dev/null || continue
    echo >>"$R/var/lib/dpkg/status"
    for l in /var/lib/dpkg/info/"$p".list /var/lib/dpkg/info/"$p":*.list; do
        [ -f "$l" ] && cp "$l" "$R/var/lib/dpkg/info/"
    done
done
printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"
chmod 0755 "$R/usr/sbin/policy-rc.d"
dpkg --root="$R" --force-script-chrootless --log=/dev/null -i "$deb" >"$TMPD/dpkg.out" 2>&1
rc=$?
assert_eq "dpkg --root=SCRATCH -i installs it" "0" "$rc"
[ "$rc" -eq 0 ] || cat "$TMPD/dpkg.out"
assert_eq "with no warning or error" "" \
    "$(grep -Ei 'warning|error' "$TMPD/dpkg.out")"
assert_eq "dpkg sees it installed" "install ok installed" \
    "$(dpkg --root="$R" -s squeezed 2>/dev/null | sed -n 's/^Status: //p')"
for f in /usr/sbin/squeezed /etc/squeezed.conf /lib/systemd/system/squeezed.service \
    /usr/share/man/man8/squeezed.8.gz /usr/share/squeezed/openapi.json \
    /usr/bin/squeezed-cli /usr/share/man/man1/squeezed-cli.1.gz; do
    assert_true "$f is in the scratch root" test -e "$R$f"
done
assert_true "/etc/squeezed.conf is a conffile" \
    grep -q "/etc/squeezed.conf" "$R/var/lib/dpkg/info/squeezed.conffiles"
assert_true "the unit is enabled in the scratch root" \
    test -L "$R/etc/systemd/system/multi-user.target.wants/squeezed.service"
"$R/usr/sbin/squeezed" -h >/dev/null
assert_eq "the packaged daemon runs (-h)" 0 $?

dpkg --root="$R" --force-script-chrootless --log=/dev/null --purge squeezed \
    >"$TMPD/purge.out" 2>&1
assert_eq "dpkg --purge removes it" 0 $?
left=$(cd "$R" && find . \( -type f -o -type l \) -path '*squeezed*' \
    ! -path './var/lib/dpkg/*')
assert_eq "and leaves no file of it behind" "" "$left"
e2e_finish
