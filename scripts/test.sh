#!/usr/bin/env bash
# test.sh - the one command from a fresh Debian 12 clone to passing tests:
# installs what is needed, builds with -Wall -Wextra -Werror, runs every test
# (ctest), runs the release pass a second time with every CPU kept busy
# (stress-ng, bounded in time and stopped afterwards: timing assumptions must
# fail here, not on a user's busy host), then builds and runs them all again
# under AddressSanitizer with UndefinedBehaviorSanitizer, and under
# ThreadSanitizer. Exits non-zero if anything fails.
#
#   scripts/test.sh                  # everything
#   scripts/test.sh --quick          # the release pass only (for development)
#   scripts/test.sh --no-contended   # skip the release pass under CPU load
#   scripts/test.sh --no-tsan        # skip the ThreadSanitizer pass
set -euo pipefail
cd "$(dirname "$0")/.."

asan=1
tsan=1
contended=1
for a in "$@"; do
  case "$a" in
    --quick) asan=0; tsan=0; contended=0 ;;
    --no-contended) contended=0 ;;
    --no-asan) asan=0 ;;
    --no-tsan) tsan=0 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
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

# The release pass's tests again while stress-ng keeps every CPU busy.
contended_pass() {
  local stress rc=0
  echo "== release under CPU load: ctest while stress-ng --cpu $jobs runs"
  stress-ng --cpu "$jobs" --timeout 1200s --quiet &
  stress=$!
  (cd build && ctest --output-on-failure -j "$jobs" --timeout 900) || rc=$?
  kill "$stress" 2>/dev/null || true
  wait "$stress" 2>/dev/null || true
  return "$rc"
}

run_pass "release" build -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [ "$contended" = 1 ]; then
  contended_pass
fi
if [ "$asan" = 1 ]; then
  run_pass "asan+ubsan" build-asan -DCMAKE_BUILD_TYPE=Debug -DMCACHE_SANITIZE=ON
fi
if [ "$tsan" = 1 ]; then
  run_pass "tsan" build-tsan -DCMAKE_BUILD_TYPE=Debug -DMCACHE_TSAN=ON
fi
echo "== all tests passed"
