"""servetest.py - the harness every mcache-serve test shares.

Server(tmpdir, daemon=True, args=(), tokens=False) is a context manager:
it starts mcached (unless daemon=False) on a private store, cache and shm
directory, then mcache-serve on 127.0.0.1 with a port the kernel picks
(--listen 127.0.0.1:0; the port is read from its "listening on" line, so
no two tests race for one), and waits for /readyz (or /healthz without a
daemon). Everything it starts is stopped by pid when the block ends.

    with Server(tmp) as s:
        status, headers, body = s.request("GET", "/healthz")
        obj = s.json("GET", "/v1/models")
        s.cli("push", "m", "1.0.0", path)

tokens=True makes an admin token first (`mcache token add`) and passes
--require-tokens; s.token is its secret, and request() and json() use it
unless given token=... ("" sends none).

Binaries come from the environment (set by CMake): MCACHE_BIN, MCACHED_BIN,
MCACHE_SERVE_BIN, MCACHE_LIB; else the build tree beside this file.
"""
import http.client
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("MCACHE_BUILD", os.path.join(HERE, "..", "..", "build"))
MCACHE = os.environ.get("MCACHE_BIN", os.path.join(BUILD, "tools", "mcache"))
MCACHED = os.environ.get("MCACHED_BIN", os.path.join(BUILD, "loader", "mcached"))
MCACHE_SERVE = os.environ.get("MCACHE_SERVE_BIN", os.path.join(BUILD, "serve", "mcache-serve"))
LIBMCACHE = os.environ.get("MCACHE_LIB", os.path.join(BUILD, "index", "libmcache.so"))

CACHE = "t"
START_TIMEOUT = 20.0


def need_binaries():
    """Exit 77 (ctest's skip) when a binary is missing."""
    for p in (MCACHE, MCACHED, MCACHE_SERVE):
        if not os.access(p, os.X_OK):
            print("skip: %s is not built (set MCACHE_BIN, MCACHED_BIN, MCACHE_SERVE_BIN)" % p)
            sys.exit(77)


