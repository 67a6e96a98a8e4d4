"""
test_remote.py - mcache.remote.Client against a real mcache-serve (and
mcached), started by tests/serve/servetest.py on a private store and a free
port: push with progress and read back, download and resume, aliases, the
errors each failure raises, tokens and roles, and an upload of 256 MiB in a
process whose memory stays far below that.

Environment (set by ctest, tests/python/CMakeLists.txt): MCACHE_SERVE_BIN,
MCACHED_BIN, MCACHE_BIN, MCACHE_LIB, as servetest.py reads them.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "python"))
sys.path.insert(0, os.path.join(REPO, "tests", "serve"))

import mcache  # noqa: E402
from mcache import remote  # noqa: E402

try:
    import servetest  # noqa: E402
except ImportError as exc:  # the harness is part of the serve tests
    raise unittest.SkipTest("tests/serve/servetest.py is missing (%s)" % exc)

MiB = 1 << 20


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def read(path):
    with open(path, "rb") as f:
        return f.read()


class Stop(Exception):
    """Raised by a progress callback to cut a transfer."""


class _ServerCase(unittest.TestCase):
    """One mcache-serve (and mcached) for the class; each test uses its own model names."""

    server_kwargs = {}

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mcpy.%d.remote." % os.getpid())
        cls.server = None
        try:
            server = servetest.Server(cls.tmp, **cls.kwargs())
            server.__enter__()  # stops what it started if it fails
            cls.server = server
            cls.prepare()
        except BaseException:
            cls.tearDownClass()  # unittest calls it only after a setUpClass that succeeded
            raise

    @classmethod
    def kwargs(cls):
        """The harness's arguments (cls.tmp exists: files they name can go there)."""
        return cls.server_kwargs

    @classmethod
    def prepare(cls):
        """What a class needs on its server beyond the harness's start."""

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.server is not None:
                cls.server.__exit__(None, None, None)
        finally:
            cls.server = None
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=self.tmp)

    def file(self, name, data):
        return write(os.path.join(self.dir, name), data)


