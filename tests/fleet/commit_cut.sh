#!/usr/bin/env bash
# commit_cut.sh MCACHE - a push whose connection to PostgreSQL breaks at its
# COMMIT, through a real TCP proxy (tcpproxy.py) in front of the server that
# pg.sh runs (MCACHE_TEST_PG_URL):
#   cut after the server committed: the push succeeds (the client finds its
#     row on a new session), the version is registered and its artifact is
#     there and verifies (it used to be deleted under a committed version);
#   cut before the COMMIT reached the server: the push fails with "nothing
#     was changed", and neither the version nor its artifact is left;
#   cut after the commit with the server unreachable since: the push fails
#     saying the outcome is unknown, the artifact stays, and the next change
#     (made directly) keeps it: the version is registered and verifies;
#   cut before the commit, the client kept waiting while another writer
#     pushes the same version (the lock was free in between): the first push
#     reports an unknown outcome and leaves the other writer's artifact alone
#     (it used to find a row not its own at its generation, say "nothing was
#     changed" and delete the other writer's committed artifact);
#   cut after the commit, the client kept waiting while another writer's
#     changes compact the records (its row is gone from registry_records):
#     unknown outcome, the artifact kept; the version verifies;
#   a read-only command while another session holds the registry lock for
#     3 s succeeds (it used to wait on the lock past its 1 s deadline and
#     report the database frozen).
# Skips (77) without postgresql-15 (pg.sh) or python3.
set -uo pipefail
MCACHE=$1
HERE=$(cd "$(dirname "$0")" && pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v python3 >/dev/null || { echo "skipped: no python3" >&2; exit 77; }
[ -n "${MCACHE_TEST_PG_URL:-}" ] || fail "run me under tests/fleet/pg.sh run"

. "$HERE/pglock.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/mcache-cut.XXXXXX")
PROXY=
stop_proxy() {
  [ -n "$PROXY" ] && kill "$PROXY" 2>/dev/null && wait "$PROXY" 2>/dev/null
  PROXY=
}
trap 'stop_proxy; rm -rf "$T"' EXIT