def wait_for(what, pred, timeout=START_TIMEOUT, proc=None, log=None):
    """Poll pred() until true; fail naming `what` (and the log) if it is not in time."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        v = pred()
        if v:
            return v
        if proc is not None and proc.poll() is not None:
            raise AssertionError("%s: the process exited with %s\n%s" %
                                 (what, proc.returncode, log() if log else ""))
        if time.monotonic() > deadline:
            raise AssertionError("%s: not within %.0f s\n%s" % (what, timeout,
                                                               log() if log else ""))
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def stop_proc(p, timeout=15):
    """SIGTERM, wait, SIGKILL if it will not go. Returns the exit status."""
    if p is None:
        return None
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


class Server:
    def __init__(self, tmpdir=None, daemon=True, args=(), tokens=False, size="64M",
                 tls=None, listen="127.0.0.1:0", env=None, wait=True):
        self.own_tmp = tmpdir is None
        self.tmpdir = tmpdir or tempfile.mkdtemp(prefix="mcserve.")
        self.want_daemon = daemon
        self.args = list(args)
        self.tokens = tokens
        self.size = size
        self.tls = tls  # (cert, key, cafile) or None
        self.listen = listen
        self.extra_env = env or {}
        self.wait = wait
        self.store = os.path.join(self.tmpdir, "store")
        self.shm_dir = tempfile.mkdtemp(prefix="mcserve.", dir="/dev/shm")
        self.cache = CACHE
        self.socket = os.path.join(self.shm_dir, "mcache.%s.sock" % CACHE)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MCACHE_")}
        self.env.update({"MCACHE_STORE": self.store, "MCACHE_SHM_DIR": self.shm_dir,
                         "MCACHE_CACHE": CACHE, "TZ": "UTC", "LC_ALL": "C"})
        self.env.update(self.extra_env)
        self.daemon = None
        self.proc = None
        self.token = None
        self.url = None
        self.host, self.port = "127.0.0.1", 0
        self.serve_log_path = os.path.join(self.tmpdir, "mcache-serve.log")
        self.daemon_log_path = os.path.join(self.tmpdir, "mcached.log")

    # ---- life -------------------------------------------------------------

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        if self.want_daemon:
            self.start_daemon()
        else:
            self.cli("init")
        if self.tokens:
            r = self.cli("token", "add", "admin", "--role", "admin", "--json")
            self.token = json.loads(r.stdout)["token"]
            if "--require-tokens" not in self.args and "--insecure-open" not in self.args:
                self.args.append("--require-tokens")
        self.start_serve()

    def start_daemon(self, extra=()):
        """Start mcached (again, after stop_daemon(): extra=["--recreate"] makes a new arena)."""
        log = open(self.daemon_log_path, "ab")
        self.daemon = subprocess.Popen(
            [MCACHED, "--store", self.store, "--shm-dir", self.shm_dir, "--cache", CACHE,
             "--size", self.size, "--log-level", "debug"] + list(extra),
            stdout=log, stderr=log, env=self.env)
        log.close()

        def up():
            import socket
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(self.socket)
                return True
            except OSError:
                return False
            finally:
                s.close()
        wait_for("mcached's control socket", up, proc=self.daemon, log=self.daemon_log)

    def start_serve(self, extra=()):
        log = open(self.serve_log_path, "ab")
        self.log_offset = log.tell()
        cmd = [MCACHE_SERVE, "--store", self.store, "--shm-dir", self.shm_dir, "--cache", CACHE,
               "--listen", self.listen] + self.args + list(extra)
        if self.tls:
            cmd += ["--tls-cert", self.tls[0], "--tls-key", self.tls[1]]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=self.env)
        log.close()
        m = wait_for("mcache-serve's \"listening on\" line",
                     lambda: re.search(r"listening on (https?)://(\[[^\]]+\]|[0-9.]+):(\d+)",
                                       self.serve_log()[self.log_offset:]),
                     proc=self.proc, log=self.logs)
        scheme, host, port = m.group(1), m.group(2), int(m.group(3))
        self.host, self.port = host.strip("[]"), port
        self.url = "%s://%s:%d" % (scheme, host, port)
        if self.wait:
            path = "/readyz" if self.want_daemon else "/healthz"
            wait_for("mcache-serve's %s" % path,
                     lambda: self._probe(path) == 200, proc=self.proc, log=self.logs)

    def _probe(self, path):
        try:
            return self.request("GET", path, token="")[0]
        except OSError:
            return None

    def stop(self):
        """Stop both (by pid), remove what they made; a sanitizer's report in either log
        (an ASan/UBSan build) fails the test that ran them."""
        rc = stop_proc(self.proc)
        self.proc = None
        stop_proc(self.daemon)
        self.daemon = None
        logs = self.logs()
        shutil.rmtree(self.shm_dir, True)
        if self.own_tmp:
            shutil.rmtree(self.tmpdir, True)
        if re.search(r"ERROR: (Address|Leak|Thread)Sanitizer|WARNING: ThreadSanitizer|"
                     r"runtime error:", logs):
            raise AssertionError("a sanitizer reported a problem:\n" + logs[-20000:])
        return rc

    def stop_daemon(self):
        """Stop mcached alone (SIGTERM); its exit status."""
        rc = stop_proc(self.daemon)
        self.daemon = None
        return rc

    def stop_serve(self):
        """Stop mcache-serve alone (SIGTERM); its exit status."""
        rc = stop_proc(self.proc)
        self.proc = None
        return rc

    # ---- logs -------------------------------------------------------------

    def serve_log(self):
        try:
            with open(self.serve_log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def daemon_log(self):
        try:
            with open(self.daemon_log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def logs(self):
        return "--- mcache-serve\n%s--- mcached\n%s" % (self.serve_log(), self.daemon_log()[-4000:])

    # ---- HTTP -------------------------------------------------------------

    def connection(self, timeout=30):
        if self.url.startswith("https"):
            ctx = ssl.create_default_context(cafile=self.tls[2] if self.tls else None)
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=ctx)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, token=None, timeout=60):
        """One request on a fresh connection: (status, headers dict (lower-case names), bytes)."""
        h = dict(headers or {})
        tok = self.token if token is None else token
        if tok:
            h["Authorization"] = "Bearer " + tok
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        elif body is None and method not in ("GET", "HEAD"):
            # As the clients do: mcache-serve takes a change only as application/json.
            h.setdefault("Content-Type", "application/json")
        c = self.connection(timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def json(self, method, path, obj=None, token=None, expect=200):
        """A JSON request; the parsed answer, after checking its status (expect=None: any)."""
        status, headers, data = self.request(method, path, body=obj, token=token)
        if expect is not None and status != expect:
            raise AssertionError("%s %s: status %d, expected %d: %s\n%s" % (
                method, path, status, expect, data.decode(errors="replace"),
                self.serve_log()[-3000:]))
        return json.loads(data) if data else None

    # ---- the CLI ----------------------------------------------------------

    def cli(self, *args, check=True, input=None, timeout=60):
        p = subprocess.run([MCACHE] + list(args), env=self.env, cwd=self.tmpdir, input=input,
                           capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("mcache %s -> %d\n%s%s" % (" ".join(args), p.returncode,
                                                            p.stdout, p.stderr))
        return p

    def file(self, name, data):
        path = os.path.join(self.tmpdir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path


def python_env(base, test):
    """The environment for a python3 that loads libmcache with ctypes: a sanitizer build's
    runtime preloaded (MCACHE_PY_PRELOAD, set by CMake); skips the test under TSan."""
    env = dict(base)
    preload = os.environ.get("MCACHE_PY_PRELOAD")
    if preload == "none":
        test.skipTest("a sanitizer build whose runtime python3 cannot preload")
    if preload:
        env.update(LD_PRELOAD=preload, ASAN_OPTIONS="detect_leaks=0:handle_segv=0")
    return env


def rss_kib(pid):
    """VmRSS of a process, KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
