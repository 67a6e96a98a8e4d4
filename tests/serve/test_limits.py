#!/usr/bin/env python3
"""Limits: a connection over --max-conns is closed at once; a client that
sends half a request is cut after --timeout; a JSON body over --max-json is
413 before it is read, a wrong Content-Type 415, malformed JSON 400
bad_json; an upload over --max-upload 413, one with no length 411; and
nothing changes in the store for any of them.

The JSON and upload checks use the API's routes (POST /v1/snapshots, PUT
/v1/models/{name}/versions/{version}); each skips while its route is not
in this build."""
import json
import os
import re
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servetest  # noqa: E402
from servetest import Server  # noqa: E402


def raw(srv, timeout=30):
    s = socket.create_connection((srv.host, srv.port), timeout=timeout)
    return s


def read_all(s):
    """Everything until the server closes the connection."""
    out = b""
    while True:
        try:
            b = s.recv(65536)
        except ConnectionResetError:
            return out
        if not b:
            return out
        out += b


def status_of(resp):
    line = resp.split(b"\r\n", 1)[0].decode(errors="replace")
    return int(line.split()[1]) if line.startswith("HTTP/1.1 ") else None


def body_of(resp):
    return resp.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in resp else b""


class Connections(unittest.TestCase):
    def setUp(self):
        servetest.need_binaries()

    def test_connection_limit(self):
        with Server(daemon=False, args=["--threads", "1", "--max-conns", "2"]) as srv:
            def served():
                """A new connection that answered /healthz and stays open, or None if refused
                (the server may not have seen an earlier probe's close yet)."""
                s = raw(srv)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                data = b""
                while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
                    try:
                        b = s.recv(4096)
                    except ConnectionResetError:
                        b = b""
                    if not b:
                        s.close()
                        return None
                    data += b
                self.assertEqual(status_of(data), 200)
                return s

            held = []
            try:
                for _ in range(2):
                    held.append(servetest.wait_for("a connection served", served,
                                                   proc=srv.proc, log=srv.logs))
                # A third is closed without an answer.
                third = raw(srv, timeout=10)
                try:
                    third.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.assertEqual(read_all(third), b"")
                third.close()
            finally:
                for s in held:
                    s.close()
            # Room again once one closes (the server sees the close: poll until it does).
            servetest.wait_for("a connection slot freed",
                               lambda: srv._probe("/healthz") == 200, proc=srv.proc, log=srv.logs)

    def test_slow_client_is_cut(self):
        with Server(daemon=False, args=["--timeout", "1"]) as srv:
            s = raw(srv, timeout=20)
            t0 = time.monotonic()
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # half a request, never ended
            data = read_all(s)
            took = time.monotonic() - t0
            s.close()
            self.assertEqual(data, b"", "the server answered half a request")
            self.assertGreaterEqual(took, 0.9)
            self.assertLess(took, 15)
            # The server still serves others.
            self.assertEqual(srv.request("GET", "/healthz")[0], 200)

    def test_trickled_headers_are_cut(self):
        """--timeout bounds the whole request's headers, however fast the bytes trickle:
        a byte a second keeps libmicrohttpd's idle timer from firing, not this deadline."""
        with Server(daemon=False, args=["--timeout", "3"]) as srv:
            s = raw(srv, timeout=30)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            t0 = time.monotonic()
            closed = None
            for b in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"y" * 100:
                try:
                    s.sendall(bytes([b]))
                except OSError:
                    closed = time.monotonic() - t0
                    break
                s.settimeout(1.0)
                try:
                    got = s.recv(4096)
                    if not got:
                        closed = time.monotonic() - t0
                        break
                except socket.timeout:
                    pass
                except OSError:
                    closed = time.monotonic() - t0
                    break
                if time.monotonic() - t0 > 15:
                    break
            s.close()
            self.assertIsNotNone(closed, "a header byte a second held the connection 15 s with "
                                 "--timeout 3")
            self.assertLess(closed, 3 + 2.5, "cut after %.1f s" % closed)
            st, _, body = srv.request("GET", "/metrics")
            m = re.search(rb"^mcache_http_header_timeouts_total (\d+)$", body, re.M)
            self.assertTrue(m and int(m.group(1)) >= 1, body[-600:])

    def test_tricklers_do_not_starve_others(self):
        """25 connections from one address trickling a header line a second hold at most
        --max-conns-per-ip slots; a client from another address is answered at once, and
        after --timeout so is one from the same address."""
        with Server(daemon=False, args=["--timeout", "3", "--max-conns", "20",
                                        "--max-conns-per-ip", "10"]) as srv:
            socks = []
            for _ in range(25):
                try:
                    c = socket.create_connection((srv.host, srv.port), timeout=5)
                    c.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                    socks.append(c)
                except OSError:
                    pass
            stop = []

            def trickle():
                while not stop:
                    for c in socks:
                        try:
                            c.sendall(b"X: y\r\n")
                        except OSError:
                            pass
                    time.sleep(1)

            import threading
            th = threading.Thread(target=trickle)
            th.start()
            try:
                time.sleep(0.5)
                other = socket.socket()
                other.settimeout(5)
                other.bind(("127.0.0.2", 0))
                other.connect((srv.host, srv.port))
                other.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                self.assertEqual(status_of(read_all(other)), 200, srv.logs())
                other.close()
                time.sleep(3 + 2)  # the tricklers' headers are overdue: cut
                st, _, _ = srv.request("GET", "/healthz", timeout=5)
                self.assertEqual(st, 200)
            finally:
                stop.append(1)
                th.join()
                for c in socks:
                    c.close()

    def test_idle_keepalive_is_cut(self):
        with Server(daemon=False, args=["--timeout", "1"]) as srv:
            s = raw(srv, timeout=20)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            data = read_all(s)  # the answer, then the close after a second idle
            s.close()
            self.assertEqual(status_of(data), 200)


