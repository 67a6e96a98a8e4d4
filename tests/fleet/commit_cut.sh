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
#     (made directly) keeps it: the version is registered and verifies.
# Skips (77) without postgresql-15 (pg.sh) or python3.
set -uo pipefail
MCACHE=$1
HERE=$(cd "$(dirname "$0")" && pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v python3 >/dev/null || { echo "skipped: no python3" >&2; exit 77; }
[ -n "${MCACHE_TEST_PG_URL:-}" ] || fail "run me under tests/fleet/pg.sh run"

T=$(mktemp -d "${TMPDIR:-/tmp}/mcache-cut.XXXXXX")
PROXY=
stop_proxy() {
  [ -n "$PROXY" ] && kill "$PROXY" 2>/dev/null && wait "$PROXY" 2>/dev/null
  PROXY=
}
trap 'stop_proxy; rm -rf "$T"' EXIT

URL=$MCACHE_TEST_PG_URL
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
