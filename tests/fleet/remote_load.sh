#!/usr/bin/env bash
# remote_load.sh - mcached loads versions whose artifacts are in the object
# store (loader/remote.c), against rgw.sh's real gateway, as separate
# processes: the CLI pushes, mcached loads, a libmcache worker (mp_reader)
# reads and hashes every byte.
#
#   rgw.sh run remote_load.sh MCACHE MCACHED MP_READER MCACHE_SERVE   (the built binaries)
#
# Checks: a pushed version loads and its bytes match; a namespaced one ("ns/m")
# pushed by the CLI and by mcache-serve and loaded by mcached, all three with
# the keys only in an --artifacts-creds file (a 0644 one refused); a FIFO in
# place of a node-local copy fails its load clearly while mcached answers; a
# removed version's node-local copy is deleted; `mcache verify` reads
# s3 artifacts; an object overwritten in the store fails verification at
# load and nothing is published; mcached killed (-9) mid-download serves no
# bad byte after its restart, and a dead writer's temporary file is swept at
# start (a live one's kept); with the gateway killed, a fresh arena loads
# from the node-local copies. Prints the load's throughput beside curl's
# parallel ranged GETs and a single GET of the same object (the ratios are
# enforced only with MCACHE_TEST_STRICT_PERF=1: two shared cores are noisy).
set -euo pipefail

