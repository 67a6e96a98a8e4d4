#!/usr/bin/env bash
# pg_freeze.sh MCACHE MCACHED MP_READER - mcached on a PostgreSQL registry that freezes
# (every server process SIGSTOPped: connections open, nothing answers, as a
# hung host or a link that drops packets): its loop never waits long on it.
#   another session holds the registry lock for 4 s: `mcache pin m@prod` (a
#     write mcached makes on its loop) fails "busy" within about 1 s, and stat
#     answers within 2 s meanwhile (the loop used to wait up to 60 s);
#   frozen while serving, with a `mcache pin` sent as it froze: `mcache stat` answers within 2 s every time (about
#     1 s: a statement waits 1 s at most), for longer than two of mcached's
#     2 s registry checks, and a worker (mp_reader) resolves and verifies
#     m@prod from the arena each time; SIGTERM stops it within 5 s;
#   frozen at start, with a replica: mcached starts from the replica, stat
#     answers as fast, and once the server is thawed mcached serves the
#     database again ("the registry answers again"), and that handle's
#     warnings reach its log (a replica that cannot be written).
# Run under tests/fleet/pg.sh run (MCACHE_TEST_PG_URL, MCACHE_TEST_PG_DIR).
# Prints the slowest stat of each phase.
set -uo pipefail
MCACHE=$1
MCACHED=$2
MP_READER=$3
HERE=$(cd "$(dirname "$0")" && pwd)
fail() { echo "FAIL: $*" >&2; [ -f "$T/mcached.log" ] && tail -n 20 "$T/mcached.log" >&2; exit 1; }
[ -n "${MCACHE_TEST_PG_URL:-}" ] || fail "run me under tests/fleet/pg.sh run"

