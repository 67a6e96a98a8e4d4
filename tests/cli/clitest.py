"""clitest.py - the harness every CLI test shares.

Runs the real `mcache` binary (path in $MCACHE_BIN, set by CMake) with a
clean environment: a private store and shm directory per test, cache "t",
TZ=UTC, no inherited MCACHE_* variables. Starts real `mcached` processes
($MCACHED_BIN) and readers that hold models through libmcache ($MCACHE_LIB,
via ctypes). Everything a test starts or creates is stopped and removed by
cleanups registered as it goes, so a failing test leaves nothing behind.
"""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("MCACHE_BUILD", os.path.join(HERE, "..", "..", "build"))
MCACHE = os.environ.get("MCACHE_BIN", os.path.join(BUILD, "tools", "mcache"))
MCACHED = os.environ.get("MCACHED_BIN", os.path.join(BUILD, "loader", "mcached"))
LIBMCACHE = os.environ.get("MCACHE_LIB", os.path.join(BUILD, "index", "libmcache.so"))

# Exit statuses (docs/cli.md).
EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_NOTFOUND, EXIT_NODAEMON = 0, 1, 2, 3, 4

COMMANDS = ["init", "push", "ls", "show", "alias", "rollback", "history", "rm", "gc",
            "fsck", "verify", "load", "evict", "pin", "unpin", "stat", "stats", "compare",
            "snapshot", "health", "deploy", "deployments", "alerts", "token", "audit", "db"]

CACHE = "t"

# A reader process: attach, hold NAME@REF, say "held <rc>", wait for stdin to close.
HOLDER = r"""
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.mc_last_error.restype = ctypes.c_char_p
c = ctypes.c_void_p()
rc = lib.mc_attach_dir(sys.argv[2].encode(), sys.argv[3].encode(), ctypes.byref(c))
m = ctypes.c_void_p()
if rc == 0:
    rc = lib.mc_get(c, sys.argv[4].encode(), sys.argv[5].encode(), ctypes.byref(m))
print("held", rc, lib.mc_last_error().decode(), flush=True)
sys.stdin.read()
"""


class Result:
    def __init__(self, args, code, out, err):
        self.args, self.code, self.out, self.err = args, code, out, err

    def __repr__(self):
        return "mcache %s -> %d\n--- stdout\n%s--- stderr\n%s" % (
            " ".join(self.args), self.code, self.out, self.err)


def need_binaries():
    for p in (MCACHE, MCACHED):
        if not os.access(p, os.X_OK):
            print("skip: %s is not built (set MCACHE_BIN / MCACHED_BIN)" % p)
            sys.exit(77)


def content(size, seed):
    """Deterministic bytes that no format detector claims (format "other")."""
    head = b"MCTEST-%d\n" % seed
    return (head + random.Random(seed).randbytes(size))[:size]


def safetensors(size, seed):
    header = b'{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}'
    body = random.Random(seed).randbytes(max(size - 8 - len(header), 4))
    return len(header).to_bytes(8, "little") + header + body


class CliTest(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="mccli.")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.shm = tempfile.mkdtemp(prefix="mccli.", dir="/dev/shm")
        self.addCleanup(shutil.rmtree, self.shm, True)
        self.store = os.path.join(self.root, "store")
        self.sock = os.path.join(self.shm, "mcache.%s.sock" % CACHE)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MCACHE_")}
        self.env.update({"MCACHE_STORE": self.store, "MCACHE_SHM_DIR": self.shm,
                         "MCACHE_CACHE": CACHE, "TZ": "UTC", "LC_ALL": "C"})
        self.daemon = None

    # ---- running mcache ------------------------------------------------

    def run_cli(self, *args, env=None, cwd=None, stdin=None, timeout=60):
        e = dict(self.env)
        for k, v in (env or {}).items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = v
        p = subprocess.run([MCACHE] + list(args), env=e, cwd=cwd or self.root, input=stdin,
                           capture_output=True, text=True, timeout=timeout)
        return Result(list(args), p.returncode, p.stdout, p.stderr)

    def ok(self, *args, **kw):
        r = self.run_cli(*args, **kw)
        self.assertEqual(r.code, EXIT_OK, r)
        return r

    def json(self, *args, **kw):
        r = self.ok(*(list(args) + ["--json"]), **kw)
        return json.loads(r.out)

    def fails(self, code, *args, match=None, **kw):
        """Run, expect exit status `code`, one "mcache: " error line naming `match`."""
        r = self.run_cli(*args, **kw)
        self.assertEqual(r.code, code, r)
        self.assertTrue(r.err.startswith("mcache: "), r)
        if match:
            self.assertRegex(r.err, match, r)
        return r

    # ---- files ---------------------------------------------------------

    def file(self, name, size=4096, seed=1, data=None):
        path = os.path.join(self.root, name)
        with open(path, "wb") as f:
            f.write(data if data is not None else content(size, seed))
        return path

    def push(self, name, version, size=4096, seed=1, *opts):
        path = self.file("%s-%s.bin" % (name.replace("/", "_"), version), size, seed)
        return self.ok("push", name, version, path, *opts)

    # ---- mcached -------------------------------------------------------

    def start_daemon(self, size="64M", extra=()):
        log = open(os.path.join(self.root, "mcached.log"), "wb")
        self.addCleanup(log.close)
        p = subprocess.Popen([MCACHED, "--store", self.store, "--shm-dir", self.shm,
                              "--cache", CACHE, "--size", size, "--log-level", "debug"]
                             + list(extra), stdout=log, stderr=log, env=self.env)
        self.daemon = p
        self.addCleanup(self.stop_daemon, p)
        deadline = time.time() + 15
        while time.time() < deadline:
            if p.poll() is not None:
                self.fail("mcached exited with %s:\n%s" % (p.returncode, self.daemon_log()))
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(self.sock)
                return p
            except OSError:
                time.sleep(0.02)
            finally:
                s.close()
        self.fail("mcached did not start:\n" + self.daemon_log())

    def stop_daemon(self, p=None):
        p = p or self.daemon
        if p and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p is self.daemon:
            self.daemon = None

    def daemon_log(self):
        try:
            with open(os.path.join(self.root, "mcached.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return "(no log)"

    # ---- readers -------------------------------------------------------

    def hold(self, name, ref):
        """A process holding name@ref through libmcache until the test ends."""
        env = dict(self.env)
        preload = os.environ.get("MCACHE_PY_PRELOAD")
        if preload == "none":
            self.skipTest("a sanitizer build whose runtime python3 cannot preload")
        if preload:
            env.update(LD_PRELOAD=preload, ASAN_OPTIONS="detect_leaks=0:handle_segv=0")
        p = subprocess.Popen([sys.executable, "-c", HOLDER, LIBMCACHE, self.shm, CACHE, name,
                              ref], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env=env)

        def stop():
            if p.poll() is None:
                p.kill()
            p.wait()
            p.stdin.close()
            p.stdout.close()
        self.addCleanup(stop)
        line = p.stdout.readline()
        self.assertEqual(line.split()[:2], ["held", "0"], line)
        return p


def main():
    need_binaries()
    unittest.main(verbosity=2)