[ $# -eq 4 ] || { echo "usage: remote_load.sh MCACHE MCACHED MP_READER MCACHE_SERVE" >&2; exit 2; }
MCACHE=$1 MCACHED=$2 READER=$3 SERVE=$4
for x in "$MCACHE" "$MCACHED" "$READER" "$SERVE"; do
  [ -x "$x" ] || { echo "FAIL: $x is not built"; exit 1; }
done
: "${AWS_ENDPOINT_URL:?run under tests/fleet/rgw.sh run}"

T=$(mktemp -d /dev/shm/mcf2-remote.XXXXXX)
STORE=$T/store
SHM=$T/shm
SOCK=$T/sock
LOG=$T/mcached.log
mkdir -p "$SHM"
BUCKET=mcremote
export MCACHE_ARTIFACTS=s3://$BUCKET/p
export MCACHE_STORE=$STORE MCACHE_SHM_DIR=$SHM MCACHE_CACHE=t
DPID="" SPID="" LPID=""
DENV=(env) # what mcached runs under (KEYLESS: no AWS keys in its environment)
KEYLESS=(env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_ENDPOINT_URL)

cleanup() {
  for p in $DPID $SPID $LPID; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$T"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  echo "--- mcached log (tail)"
  tail -n 30 "$LOG" 2>/dev/null || true
  exit 1
}

s3curl() {
  curl -sS --fail --aws-sigv4 "aws:amz:${AWS_REGION}:s3" \
    --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
}

now() { date +%s%N; } # ns

# wait_for WHAT TIMEOUT_S CMD...: until CMD succeeds (an event), or fail.
wait_for() {
  local what=$1 limit=$2 t0
  shift 2
  t0=$(date +%s)
  until "$@" >/dev/null 2>&1; do
    [ $(( $(date +%s) - t0 )) -lt "$limit" ] || fail "timed out after ${limit}s waiting for $what"
    sleep 0.05
  done
}

# daemon_is PID [loading]: `mcache stat --json` comes from mcached PID (stat
# answers from the arena alone when mcached is down), with a load in flight.
daemon_is() {
  "$MCACHE" --socket "$SOCK" stat --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
ok = d.get("source") == "mcached" and d["daemon"]["pid"] == int(sys.argv[1])
if ok and len(sys.argv) > 2:
    ok = d["daemon"]["loads"]["in_flight"] > 0
sys.exit(0 if ok else 1)' "$@"
}

start_mcached() {
  "${DENV[@]}" "$MCACHED" --store "$STORE" --shm-dir "$SHM" --cache t --socket "$SOCK" --size 2G \
    --log-level debug "$@" >>"$LOG" 2>&1 &
  DPID=$!
  wait_for "mcached (pid $DPID) to answer" 60 daemon_is "$DPID"
}

stop_mcached() { # SIG
  kill "-$1" "$DPID" 2>/dev/null || true
  wait "$DPID" 2>/dev/null || true
  DPID=""
}

# getload NAME REF: the worker asks mcached to load it and hashes every byte.
getload() { "$READER" getload "$SHM" t "$1" "$2" 120000; }

s3curl -X PUT "$AWS_ENDPOINT_URL/$BUCKET" -o /dev/null || fail "creating the bucket $BUCKET"

# Distinct contents (content-addressed objects: equal bytes would be one object).
head -c $((64 << 20)) /dev/urandom >"$T/a.bin"
head -c $((64 << 20)) /dev/urandom >"$T/b.bin"
head -c $((384 << 20)) /dev/urandom >"$T/big.bin"
head -c $((384 << 20)) /dev/urandom >"$T/big2.bin"

"$MCACHE" push m 1.0.0 "$T/a.bin" >/dev/null || fail "push m 1.0.0"
"$MCACHE" push m 2.0.0 "$T/b.bin" >/dev/null || fail "push m 2.0.0"
[ ! -e "$STORE/models/m/1.0.0/artifact" ] || fail "the push wrote a local artifact: not in s3?"

# ---- 1. load from the object store; the worker's bytes match ----------------------
start_mcached
out=$(getload m 1.0.0) || fail "loading m@1.0.0 from s3: $out"
echo "$out" | grep -q "^ok 1.0.0 $((64 << 20))" || fail "worker read: $out"
echo "ok: m@1.0.0 loaded from s3 and every byte hashes to its checksum ($out)"
# The node-local copy was written after the checksum passed, and is those bytes.
wait_for "the node-local copy" 10 test -e "$STORE/models/m/1.0.0/artifact"
cmp "$T/a.bin" "$STORE/models/m/1.0.0/artifact" || fail "the node-local copy differs"
echo "ok: node-local copy $STORE/models/m/1.0.0/artifact matches the pushed bytes"

# ---- 1b. a namespaced name, with the keys only in a credentials file ---------------
head -c $((16 << 20)) /dev/urandom >"$T/ns.bin"
head -c $((16 << 20)) /dev/urandom >"$T/nss.bin"
CREDS=$T/creds
printf 'AWS_ENDPOINT_URL=%s\nAWS_REGION=%s\nAWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' \
  "$AWS_ENDPOINT_URL" "$AWS_REGION" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$CREDS"
chmod 644 "$CREDS"
if out=$("${KEYLESS[@]}" "$MCACHE" --artifacts-creds "$CREDS" push ns/m 1.0.0 "$T/ns.bin" 2>&1); then
  fail "a push with a 0644 credentials file was accepted: $out"
fi
echo "$out" | grep -q "chmod 600 $CREDS" || fail "the 0644 refusal does not say chmod 600: $out"
if echo "$out" | grep -qF "$AWS_SECRET_ACCESS_KEY"; then fail "the refusal shows the secret"; fi
echo "ok: a 0644 credentials file is refused: $out"
chmod 600 "$CREDS"
"${KEYLESS[@]}" "$MCACHE" --artifacts-creds "$CREDS" push ns/m 1.0.0 "$T/ns.bin" >/dev/null ||
  fail "push ns/m 1.0.0 with the keys only in $CREDS"
# fsck reads the object store too: with the same keys (it once opened it without the file)
out=$("${KEYLESS[@]}" "$MCACHE" --artifacts-creds "$CREDS" fsck 2>&1) ||
  fail "fsck with the keys only in $CREDS: $out"
stop_mcached TERM
DENV=("${KEYLESS[@]}")
start_mcached --artifacts-creds "$CREDS"
out=$(getload ns/m 1.0.0) || fail "loading ns/m@1.0.0 with the keys only in $CREDS: $out"
echo "$out" | grep -q "^ok 1.0.0 $((16 << 20))" || fail "worker read of ns/m: $out"
wait_for "ns/m's node-local copy" 10 test -e "$STORE/models/ns/m/1.0.0/artifact"
cmp "$T/ns.bin" "$STORE/models/ns/m/1.0.0/artifact" || fail "ns/m's node-local copy differs"
echo "ok: ns/m@1.0.0 pushed by the CLI and loaded by mcached, keys only in $CREDS ($out)"
# mcache-serve pushes with the file alone too
"${KEYLESS[@]}" "$SERVE" --store "$STORE" --artifacts-creds "$CREDS" --listen 127.0.0.1:0 \
  >"$T/serve.log" 2>&1 &
SPID=$!
wait_for "mcache-serve to listen" 60 grep -q "listening on http://" "$T/serve.log"
port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$T/serve.log" | head -n1)
curl -sf -X PUT "http://127.0.0.1:$port/v1/models/ns%2Fs/versions/1.0.0" \
  -H 'Content-Type: application/octet-stream' --data-binary "@$T/nss.bin" -o /dev/null ||
  fail "mcache-serve's push of ns/s 1.0.0 with the keys only in $CREDS ($(tail -n3 "$T/serve.log"))"
kill -TERM "$SPID"; wait "$SPID" 2>/dev/null || true; SPID=""
out=$(getload ns/s 1.0.0) || fail "loading ns/s@1.0.0 pushed by mcache-serve: $out"
echo "$out" | grep -q "^ok 1.0.0 $((16 << 20))" || fail "worker read of ns/s: $out"
echo "ok: ns/s@1.0.0 pushed by mcache-serve (keys only in $CREDS) and loaded ($out)"
for f in "$LOG" "$T/serve.log"; do
  if grep -qF "$AWS_SECRET_ACCESS_KEY" "$f"; then fail "$f shows the secret"; fi
done
if "$MCACHE" --socket "$SOCK" stat --json | grep -qF "$AWS_SECRET_ACCESS_KEY"; then
  fail "stat --json shows the secret"
fi
DENV=(env)

# ---- 1c. a FIFO in place of a node-local copy: a clear error, mcached answers ------
"$MCACHE" --socket "$SOCK" evict m@1.0.0 >/dev/null || fail "evict m@1.0.0"
rm "$STORE/models/m/1.0.0/artifact"
mkfifo "$STORE/models/m/1.0.0/artifact"
t0=$(now)
if out=$(getload m 1.0.0 2>&1); then fail "m@1.0.0 loaded with a FIFO as its local copy: $out"; fi
echo "$out" | grep -q "not a regular file" || fail "the FIFO's error: $out"
daemon_is "$DPID" || fail "mcached does not answer after the FIFO"
echo "ok: a FIFO as m@1.0.0's node-local copy fails its load in $(( ($(now) - t0) / 1000000 )) ms, mcached answers: $out"
rm "$STORE/models/m/1.0.0/artifact"
out=$(getload m 1.0.0) || fail "m@1.0.0 after the FIFO went: $out"
wait_for "m@1.0.0's node-local copy again" 10 test -f "$STORE/models/m/1.0.0/artifact"
cmp "$T/a.bin" "$STORE/models/m/1.0.0/artifact" || fail "m@1.0.0's new node-local copy differs"
echo "ok: with the FIFO removed m@1.0.0 loads and its node-local copy is back"

# ---- 1d. a removed version's node-local copy goes with it ---------------------------
"$MCACHE" rm ns/m@1.0.0 >/dev/null || fail "mcache rm ns/m@1.0.0"
# the copy goes, then the directories it leaves empty (ns/ keeps ns/s)
wait_for "ns/m@1.0.0's node-local copy to go" 30 test ! -e "$STORE/models/ns/m"
[ -e "$STORE/models/ns/s/1.0.0/artifact" ] || fail "rm ns/m@1.0.0 took ns/s's node-local copy"
grep -q "removed the node-local copy .*ns/m@1.0.0" "$LOG" || fail "the removal is not logged"
echo "ok: mcache rm ns/m@1.0.0 removed its node-local copy (and its empty directories)"

# ---- 1e. keep-local = off (mcached.conf): a download leaves no node-local copy -------
stop_mcached TERM
echo "keep-local = off" >"$T/mcached.conf"
start_mcached --config "$T/mcached.conf"
"$MCACHE" --socket "$SOCK" evict ns/s@1.0.0 >/dev/null || fail "evict ns/s@1.0.0"
rm "$STORE/models/ns/s/1.0.0/artifact"
out=$(getload ns/s 1.0.0) || fail "loading ns/s@1.0.0 with keep-local off: $out"
# the copy is written before the load is reported done: none now means none kept
[ ! -e "$STORE/models/ns/s/1.0.0/artifact" ] || fail "keep-local = off kept a node-local copy"
echo "ok: with keep-local = off in mcached.conf ns/s@1.0.0 loaded ($out) and no copy was kept"
stop_mcached TERM
start_mcached

# ---- 2. verify reads s3 artifacts; a corrupted object is never published ----------
"$MCACHE" verify m@1.0.0 >/dev/null || fail "mcache verify m@1.0.0 on s3"
hex=$(s3curl "$AWS_ENDPOINT_URL/$BUCKET/p/versions/m/2.0.0" | sed 's/^xxh3-128://')
[ ${#hex} -eq 32 ] || fail "could not read m@2.0.0's object name: '$hex'"
head -c $((64 << 20)) /dev/urandom >"$T/bad.bin"
s3curl -T "$T/bad.bin" "$AWS_ENDPOINT_URL/$BUCKET/p/xxh3-128/$hex" -o /dev/null ||
  fail "overwriting the object"
if vout=$("$MCACHE" verify m@2.0.0 2>&1); then fail "verify passed a corrupted object: $vout"; fi
echo "$vout" | grep -q "hashes to" || fail "verify's message: $vout"
echo "ok: mcache verify reports the overwritten object: $(echo "$vout" | head -n1)"
if out=$(getload m 2.0.0 2>&1); then fail "a corrupted object was served: $out"; fi
echo "$out" | grep -q "p/xxh3-128/$hex" || fail "the load's error does not name the object: $out"
echo "$out" | grep -qi "checksum mismatch" || fail "the load's error: $out"
[ ! -e "$STORE/models/m/2.0.0/artifact" ] || fail "a corrupted download was kept locally"
echo "ok: the corrupted m@2.0.0 failed its load, nothing published: $out"

# ---- 3. throughput: the load against curl's ranged GETs of the same object ---------
"$MCACHE" push m 3.0.0 "$T/big.bin" >/dev/null || fail "push m 3.0.0"
hex3=$(s3curl "$AWS_ENDPOINT_URL/$BUCKET/p/versions/m/3.0.0" | sed 's/^xxh3-128://')
url="$AWS_ENDPOINT_URL/$BUCKET/p/xxh3-128/$hex3"
size=$((384 << 20))
conc=${MCACHE_S3_CONC:-16}
part=$(( (size + conc - 1) / conc ))
t0=$(now)
pids=()
for ((i = 0; i < conc; i++)); do
  s3curl -r "$((i * part))-$(( (i + 1) * part - 1 ))" "$url" -o /dev/null &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "curl ranged GET"; done
t_par=$(( $(now) - t0 ))
t0=$(now)
s3curl "$url" -o /dev/null || fail "curl GET"
t_one=$(( $(now) - t0 ))
out=$(getload m 3.0.0) || fail "loading m@3.0.0: $out"
line=$(grep "loaded m@3.0.0" "$LOG" | tail -n1)
t_load=$(echo "$line" | sed -n 's/.* in \([0-9.]*\) s .*/\1/p')
[ -n "$t_load" ] || fail "no load time in mcached's log: $line"
python3 - "$size" "$t_load" "$t_par" "$t_one" "$conc" <<'PY'
import os, sys
size, tl, conc = int(sys.argv[1]), float(sys.argv[2]), sys.argv[5]
tp, t1 = int(sys.argv[3]) / 1e9, int(sys.argv[4]) / 1e9
mib = size / 2**20
print(f"throughput ({mib:.0f} MiB object): mcached load {mib/tl:.1f} MiB/s ({tl:.2f} s, "
      f"verified); curl {conc} parallel ranged GETs {mib/tp:.1f} MiB/s ({tp:.2f} s); "
      f"curl single GET {mib/t1:.1f} MiB/s ({t1:.2f} s)")
r_par, r_one = tp / tl, t1 / tl
print(f"ratio: load/parallel-GETs {r_par:.2f} (target >= 0.9), load/single-GET {r_one:.2f} "
      f"(target >= 1.0)")
if os.environ.get("MCACHE_TEST_STRICT_PERF") == "1" and (r_par < 0.9 or r_one < 1.0):
    print("FAIL: below the throughput targets"); sys.exit(1)
PY

# ---- 4. kill -9 mid-download: no bad byte after the restart -------------------------
"$MCACHE" push m 4.0.0 "$T/big2.bin" >/dev/null || fail "push m 4.0.0"
getload m 4.0.0 >"$T/killed-reader.out" 2>&1 &
rpid=$!
wait_for "m@4.0.0's download to be in progress" 30 daemon_is "$DPID" loading
grep -q "loading m@4.0.0" "$LOG" || fail "in flight, but not m@4.0.0"
# SIGTERM first: the download is abandoned (mc_s3_set_cancel) and mcached exits
# promptly and cleanly, the extent unpublished.
t0=$(date +%s)
kill -TERM "$DPID"
st=0
wait "$DPID" || st=$?
DPID=""
[ "$st" -eq 0 ] || fail "mcached stopped with status $st during a download"
[ $(( $(date +%s) - t0 )) -le 5 ] || fail "mcached took over 5 s to stop during a download"
wait "$rpid" 2>/dev/null || true
[ ! -e "$STORE/models/m/4.0.0/artifact" ] || fail "a cancelled load published a node-local copy"
echo "ok: SIGTERM during m@4.0.0's download: mcached stopped in $(( $(date +%s) - t0 )) s, status 0"
# Restarted (it preloads m@4.0.0 again), then killed -9 mid-download.
start_mcached
getload m 4.0.0 >"$T/killed-reader.out" 2>&1 &
rpid=$!
wait_for "m@4.0.0's download to be in progress again" 30 daemon_is "$DPID" loading
stop_mcached 9
wait "$rpid" 2>/dev/null || true
[ ! -e "$STORE/models/m/4.0.0/artifact" ] || fail "a partial download was kept locally"
echo "ok: mcached killed (-9) with m@4.0.0's download in flight"
# What a dead writer of a node-local copy leaves (a named temporary file, where the file
# system has no O_TMPFILE) is swept at start; a live writer's (it holds its flock) is kept.
dead=$STORE/models/m/1.0.0/.artifact.99999.0.tmp live=$STORE/models/m/1.0.0/.artifact.99998.0.tmp
head -c 4096 /dev/urandom >"$dead"
chmod 444 "$dead"
# the holder is one process (it execs sleep with the locked fd), so killing it frees the lock
( exec 9>"$live"; flock -x 9; exec sleep 600 ) </dev/null >/dev/null 2>&1 &
LPID=$!
wait_for "the live writer's flock" 10 bash -c "! flock -n -x '$live' true"
start_mcached
[ ! -e "$dead" ] || fail "a dead writer's temporary file $dead was not swept"
[ -e "$live" ] || fail "a live writer's temporary file $live was swept"
grep -q "removed 1 temporary file" "$LOG" || fail "the sweep is not logged"
kill "$LPID"; wait "$LPID" 2>/dev/null || true; LPID=""
rm -f "$live"
echo "ok: a dead writer's temporary file was swept at start, a live one's kept"
out=$(getload m 4.0.0) || fail "m@4.0.0 after the restart: $out"
echo "$out" | grep -q "^ok 4.0.0 $size" || fail "worker read after restart: $out"
cmp "$T/big2.bin" "$STORE/models/m/4.0.0/artifact" || fail "m@4.0.0's local copy differs"
left=$(find "$STORE/models" -name '.artifact.*')
[ -z "$left" ] || fail "temporary files left under $STORE/models: $left"
echo "ok: after the restart m@4.0.0 loaded whole and verified ($out)"

# ---- 5. gateway killed: a fresh arena loads from the node-local copies -------------
stop_mcached TERM
kill -9 "$RGW_GATEWAY_PID"
wait_for "the gateway to stop answering" 10 bash -c "! curl -s -o /dev/null '$AWS_ENDPOINT_URL'"
start_mcached --recreate
for v in 1.0.0 3.0.0 4.0.0; do
  out=$(getload m $v) || fail "m@$v from its node-local copy with the gateway down: $out"
  echo "ok: m@$v loaded from its node-local copy with the gateway down ($out)"
done
if out=$(getload m 2.0.0 2>&1); then fail "m@2.0.0 loaded with the gateway down: $out"; fi
echo "ok: m@2.0.0 (no local copy, gateway down) fails: $out"
stop_mcached TERM
echo "PASS"
