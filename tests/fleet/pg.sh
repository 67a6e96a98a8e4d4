#!/usr/bin/env bash
# pg.sh - a throwaway PostgreSQL 15 for the tests: a fresh cluster in a
# private directory, on a free loopback port, stopped by its pid and removed.
#
#   pg.sh run CMD [ARGS...]   start one, run CMD with MCACHE_TEST_PG_URL set,
#                             stop it, remove it; exits with CMD's status
#   pg.sh start               start one; prints "URL DIR" (stop it with pg.sh stop DIR)
#   pg.sh stop DIR            stop the one in DIR (by the pid in its postmaster.pid) and remove DIR
#   pg.sh pause DIR           stop the server of DIR (pg_ctl stop -m fast), keeping its data
#   pg.sh resume DIR          start it again, on the same port
# `run` also sets MCACHE_TEST_PG_DIR, for tests that pause and resume it.
#
# PG_LISTEN (optional): more addresses to listen on besides 127.0.0.1,
# comma-separated (a veth's address, for clients in a network namespace:
# tests/fleet/netns.sh sets it); PG_HBA: a CIDR whose clients are trusted
# too (else only loopback's are). Both are kept for `resume`.
#
# Exits 77 (the tests' "skipped") when Debian's postgresql-15 is not installed.
# Settings are for speed, not durability (fsync off): nothing here outlives
# the test run. As root, the server runs as user postgres (it refuses root).
set -euo pipefail

PGBIN=${MCACHE_PG_BIN:-/usr/lib/postgresql/15/bin}

need_pg() {
  if [ ! -x "$PGBIN/initdb" ] || [ ! -x "$PGBIN/pg_ctl" ]; then
    echo "pg.sh: skipped: PostgreSQL 15 is not installed ($PGBIN/initdb missing);" \
      "install Debian's postgresql-15 (scripts/deps.sh --fleet)" >&2
    exit 77
  fi
}

# Run a command as the server's owner: postgres when we are root, else ourselves.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Start a cluster; sets URL and DIR.
pg_start() {
  need_pg
  DIR=$(mktemp -d "${TMPDIR:-/tmp}/mcache-pg.XXXXXX")
  chmod 0700 "$DIR"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$DIR"
  if ! as_owner test -w "$DIR"; then
    echo "pg.sh: user postgres cannot reach $DIR (is ${TMPDIR:-/tmp} private to $(id -un)?);" \
      "set TMPDIR to a directory others may traverse" >&2
    rm -rf "$DIR"
    exit 1
  fi
  if ! as_owner "$PGBIN/initdb" -D "$DIR/data" -A trust --no-sync -E UTF8 --locale=C.UTF-8 \
      -U postgres >"$DIR/initdb.log" 2>&1; then
    echo "pg.sh: initdb into $DIR/data failed:" >&2
    cat "$DIR/initdb.log" >&2
    rm -rf "$DIR"
    exit 1
  fi
  echo "127.0.0.1${PG_LISTEN:+,$PG_LISTEN}" >"$DIR/listen"
  if [ -n "${PG_HBA:-}" ]; then
    echo "host all all $PG_HBA trust" >>"$DIR/data/pg_hba.conf"
  fi
  # A port taken between our check and the server's bind makes pg_ctl fail: try a few.
  local try port
  for try in 1 2 3 4 5 6 7 8; do
    port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    port_free "$port" || continue
    if as_owner "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 30 start \
        -o "-p $port -k $DIR -c listen_addresses=$(cat "$DIR/listen") -c fsync=off \
            -c synchronous_commit=off -c full_page_writes=off" >/dev/null 2>&1; then
      # With PG_LISTEN it starts even when 127.0.0.1's port was taken meanwhile (listening
      # on the other addresses only): that is a taken port too.
      if grep -q "could not create listen socket" "$DIR/server.log"; then
        as_owner "$PGBIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true
        : >"$DIR/server.log"
        continue
      fi
      URL="postgresql://postgres@127.0.0.1:$port/postgres"
      echo "$port" >"$DIR/port"
      return 0
    fi
  done
  echo "pg.sh: PostgreSQL would not start in $DIR/data (8 ports tried); its log:" >&2
  tail -n 20 "$DIR/server.log" >&2 || true
  pg_stop "$DIR"
  exit 1
}

# Stop the postmaster of DIR by its pid (first line of postmaster.pid), then remove DIR.
pg_stop() {
  local dir=$1 pid i
  case "$dir" in
    "${TMPDIR:-/tmp}"/mcache-pg.*) ;;
    *) echo "pg.sh: $dir is not a directory pg.sh made" >&2; exit 2 ;;
  esac
  if [ -f "$dir/data/postmaster.pid" ]; then
    pid=$(head -n 1 "$dir/data/postmaster.pid")
    # SIGINT is PostgreSQL's "fast shutdown": sessions end, no waiting for clients.
    kill -INT "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
      # gone, or a zombie our PID 1 has not reaped yet
      if ! kill -0 "$pid" 2>/dev/null || [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" = Z ]; then
        break
      fi
      sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null && [ "$(ps -o stat= -p "$pid" | cut -c1)" != Z ]; then
      echo "pg.sh: postmaster $pid did not stop in 5 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -rf "$dir"
}

case "${1:-}" in
  run)
    shift
    [ $# -gt 0 ] || { echo "pg.sh run: no command given" >&2; exit 2; }
    pg_start
    trap 'pg_stop "$DIR"' EXIT
    trap 'exit 130' INT TERM
    rc=0
    MCACHE_TEST_PG_URL=$URL MCACHE_TEST_PG_DIR=$DIR "$@" || rc=$?
    exit $rc
    ;;
  start)
    pg_start
    echo "$URL $DIR"
    ;;
  pause)
    [ $# -eq 2 ] && [ -f "$2/port" ] || { echo "usage: pg.sh pause DIR (a DIR pg.sh made)" >&2; exit 2; }
    as_owner "$PGBIN/pg_ctl" -D "$2/data" -w -t 30 stop -m fast >/dev/null
    ;;
  resume)
    [ $# -eq 2 ] && [ -f "$2/port" ] || { echo "usage: pg.sh resume DIR (a DIR pg.sh made)" >&2; exit 2; }
    as_owner "$PGBIN/pg_ctl" -D "$2/data" -l "$2/server.log" -w -t 30 start \
        -o "-p $(cat "$2/port") -k $2 -c listen_addresses=$(cat "$2/listen") -c fsync=off \
            -c synchronous_commit=off -c full_page_writes=off" >/dev/null
    ;;
  stop)
    [ $# -eq 2 ] || { echo "usage: pg.sh stop DIR" >&2; exit 2; }
    pg_stop "$2"
    ;;
  *)
    echo "usage: pg.sh run CMD... | start | stop DIR" >&2
    exit 2
    ;;
esac
