#!/usr/bin/env bash
# demo.sh - the README's main command: mcache working end to end on this
# machine. From a fresh Debian 12 clone it installs what is needed
# (scripts/deps.sh), builds, starts mcached with its defaults (store
# ./mcache-data, cache "default" in /dev/shm, an arena sized for the machine),
# makes and pushes the demo model's two versions, points `production` at the
# first, runs a C worker and a PyTorch worker on it, moves `production` to the
# second version while both workers serve (blue-green), serves a
# transformer-shaped model of up to 256 MiB to 4 PyTorch workers at once beside
# torch.load (time to ready, total memory), shows `mcache stat`, and stops
# mcached cleanly. docs/quickstart.md explains each step.
#
#   scripts/demo.sh                 # the whole demo; leaves only ./mcache-data
#   scripts/demo.sh --keep-running  # leave mcached running afterwards, to explore
#   scripts/demo.sh --reset         # first remove the demo model from ./mcache-data
#   scripts/demo.sh --installed     # use the installed mcache instead of a build
#
# Re-runnable: ./mcache-data is kept between runs (it is a registry, and may
# hold your own models too). The demo versions are pushed only if the store
# does not have them yet (the files are byte-identical every run), and
# `production` is pointed back at 1.0.0. The arena is removed at the end if
# this run created it, to give its memory back (mcached itself keeps it for a
# warm restart). On any failure or Ctrl-C, the workers and mcached are stopped
# and the arena removed. Environment: BUILD_DIR (default build), PYTHON
# (default /usr/bin/python3, which has Debian's python3-numpy/python3-torch).
#
# --installed: nothing is built or installed; the demo runs on what is
# installed (the Debian packages, or `cmake --install` into a prefix on the
# usual paths): mcached and mcache from PATH (plus /usr/local/sbin, /usr/sbin),
# the C worker compiled from examples/worker.c with only
# `pkg-config --cflags --libs mcache` (so libmcache-dev and a C compiler are
# needed), and the Python package `mcache` the system's python imports (not
# ./python). Only the model files and the log go to BUILD_DIR/demo.
set -euo pipefail
cd "$(dirname "$0")/.."

keep_running=0
reset=0
installed=0
for a in "$@"; do
  case "$a" in
    --keep-running) keep_running=1 ;;
    --reset) reset=1 ;;
    --installed) installed=1 ;;
    -h|--help) sed -n '2,/^[^#]/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "demo.sh: unknown option $a (see --help)" >&2; exit 2 ;;
  esac
done

BUILD=${BUILD_DIR:-build}
PY=${PYTHON:-/usr/bin/python3}
export MCACHE_STORE=$PWD/mcache-data             # the CLI's and mcached's default, made explicit
CACHE=${MCACHE_CACHE:-default}
SHM=${MCACHE_SHM_DIR:-/dev/shm}
ARENA=$SHM/mcache.$CACHE
WORK=$BUILD/demo                                  # the model files and mcached's log
LOG=$WORK/mcached.log
if [ "$installed" = 1 ]; then
  PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin     # mcached is in sbin
  MCACHED=$(command -v mcached) || MCACHED=""
  MCACHE=$(command -v mcache) || MCACHE=""
  WORKER=$WORK/mcache-worker                     # built against the installed libmcache
  unset MCACHE_LIB                               # the Python package finds the system's
else
  MCACHED=$BUILD/loader/mcached
  MCACHE=$BUILD/tools/mcache
  WORKER=$BUILD/examples/mcache-worker
  export PYTHONPATH=$PWD/python${PYTHONPATH:+:$PYTHONPATH}
fi

daemon_pid=""
worker_pids=()
created_arena=0
step_no=0
SECONDS=0

