#!/usr/bin/env bash
# deps.sh - install the Debian 12 packages mcache needs to build, test,
# benchmark and run its demo. Does nothing when they are all present.
#
#   scripts/deps.sh              # as root, or with sudo available
#   scripts/deps.sh --packaging  # also what building the Debian packages needs
#   scripts/deps.sh --fleet      # also what the fleet's backends and their tests need
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
  libcurl4-gnutls-dev                       # the s3 artifact store's client (registry/s3.c: libcurl's SigV4)
)
# The Debian packages (scripts/package.sh, debian/): only with --packaging.
PACKAGING=(
  dpkg-dev debhelper fakeroot               # dpkg-buildpackage, dh (compat 13) without root
  dh-python pybuild-plugin-pyproject        # python3-mcache: pybuild builds python/pyproject.toml
  python3-all python3-setuptools            # (with setuptools, for each supported python3)
  lintian                                   # package checks (package.sh fails on errors)
)
# The fleet (issue 15): only with --fleet. Without them the postgres backend
# is not built and the fleet's tests skip (77), saying why.
FLEET=(
  libpq-dev                                 # the registry's postgres backend (registry/backend_pg.c)
  postgresql-15                             # its tests: a throwaway server per run (tests/fleet/pg.sh)
  ceph-mon ceph-osd radosgw ceph-common     # the s3 tests' object store: a throwaway Ceph RADOS Gateway
                                            # (tests/fleet/rgw.sh; no recommends: 51 packages, ~250 MiB)
  curl                                      # tests/fleet/remote_load.sh: the object store by hand (SigV4),
                                            # and the ranged GETs mcached's remote load is measured against
  python3-boto3                             # mcache-bench fleet: the store's own multipart upload
                                            # (upload_file), the baseline of `mcache push`
)
case "${1:-}" in
  --packaging) PKGS+=("${PACKAGING[@]}") ;;
  --fleet) PKGS+=("${FLEET[@]}") ;;
  "") ;;
  *) echo "deps.sh: unknown option $1 (use --packaging, --fleet or nothing)" >&2; exit 2 ;;
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
# postgresql-15 would create and start a cluster of its own on port 5432; the
# tests start their own (tests/fleet/pg.sh), so tell postgresql-common not to
# (installed first: its createcluster.conf is a conffile dpkg would ask about).
if [[ " ${missing[*]} " == *" postgresql-15 "* ]]; then
  $SUDO apt-get install -y -qq --no-install-recommends postgresql-common >/dev/null
  if ! grep -qs '^create_main_cluster *= *false' /etc/postgresql-common/createcluster.conf; then
    echo "create_main_cluster = false" | $SUDO tee -a /etc/postgresql-common/createcluster.conf >/dev/null
  fi
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian package starts redis-server as a service; the benchmark runs its own.
if command -v systemctl >/dev/null && systemctl is-active --quiet redis-server 2>/dev/null; then
  $SUDO systemctl stop redis-server || true
fi
