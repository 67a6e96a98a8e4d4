#!/usr/bin/env bash
# bench-fleet.sh - `mcache-bench fleet` against a throwaway PostgreSQL 15 and
# Ceph RADOS Gateway on this machine: starts both (tests/fleet/pg.sh and
# tests/fleet/rgw.sh, nested), migrates the registry's schema, runs the
# scenario, and stops both by pid, leaving nothing behind.
#
#   scripts/bench-fleet.sh [--quick] [MCACHE-BENCH OPTIONS...]
#
# Options go to mcache-bench (e.g. --quick, --runs 7, --out DIR). The build
# is ./build (MCACHE_BUILD=DIR for another). Exits 77 with a message when
# postgresql-15 or the ceph packages are absent (scripts/deps.sh --fleet).
# To bench your own servers instead, set MCACHE_BENCH_REGISTRY (a migrated
# postgres:// URL), AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
# AWS_REGION and MCACHE_BENCH_BUCKET and run `mcache-bench fleet` yourself.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${MCACHE_BUILD:-$ROOT/build}
BENCH=$BUILD/bench/mcache-bench
MCACHE=$BUILD/tools/mcache

if [ "${1:-}" = __inner ]; then
  # Inside pg.sh run and rgw.sh run: both servers are up.
  shift
  "$MCACHE" --registry "$MCACHE_TEST_PG_URL" db migrate >/dev/null
  export MCACHE_BENCH_REGISTRY=$MCACHE_TEST_PG_URL
  exec "$BENCH" "$@" fleet
fi

for x in "$BENCH" "$MCACHE"; do
  [ -x "$x" ] || { echo "bench-fleet.sh: $x is not built (cmake --build $BUILD)" >&2; exit 1; }
done
"$ROOT/tests/fleet/rgw.sh" check
exec "$ROOT/tests/fleet/pg.sh" run "$ROOT/tests/fleet/rgw.sh" run "$ROOT/scripts/bench-fleet.sh" __inner "$@"