class Bodies(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        servetest.need_binaries()
        cls.srv = Server(daemon=False, args=["--max-json", "100", "--max-upload", "1000"])
        cls.srv.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def need(self, method, path):
        st, h, body = self.srv.request(method, path)
        if st == 404 and b"there is no such path" in body:
            self.skipTest("%s %s is not in this build" % (method, path))

    def snapshots(self):
        return self.srv.cli("snapshot", "ls", "--json").stdout

    def models(self):
        return self.srv.cli("ls", "--json").stdout

    def test_json_too_large(self):
        self.need("GET", "/v1/snapshots")
        before = self.snapshots()
        big = {"name": "x" * 200}
        st, h, body = self.srv.request("POST", "/v1/snapshots", body=big)
        self.assertEqual(st, 413, body)
        e = json.loads(body)["error"]
        self.assertEqual(e["code"], "too_large")
        self.assertIn("--max-json", e["message"])
        self.assertEqual(self.snapshots(), before)

    def test_json_too_large_chunked(self):
        self.need("GET", "/v1/snapshots")
        before = self.snapshots()
        s = raw(self.srv)
        chunk = b'{"name": "' + b"y" * 300 + b'"}'
        s.sendall(b"POST /v1/snapshots HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
                  b"%x\r\n" % len(chunk) + chunk + b"\r\n0\r\n\r\n")
        resp = read_all(s)
        s.close()
        self.assertEqual(status_of(resp), 413, resp)
        self.assertEqual(json.loads(body_of(resp))["error"]["code"], "too_large")
        self.assertEqual(self.snapshots(), before)

    def test_wrong_content_type(self):
        self.need("GET", "/v1/snapshots")
        before = self.snapshots()
        st, h, body = self.srv.request("POST", "/v1/snapshots", body=b'{"name": "s1"}',
                                       headers={"Content-Type": "text/plain"})
        self.assertEqual(st, 415, body)
        e = json.loads(body)["error"]
        self.assertEqual(e["code"], "unsupported_media_type")
        self.assertIn("text/plain", e["message"])
        self.assertEqual(self.snapshots(), before)

    def test_malformed_json(self):
        self.need("GET", "/v1/snapshots")
        before = self.snapshots()
        for bad, what in [(b'{"name": ', "not valid JSON"), (b'[1, 2]', "JSON object"),
                          (b'{"name": "a", "name": "b"}', "duplicate")]:
            with self.subTest(body=bad):
                st, h, body = self.srv.request("POST", "/v1/snapshots", body=bad,
                                               headers={"Content-Type": "application/json"})
                self.assertEqual(st, 400, body)
                e = json.loads(body)["error"]
                self.assertEqual(e["code"], "bad_json")
                self.assertIn(what, e["message"])
        self.assertEqual(self.snapshots(), before)

    def test_upload_too_large(self):
        self.need("GET", "/v1/models")
        st, h, body = self.srv.request("PUT", "/v1/models/big/versions/1.0.0", body=b"z" * 2000,
                                       headers={"Content-Type": "application/octet-stream"})
        if st == 404 and b"there is no such path" in body:
            self.skipTest("PUT uploads are not in this build")
        self.assertEqual(st, 413, body)
        self.assertIn("--max-upload", json.loads(body)["error"]["message"])
        self.assertNotIn("big", self.models())

    def test_upload_too_large_chunked(self):
        self.need("GET", "/v1/models")
        s = raw(self.srv)
        s.sendall(b"PUT /v1/models/bigc/versions/1.0.0 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n"
                  b"Connection: close\r\n\r\n")
        for _ in range(3):
            s.sendall(b"400\r\n" + b"q" * 1024 + b"\r\n")
        s.sendall(b"0\r\n\r\n")
        resp = read_all(s)
        s.close()
        if status_of(resp) == 404 and b"there is no such path" in resp:
            self.skipTest("PUT uploads are not in this build")
        self.assertEqual(status_of(resp), 413, resp)
        self.assertNotIn("bigc", self.models())

    def test_upload_without_length(self):
        self.need("GET", "/v1/models")
        s = raw(self.srv)
        s.sendall(b"PUT /v1/models/nolen/versions/1.0.0 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n")
        resp = read_all(s)
        s.close()
        if status_of(resp) == 404 and b"there is no such path" in resp:
            self.skipTest("PUT uploads are not in this build")
        self.assertEqual(status_of(resp), 411, resp)
        self.assertEqual(json.loads(body_of(resp))["error"]["code"], "length_required")
        self.assertNotIn("nolen", self.models())

    def framed(self, name, framing, body):
        """A raw push with these framing headers; (status, error code), the push not made."""
        s = raw(self.srv, timeout=10)
        s.sendall(b"PUT /v1/models/" + name + b"/versions/1.0.0 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Type: application/octet-stream\r\n" + framing + b"\r\n" + body)
        resp = read_all(s)
        s.close()
        self.assertNotIn(name.decode(), self.models())
        return status_of(resp), json.loads(body_of(resp))["error"]["code"]

    def test_ambiguous_framing(self):
        """RFC 9112 6.3: Content-Length headers that differ, or Content-Length beside
        Transfer-Encoding, are 400 (libmicrohttpd took the first length, or the chunks); a
        Transfer-Encoding other than chunked is 501 at once (it got no answer at all)."""
        self.assertEqual(self.framed(b"cl2", b"Content-Length: 5\r\nContent-Length: 6\r\n",
                                     b"helloX"), (400, "bad_request"))
        self.assertEqual(self.framed(b"clte", b"Content-Length: 5\r\n"
                                     b"Transfer-Encoding: chunked\r\n",
                                     b"5\r\nhello\r\n0\r\n\r\n"), (400, "bad_request"))
        self.assertEqual(self.framed(b"te2", b"Transfer-Encoding: chunked\r\n"
                                     b"Transfer-Encoding: gzip\r\n",
                                     b"5\r\nhello\r\n0\r\n\r\n"), (400, "bad_request"))
        self.assertEqual(self.framed(b"gz", b"Transfer-Encoding: gzip, chunked\r\n",
                                     b"5\r\nhello\r\n0\r\n\r\n"), (501, "not_implemented"))
        # The same length twice is one length: accepted.
        s = raw(self.srv, timeout=10)
        s.sendall(b"PUT /v1/models/cleq/versions/1.0.0 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Type: application/octet-stream\r\nContent-Length: 5\r\n"
                  b"Content-Length: 5\r\nConnection: close\r\n\r\nhello")
        resp = read_all(s)
        s.close()
        self.assertEqual(status_of(resp), 201, resp)

    def test_garbage_is_answered_or_closed(self):
        """Binary garbage with line ends gets libmicrohttpd's 400 or a close at once."""
        s = raw(self.srv, timeout=10)
        s.sendall(bytes(range(256)) * 4)
        t0 = time.monotonic()
        resp = read_all(s)
        s.close()
        self.assertLess(time.monotonic() - t0, 5)
        self.assertIn(status_of(resp), (400, None), resp[:200])


if __name__ == "__main__":
    unittest.main(verbosity=2)
