#!/usr/bin/env bash
# build-matrix.sh - build every CMake build type (Debug, RelWithDebInfo,
# Release, MinSizeRel) with GCC and with clang, each with -Wall -Wextra
# -Werror (the project's flags), into build-matrix/<compiler>-<type>/. Builds
# only: scripts/test.sh runs the tests. Exits non-zero, naming the build, at
# the first one that fails.
#
#   scripts/build-matrix.sh                 # all eight
#   scripts/build-matrix.sh gcc             # one compiler
#   scripts/build-matrix.sh clang Release   # one compiler, one type
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in -h|--help) sed -n '2,10p' "$0"; exit 0 ;; esac
compilers=${1:-"gcc clang"}
types=${2:-"Debug RelWithDebInfo Release MinSizeRel"}
scripts/deps.sh
jobs=$(nproc)

for cc in $compilers; do
  command -v "$cc" >/dev/null || { echo "build-matrix: $cc is not installed" >&2; exit 1; }
  for t in $types; do
    dir=build-matrix/$cc-$t
    echo "== $cc $t ($dir)"
    if ! { CC=$cc cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$t" >/dev/null &&
           cmake --build "$dir" -j "$jobs" >"$dir.log" 2>&1; }; then
      grep -E -B2 -A6 'error|warning' "$dir.log" | head -n 60 >&2 || tail -n 40 "$dir.log" >&2
      echo "build-matrix: the $cc $t build failed (all of it in $dir.log)" >&2
      exit 1
    fi
  done
done
echo "== every build type builds with ${compilers// / and }"
