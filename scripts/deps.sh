#!/usr/bin/env bash
# deps.sh - install the Debian 12 packages mcache needs to build, test,
# benchmark and run its demo. Does nothing when they are all present.
#
#   scripts/deps.sh              # as root, or with sudo available
#   scripts/deps.sh --packaging  # also what building the Debian packages needs
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config          # toolchain
  liburing-dev                              # the loader's cold path (io_uring)
  libjemalloc-dev                           # the loader's heap
  libck-dev                                 # Concurrency Kit: the lock-free table in the arena
  libcmocka-dev                             # unit tests
  libjansson-dev                            # the manifest's JSON lines and the control protocol's answers
  libxxhash-dev                             # XXH3: table hashing and artifact checksums
  liblmdb-dev                               # the benchmark's zero-copy peer
  util-linux                                # setpriv (tests run a client as another uid)
  python3 python3-numpy python3-torch       # the Python module, its tests, the PyTorch demo
  python3-pip python3-setuptools            # the install tests pip-install python/ (pyproject.toml)
  groff-base                                # the install tests render the man pages (groff -ww)
  gnuplot-nox                               # benchmark plots
  redis-server                              # the benchmark's network peer (started on loopback by the bench)
  clang                                     # libFuzzer builds of the fuzz targets; the clang builds
  stress-ng                                 # test.sh's second release pass, with every CPU busy
  systemd                                   # systemd-analyze verify and systemd-sysusers on dist/systemd/ (dist_systemd)
  valgrind                                  # callgrind counts the warm path's instructions (ctest perf_instructions)
  libmicrohttpd-dev                         # mcache-serve, the HTTP face (epoll thread pool, TLS)
  libgnutls28-dev                           # mcache-serve's TLS, token hashes (SHA-256) and random secrets
  curl openssl                              # the serve tests: HTTPS with curl --cacert, a self-signed certificate
  prometheus                                # promtool check metrics on GET /metrics (serve_metrics)
  wrk                                       # the serve tests' bounded load run, mcache-bench http
  nginx-light                               # mcache-bench http's static-file peer
  chromium                                  # the status page end to end in headless Chromium (serve_ui)
)
# The fleet (issue 15), S3 half: the S3 client of the s3 artifact store
# (libcurl with its SigV4 signing; GnuTLS like the rest), and the throwaway
# Ceph cluster whose RADOS Gateway the fleet tests talk S3 to
# (tests/fleet/rgw.sh; without them those tests skip).
FLEET=(
  libcurl4-gnutls-dev                       # registry/s3.c
  ceph-mon ceph-osd radosgw ceph-common     # tests/fleet/rgw.sh (no recommends: 51 packages, ~250 MiB)
)
PKGS+=("${FLEET[@]}")
# The Debian packages (scripts/package.sh, debian/): only with --packaging.
PACKAGING=(
  dpkg-dev debhelper fakeroot               # dpkg-buildpackage, dh (compat 13) without root
  dh-python pybuild-plugin-pyproject        # python3-mcache: pybuild builds python/pyproject.toml
  python3-all python3-setuptools            # (with setuptools, for each supported python3)
  lintian                                   # package checks (package.sh fails on errors)
)
case "${1:-}" in
  --packaging) PKGS+=("${PACKAGING[@]}") ;;
  "") ;;
  *) echo "deps.sh: unknown option $1 (use --packaging or nothing)" >&2; exit 2 ;;
esac

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps.sh: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian package starts redis-server as a service; the benchmark runs its own.
if command -v systemctl >/dev/null && systemctl is-active --quiet redis-server 2>/dev/null; then
  $SUDO systemctl stop redis-server || true
fi
