#!/usr/bin/env python3
"""mcache-serve's core: options and their errors, /healthz, /readyz, routing
errors (404, 405 with Allow, 400 for malformed paths), the error object,
query and header plumbing, a clean stop on SIGTERM and SIGINT."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servetest  # noqa: E402
from servetest import MCACHE_SERVE, Server  # noqa: E402


def run_serve(*args, env=None, timeout=20):
    e = {k: v for k, v in os.environ.items() if not k.startswith("MCACHE_")}
    e.update(env or {})
    return subprocess.run([MCACHE_SERVE] + list(args), capture_output=True, text=True,
                          timeout=timeout, env=e)


class Options(unittest.TestCase):
    def test_help_and_version(self):
        r = run_serve("--help")
        self.assertEqual(r.returncode, 0, r)
        for opt in ("--store", "--listen", "--threads", "--require-tokens", "--insecure-open",
                    "--tls-cert", "--tls-key", "--max-json", "--max-upload", "--timeout",
                    "--max-conns", "MCACHE_STORE"):
            self.assertIn(opt, r.stdout)
        r = run_serve("--version")
        self.assertEqual(r.returncode, 0, r)
        self.assertRegex(r.stdout, r"^mcache-serve \d+\.\d+\.\d+\n$")

    def test_bad_values(self):
        cases = [
            (["--threads", "0"], r"--threads needs a whole number from 1 to 256, not \"0\""),
            (["--threads", "x"], r"--threads.*not \"x\""),
            (["--max-json", "-5"], r"--max-json.*not \"-5\""),
            (["--timeout", "1.5"], r"--timeout.*not \"1.5\""),
            (["--max-conns", ""], r"--max-conns.*not \"\""),
            (["--max-upload", "99999999999999999999999"], r"--max-upload"),
            (["--listen", "localhost:80"], r"\"localhost\" is not an IPv4 address"),
            (["--listen", "127.0.0.1"], r"write ADDR:PORT"),
            (["--listen", "127.0.0.1:70000"], r"port.*from 0 to 65535"),
            (["--listen", "::1:80"], r"IPv6 address in brackets"),
            (["--listen", "[::1]80"], r"\[ADDR\]:PORT"),
            (["--listen", "[zz]:80"], r"\"zz\" is not an IPv6 address"),
            (["--tls-cert", "/nonexistent"], r"--tls-cert and --tls-key go together"),
            (["--require-tokens", "--insecure-open"], r"contradict"),
            (["--bogus"], r"there is no option \"--bogus\""),
            (["--store"], r"--store needs a value"),
            (["extra"], r"takes no arguments.*\"extra\""),
        ]
        for args, msg in cases:
            with self.subTest(args=args):
                r = run_serve(*args)
                self.assertEqual(r.returncode, 2, r)
                self.assertRegex(r.stderr, r"^mcache-serve: ")
                self.assertRegex(r.stderr, msg)
                self.assertIn("--help", r.stderr)

    def test_tls_files_checked(self):
        with tempfile.TemporaryDirectory() as d:
            notpem = os.path.join(d, "x.pem")
            with open(notpem, "w") as f:
                f.write("hello\n")
            r = run_serve("--store", d, "--tls-cert", notpem, "--tls-key", notpem)
            self.assertEqual(r.returncode, 1, r)
            self.assertIn("is not a PEM file", r.stderr)
            r = run_serve("--store", d, "--tls-cert", os.path.join(d, "missing.pem"),
                          "--tls-key", notpem)
            self.assertEqual(r.returncode, 1, r)
            self.assertIn("missing.pem", r.stderr)
            self.assertIn("No such file", r.stderr)

    def test_non_loopback_needs_tokens_or_insecure_open(self):
        with tempfile.TemporaryDirectory() as d:
            r = run_serve("--store", os.path.join(d, "s"), "--listen", "0.0.0.0:0")
            self.assertEqual(r.returncode, 1, r)
            self.assertIn("refusing to listen on 0.0.0.0:0 without tokens", r.stderr)
            self.assertIn("--insecure-open", r.stderr)
            self.assertFalse(os.path.exists(os.path.join(d, "s")), "the store was created")
            r = run_serve("--store", os.path.join(d, "s2"), "--require-tokens")
            self.assertEqual(r.returncode, 1, r)
            self.assertIn("has no tokens", r.stderr)
            self.assertFalse(os.path.exists(os.path.join(d, "s2")), "the store was created")

    def test_address_in_use(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        try:
            with tempfile.TemporaryDirectory() as d:
                r = run_serve("--store", d, "--listen", "127.0.0.1:%d" % port)
                self.assertEqual(r.returncode, 1, r)
                self.assertIn("127.0.0.1:%d" % port, r.stderr)
                self.assertIn("could not listen", r.stderr)
        finally:
            s.close()

    def test_environment(self):
        """MCACHE_STORE/CACHE/SHM_DIR choose what --store/--cache/--shm-dir would."""
        with tempfile.TemporaryDirectory() as d:
            store = os.path.join(d, "envstore")
            srv = Server(d, daemon=False)
            srv.env["MCACHE_STORE"] = store
            srv.env["MCACHE_CACHE"] = "envcache"
            real = servetest.MCACHE_SERVE
            try:
                # Run it without --store/--cache: the environment decides.
                log = open(srv.serve_log_path, "ab")
                p = subprocess.Popen([real, "--listen", "127.0.0.1:0"], stdout=log, stderr=log,
                                     env=srv.env)
                log.close()
                srv.proc = p
                servetest.wait_for("listening", lambda: "listening on" in srv.serve_log(),
                                   proc=p, log=srv.logs)
                self.assertIn("store %s, cache envcache" % store, srv.serve_log())
                self.assertTrue(os.path.isdir(store))
            finally:
                srv.stop()


class ManPage(unittest.TestCase):
    PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                        "mcache-serve.1")

    def test_renders_and_names_every_option(self):
        if not shutil.which("groff"):
            self.skipTest("groff is not installed (Debian: groff-base)")
        p = subprocess.run(["groff", "-man", "-t", "-ww", "-z", "-Tutf8", self.PAGE],
                           capture_output=True, text=True,
                           env=dict(os.environ, LC_ALL="C.UTF-8"))
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        with open(self.PAGE) as f:
            text = f.read().replace("\\-", "-")
        text = re.sub(r"\\f[BIRP]|\\&", "", text)
        options = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", run_serve("--help").stdout))
        self.assertGreater(len(options), 10)
        missing = sorted(o for o in options
                         if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(o), text))
        self.assertEqual(missing, [], "docs/mcache-serve.1 lacks options --help names")


class Basics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        servetest.need_binaries()
        cls.srv = Server(daemon=True).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def test_healthz(self):
        st, h, body = self.srv.request("GET", "/healthz")
        self.assertEqual(st, 200)
        self.assertEqual(h["content-type"], "application/json")
        j = json.loads(body)
        self.assertIs(j["ok"], True)
        self.assertRegex(j["version"], r"^\d+\.\d+\.\d+$")
        st, h, body = self.srv.request("HEAD", "/healthz")
        self.assertEqual((st, body), (200, b""))

    def test_readyz(self):
        j = self.srv.json("GET", "/readyz")
        self.assertEqual(j, {"ready": True, "checks": {"registry": "ok", "arena": "ok",
                                                       "mcached": "ok"}})

    def test_not_found(self):
        st, h, body = self.srv.request("GET", "/nothing/here")
        self.assertEqual(st, 404)
        e = json.loads(body)["error"]
        self.assertEqual((e["code"], e["status"]), ("not_found", 404))
        self.assertIn("/nothing/here", e["message"])

    def test_method_not_allowed(self):
        st, h, body = self.srv.request("DELETE", "/healthz")
        self.assertEqual(st, 405)
        self.assertEqual(h["allow"], "GET, HEAD")
        e = json.loads(body)["error"]
        self.assertEqual(e["code"], "method_not_allowed")
        self.assertIn("DELETE", e["message"])

    def test_malformed_paths(self):
        for path, what in [("/healthz/%2e%2e", "\"..\" segment"), ("/a/./b", "\".\" segment"),
                           ("/a//b", "empty segment"), ("/healthz/", "empty segment"),
                           ("/a%00b", "control byte 0x00"), ("/a%1fb", "control byte 0x1f"),
                           ("/a%zzb", "bad escape"), ("/a%4", "without two hex digits"),
                           ("/" + "x/" * 20 + "y", "more than 16 segments")]:
            with self.subTest(path=path[:40]):
                st, h, body = self.srv.request("GET", path)
                self.assertEqual(st, 400, body)
                e = json.loads(body)["error"]
                self.assertEqual(e["code"], "bad_request")
                self.assertIn(what, e["message"])

    def test_path_too_long(self):
        st, h, body = self.srv.request("GET", "/" + "x" * 5000)
        self.assertEqual(st, 414, body)
        e = json.loads(body)["error"]
        self.assertEqual(e["code"], "uri_too_long")
        self.assertIn("at most 4096", e["message"])

    def test_405_counted_under_its_route(self):
        self.srv.request("DELETE", "/healthz")
        self.srv.request("DELETE", "/v1/models/zz/versions/1.0.0/artifact")
        st, h, body = self.srv.request("GET", "/metrics")
        text = body.decode()
        self.assertIn('mcache_http_requests_total{route="/healthz",method="DELETE",code="405"} 1',
                      text)
        self.assertIn('mcache_http_requests_total{route="/v1/models/{name}/versions/{ref}/artifact",'
                      'method="DELETE",code="405"} 1', text)
        self.assertNotIn('route="unmatched",method="DELETE",code="405"', text)

    def test_boolean_query_arguments_are_strict(self):
        for v in ("", "yes", "no", "TRUE", "2"):
            with self.subTest(force=v):
                st, h, body = self.srv.request("DELETE", "/v1/models/nosuch?force=" + v,
                                               headers={"Content-Type": "application/json"})
                self.assertEqual(st, 400, body)
                self.assertIn("not a boolean", json.loads(body)["error"]["message"])
        st, h, body = self.srv.request("DELETE", "/v1/models/nosuch?force=true",
                                       headers={"Content-Type": "application/json"})
        self.assertEqual(st, 404, body)

    def test_percent_encoded_literal_matches(self):
        st, h, body = self.srv.request("GET", "/health%7a")
        self.assertEqual(st, 200, body)

    def test_errors_are_logged(self):
        self.srv.request("GET", "/logged/404")
        servetest.wait_for("the log line", lambda: "404 GET /logged/404 from 127.0.0.1:" in
                           self.srv.serve_log())

    def test_query_arguments_reach_handlers_decoded_once(self):
        """A query value is decoded once (%XX): pattern=q%2Dx finds q-x, q%252Dx does not."""
        st, h, body = self.srv.request("GET", "/v1/models")
        if st == 404 and b"there is no such path" in body:
            self.skipTest("GET /v1/models is not in this build")
        self.srv.cli("push", "q-x", "1.0.0", self.srv.file("q.bin", b"q" * 100))
        names = lambda q: [m["name"] for m in self.srv.json("GET", "/v1/models?pattern=" + q)
                           ["models"]]
        self.assertEqual(names("q%2Dx"), ["q-x"])
        self.assertEqual(names("q%252Dx"), [])

    def test_keep_alive(self):
        c = self.srv.connection()
        try:
            for _ in range(5):
                c.request("GET", "/healthz")
                r = c.getresponse()
                self.assertEqual(r.status, 200)
                r.read()
        finally:
            c.close()


class Listen(unittest.TestCase):
    def setUp(self):
        servetest.need_binaries()

    def test_ipv6_loopback(self):
        try:
            s = socket.socket(socket.AF_INET6)
            s.bind(("::1", 0))
            s.close()
        except OSError:
            self.skipTest("no IPv6 loopback here")
        with Server(daemon=False, listen="[::1]:0") as srv:
            self.assertTrue(srv.url.startswith("http://[::1]:"), srv.url)
            st, h, body = srv.request("GET", "/healthz")
            self.assertEqual(st, 200)
            # ::1 is loopback: open access, as on 127.0.0.1.
            self.assertIn("open access on loopback", srv.serve_log())
            srv.request("GET", "/v6-missing")
            servetest.wait_for("the log line naming the IPv6 peer",
                               lambda: re.search(r"404 GET /v6-missing from \[::1\]:\d+",
                                                 srv.serve_log()))


class Readiness(unittest.TestCase):
    def setUp(self):
        servetest.need_binaries()

    def test_without_daemon(self):
        with Server(daemon=False) as srv:
            st, h, body = srv.request("GET", "/readyz")
            self.assertEqual(st, 503)
            j = json.loads(body)
            self.assertIs(j["ready"], False)
            self.assertEqual(j["checks"]["registry"], "ok")
            self.assertIn("mcached", j["checks"]["mcached"])
            self.assertEqual(j["error"]["code"], "unavailable")
            self.assertEqual(j["error"]["status"], 503)
            self.assertEqual(srv.request("GET", "/healthz")[0], 200)

    def test_daemon_goes_away(self):
        with Server() as srv:
            self.assertEqual(srv.request("GET", "/readyz")[0], 200)
            servetest.stop_proc(srv.daemon)
            srv.daemon = None
            st, h, body = srv.request("GET", "/readyz")
            self.assertEqual(st, 503, body)
            self.assertNotEqual(json.loads(body)["checks"]["mcached"], "ok")


def slow_download(srv, path):
    """GET path on a connection whose receive buffer is tiny and is not read: the response
    stays in flight (unsent in mcache-serve) until read_rest(). (socket, headers, body so far)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)  # before connect: the window
    sock.settimeout(60)
    sock.connect((srv.host, srv.port))
    sock.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % path.encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError("the connection closed before the headers: %r" % buf)
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:])}
    return sock, lines[0], headers, body