if [ -t 1 ]; then B=$'\033[1m' N=$'\033[0m'; else B="" N=""; fi
step() {
  daemon_check
  step_no=$((step_no + 1)); printf '\n%s== %d. %s%s\n' "$B" "$step_no" "$*" "$N"
}
# mcached must not stop on its own between two steps: if it did, say so, with
# the line of its log that says why (a stop signal names its sender).
daemon_check() {
  [ -n "$daemon_pid" ] || return 0
  kill -0 "$daemon_pid" 2>/dev/null && [ "$(ps -o stat= -p "$daemon_pid" 2>/dev/null)" != Z ] && return 0
  local st=0
  wait "$daemon_pid" 2>/dev/null || st=$?
  daemon_pid=""
  fail "mcached (exit status $st) stopped during step $step_no: $(grep -E 'stopping|error' "$LOG" | tail -n 1)"
}

# Print a command as you would type it, then run it.
show() {
  local a line="\$"
  for a in "$@"; do
    if [[ "$a" =~ ^[A-Za-z0-9_@%+=:,./^-]+$ ]]; then line+=" $a"; else line+=" '$a'"; fi
  done
  printf '%s\n' "$line"
  "$@"
}
fail() { echo "demo.sh: $*" >&2; exit 1; }

cleanup() {
  local rc=$?
  set +e
  for p in "${worker_pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  if [ -n "$daemon_pid" ] && [ "$keep_running" = 0 -o "$rc" != 0 ]; then
    stop_daemon
  fi
  if [ "$created_arena" = 1 ] && [ -z "$daemon_pid" ]; then
    rm -f "$ARENA" "$ARENA.readers" "$ARENA.lock"  # nobody maps it any more: its memory goes
  fi
  if [ "$rc" != 0 ]; then
    echo >&2
    if [ "$rc" = 130 ]; then
      echo "demo.sh: interrupted in step $step_no; mcached and the workers are stopped." >&2
    else
      echo "demo.sh: FAILED in step $step_no (exit $rc)." >&2
    fi
    [ -s "$LOG" ] && { echo "Last lines of $LOG:" >&2; tail -n 15 "$LOG" >&2; }
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_daemon() {
  kill -TERM "$daemon_pid" 2>/dev/null || { daemon_pid=""; return 0; }
  local st=0
  for _ in $(seq 100); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$daemon_pid" 2>/dev/null; then
    echo "demo.sh: mcached did not stop in 10 s; killing it" >&2
    kill -KILL "$daemon_pid"
  fi
  wait "$daemon_pid" || st=$?
  daemon_pid=""
  return "$st"
}

# Wait up to $2 seconds for file $1 to contain a line matching $3.
wait_for_line() {
  for _ in $(seq $(($2 * 20))); do
    grep -q -- "$3" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# A transformer-shaped model of a few hundred MiB, made with torch and saved
# as safetensors (bench/torch_worker.py), served to several PyTorch workers at
# once: their time to ready and total memory (PSS) beside torch.load of the
# same weights (`mcache-bench torch` measures this in full). Its files are
# removed afterwards; the registry keeps its copy, like the demo model's.
shared_model_step() {
  local n=4 tw=bench/torch_worker.py dir=$WORK/transformer st=0
  local mib=$(($(awk '/^MemAvailable:/ {print $2}' /proc/meminfo) / 1024 / 16))
  mib=$((mib > 256 ? 256 : mib < 64 ? 64 : mib))     # 256 MiB where memory allows
  step "Serve a ${mib} MiB transformer to $n PyTorch workers at once, beside torch.load ($tw)"
  mkdir -p "$dir"
  show "$PY" "$tw" make "$dir" "${mib}M"
  "$MCACHE" -q show demo-transformer@1.0.0 >/dev/null 2>&1 || st=$?
  if [ "$st" = 3 ]; then
    show "$MCACHE" push demo-transformer 1.0.0 "$dir/model.safetensors" --framework pytorch \
      --precision fp32 --device cpu --desc "transformer-shaped demo weights, made by $tw" \
      --tag source=demo
  elif [ "$st" = 0 ]; then
    echo "(demo-transformer@1.0.0 is already in ./mcache-data from an earlier run: not pushed again)"
  else
    fail "mcache show demo-transformer@1.0.0 failed (status $st)"
  fi
  show "$MCACHE" load demo-transformer@1.0.0
  echo "(each worker is a fresh python3: exec, import torch, the weights as {name: tensor}, a sum of"
  echo " every tensor; the total PSS is taken while all $n hold their weights)"
  show "$PY" "$tw" fleet "$n" mcache "$CACHE" "$SHM" demo-transformer 1.0.0
  show "$PY" "$tw" fleet "$n" torch.load "$dir/model.pt"
  echo "With mcache the $n workers share one copy of the weights, in place; torch.load reads a"
  echo "private copy into each. Both pay import torch alike."
  rm -rf "$dir"
}

# ---------------------------------------------------------------------------
if [ "$installed" = 1 ]; then
  step "The installed mcache: binaries, library, Python package (--installed: nothing is built)"
  [ -n "$MCACHED" ] || fail "no mcached on PATH or in /usr/local/sbin, /usr/sbin (install the mcached package)"
  [ -n "$MCACHE" ] || fail "no mcache on PATH (install the mcache package)"
  pkg-config --exists mcache ||
    fail "pkg-config does not know mcache (install libmcache-dev, or set PKG_CONFIG_PATH for a prefix)"
  "$PY" -c 'import numpy, torch' 2>/dev/null ||
    fail "$PY cannot import numpy and torch (Debian: apt install python3-numpy python3-torch)"
  show "$MCACHED" --version
  show "$MCACHE" --version
  mkdir -p "$WORK"
  show cc -O2 -o "$WORKER" examples/worker.c $(pkg-config --cflags --libs mcache) -lm
  (cd "$WORK" && show "$PY" -c 'import mcache; print(mcache.__file__, mcache.__version__, mcache.lib_version(), mcache.library_path())') ||
    fail "$PY cannot use the installed mcache package (install python3-mcache)"
  case "$(cd "$WORK" && "$PY" -c 'import mcache; print(mcache.__file__)')" in
    "$PWD"/*) fail "$PY imports mcache from this checkout, not from the system (unset PYTHONPATH)" ;;
  esac
else
  step "Install what is needed (scripts/deps.sh: Debian packages; nothing if present)"
  scripts/deps.sh
  "$PY" -c 'import numpy, torch' 2>/dev/null ||
    fail "$PY cannot import numpy and torch (Debian: apt install python3-numpy python3-torch)"

  step "Build (cmake, into $BUILD/; output in $WORK/build.log)"
  mkdir -p "$WORK"
  if ! { cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
         cmake --build "$BUILD" -j "$(nproc)"; } >"$WORK/build.log" 2>&1; then
    tail -n 30 "$WORK/build.log" >&2
    fail "the build failed (all of it in $WORK/build.log)"
  fi
  for f in "$BUILD/loader/mcached" "$MCACHE" "$WORKER"; do
    [ -x "$f" ] || fail "the build did not produce $f (are tools/ and examples/ in CMakeLists.txt?)"
  done
fi

step "Start mcached: store ./mcache-data, cache \"$CACHE\", arena sized for this machine"
: >"$LOG"
[ -e "$ARENA" ] || created_arena=1
echo "\$ $MCACHED --store ./mcache-data 2>$LOG &"
"$MCACHED" --store "$MCACHE_STORE" 2>"$LOG" &
daemon_pid=$!
echo "(mcached commits the whole arena up front: from under a second to ~7 s per GiB on a VM)"
for _ in $(seq 3600); do
  grep -q 'serving cache' "$LOG" && break
  if ! kill -0 "$daemon_pid" 2>/dev/null; then
    st=0; wait "$daemon_pid" || st=$?; daemon_pid=""
    created_arena=0                       # not ours to remove
    [ "$st" = 75 ] && fail "another mcached already serves cache \"$CACHE\" (pid $(cat "$ARENA.lock" 2>/dev/null || echo '?')); stop it first"
    fail "mcached exited with status $st"
  fi
  sleep 0.05
done
grep -q 'serving cache' "$LOG" || fail "mcached did not come up in 3 minutes"
echo "mcached runs as pid $daemon_pid; its log says:"
sed -n 's/^[^ ]* [a-z]* *//p' "$LOG" | grep -E 'serving cache|4 KiB pages|cold path' | sed 's/^/  /'

step "Make the demo model's two versions (a small MLP, safetensors, with NumPy)"
show "$PY" examples/make_demo_model.py "$WORK"

step "Push both versions into the registry and point production at 1.0.0"
if [ "$reset" = 1 ] && "$MCACHE" -q show demo >/dev/null 2>&1; then
  show "$MCACHE" rm demo --force
fi
for v in 1.0.0 2.0.0; do
  st=0; "$MCACHE" -q show "demo@$v" >/dev/null 2>&1 || st=$?
  if [ "$st" = 0 ]; then
    echo "(demo@$v is already in ./mcache-data from an earlier run: not pushed again)"
  elif [ "$st" = 3 ]; then
    show "$MCACHE" push demo "$v" "$WORK/demo-$v.safetensors" --framework pytorch \
      --precision fp32 --device cpu --desc "demo MLP 8-32-4, made by examples/make_demo_model.py" \
      --tag source=demo
  else
    fail "mcache show demo@$v failed (status $st)"
  fi
done
show "$MCACHE" alias demo production 1.0.0
show "$MCACHE" ls demo

step "A C worker gets demo@production and runs it in place (examples/worker.c)"
show "$WORKER"

step "A PyTorch worker builds the model on the cached tensors, zero-copy (examples/torch_worker.py)"
show "$PY" examples/torch_worker.py

step "Blue-green: move production to 2.0.0 while both workers serve"
show "$MCACHE" load demo@2.0.0            # warm the new version first: the move is then instant
"$PY" examples/torch_worker.py --watch 4 >"$WORK/torch_watch.out" 2>&1 &
worker_pids+=($!)
wait_for_line "$WORK/torch_watch.out" 60 serves || fail "the PyTorch worker did not start serving"
"$WORKER" --watch 4 >"$WORK/c_watch.out" 2>&1 &
worker_pids+=($!)
wait_for_line "$WORK/c_watch.out" 10 serves || fail "the C worker did not start serving"
echo "(both workers now serve requests from demo@production = 1.0.0, a get per request)"
sleep 1
show "$MCACHE" alias demo production 2.0.0
for p in "${worker_pids[@]}"; do wait "$p" || fail "a worker failed during the move (see $WORK/*_watch.out)"; done
worker_pids=()
for w in c torch; do
  echo "-- $w worker --watch 4:"
  sed 's/^/   /' "$WORK/${w}_watch.out"
  grep -q 'serves 1.0.0' "$WORK/${w}_watch.out" && grep -q 'serves 2.0.0' "$WORK/${w}_watch.out" &&
    grep -q 'errors 0$' "$WORK/${w}_watch.out" || fail "the $w worker did not switch cleanly"
done
echo "Both switched from 1.0.0 to 2.0.0 between two requests, without an error. Rollback: mcache rollback demo production"
show "$MCACHE" history demo

shared_model_step

step "The cache: mcache stat"
show "$MCACHE" stat

if [ "$keep_running" = 1 ]; then
  step "Leave mcached running (--keep-running)"
  echo "mcached keeps running (pid $daemon_pid, log $LOG). Try:"
  echo "  $MCACHE ls; $MCACHE show demo@production; $WORKER; $PY examples/torch_worker.py"
  echo "Stop it with: kill $daemon_pid    (then: rm $ARENA* to give its memory back)"
  daemon_pid=""
  created_arena=0
else
  step "Stop mcached cleanly"
  echo "\$ kill -TERM $daemon_pid"
  stop_daemon || fail "mcached did not stop cleanly"
  tail -n 2 "$LOG" | sed 's/^/  /'
  if [ "$created_arena" = 1 ]; then
    echo "(the arena stays after a clean stop, for a warm restart; this demo removes it: rm $ARENA*)"
  fi
fi
printf '\nDemo done in %d s. The store ./mcache-data keeps the demo model; see docs/quickstart.md.\n' \
  "$SECONDS"