. "$HERE/pglock.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/mcache-freeze.XXXXXX")
URL=$MCACHE_TEST_PG_URL
CACHE=freeze$$
MD=
FROZEN=
pg_pids() {
  local pm
  pm=$(head -n 1 "$MCACHE_TEST_PG_DIR/data/postmaster.pid")
  echo "$pm $(pgrep -P "$pm" | tr '\n' ' ')"
}
freeze() { FROZEN=$(pg_pids); kill -STOP $FROZEN; }
thaw() { [ -n "$FROZEN" ] && kill -CONT $FROZEN; FROZEN=; }
cleanup() {
  thaw
  [ -n "$MD" ] && kill -9 "$MD" 2>/dev/null && wait "$MD" 2>/dev/null
  rm -f "$T"/shm/mcache-* 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$T/shm"
M() { "$MCACHE" --store "$T/store" --registry "$URL" --cache "$CACHE" --shm-dir "$T/shm" "$@"; }
# mcached answers stat (not the arena alone, which stat reads with mcached down)
stat_mcached() {
  timeout 10 "$MCACHE" --cache "$CACHE" --shm-dir "$T/shm" --json stat 2>/dev/null |
    grep -q '"source": *"mcached"'
}

start_mcached() {
  "$MCACHED" --store "$T/store" --registry "$URL" --cache "$CACHE" --shm-dir "$T/shm" \
    --size 64M >>"$T/mcached.log" 2>&1 &
  MD=$!
  for _ in $(seq 1 300); do # 30 s: a start from the replica first waits out a connection
    stat_mcached && return 0
    kill -0 "$MD" 2>/dev/null || fail "mcached exited at start"
    sleep 0.1
  done
  fail "mcached did not answer stat within 30 s of its start"
}

# a worker resolves m@prod in the arena and verifies its bytes
worker_resolves() {
  timeout 10 "$MP_READER" verify "$T/shm" "$CACHE" m prod 2>/dev/null | grep -q "^ok 1.0.0"
}

# stat_for SECONDS: stat again and again for that long; fails on one slower than 2 s.
# until CMD... succeeds, at most 30 s (polled every 0.1 s): an event, not a sleep
within_30s() {
  local _
  for _ in $(seq 1 300); do
    "$@" && return 0
    sleep 0.1
  done
  "$@"
}

stat_for() {
  local end=$((SECONDS + $1)) worst=0 t0 ms
  while [ $SECONDS -lt $end ]; do
    t0=$(date +%s%N)
    stat_mcached || fail "mcached did not answer stat while the database is frozen"
    ms=$((($(date +%s%N) - t0) / 1000000))
    [ $ms -gt $worst ] && worst=$ms
    [ $ms -le 2000 ] || fail "stat took $ms ms while the database is frozen"
    worker_resolves || fail "a worker could not resolve m@prod while the database is frozen"
  done
  echo "$worst"
}

# stop_mcached_within S: SIGTERM, and it must be gone within S seconds.
stop_mcached_within() {
  local t0=$(date +%s%N) ms
  kill -TERM "$MD"
  for _ in $(seq 1 $(($1 * 10))); do
    kill -0 "$MD" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$MD" 2>/dev/null && fail "mcached still runs $1 s after SIGTERM with the database frozen"
  wait "$MD"
  MD=
  ms=$((($(date +%s%N) - t0) / 1000000))
  echo "$ms"
}

M db migrate >/dev/null || fail "db migrate"
head -c 65536 /dev/urandom >"$T/model.bin"
M -q push m 1.0.0 "$T/model.bin" --alias prod || fail "push"

# Frozen while serving.
start_mcached
within_30s worker_resolves || fail "m@prod was not resident within 30 s of mcached's start"

# mcached's own write while another session holds the registry lock for 4 s.
hold_registry_lock "$URL" 4
timeout 30 "$MCACHE" --cache "$CACHE" --shm-dir "$T/shm" pin m@prod >"$T/pin.out" 2>&1 &
PIN=$!
worst=$(stat_for 2) || exit 1
wait $PIN && fail "pin succeeded while another session held the registry lock"
grep -q "busy" "$T/pin.out" || fail "pin did not say the registry is busy: $(cat "$T/pin.out")"
echo "registry lock held elsewhere: pin failed busy; the slowest stat took $worst ms"
wait $PS

freeze
timeout 30 "$MCACHE" --cache "$CACHE" --shm-dir "$T/shm" pin m@prod >"$T/pin.out" 2>&1 &
PIN=$!
worst=$(stat_for 5) || exit 1
wait $PIN && fail "pin succeeded while the database is frozen"
echo "frozen while serving: pin failed ($(head -c 200 "$T/pin.out")); the slowest stat took $worst ms"
ms=$(stop_mcached_within 5) || exit 1
echo "frozen while serving: SIGTERM stopped mcached in $ms ms"
[ -d "$T/store/replica" ] || fail "mcached left no replica"

# Frozen at start, with the replica the first run kept.
: >"$T/mcached.log"
start_mcached
grep -q "serving this host's replica" "$T/mcached.log" ||
  fail "mcached did not say it serves the replica: $(cat "$T/mcached.log")"
worst=$(stat_for 5) || exit 1
echo "frozen at start: started from the replica; the slowest stat took $worst ms"
thaw
within_30s grep -q "the registry answers again" "$T/mcached.log" ||
  fail "mcached did not serve the database within 30 s of its thaw"
echo "thawed: mcached serves the database again"
# the handle it opened again warns into its log (it used to keep the attempts' silence)
rm -rf "$T/store/replica"
: >"$T/store/replica" # a file where the replica's directory was: its rewrite fails
M -q push m 2.0.0 "$T/model.bin" || fail "push after the thaw"
within_30s grep -q "could not keep this host's replica" "$T/mcached.log" ||
  fail "the reopened registry's warning (its replica cannot be written) is not in mcached's log"
echo "thawed: the reopened registry's warnings reach mcached's log"
ms=$(stop_mcached_within 5) || exit 1
echo "stopped in $ms ms"
