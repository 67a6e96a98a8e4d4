#!/usr/bin/env bash
# rgw.sh - a throwaway one-node Ceph cluster (one monitor, one bluestore OSD
# over a sparse file, radosgw with beast on 127.0.0.1) that speaks S3, for
# the tests. Everything lives in one private directory with its own ceph.conf:
# nothing in /etc/ceph or /var/lib/ceph, no systemd, no manager.
#
#   rgw.sh run CMD...   start it, run CMD with AWS_ENDPOINT_URL,
#                       AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
#                       AWS_REGION exported (and RGW_CONF, RGW_DIR,
#                       RGW_GATEWAY_PID), then kill the cluster by pid
#                       (also when CMD fails or rgw.sh is interrupted);
#                       exits with CMD's status
#   rgw.sh check        exit 77 with a message if the ceph packages are absent
#
# RGW_DIR (default: a fresh mktemp -d) is where the cluster lives; it is
# removed afterwards unless RGW_KEEP=1. Ports are picked free per run, so
# two clusters can run side by side. RGW_LISTEN (optional): more addresses,
# comma-separated, the gateway listens on too, on the same port (a veth's
# address, for clients in a network namespace: tests/fleet/netns.sh sets it). Settings and why: ../shared/FLEET.md.
set -euo pipefail

# The fixed test keys of the S3 user (a throwaway cluster on loopback).
ACCESS_KEY=MCACHETESTACCESSKEY0
SECRET_KEY=mcacheTestSecretKey0000000000000000000000
REGION=us-east-1

