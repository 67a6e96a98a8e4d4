#!/usr/bin/env bash
# package.sh - build the Debian packages, check them with lintian, install
# them, run the demo on the installed binaries, and purge them again. CI runs
# it after the tests (.ci/run); docs/packaging.md explains the packages.
#
#   scripts/package.sh            # all of it (installing needs root or sudo)
#   scripts/package.sh --build    # build and lintian only: nothing installed
#   scripts/package.sh --keep     # leave the packages installed at the end
#
# Steps:
#  1. scripts/deps.sh --packaging (debhelper, lintian, ...; nothing if present)
#  2. copy this checkout's files (tracked, plus untracked ones git does not
#     ignore) to PKG_DIR/mcache-VERSION and run `dpkg-buildpackage -us -uc -b`
#     there: the checkout is never written to, and the copy is checked to hold
#     nothing new outside debian/ afterwards (the build is out of tree, in
#     debian/build). The .debs land in PKG_DIR (default build-deb).
#  3. lintian on the .changes: its whole output is shown; any error fails.
#  4. apt-get install ./PKG_DIR/*_VERSION_*.deb (dependencies from the
#     archive; not the -dbgsym packages), then
#     check that every version agrees: the packages', mcached, mcache and
#     mcache-bench --version, mc_version() through the Python package.
#  5. scripts/demo.sh --installed (store ./mcache-data, as the normal demo).
#  6. The packages keep data: a store under /var/lib/mcache and an arena in
#     /dev/shm made by the installed mcached survive a reinstall (an upgrade's
#     scripts), `apt-get remove` and a purge; purge leaves the user mcache.
#     Then this script removes its own test store and arena.
#  7. Purge the packages (unless --keep, or if they were installed before this
#     script ran: then they are left installed, at the new version).
#
# Environment: PKG_DIR (default build-deb), DEB_BUILD_OPTIONS (passed on;
# parallel=$(nproc) is added).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=all
keep=0
for a in "$@"; do
  case "$a" in
    --build) mode=build ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    *) echo "package.sh: unknown option $a (see --help)" >&2; exit 2 ;;
  esac
done

