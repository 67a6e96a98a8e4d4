#!/usr/bin/env bash
# test_instructions.sh - the warm path's instruction budget (ctest
# perf_instructions, label perf). Counts the instructions of one mc_get +
# mc_release by exact version, alias, "latest" and the range "^1" with
# callgrind (deterministic: the same binary counts the same on every run,
# under any CPU load), as (Ir(2N) - Ir(N)) / N of tests/helpers/get_count,
# and fails when one exceeds its recorded figure in instructions.txt by
# more than 10%. Prints every figure, with the raw private ck_ht lookup
# measured the same way beside them.
#
#   test_instructions.sh GET_COUNT CONFIG SANITIZE FIGURES
#
# CONFIG is "<compiler>-<build type>" (GNU-RelWithDebInfo): counts depend on
# both, so figures are recorded per CONFIG; one without figures is skipped
# (77) saying so. Debug and sanitizer builds are skipped (77): their counts
# measure the instrumentation; so is a build whose debug information this
# valgrind cannot read (Debian 12's valgrind 3.19 and clang's DWARF 5: clang
# RelWithDebInfo). MCACHE_PERF_RECORD=1 writes this CONFIG's
# figures into FIGURES instead of checking them (after a deliberate change;
# commit the file with it).
set -euo pipefail

get_count=$1 config=$2 sanitize=$3 figures=$4
n=20000
slack=10 # percent over the recorded figure that fails

case "$config" in
*-Debug | *-) echo "perf_instructions: skipped: a $config build (counts are for optimized builds)"; exit 77 ;;
esac
if [ "$sanitize" != "OFF" ]; then
  echo "perf_instructions: skipped: a sanitizer build ($sanitize): its counts measure the instrumentation"
  exit 77
fi
if ! command -v valgrind >/dev/null; then
  echo "perf_instructions: valgrind is not installed; install it (scripts/deps.sh installs it)" >&2
  exit 1
fi

# IR = the instructions of `get_count N MODE`, total. Exits (the script) on
# a failure: 1, or 77 where this valgrind cannot read the build's debug
# information (valgrind 3.19 and clang's DWARF 5 in -g builds).
ir() {
  local out rc=0
  out=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$get_count" "$1" "$2" 2>&1) || rc=$?
  if grep -q "debuginfo reader" <<<"$out"; then
    echo "perf_instructions: skipped: valgrind cannot read this build's debug information" \
      "($(valgrind --version)); build without -g, or with GCC, to count"
    exit 77
  fi
  IR=$(sed -n 's/^==[0-9]*== Collected : \([0-9]*\)$/\1/p' <<<"$out")
  if [ "$rc" -ne 0 ] || [ -z "$IR" ]; then
    echo "perf_instructions: get_count $1 $2 under callgrind failed (exit $rc) or gave no count:" >&2
    echo "$out" >&2
    exit 1
  fi
}

# PER_OP = instructions per operation of MODE: (Ir(2N) - Ir(N)) / N.
per_op() {
  local a
  ir "$n" "$1"
  a=$IR
  ir $((2 * n)) "$1"
  PER_OP=$(((IR - a) / n))
}

record=${MCACHE_PERF_RECORD:-0}
if [ "$record" != 1 ] && ! grep -q "^$config " "$figures"; then
  echo "perf_instructions: skipped: no figures recorded for $config in $figures" \
    "(record them with MCACHE_PERF_RECORD=1 ctest -R perf_instructions)"
  exit 77
fi

per_op ckht
raw=$PER_OP
echo "instructions per operation, $config (raw private ck_ht lookup: $raw)"
fail=0 lines=()
for mode in exact alias latest range weighted keyed; do
  per_op "$mode"
  got=$PER_OP
  lines+=("$config $mode $got")
  ratio=$(awk -v g="$got" -v r="$raw" 'BEGIN { printf "%.2f", g / r }')
  if [ "$record" = 1 ]; then
    printf '  %-7s %5d  (%s x ck_ht)  recorded\n' "$mode" "$got" "$ratio"
    continue
  fi
  want=$(awk -v c="$config" -v m="$mode" '$1 == c && $2 == m { print $3 }' "$figures")
  if [ -z "$want" ]; then
    echo "perf_instructions: $figures has no figure for $config $mode" >&2
    exit 1
  fi
  limit=$((want + want * slack / 100))
  verdict=ok
  if [ "$got" -gt "$limit" ]; then
    verdict="FAIL: over $limit (recorded $want + $slack%)"
    fail=1
  fi
  printf '  %-7s %5d  (%s x ck_ht)  recorded %d, limit %d: %s\n' "$mode" "$got" "$ratio" \
    "$want" "$limit" "$verdict"
done
if [ "$record" = 1 ]; then
  tmp=$(mktemp)
  grep -v "^$config " "$figures" >"$tmp" || true
  printf '%s\n' "${lines[@]}" >>"$tmp"
  cat "$tmp" >"$figures"
  rm -f "$tmp"
  echo "perf_instructions: recorded $config in $figures"
fi
exit "$fail"
