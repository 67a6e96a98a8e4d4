#!/usr/bin/env bash
# test_pg_script.sh - tests/fleet/pg.sh starts a PostgreSQL that answers on
# its URL and leaves nothing behind: after `stop` (and after `run`) its
# postmaster is gone and its directory removed; `run` passes the command's
# exit status through. Exits 77 where postgresql-15 is not installed.
set -uo pipefail
PG="$(dirname "$0")/pg.sh"
fail() { echo "FAIL: $*" >&2; exit 1; }

# Our own TMPDIR, so "nothing left" means this directory is empty.
TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/mcache-pgtest.XXXXXX")
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT
chmod 0755 "$TMPDIR" # the server runs as postgres and lives under it

out=$("$PG" start)
rc=$?
[ $rc -eq 77 ] && exit 77
[ $rc -eq 0 ] || fail "pg.sh start exited $rc"
read -r url dir <<<"$out"
[ -d "$dir" ] || fail "pg.sh start printed no directory: $out"
pid=$(head -n 1 "$dir/data/postmaster.pid")
[ "$(psql "$url" -Atc 'SELECT 1')" = 1 ] || fail "the server at $url does not answer"
"$PG" stop "$dir" || fail "pg.sh stop failed"
[ ! -e "$dir" ] || fail "$dir is still there after stop"
# gone, or a zombie this sandbox's PID 1 has not reaped yet
if kill -0 "$pid" 2>/dev/null && [ "$(ps -o stat= -p "$pid" | cut -c1)" != Z ]; then
  fail "postmaster $pid still runs after stop"
fi

# run: the URL is exported, the status passes through, nothing stays.
"$PG" run sh -c 'psql "$MCACHE_TEST_PG_URL" -Atc "SELECT 1" >/dev/null && exit 7'
rc=$?
[ $rc -eq 7 ] || fail "pg.sh run gave exit status $rc, not the command's 7"
[ -z "$(ls -A "$TMPDIR")" ] || fail "pg.sh run left $(ls -A "$TMPDIR") behind"
echo "pg.sh: started, answered, stopped by pid, nothing left"
