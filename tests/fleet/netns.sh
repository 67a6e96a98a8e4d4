#!/usr/bin/env bash
# netns.sh - throwaway network namespaces for the fleet's multi-host tests:
# each is a "host" joined to the root namespace by a veth pair on its own /30
# (10.A.B.4i+1 on the root's side, .4i+2 inside). Traffic stays on this machine.
#
#   netns.sh run N CMD...   make N namespaces, run CMD, remove them (also when
#                           CMD fails or netns.sh is interrupted); exits with
#                           CMD's status. CMD gets, for i in 1..N:
#                             NETNS_<i>       the namespace (ip netns exec NETNS_<i> ...)
#                             NETNS_<i>_ADDR  its address; NETNS_<i>_PEER the root's side
#                             NETNS_<i>_IF    the veth's root-side interface; NETNS_<i>_NSIF inside
#                           and, for pg.sh and rgw.sh run inside CMD:
#                             PG_LISTEN, RGW_LISTEN  the root sides' addresses (comma-separated)
#                             PG_HBA                 the CIDR covering them all
#   netns.sh check          exit 77 with a message where `ip netns` is unusable (not root,
#                           no iproute2, no veth, a sandbox without network namespaces)
#
# Names carry netns.sh's pid (mcn<pid>-<i>, veth mcv<pid>r<i>/mcv<pid>n<i>), so runs
# never collide; a run first removes what dead runs left (their pid gone).
set -euo pipefail

NAMES=()
VETHS=()

cleanup() {
  local v n
  for v in "${VETHS[@]}"; do ip link del "$v" 2>/dev/null || true; done
  for n in "${NAMES[@]}"; do ip netns del "$n" 2>/dev/null || true; done
  NAMES=() VETHS=()
}

# Is `ip netns` usable here? A trial namespace with a veth pair, removed at once.
check() {
  local n=mcncheck$$ why=""
  if [ "$(id -u)" -ne 0 ]; then
    why="not root (network namespaces need CAP_NET_ADMIN)"
  elif ! command -v ip >/dev/null 2>&1; then
    why="no ip (install iproute2)"
  elif ! ip netns add "$n" 2>/dev/null; then
    why="ip netns add fails here (no network namespaces in this sandbox?)"
  else
    if ! ip link add "mcv$$c" type veth peer name "mcv$$d" 2>/dev/null; then
      why="no veth pairs (ip link add ... type veth fails)"
    else
      ip link del "mcv$$c" 2>/dev/null || true
    fi
    ip netns del "$n" 2>/dev/null || true
  fi
  if [ -n "$why" ]; then
    echo "netns.sh: skipped: $why" >&2
    exit 77
  fi
}

# Namespaces and veths of runs whose netns.sh is gone (killed by a ctest timeout).
reap_dead() {
  local n pid l
  for n in $(ip netns list 2>/dev/null | awk '{print $1}'); do
    case "$n" in mcn[0-9]*-[0-9]*) ;; *) continue ;; esac
    pid=${n#mcn}; pid=${pid%%-*}
    kill -0 "$pid" 2>/dev/null || ip netns del "$n" 2>/dev/null || true
  done
  for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    case "$l" in mcv[0-9]*r[0-9]*) ;; *) continue ;; esac
    pid=${l#mcv}; pid=${pid%%r*}
    kill -0 "$pid" 2>/dev/null || ip link del "$l" 2>/dev/null || true
  done
}

up() {
  local count=$1 i a b base ns rif nif peer addr listen="" taken
  [ "$count" -ge 1 ] && [ "$count" -le 16 ] || { echo "netns.sh: N must be 1..16" >&2; exit 2; }
  # 10.A.B.0/24 from our pid; a block already in use here is skipped (8 tries)
  for i in 1 2 3 4 5 6 7 8; do
    a=$((100 + ($$ / 256 + i * 37) % 150)) b=$(($$ % 256))
    taken=$(ip -4 -o addr show 2>/dev/null | grep -c " 10\.$a\.$b\." || true)
    [ "$taken" -eq 0 ] && ! ip -4 route show 2>/dev/null | grep -q "^10\.$a\.$b\." && break
    [ "$i" -lt 8 ] || { echo "netns.sh: no free 10.x.y.0/24 block found" >&2; exit 1; }
  done
  base=10.$a.$b
  for ((i = 1; i <= count; i++)); do
    ns=mcn$$-$i rif=mcv$$r$i nif=mcv$$n$i
    peer=$base.$((4 * i - 3)) addr=$base.$((4 * i - 2))
    ip netns add "$ns"
    NAMES+=("$ns")
    ip link add "$rif" type veth peer name "$nif"
    VETHS+=("$rif")
    ip link set "$nif" netns "$ns"
    ip addr add "$peer/30" dev "$rif"
    ip link set "$rif" up
    ip netns exec "$ns" ip addr add "$addr/30" dev "$nif"
    ip netns exec "$ns" ip link set "$nif" up
    ip netns exec "$ns" ip link set lo up
    export "NETNS_$i=$ns" "NETNS_${i}_ADDR=$addr" "NETNS_${i}_PEER=$peer" \
      "NETNS_${i}_IF=$rif" "NETNS_${i}_NSIF=$nif"
    listen+="${listen:+,}$peer"
  done
  export NETNS_COUNT=$count PG_LISTEN=$listen RGW_LISTEN=$listen PG_HBA=$base.0/24
}

case "${1:-}" in
  check) check ;;
  run)
    shift
    [ $# -ge 2 ] || { echo "usage: netns.sh run N CMD..." >&2; exit 2; }
    n=$1
    shift
    check
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    reap_dead
    up "$n"
    echo "netns.sh: $NETNS_COUNT namespaces (${NAMES[*]}), root side $PG_LISTEN" >&2
    set +e
    "$@"
    rc=$?
    set -e
    exit $rc
    ;;
  *) echo "usage: netns.sh run N CMD... | netns.sh check" >&2; exit 2 ;;
esac
