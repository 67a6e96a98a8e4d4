# pglock.sh - sourced by the fleet scripts (needs fail() and psql):
# hold_registry_lock URL SECONDS: another session (psql, in the background,
# pid in PS) takes the registry's exclusive advisory lock, as a writer
# mid-change does, and holds it SECONDS; returns once it is held.
hold_registry_lock() {
  local n=0
  psql "$1" -Atc "SELECT pg_advisory_lock(27747, hashtext(current_schema())); SELECT pg_sleep($2)" \
    >/dev/null 2>&1 &
  PS=$!
  for _ in $(seq 100); do
    n=$(psql "$1" -Atc "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 27747 AND granted")
    [ "$n" != 0 ] && return 0
    sleep 0.05
  done
  fail "psql never took the registry lock"
}