class TestOpen(_ServerCase):
    """Open access (loopback, no --require-tokens): no token needed."""

    server_kwargs = {"daemon": True}

    def setUp(self):
        super().setUp()
        self.c = remote.Client(self.server.url, timeout=30)

    def test_push_with_progress_and_read_back(self):
        data = os.urandom(5 * MiB + 123)
        path = self.file("a.bin", data)
        calls = []
        v = self.c.push("pr/push", "1.0.0", path, description="first", framework="torch",
                        precision="fp16", device="cuda", source="s3://bucket/a",
                        metrics={"acc": 0.93}, params={"lr": "0.001"}, tags={"team": "vision"},
                        progress=lambda done, total: calls.append((done, total)),
                        chunk_size=MiB)
        self.assertEqual((v["name"], v["version"], v["size"]), ("pr/push", "1.0.0", len(data)))
        self.assertTrue(v["checksum"].startswith("xxh3-128:"), v["checksum"])
        # progress: from 0 to the whole, never backwards, in chunk_size steps
        self.assertEqual(calls[0], (0, len(data)))
        self.assertEqual(calls[-1], (len(data), len(data)))
        self.assertEqual([d for d, _ in calls], sorted(d for d, _ in calls))
        self.assertGreaterEqual(len(calls), 6)
        self.assertTrue(all(t == len(data) for _, t in calls))

        got = self.c.version("pr/push", "1.0.0")
        for key in ("name", "version", "size", "checksum"):
            self.assertEqual(got[key], v[key], key)
        self.assertEqual(got["description"], "first")
        self.assertEqual(got["framework"], "torch")
        self.assertEqual(got["metrics"], {"acc": 0.93})
        self.assertEqual(got["params"], {"lr": "0.001"})
        self.assertEqual(got["tags"], {"team": "vision"})
        self.assertEqual(self.c.version("pr/push")["version"], "1.0.0")  # latest
        self.assertEqual([x["version"] for x in self.c.versions("pr/push")], ["1.0.0"])
        self.assertEqual(self.c.model("pr/push")["name"], "pr/push")
        names = [m["name"] for m in self.c.models(pattern="pr/*")]
        self.assertIn("pr/push", names)
        tagged = self.c.models(tag={"team": "vision"})
        self.assertIn(("pr/push", "1.0.0"), [(x["name"], x["version"]) for x in tagged])
        # the server's own view of it, through the CLI on the same store
        shown = json.loads(self.server.cli("show", "pr/push@1.0.0", "--json").stdout)
        self.assertEqual(shown["version"]["checksum"], v["checksum"])

    def test_download_to_file(self):
        data = os.urandom(3 * MiB + 7)
        v = self.c.push("org/llama", "2.0.0", self.file("l.bin", data))  # a '/' in the name
        dest = os.path.join(self.dir, "out.bin")
        r = self.c.download("org/llama", "2.0.0", dest)
        self.assertEqual(read(dest), data)
        self.assertEqual(r["size"], len(data))
        self.assertEqual(r["checksum"], v["checksum"])
        self.assertEqual(r["resumed_from"], 0)
        self.assertIn(r["source"], ("arena", "store"))
        self.assertEqual(sorted(os.listdir(self.dir)), ["l.bin", "out.bin"])  # no .part left
        # from the arena once resident: the same bytes
        self.c.load("org/llama", "2.0.0")
        r = self.c.download("org/llama", "latest", dest)
        self.assertEqual(r["source"], "arena")
        self.assertEqual(read(dest), data)

    def interrupted(self, name, ref, dest, after):
        """Start a download and cut it once more than `after` bytes arrived."""
        def cut(done, total):
            if done > after:
                raise Stop()
        with self.assertRaises(Stop):
            self.c.download(name, ref, dest, progress=cut, chunk_size=256 * 1024)
        self.assertFalse(os.path.exists(dest))
        self.assertGreater(os.path.getsize(dest + ".part"), after)

    def test_resume_partial_download(self):
        data = os.urandom(8 * MiB)
        self.c.push("pr/resume", "1.0.0", self.file("r.bin", data))
        dest = os.path.join(self.dir, "r.out")
        self.interrupted("pr/resume", "1.0.0", dest, 2 * MiB)
        have = os.path.getsize(dest + ".part")
        calls = []
        r = self.c.download("pr/resume", "1.0.0", dest,
                            progress=lambda d, t: calls.append(d))
        self.assertEqual(r["resumed_from"], have)
        self.assertEqual(calls[0], have)  # it did not start again
        self.assertEqual(read(dest), data)
        self.assertFalse(os.path.exists(dest + ".part"))
        self.assertFalse(os.path.exists(dest + ".part.etag"))

    def test_resume_restarts_when_the_alias_moved(self):
        one, two = os.urandom(6 * MiB), os.urandom(6 * MiB)
        self.c.push("pr/moved", "1.0.0", self.file("1", one))
        self.c.push("pr/moved", "2.0.0", self.file("2", two))
        self.c.set_alias("pr/moved", "prod", "1.0.0")
        dest = os.path.join(self.dir, "m.out")
        self.interrupted("pr/moved", "prod", dest, MiB)
        self.c.set_alias("pr/moved", "prod", "2.0.0")
        r = self.c.download("pr/moved", "prod", dest)
        self.assertEqual(r["resumed_from"], 0)  # the partial file held other bytes
        self.assertEqual(read(dest), two)

    def test_download_without_resume_starts_over(self):
        data = os.urandom(4 * MiB)
        self.c.push("pr/noresume", "1.0.0", self.file("n", data))
        dest = os.path.join(self.dir, "n.out")
        self.interrupted("pr/noresume", "1.0.0", dest, MiB)
        r = self.c.download("pr/noresume", "1.0.0", dest, resume=False)
        self.assertEqual(r["resumed_from"], 0)
        self.assertEqual(read(dest), data)

    def test_alias_set_move_rollback_history(self):
        for ver in ("1.0.0", "2.0.0"):
            self.c.push("pr/alias", ver, self.file(ver, os.urandom(4096)))
        a = self.c.set_alias("pr/alias", "prod", "1.0.0")
        self.assertEqual(a["action"], "create")
        a = self.c.set_alias("pr/alias", "prod", "2.0.0", why="blue-green")
        self.assertEqual((a["action"], a["from"], a["to"]), ("move", "1.0.0", "2.0.0"))
        self.assertEqual(self.c.version("pr/alias", "prod")["version"], "2.0.0")
        a = self.c.set_alias("pr/alias", "prod", {"1.0.0": 90, "2.0.0": 10}, why="canary")
        self.assertEqual(a["to"], "1.0.0=90 2.0.0=10")
        self.assertEqual(self.c.set_alias("pr/alias", "prod", "1.0.0=90 2.0.0=10")["action"],
                         "none")
        a = self.c.rollback("pr/alias", "prod")
        self.assertEqual((a["action"], a["to"]), ("rollback", "2.0.0"))
        moves = self.c.history("pr/alias", "prod")
        self.assertEqual([m["action"] for m in moves], ["create", "move", "move", "rollback"])
        self.assertEqual(moves[1].get("why"), "blue-green")
        self.assertEqual(moves[2].get("why"), "canary")
        aliases = self.c.aliases("pr/alias")
        self.assertIn("prod", json.dumps(aliases))
        self.assertEqual(self.c.remove_alias("pr/alias", "prod")["action"], "remove")
        with self.assertRaises(mcache.NotFoundError):
            self.c.version("pr/alias", "prod")

    def test_errors(self):
        with self.assertRaises(mcache.NotFoundError) as cm:
            self.c.model("pr/nobody")
        e = cm.exception
        self.assertIsInstance(e, LookupError)
        self.assertEqual((e.status, e.error_code, e.code), (404, "not_found", mcache.errors.ENOENT))
        self.assertIn("pr/nobody", str(e))  # the server's message names the thing
        with self.assertRaises(mcache.NotFoundError):
            self.c.download("pr/nobody", "1.0.0", os.path.join(self.dir, "x"))
        self.assertEqual(os.listdir(self.dir), [])  # nothing written for a 404

        path = self.file("e.bin", os.urandom(MiB))
        v = self.c.push("pr/err", "1.0.0", path)
        other = self.file("o.bin", os.urandom(MiB))
        calls = []
        with self.assertRaises(remote.ConflictError) as cm:
            self.c.push("pr/err", "1.0.0", other, progress=lambda d, t: calls.append(d))
        self.assertEqual(cm.exception.status, 409)
        self.assertEqual(calls, [])  # refused on the headers (100-continue): no byte was sent
        self.assertIn("1.0.0", str(cm.exception))
        self.assertEqual(self.c.version("pr/err", "1.0.0")["checksum"], v["checksum"])

        for bad in ("../etc", "a\x01b", ".."):  # traversal and control bytes: refused, as the CLI does
            with self.assertRaises(remote.BadRequestError, msg=repr(bad)):
                self.c.push(bad, "1.0.0", path)
        with self.assertRaises(remote.BadRequestError) as cm:
            self.c.push("pr/err", "1.x", path)
        self.assertEqual(cm.exception.status, 400)
        self.assertIsInstance(cm.exception, ValueError)
        with self.assertRaises(remote.BadRequestError):
            self.c.push("pr/err", "1.0.1", path, checksum="xxh3-128:" + "0" * 32)
        with self.assertRaises(mcache.NotFoundError):  # a mismatch registers nothing
            self.c.version("pr/err", "1.0.1")

        self.c.delete("pr/err", "1.0.0")
        with self.assertRaises(mcache.NotFoundError):
            self.c.version("pr/err", "1.0.0")

    def test_every_other_call(self):
        """The rest of the API answers through the client as the server documents it."""
        data = os.urandom(MiB)
        self.c.push("pr/misc", "1.0.0", self.file("m1", data), aliases=["prod"], preload=False)
        self.c.push("pr/misc", "1.1.0", self.file("m2", data[::-1]))
        self.assertEqual(self.c.version("pr/misc", "prod")["version"], "1.0.0")
        self.assertEqual(self.c.version("pr/misc", "^1.0")["version"], "1.1.0")
        self.assertEqual(self.c.load("pr/misc", "1.1.0")["state"], "resident")
        self.assertTrue(self.c.pin("pr/misc", "1.1.0")["pinned"])
        self.assertFalse(self.c.unpin("pr/misc", "1.1.0")["pinned"])
        self.c.evict("pr/misc", "1.1.0")
        self.assertTrue(self.c.verify("pr/misc", "1.0.0")["ok"])
        self.assertIn("arena", self.c.cache())
        self.assertIsInstance(self.c.readers(), (list, dict))
        self.assertIsInstance(self.c.alerts(), list)
        self.assertIsInstance(self.c.deployments("pr/misc"), list)
        self.assertIn("pr/misc", json.dumps(self.c.status()))

        snap = self.c.create_snapshot("py-snap")
        self.assertEqual(snap["name"], "py-snap")
        self.c.set_alias("pr/misc", "prod", "1.1.0")
        self.assertIn("py-snap", [x["name"] for x in self.c.snapshots()])
        self.c.restore_snapshot("py-snap")
        self.assertEqual(self.c.version("pr/misc", "prod")["version"], "1.0.0")
        self.c.delete_snapshot("py-snap")

        gc = self.c.gc(name="pr/misc", keep=1, dry_run=True)
        self.assertTrue(gc["dry_run"])
        self.assertEqual(len(self.c.versions("pr/misc")), 2)  # a dry run removes nothing
        self.assertIn("clean", self.c.fsck())
        entries = self.c.audit(limit=50)
        self.assertTrue(any("pr/misc" in json.dumps(e) for e in entries), entries[-5:])
        doc = self.c.openapi()
        self.assertTrue(doc["openapi"].startswith("3."))
        self.assertIn("/v1/models/{name}/versions/{version}", doc["paths"])
        removed = self.c.delete("pr/misc", force=True)
        self.assertEqual(len(removed["removed"]), 2)
        with self.assertRaises(mcache.NotFoundError):
            self.c.model("pr/misc")

    def test_bad_arguments(self):
        for url in ("ftp://host", "127.0.0.1:8420", "http://host/?q=1"):
            with self.assertRaises(ValueError, msg=url):
                remote.Client(url)
        with self.assertRaises(ValueError):
            remote.Client(self.server.url, token="mct_a\r\nX-Evil: 1")
        with self.assertRaises(ValueError):
            remote.Client(self.server.url, cafile="/etc/ssl/certs/ca-certificates.crt")  # http://
        with self.assertRaises(TypeError):
            self.c.version("pr/x", 1)
        with self.assertRaises(TypeError):
            self.c.set_alias("pr/x", "prod", ["1.0.0"])

    def test_unreachable(self):
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        c = remote.Client("http://127.0.0.1:%d" % port, timeout=5)
        with self.assertRaises(remote.UnreachableError) as cm:
            c.models()
        self.assertIsInstance(cm.exception, ConnectionError)
        self.assertIn("connection refused", str(cm.exception))

    def test_health_ready_metrics(self):
        self.assertTrue(self.c.health()["ok"])
        r = self.c.ready()
        self.assertTrue(r["ready"], r)
        self.assertIn("mcache_", self.c.metrics())

    def test_large_upload_in_constant_memory(self):
        """256 MiB pushed (and downloaded) by a fresh process whose peak RSS stays
        far below it: the client streams; it never holds the file."""
        big = os.path.join(self.dir, "big.bin")
        with open(big, "wb") as f:  # sparse: no disk, no page cache to speak of
            f.truncate(256 * MiB)
        child = (
            "import json, resource, sys\n"
            "from mcache.remote import Client\n"
            "c = Client(sys.argv[1])\n"
            "c.health()\n"
            "base_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "seen = []\n"
            "v = c.push('pr/big', '1.0.0', sys.argv[2], progress=lambda d, t: seen.append(d))\n"
            "push_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "r = c.download('pr/big', '1.0.0', sys.argv[3])\n"
            "print(json.dumps({'size': v['size'], 'checksum': v['checksum'], 'calls': len(seen),\n"
            "                  'got': r['size'], 'got_checksum': r['checksum'],\n"
            "                  'push_kib': push_kib, 'base_kib': base_kib,\n"
            "                  'kib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))\n")
        env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "python"))
        out = os.path.join(self.dir, "big.out")
        p = subprocess.run([sys.executable, "-c", child, self.server.url, big, out], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=150)
        self.assertEqual(p.returncode, 0, p.stderr)
        res = json.loads(p.stdout)
        self.assertEqual(res["size"], 256 * MiB)
        self.assertEqual(res["got"], 256 * MiB)
        self.assertEqual(res["got_checksum"], res["checksum"])
        self.assertGreaterEqual(res["calls"], 64)  # a progress call per 4 MiB
        # Growth over the process's peak before the push (a bare python3 is ~10
        # MiB; more under a sanitizer's preloaded runtime): the file is 256 MiB.
        self.assertLess(res["push_kib"] - res["base_kib"], 24 * 1024, res)
        self.assertLess(res["kib"] - res["base_kib"], 24 * 1024, res)
        self.assertEqual(os.path.getsize(out), 256 * MiB)
        os.unlink(out)
        self.c.delete("pr/big", "1.0.0")