URL=$MCACHE_TEST_PG_URL
export TCPPROXY_RELEASE="$T/release" # the hold modes keep the client waiting until it exists
hostport=${URL#*@}
hostport=${hostport%%/*}
PGHOST=${hostport%:*}
PGPORT=${hostport#*:}
head -c 1048576 /dev/urandom >"$T/model.bin"
"$MCACHE" --registry "$URL" db migrate >/dev/null || fail "db migrate"
"$MCACHE" --store "$T/store" --registry "$URL" init -q || fail "init"

# start_proxy MODE: sets PROXY (pid) and PURL (the URL through it)
start_proxy() {
  coproc P (exec python3 "$HERE/tcpproxy.py" "$PGHOST" "$PGPORT" "$1" 2>>"$T/proxy.log")
  PROXY=$P_PID
  read -r -t 20 port <&"${P[0]}" || fail "tcpproxy.py printed no port"
  PURL="postgresql://postgres@127.0.0.1:$port/postgres?sslmode=disable"
}

# push_cut MODE VERSION: push m@VERSION through a proxy that cuts in MODE; sets RC, ERR (a file).
push_cut() {
  : >"$T/proxy.log"
  start_proxy "$1"
  ERR="$T/err-$2"
  "$MCACHE" -q --store "$T/store" --registry "$PURL" push m "$2" "$T/model.bin" 2>"$ERR"
  RC=$?
  stop_proxy
  grep -q "cut $1 COMMIT" "$T/proxy.log" || fail "the proxy never cut (its log: $(cat "$T/proxy.log"))"
}
D() { "$MCACHE" -q --store "$T/store" --registry "$URL" "$@"; } # directly, not through the proxy

# Cut after the commit: the push's outcome is found on a new session.
push_cut after 1.0.0
[ $RC -eq 0 ] || fail "a push whose COMMIT happened failed ($RC): $(cat "$ERR")"
D ls m --json | grep -q '"1.0.0"' || fail "m@1.0.0 is not registered after its committed push"
D verify m@1.0.0 || fail "the artifact of the committed m@1.0.0 does not verify (deleted?)"
echo "cut after COMMIT: the push succeeded, m@1.0.0 is registered and verifies"

# Cut before the commit: the server rolls back; nothing of m@2.0.0 is left.
push_cut before 2.0.0
[ $RC -ne 0 ] || fail "a push whose COMMIT never reached the server succeeded"
grep -q "nothing was changed" "$ERR" || fail "the failed push does not say nothing changed: $(cat "$ERR")"
D ls m --json | grep -q '"2.0.0"' && fail "m@2.0.0 is registered after a push that failed"
left=$(find "$T/store" -path '*2.0.0*' | head -n 3)
[ -z "$left" ] || fail "the failed push left its artifact: $left"
D verify || fail "the store does not verify after the failed push"
echo "cut before COMMIT: the push failed, nothing of m@2.0.0 is left"

# Cut after the commit, and the proxy gone: the outcome cannot be told.
push_cut gone 3.0.0
[ $RC -ne 0 ] || fail "a push whose outcome cannot be known succeeded"
grep -q "cannot be told now" "$ERR" || fail "the push does not say the outcome is unknown: $(cat "$ERR")"
grep -q "nothing was changed" "$ERR" && fail "the push says nothing changed, which it cannot know"
# the next change, on a working connection, settles the intent: m@3.0.0 is registered, so kept
D alias m prod 3.0.0 || fail "the next change failed"
D verify m@3.0.0 || fail "the artifact of the committed m@3.0.0 does not verify after an unknown outcome"
echo "cut after COMMIT, server gone: the outcome was reported unknown, the artifact kept and verified"

# hold_start MODE VERSION: push m@VERSION (in the background, pid HELD) through a proxy that cuts
# in MODE and keeps the client waiting; returns once it has cut. hold_end: release it; sets RC.
hold_start() {
  : >"$T/proxy.log"
  rm -f "$TCPPROXY_RELEASE"
  start_proxy "$1"
  ERR="$T/err-$2"
  "$MCACHE" -q --store "$T/store" --registry "$PURL" push m "$2" "$T/model.bin" 2>"$ERR" &
  HELD=$!
  for _ in $(seq 300); do
    grep -q "cut $1 COMMIT" "$T/proxy.log" && return 0
    kill -0 $HELD 2>/dev/null || break
    sleep 0.1
  done
  fail "the proxy never cut in $1 (its log: $(cat "$T/proxy.log"); the push: $(cat "$ERR"))"
}
hold_end() {
  touch "$TCPPROXY_RELEASE"
  wait $HELD
  RC=$?
  stop_proxy
}

# Cut before the commit; meanwhile another writer pushes the same version, which is allowed.
head -c 1048576 /dev/urandom >"$T/other.bin"
hold_start holdbefore 4.0.0
D push m 4.0.0 "$T/other.bin" || fail "another writer could not push m@4.0.0 while the first waited"
hold_end
[ $RC -ne 0 ] || fail "the first push of m@4.0.0 succeeded, but the other writer's is registered"
grep -q "cannot be told now" "$ERR" || fail "the first push does not say its outcome is unknown: $(cat "$ERR")"
D verify m@4.0.0 || fail "the other writer's m@4.0.0 does not verify (the first push deleted its artifact)"
D alias m prod 4.0.0 || fail "the next change failed"
D verify m@4.0.0 || fail "m@4.0.0 does not verify after the next change settled the intent"
echo "cut before COMMIT, another writer pushed the same version meanwhile: its artifact was kept"

# Cut after the commit; meanwhile another writer's changes compact the records away.
snap0=$(psql "$URL" -Atc "SELECT snapshot_gen FROM registry_state") || fail "psql"
hold_start holdafter 5.0.0
desc=$(head -c 4000 /dev/zero | tr "\\0" d)
head -c 4096 /dev/urandom >"$T/small.bin"
for i in $(seq 40); do
  D push other "1.0.$i" "$T/small.bin" --desc "$desc" || fail "another writer's push 1.0.$i failed"
  snap=$(psql "$URL" -Atc "SELECT snapshot_gen FROM registry_state")
  [ "$snap" != "$snap0" ] && break
done
[ "$snap" != "$snap0" ] || fail "the other writer's changes never compacted the records"
hold_end
[ $RC -eq 0 ] || grep -q "cannot be told now" "$ERR" ||
  fail "the push compacted away says neither success nor an unknown outcome: $(cat "$ERR")"
D ls m --json | grep -q '"5.0.0"' || fail "m@5.0.0 is not registered after its committed push"
D verify m@5.0.0 || fail "the committed m@5.0.0 does not verify (its artifact was deleted)"
D alias m prod 5.0.0 || fail "the next change failed"
D verify || fail "the store does not verify after the next change"
echo "cut after COMMIT, the records compacted meanwhile: m@5.0.0 is registered and verifies"

# A read while another session holds the registry lock (a writer mid-change) for 3 s.
hold_registry_lock "$URL" 3
t0=$(date +%s%N)
D ls m >"$T/ls.out" 2>"$T/ls.err" || fail "ls failed while the lock was held: $(cat "$T/ls.err")"
grep -q frozen "$T/ls.err" && fail "ls said the database is frozen: $(cat "$T/ls.err")"
echo "ls while another session holds the registry lock: ok in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
D verify || fail "verify while the lock was held"
wait $PS