def read_rest(sock):
    """Everything until the server closes the connection."""
    parts = []
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            sock.close()
            return b"".join(parts)
        parts.append(chunk)


def deleted_arena_maps(srv):
    """mcache-serve's mappings of arena files that are gone (a replaced arena still mapped)."""
    with open("/proc/%d/maps" % srv.proc.pid) as f:
        return [ln for ln in f if srv.shm_dir in ln and ln.rstrip().endswith("(deleted)")]


class ArenaReplaced(unittest.TestCase):
    def setUp(self):
        servetest.need_binaries()

    def push_resident(self, srv, size):
        data = os.urandom(size)
        srv.cli("push", "m", "1.0.0", srv.file("m.bin", data))
        srv.cli("load", "m@1.0.0")
        return data

    def test_recreated_arena(self):
        """mcached restarted with a new arena (--recreate): the old one is superseded; mcache-serve
        never answers from it, detaches it (nothing uses it) and attaches the new one by itself:
        /readyz is 200 and downloads come from the new arena, without restarting mcache-serve."""
        with Server() as srv:
            data = self.push_resident(srv, 50000)
            art = "/v1/models/m/versions/1.0.0/artifact"
            st, h, body = srv.request("GET", art)
            self.assertEqual((st, h.get("mcache-source"), body), (200, "arena", data))
            srv.stop_daemon()
            srv.start_daemon(extra=["--recreate"])
            srv.cli("load", "m@1.0.0")
            self.assertEqual(srv.request("GET", "/readyz")[0], 200, srv.logs())
            self.assertIn("was replaced (mcached made a new one): detached the old one",
                          srv.serve_log())
            st, h, body = srv.request("GET", art)
            self.assertEqual((st, h.get("mcache-source"), body), (200, "arena", data))
            self.assertEqual(deleted_arena_maps(srv), [])

    def test_recreated_under_a_slow_download(self):
        """A download from the arena is in flight (its client reads slowly) when mcached makes a
        new arena: the old attachment is not detached under it (it completes with the right
        bytes, from the old arena); meanwhile /readyz is 503 saying why and downloads come from
        the store; once it is done the old arena is detached and the new one attached: /readyz
        is 200 and downloads come from the new arena, without restarting mcache-serve."""
        with Server(args=["--timeout", "300"]) as srv:
            data = self.push_resident(srv, 16 << 20)  # far more than the sockets' buffers
            art = "/v1/models/m/versions/1.0.0/artifact"
            sock, status, h, got = slow_download(srv, art)
            try:
                self.assertIn(" 200 ", status)
                self.assertEqual(h.get("mcache-source"), "arena")
                srv.stop_daemon()
                srv.start_daemon(extra=["--recreate"])
                srv.cli("load", "m@1.0.0")
                st, _, body = srv.request("GET", "/readyz")
                self.assertEqual(st, 503, body)
                why = json.loads(body)["checks"]["arena"]
                self.assertIn("was replaced", why)
                self.assertIn("still using the old one (1 now", why)
                st, h2, body = srv.request("GET", art)
                self.assertEqual((st, h2.get("mcache-source"), body), (200, "store", data))
                self.assertNotIn("detached the old one", srv.serve_log())
                got += read_rest(sock)
            finally:
                sock.close()
            self.assertEqual(len(got), len(data))
            self.assertTrue(got == data, "the slow download's bytes differ from the artifact's")
            servetest.wait_for("/readyz 200 once the slow download is done",
                               lambda: srv._probe("/readyz") == 200, proc=srv.proc, log=srv.logs)
            self.assertIn("detached the old one", srv.serve_log())
            st, h, body = srv.request("GET", art)
            self.assertEqual((st, h.get("mcache-source"), body), (200, "arena", data))
            self.assertEqual(deleted_arena_maps(srv), [])


class Stopping(unittest.TestCase):
    def setUp(self):
        servetest.need_binaries()

    def test_sigterm_and_sigint(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            with self.subTest(sig=sig), Server(daemon=False) as srv:
                srv.proc.send_signal(sig)
                self.assertEqual(srv.proc.wait(15), 0, srv.logs())
                self.assertIn("stopping (%s)" % sig.name, srv.serve_log())
                srv.proc = None


if __name__ == "__main__":
    unittest.main(verbosity=2)