class TestTokens(_ServerCase):
    """--require-tokens: 401 without a token or with one the server does not
    know, 403 for a valid one whose role is too weak. The harness makes an
    admin token (`mcache token add`); the others are made through the client."""

    server_kwargs = {"daemon": False, "tokens": True}

    @classmethod
    def prepare(cls):
        admin = remote.Client(cls.server.url, token=cls.server.token)
        cls.tok = {"admin": cls.server.token}
        for role in ("reader", "publisher"):
            t = admin.add_token("py-" + role, role)
            assert (t["name"], t["role"]) == ("py-" + role, role), t
            cls.tok[role] = t["token"]

    def client(self, role=None, token=None):
        return remote.Client(self.server.url, token=token or self.tok.get(role), timeout=30)

    def test_tokens_listed_without_secrets(self):
        listed = self.client("admin").tokens()
        self.assertEqual(sorted(t["name"] for t in listed), ["admin", "py-publisher", "py-reader"])
        for secret in self.tok.values():
            self.assertNotIn(secret, json.dumps(listed))
        with self.assertRaises(mcache.PermissionDeniedError):
            self.client("publisher").tokens()

    def test_unauthorized(self):
        for c in (self.client(), self.client(token="mct_not_a_real_token")):
            with self.assertRaises(remote.UnauthorizedError) as cm:
                c.models()
            e = cm.exception
            self.assertEqual((e.status, e.error_code), (401, "unauthorized"))
            self.assertIsInstance(e, PermissionError)
            self.assertNotIsInstance(e, mcache.PermissionDeniedError)  # 401 is not 403
        self.assertTrue(self.client().health()["ok"])  # the open routes need no token
        c = self.client(token="mct_not_a_real_token")
        calls = []
        with self.assertRaises(remote.UnauthorizedError):
            c.push("tok/x", "1.0.0", self.file("x", os.urandom(MiB)),
                   progress=lambda d, t: calls.append(d))
        self.assertEqual(calls, [])  # refused on the headers: no byte was sent

    def test_reader_may_read_not_push(self):
        path = self.file("t.bin", os.urandom(MiB))
        v = self.client("publisher").push("tok/m", "1.0.0", path)
        reader = self.client("reader")
        self.assertEqual(reader.version("tok/m", "1.0.0")["checksum"], v["checksum"])
        dest = os.path.join(self.dir, "t.out")
        reader.download("tok/m", "1.0.0", dest)
        self.assertEqual(read(dest), read(path))
        with self.assertRaises(mcache.PermissionDeniedError) as cm:
            reader.push("tok/m", "1.1.0", path)
        e = cm.exception
        self.assertEqual((e.status, e.error_code), (403, "forbidden"))
        self.assertIn("reader", str(e))
        with self.assertRaises(mcache.NotFoundError):
            reader.version("tok/m", "1.1.0")
        with self.assertRaises(mcache.PermissionDeniedError):
            self.client("publisher").delete("tok/m", "1.0.0")  # needs admin
        self.client("admin").delete("tok/m", "1.0.0")
        with self.assertRaises(mcache.NotFoundError):
            reader.version("tok/m", "1.0.0")