PKGS=(mcached mcache libmcache0 libmcache-dev python3-mcache)
OUT=${PKG_DIR:-build-deb}
case "$OUT" in /*) ;; *) OUT=$PWD/$OUT ;; esac
SECONDS=0

if [ -t 1 ]; then B=$'\033[1m' N=$'\033[0m'; else B="" N=""; fi
step() { printf '\n%s== package.sh: %s%s\n' "$B" "$*" "$N"; }
fail() { echo "package.sh: $*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if [ "$mode" = all ]; then
    command -v sudo >/dev/null || fail "installing the packages needs root or sudo (or use --build)"
    SUDO=sudo
  fi
fi

# ---------------------------------------------------------------------------
step "what packaging needs (scripts/deps.sh --packaging)"
scripts/deps.sh --packaging

version=$(dpkg-parsechangelog -S Version)
src=$OUT/mcache-$version
step "copy the checkout to $src and build mcache $version there"
rm -rf "$OUT"
mkdir -p "$src"
git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
  tar --null -T - -cf - | tar -xf - -C "$src"
(cd "$src" && find . -path ./debian -prune -o -print | sort) >"$OUT/files-before"

export DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:+$DEB_BUILD_OPTIONS }parallel=$(nproc)"
echo "\$ DEB_BUILD_OPTIONS='$DEB_BUILD_OPTIONS' dpkg-buildpackage -us -uc -b   (log: $OUT/build.log)"
# Debian's own tools only, as in a build chroot: a python3 earlier on PATH
# (pyenv, a venv) lacks the Debian modules pybuild uses.
if ! (cd "$src" && PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg-buildpackage -us -uc -b) >"$OUT/build.log" 2>&1; then
  tail -n 40 "$OUT/build.log" >&2
  fail "dpkg-buildpackage failed (all of it in $OUT/build.log)"
fi
(cd "$src" && find . -path ./debian -prune -o -print | sort) >"$OUT/files-after"
if ! diff -u "$OUT/files-before" "$OUT/files-after" >"$OUT/files.diff"; then
  cat "$OUT/files.diff" >&2
  fail "the build wrote into the source tree outside debian/ (above): it must stay out of tree"
fi
changes=$(ls "$OUT"/mcache_"${version}"_*.changes)
debs=()
for p in "${PKGS[@]}"; do
  f=$(ls "$OUT/${p}_${version}"_*.deb 2>/dev/null) || fail "the build made no $p package"
  debs+=("$f")
done
echo "built in ${SECONDS} s:"
for f in "${debs[@]}"; do
  printf '  %-44s %6s KiB\n' "${f#"$PWD"/}" "$(( $(stat -c %s "$f") / 1024 ))"
done

step "lintian (fails on errors; every tag is listed)"
echo "\$ lintian --display-info --fail-on error ${changes#"$PWD"/}"
lintian --display-info --fail-on error "$changes" | tee "$OUT/lintian.txt" ||
  fail "lintian found errors (above; also in $OUT/lintian.txt)"
[ -s "$OUT/lintian.txt" ] || echo "(lintian: no tags)"

if [ "$mode" = build ]; then
  printf '\nPackages built and checked in %d s, in %s.\n' "$SECONDS" "${OUT#"$PWD"/}"
  exit 0
fi

# ---------------------------------------------------------------------------
export DEBIAN_FRONTEND=noninteractive
install_debs() {
  echo "\$ apt-get install --no-install-recommends ${debs[*]/#"$PWD"/.}"
  $SUDO apt-get install -y -qq --no-install-recommends "${debs[@]}" >"$OUT/install.log" 2>&1 ||
    { cat "$OUT/install.log" >&2; fail "apt-get install failed"; }
}
# dpkg --purge, not apt-get: apt-get no longer knows a removed package that
# left no conffiles. Only those dpkg still has (installed, or config-files).
purge_debs() {
  local p known=()
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -qv "not-installed$" && known+=("$p")
  done
  [ ${#known[@]} = 0 ] || $SUDO dpkg --purge "${known[@]}" >/dev/null
}

preinstalled=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" && preinstalled+=("$p")
done
TEST_CACHE=pkgtest-$$
TEST_STORE=/var/lib/mcache/$TEST_CACHE
TEST_SHM=/dev/shm
test_arena_made=0
cleanup() {
  local rc=$?
  set +e
  if [ "$test_arena_made" = 1 ]; then
    $SUDO rm -rf "$TEST_STORE"
    $SUDO rm -f "$TEST_SHM/mcache.$TEST_CACHE" "$TEST_SHM/mcache.$TEST_CACHE".*
  fi
  if [ "$rc" != 0 ] && [ "$keep" = 0 ] && [ ${#preinstalled[@]} = 0 ]; then
    echo "package.sh: failed; purging the packages it installed" >&2
    purge_debs
  fi
}
trap cleanup EXIT

step "install the packages"
install_debs
dpkg-query -W -f='  ${Package} ${Version} ${Architecture}\n' "${PKGS[@]}"
getent passwd mcache >/dev/null || fail "installing mcached did not create the user mcache"
echo "  user: $(getent passwd mcache)"
echo "  state directory: $(stat -c '%A %U:%G %n' /var/lib/mcache)"

step "every version agrees with the package's ($version)"
PATH=$PATH:/usr/sbin:/sbin
got_mcached=$(mcached --version)
got_mcache=$(mcache --version)
got_bench=$(mcache-bench --version)
got_lib=$(cd / && /usr/bin/python3 -c 'import mcache; print(mcache.__version__, mcache.lib_version())')
printf '  %s\n' "mcached --version: $got_mcached" "mcache --version: $got_mcache" \
  "mcache-bench --version: $got_bench" "python3 mcache.__version__, mc_version(): $got_lib"
for v in "${got_mcached#mcached }" "${got_mcache#mcache }" "${got_bench#mcache-bench }"; do
  [ "${v%% *}" = "$version" ] || fail "a binary says ${v%% *}, the package is $version"
done
[ "$got_lib" = "$version $version" ] || fail "the Python package and libmcache say '$got_lib', the package is $version"

step "the demo on the installed packages: scripts/demo.sh --installed"
scripts/demo.sh --installed

step "a store and an arena survive reinstall, remove and purge"
# An instance as the unit runs one: its store under /var/lib/mcache, its
# arena in /dev/shm; stopped cleanly (the arena stays for a warm restart).
test_arena_made=1
$SUDO mcached --store "$TEST_STORE" --cache "$TEST_CACHE" --size 64M --shm-dir "$TEST_SHM" \
  2>"$OUT/mcached-test.log" &
mpid=$!
for _ in $(seq 600); do grep -q 'serving cache' "$OUT/mcached-test.log" && break; sleep 0.05; done
grep -q 'serving cache' "$OUT/mcached-test.log" || { cat "$OUT/mcached-test.log" >&2; fail "the test mcached did not serve"; }
$SUDO kill -TERM "$mpid"; wait "$mpid" || fail "the test mcached did not stop cleanly"
kept=("$TEST_STORE" "$TEST_SHM/mcache.$TEST_CACHE" "$PWD/mcache-data")
check_kept() {
  local f
  for f in "${kept[@]}"; do
    $SUDO test -e "$f" || fail "$1 lost $f"
  done
  echo "  after $1: kept ${kept[*]}"
}
check_kept "mcached's clean stop"
$SUDO dpkg -i "$OUT/mcached_${version}"_*.deb >/dev/null   # prerm upgrade, postinst configure OLD
check_kept "a reinstall of mcached"
$SUDO apt-get remove -y -qq "${PKGS[@]}" >/dev/null
check_kept "apt-get remove"
[ -f /etc/mcache/mcached.conf ] || fail "apt-get remove deleted the conffile /etc/mcache/mcached.conf"
purge_debs
check_kept "purge"
[ ! -e /etc/mcache/mcached.conf ] || fail "purge left /etc/mcache/mcached.conf"
getent passwd mcache >/dev/null || fail "purge removed the user mcache (it should stay)"
echo "  after purge: /var/lib/mcache kept (it holds the test store); user mcache kept"
$SUDO rm -rf "$TEST_STORE"; $SUDO rm -f "$TEST_SHM/mcache.$TEST_CACHE" "$TEST_SHM/mcache.$TEST_CACHE".*
test_arena_made=0
$SUDO rmdir /var/lib/mcache            # empty now: what purge would have removed

step "install again, then purge: an empty /var/lib/mcache goes, the demo's store stays"
install_debs
if [ "$keep" = 1 ] || [ ${#preinstalled[@]} != 0 ]; then
  echo "  left installed (${preinstalled[*]:+installed before this script: ${preinstalled[*]}}${preinstalled[*]:-(--keep)})"
else
  purge_debs
  [ ! -e /var/lib/mcache ] || fail "purge left an empty /var/lib/mcache"
  [ -e "$PWD/mcache-data" ] || fail "purge removed the demo's store ./mcache-data"
  getent passwd mcache >/dev/null || fail "purge removed the user mcache (it should stay)"
  echo "  purged: /var/lib/mcache gone, ./mcache-data kept, user mcache kept"
fi
printf '\nPackages built, checked, installed, demonstrated and purged in %d s.\n' "$SECONDS"
