#!/usr/bin/env bash
# test_systemd.sh - the files in dist/systemd/ as systemd reads them, offline
# (systemd need not be PID 1): `systemd-analyze verify` on mcached@.service
# and mcache-serve@.service (an instance of each) and
# dev-mcache-hugepages.mount, with ExecStart= pointed at the binaries just
# built (verify checks that the binary exists); any line
# it prints about them fails the test, warnings included (an unknown or
# misspelt key is only a warning). mcache.sysusers through
# `systemd-sysusers --dry-run`, and every key of 60-mcache-hugepages.conf must
# exist in /proc/sys.
#
#   test_systemd.sh SRCDIR/dist/systemd BUILD/loader/mcached [BUILD/serve/mcache-serve]
# Exit 0 pass, 1 fail, 77 skip (no systemd-analyze).
set -euo pipefail

dist=$1
mcached=$2
command -v systemd-analyze >/dev/null || { echo "SKIP: no systemd-analyze (apt install systemd)"; exit 77; }
[ -x "$mcached" ] || { echo "FAIL: $mcached is not built"; exit 1; }

tmp=$(mktemp -d /tmp/mcsd.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
units=()

cp "$dist/mcached@.service" "$dist/mcache-serve@.service" "$dist/dev-mcache-hugepages.mount" "$tmp/"
grep -q '^ExecStart=/usr/sbin/mcached ' "$tmp/mcached@.service" ||
  { echo "FAIL: mcached@.service has no ExecStart=/usr/sbin/mcached"; exit 1; }
sed -i "s|^ExecStart=/usr/sbin/mcached |ExecStart=$mcached |" "$tmp/mcached@.service"
# mcache-serve@.service: the mcache-serve built beside mcached, when given (argument 3).
serve=${3:-}
if [ -n "$serve" ]; then
  [ -x "$serve" ] || { echo "FAIL: $serve is not built"; exit 1; }
  grep -q '^ExecStart=/usr/bin/mcache-serve ' "$tmp/mcache-serve@.service" ||
    { echo "FAIL: mcache-serve@.service has no ExecStart=/usr/bin/mcache-serve"; exit 1; }
  sed -i "s|^ExecStart=/usr/bin/mcache-serve |ExecStart=$serve |" "$tmp/mcache-serve@.service"
  units+=(./mcache-serve@default.service)
fi

# --man=no: Documentation= names mcached(8), which exists only once installed.
set +e
out=$(cd "$tmp" && systemd-analyze verify --man=no ./mcached@default.service \
  ./dev-mcache-hugepages.mount "${units[@]}" 2>&1)
rc=$?
set -e
echo "systemd-analyze verify: exit $rc"
[ -n "$out" ] && printf '%s\n' "$out"
if [ $rc -ne 0 ]; then
  echo "FAIL: systemd-analyze verify refused the units"
  fail=1
fi
if printf '%s\n' "$out" | grep -E "mcached@|mcache-serve@|dev-mcache-hugepages|$tmp" >/dev/null; then
  echo "FAIL: systemd-analyze verify has something to say about the units (above)"
  fail=1
fi

if command -v systemd-sysusers >/dev/null; then
  mkdir -p "$tmp/root/etc"
  if ! systemd-sysusers --dry-run --root="$tmp/root" "$dist/mcache.sysusers"; then
    echo "FAIL: systemd-sysusers refused mcache.sysusers"
    fail=1
  fi
fi

while IFS= read -r line; do
  case $line in '#'* | '') continue ;; esac
  key=${line%%=*}
  key=${key// /}
  if [ ! -e "/proc/sys/${key//.//}" ]; then
    echo "FAIL: 60-mcache-hugepages.conf sets \"$key\", which this kernel does not have"
    fail=1
  fi
done <"$dist/60-mcache-hugepages.conf"

[ $fail -eq 0 ] && echo "PASS"
exit $fail