class TestTLS(_ServerCase):
    """https:// with cafile= (a self-signed certificate made with openssl): the
    push's 100-continue and streamed body, and a download, through TLS."""

    @classmethod
    def setUpClass(cls):
        cls.openssl = shutil.which("openssl")
        if not cls.openssl:
            raise unittest.SkipTest("no openssl to make a test certificate")
        super().setUpClass()

    @classmethod
    def kwargs(cls):
        cls.cert, key = os.path.join(cls.tmp, "cert.pem"), os.path.join(cls.tmp, "key.pem")
        subprocess.run([cls.openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                        "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key,
                        "-out", cls.cert], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
        return {"daemon": False, "tls": (cls.cert, key, cls.cert)}

    def test_push_and_download_over_tls(self):
        self.assertTrue(self.server.url.startswith("https://"), self.server.url)
        c = remote.Client(self.server.url, cafile=self.cert)
        data = os.urandom(9 * MiB + 1)
        calls = []
        v = c.push("tls/m", "1.0.0", self.file("t.bin", data),
                   progress=lambda d, t: calls.append(d))
        self.assertEqual((v["size"], calls[-1]), (len(data), len(data)))
        dest = os.path.join(self.dir, "t.out")
        c.download("tls/m", "1.0.0", dest)
        self.assertEqual(read(dest), data)
        with self.assertRaises(remote.ConflictError):
            c.push("tls/m", "1.0.0", self.file("t2.bin", data))

    def test_unknown_certificate(self):
        with self.assertRaises(remote.UnreachableError) as cm:
            remote.Client(self.server.url).models()  # the system's CAs do not know it
        self.assertIn("cafile", str(cm.exception))


if __name__ == "__main__":
    unittest.main()