need() {
  local missing=()
  for b in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool; do
    command -v "$b" >/dev/null 2>&1 || missing+=("$b")
  done
  if [ ${#missing[@]} -ne 0 ]; then
    echo "rgw.sh: skipped: ${missing[*]} not installed (apt-get install --no-install-recommends ceph-mon ceph-osd radosgw ceph-common, or scripts/deps.sh)" >&2
    exit 77
  fi
}

# A TCP port nothing listens on now (the kernel's pick for an ephemeral bind).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Each daemon runs in the foreground as our child (its pid is $!) and gets
# SIGKILL if rgw.sh itself dies without running its trap (SIGKILL, a ctest
# timeout): setpriv --pdeathsig execs the daemon, keeping the pid.
DAEMON="setpriv --pdeathsig KILL"
command -v setpriv >/dev/null 2>&1 || DAEMON=""

PIDS=()
DIR=""
stop() {
  # A throwaway cluster: SIGKILL, gateway first (SIGTERM to gateway and OSD
  # together can take minutes). Only our own children, by pid.
  local p
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
  if [ -n "$DIR" ] && [ "${RGW_KEEP:-0}" != 1 ]; then rm -rf "$DIR"; fi
}

# wait_for WHAT TIMEOUT_S CMD...: run CMD until it succeeds (an event: the
# daemon answers), failing with the log's tail after TIMEOUT_S.
wait_for() {
  local what=$1 limit=$2; shift 2
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    for p in "${PIDS[@]}"; do
      if ! kill -0 "$p" 2>/dev/null; then
        echo "rgw.sh: a daemon (pid $p) died while waiting for $what; logs in $DIR/log" >&2
        tail -n 20 "$DIR"/log/*.log >&2 || true
        return 1
      fi
    done
    if [ $SECONDS -ge $end ]; then
      echo "rgw.sh: $what did not come up within ${limit}s; logs in $DIR/log" >&2
      tail -n 20 "$DIR"/log/*.log >&2 || true
      return 1
    fi
    sleep 0.05
  done
}

start() {
  DIR=${RGW_DIR:-$(mktemp -d /tmp/mcache-rgw.XXXXXX)}
  mkdir -p "$DIR"/{mon,osd,run,log,rgw}
  local mon_port rgw_port fsid osd_uuid
  mon_port=$(free_port)
  rgw_port=$(free_port)
  fsid=$(cat /proc/sys/kernel/random/uuid)
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  CONF=$DIR/ceph.conf
  local endpoints="endpoint=127.0.0.1:$rgw_port" a extra=${RGW_LISTEN:-}
  for a in ${extra//,/ }; do endpoints+=" endpoint=$a:$rgw_port"; done
  cat >"$CONF" <<CONF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$mon_port]
mon initial members = a
# no cephx on a throwaway loopback cluster; the gateway then needs crc/secure
# for its monitor session, or its login fails (-13) and it retries forever
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc secure
ms bind msgr1 = false
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
pid file = $DIR/run/\$name.pid
keyring = $DIR/keyring
# one OSD: pools of size 1, placement over OSDs not hosts
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 1
osd pool default pgp num = 1
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
# pool creation takes ~10 s with the default proposal interval
paxos propose interval = 0.01
mon data = $DIR/mon
[osd]
osd data = $DIR/osd
osd objectstore = bluestore
bluestore block path = $DIR/osd.block
bluestore block create = true
bluestore block size = 8589934592
bluestore fsck on mkfs = false
bdev aio poll ms = 20
osd memory target = 939524096
[client.rgw]
rgw frontends = beast $endpoints
rgw data = $DIR/rgw
rgw dns name = 127.0.0.1
rgw gc obj min wait = 1
rgw gc processor period = 5
rgw enable usage log = false
CONF
  monmaptool --create --clobber --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$DIR/monmap" >/dev/null
  ceph-mon --conf "$CONF" --mkfs -i a --monmap "$DIR/monmap" >"$DIR/log/mkfs.log" 2>&1
  $DAEMON ceph-mon --conf "$CONF" -i a -f >>"$DIR/log/stdout.log" 2>&1 &
  PIDS+=($!)
  # the OSD's id from the monitor, its store made while the monitor settles
  $DAEMON ceph-osd --conf "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$DIR/log/mkfs.log" 2>&1 &
  local mkfs=$!
  local id
  stage "monitor started"
  id=$(timeout 30 ceph --conf "$CONF" osd new "$osd_uuid" 2>>"$DIR/log/stdout.log") || {
    echo "rgw.sh: the monitor did not answer (osd new); logs in $DIR/log" >&2; return 1; }
  stage "osd registered"
  wait "$mkfs" || { echo "rgw.sh: ceph-osd --mkfs failed:" >&2; tail -n 20 "$DIR/log/mkfs.log" >&2; return 1; }
  $DAEMON ceph-osd --conf "$CONF" -i "$id" -f >>"$DIR/log/stdout.log" 2>&1 &
  PIDS=($! "${PIDS[@]}")
  $DAEMON radosgw --conf "$CONF" -n client.rgw -f >>"$DIR/log/stdout.log" 2>&1 &
  PIDS=($! "${PIDS[@]}")
  # for tests that restart the gateway (they then stop their own by pid)
  export RGW_GATEWAY_PID=$!
  export AWS_ENDPOINT_URL=http://127.0.0.1:$rgw_port
  export AWS_ACCESS_KEY_ID=$ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SECRET_KEY AWS_REGION=$REGION
  export RGW_CONF=$CONF RGW_DIR=$DIR
  stage "osd and gateway started"
  # the user is written to RADOS, not through the gateway: create it while
  # the gateway comes up (both wait for the OSD and create the pools they need)
  $DAEMON radosgw-admin --conf "$CONF" user create --uid=mcache-test --display-name=mcache-test \
    --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >"$DIR/log/user.log" 2>&1 &
  local user=$!
  wait_for "radosgw on 127.0.0.1:$rgw_port" 60 curl -fsS -o /dev/null "$AWS_ENDPOINT_URL/"
  stage "gateway answering"
  wait "$user" || {
    echo "rgw.sh: radosgw-admin user create failed:" >&2; tail -n 20 "$DIR/log/user.log" >&2; return 1; }
  stage "user created"
}

# Time since start per step, shown with the ready line (where the seconds go
# on a busy machine).
STAGES=""
stage() {
  STAGES+="${STAGES:+, }$1 $(( (${EPOCHREALTIME/./} - t0) / 1000 )) ms"
}

case "${1:-}" in
  check) need ;;
  run)
    shift
    [ $# -ge 1 ] || { echo "usage: rgw.sh run CMD..." >&2; exit 2; }
    need
    trap stop EXIT
    trap 'exit 130' INT TERM
    t0=${EPOCHREALTIME/./}
    start
    t1=${EPOCHREALTIME/./}
    echo "rgw.sh: S3 at $AWS_ENDPOINT_URL after $(( (t1 - t0) / 1000 )) ms ($STAGES; cluster in $DIR)" >&2
    set +e
    "$@"
    rc=$?
    set -e
    exit $rc
    ;;
  *) echo "usage: rgw.sh run CMD... | rgw.sh check" >&2; exit 2 ;;
esac
