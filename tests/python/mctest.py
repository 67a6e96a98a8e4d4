"""
mctest.py - what the Python tests share: a private mcached (its own store,
arena directory under /dev/shm, socket and log, all removed afterwards, even
when a test fails), pushing files into its store, and a small safetensors
reader that is independent of mcache (to check what mcache serves against the
file).

Environment (set by ctest, see tests/python/CMakeLists.txt):
  MC_MCACHED     the mcached binary            (default: <repo>/build/loader/mcached)
  MC_REG_HELPER  tests/reg_helper (push, alias) (default: <repo>/build/tests/reg_helper)
  MCACHE_LIB     libmcache, read by the mcache package itself
"""

import ctypes
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "python"))

import mcache  # noqa: E402


def tool(env, default):
    path = os.environ.get(env) or os.path.join(REPO, "build", default)
    if not os.access(path, os.X_OK):
        raise unittest.SkipTest("%s not built (%s); build the tree or set %s" % (default, path, env))
    return path


def _die_with_parent():
    """In the child before exec: SIGKILL when the test process dies, however it
    dies (a ctest timeout, an abort), so no mcached outlives its test."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _sweep_stale():
    """Remove the directories of earlier test processes that died before
    cleaning up (named mcpy.<pid>.*): an arena left in /dev/shm holds memory."""
    for top in ("/dev/shm", tempfile.gettempdir()):
        try:
            names = os.listdir(top)
        except OSError:
            continue
        for name in names:
            parts = name.split(".")
            if len(parts) < 3 or parts[0] != "mcpy" or not parts[1].isdigit():
                continue
            try:
                os.kill(int(parts[1]), 0)
            except ProcessLookupError:
                shutil.rmtree(os.path.join(top, name), ignore_errors=True)
            except OSError:
                pass


class Daemon:
    """A private mcached. Use as a context manager, or call close()."""

    def __init__(self, size="256M", cache="t"):
        self.mcached = tool("MC_MCACHED", "loader/mcached")
        self.reg_helper = tool("MC_REG_HELPER", "tests/reg_helper")
        _sweep_stale()
        prefix = "mcpy.%d." % os.getpid()
        self.root = tempfile.mkdtemp(prefix=prefix)
        self.shm = tempfile.mkdtemp(prefix=prefix, dir="/dev/shm")
        os.chmod(self.shm, 0o755)
        self.store = os.path.join(self.root, "store")
        self.sock = os.path.join(self.shm, "ctl.sock")
        self.log = os.path.join(self.root, "mcached.log")
        self.cache = cache
        self.size = size
        self.proc = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _reg(self, *args):
        r = subprocess.run([self.reg_helper, args[0], self.store] + list(args[1:]),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode:
            raise AssertionError("reg_helper %s: %s" % (" ".join(args), r.stderr.strip()))

    def push(self, name, version, path):
        self._reg("push", name, version, path)

    def alias(self, name, alias, *refs):
        """One REF, or weighted targets: alias("m", "canary", "1.0.0=90", "2.0.0=10")."""
        self._reg("alias", name, alias, *refs)

    def ctl(self, op, *args):
        """One control request; the answer's body, parsed as JSON (AssertionError on an error)."""
        r = subprocess.run([tool("MC_CTL_CLIENT", "tests/ctl_client"), self.sock, op] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        status, _, body = r.stdout.strip().partition(" ")
        if r.returncode or status != "0":
            raise AssertionError("%s %s: %s %s" % (op, " ".join(args), r.stdout, r.stderr))
        return json.loads(body)

    def start(self, *extra):
        argv = [self.mcached, "--store", self.store, "--shm-dir", self.shm, "--cache", self.cache,
                "--socket", self.sock, "--size", self.size, "--log-level", "debug"] + list(extra)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("mcached exited with %d:\n%s" % (self.proc.returncode,
                                                                       self.log_text()))
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.connect(self.sock)
                return self
            except OSError:
                time.sleep(0.01)
        raise AssertionError("mcached did not start in 30 s:\n" + self.log_text())

    def attach(self):
        return mcache.attach(self.cache, self.shm)

    def env(self):
        """Environment for a worker process: finds this cache by itself."""
        e = dict(os.environ)
        e["MCACHE_CACHE"] = self.cache
        e["MCACHE_SHM_DIR"] = self.shm
        e["PYTHONPATH"] = os.path.join(REPO, "python")
        return e

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return "(no log)"

    def stop(self):
        """SIGTERM; mcached must exit 0 (a clean stop)."""
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(30)
        self.proc = None
        if rc != 0:
            raise AssertionError("mcached exited %d on SIGTERM:\n%s" % (rc, self.log_text()))

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        shutil.rmtree(self.shm, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)


def read_safetensors(path):
    """{name: (dtype, shape, bytes)} and the __metadata__ of a safetensors file,
    parsed here without mcache."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", None)
    base = 8 + n
    out = {}
    for name, t in header.items():
        lo, hi = t["data_offsets"]
        out[name] = (t["dtype"], tuple(t["shape"]), data[base + lo:base + hi])
    return out, meta


def write_safetensors(path, tensors, metadata=None, align=8):
    """Write {name: (dtype, shape, bytes)} as safetensors, header padded to `align`."""
    header, blobs, off = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-(8 + len(text)) % align if align > 1 else 0)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
