#!/usr/bin/env bash
# test.sh - the one command from a fresh Debian 12 clone to passing tests:
# installs what is needed, builds with -Wall -Wextra -Werror, runs every test
# (ctest), then builds and runs them all again under AddressSanitizer with
# UndefinedBehaviorSanitizer, and under ThreadSanitizer. Exits non-zero if
# anything fails.
#
#   scripts/test.sh             # everything
#   scripts/test.sh --quick     # the release pass only (for development)
#   scripts/test.sh --no-tsan   # skip the ThreadSanitizer pass
set -euo pipefail
cd "$(dirname "$0")/.."

asan=1
tsan=1
for a in "$@"; do
  case "$a" in
    --quick) asan=0; tsan=0 ;;
    --no-asan) asan=0 ;;
    --no-tsan) tsan=0 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown option $a (see --help)" >&2; exit 2 ;;
  esac
done

scripts/deps.sh
jobs=$(nproc)

run_pass() { # name, build dir, cmake args...
  local name=$1 dir=$2
  shift 2
  echo "== $name: configure and build ($dir)"
  cmake -S . -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  echo "== $name: tests"
  (cd "$dir" && ctest --output-on-failure -j "$jobs" --timeout 600)
}

run_pass "release" build -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [ "$asan" = 1 ]; then
  run_pass "asan+ubsan" build-asan -DCMAKE_BUILD_TYPE=Debug -DMCACHE_SANITIZE=ON
fi
if [ "$tsan" = 1 ]; then
  run_pass "tsan" build-tsan -DCMAKE_BUILD_TYPE=Debug -DMCACHE_TSAN=ON
fi
echo "== all tests passed"
