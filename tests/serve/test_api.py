#!/usr/bin/env python3
"""test_api.py - mcache-serve's REST routes against a real mcached and store.

Every route answers as docs/http.md says, with the objects `mcache --json`
prints; refusals (404 naming what is missing, 400 for a bad name or an
unknown field, 409, 413, 415, 422) change nothing (`mcache ls --json` and
the aliases before and after); a 64 MiB push streamed in pieces comes back
byte for byte; Range, If-None-Match and HEAD; a resident version is served
from the arena and stays right while its alias moves; a 512 MiB push runs
in bounded server memory.
"""
import hashlib
import http.client
import json
import os
import sys
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from servetest import Server, need_binaries, python_env, wait_for  # noqa: E402

MiB = 1 << 20


def q(s):
    """A path segment, percent-encoded ('/' too: org/llama -> org%2Fllama)."""
    return urllib.parse.quote(s, safe="")


def blob(n, seed):
    """n bytes of deterministic, incompressible-enough data."""
    out = bytearray()
    h = hashlib.sha256(seed.encode()).digest()
    while len(out) < n:
        h = hashlib.sha256(h).digest()
        out += h * 64
    return bytes(out[:n])


class Base(unittest.TestCase):
    daemon = True
    args = ()

    @classmethod
    def setUpClass(cls):
        cls.s = Server(daemon=cls.daemon, args=cls.args)
        cls.s.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.s.__exit__(None, None, None)

    # helpers
    def ls(self):
        """The registry's state as the CLI sees it, for before/after comparisons."""
        v = json.loads(self.s.cli("ls", "--json").stdout)["versions"]
        for x in v:
            x.pop("residency", None)
        return v

    def push_cli(self, name, version, data, *extra):
        path = self.s.file("%s-%s.bin" % (name.replace("/", "_"), version), data)
        self.s.cli("push", name, version, path, *extra)

    def put(self, name, version, data, meta=None, checksum=None, ctype="application/octet-stream",
            extra=None):
        h = {"Content-Type": ctype} if ctype else {}
        if meta is not None:
            h["Mcache-Meta"] = meta if isinstance(meta, str) else json.dumps(meta)
        if checksum:
            h["Mcache-Checksum"] = checksum
        h.update(extra or {})
        return self.s.request("PUT", "/v1/models/%s/versions/%s" % (q(name), q(version)),
                              body=data, headers=h)

    def headers_only(self, method, path, headers):
        """Send the headers and read the answer without sending the body (a refusal up front)."""
        c = self.s.connection(30)
        try:
            c.putrequest(method, path)
            for k, v in headers.items():
                c.putheader(k, v)
            c.endheaders()
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def error(self, status, headers, body, want_status, want_code=None, *words):
        self.assertEqual(status, want_status, body)
        e = json.loads(body)["error"]
        self.assertEqual(e["status"], want_status)
        if want_code:
            self.assertEqual(e["code"], want_code, e)
        for w in words:
            self.assertIn(w, e["message"])
        return e


class Registry(Base):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        s = cls.s
        for v, acc in (("1.0.0", "0.8"), ("1.1.0", "0.93"), ("2.0.0-rc.1", "0.95")):
            p = s.file("r-%s" % v, blob(4096, v))
            s.cli("push", "org/llama", v, p, "--tag", "env=prod" if v != "1.0.0" else "env=dev",
                  "--metric", "acc=" + acc, "--framework", "pytorch")
        s.cli("push", "resnet", "1.0.0", s.file("resnet", blob(1000, "resnet")))
        s.cli("alias", "org/llama", "production", "1.0.0", "--no-gate")

    def test_models_list(self):
        j = self.s.json("GET", "/v1/models")
        by = {m["name"]: m for m in j["models"]}
        self.assertEqual(set(by), {"org/llama", "resnet"})
        self.assertEqual(by["org/llama"]["versions"], 3)
        self.assertEqual(by["org/llama"]["latest"], "1.1.0")
        self.assertEqual(by["org/llama"]["aliases"], {"production": "1.0.0"})
        j = self.s.json("GET", "/v1/models?pattern=res*")
        self.assertEqual([m["name"] for m in j["models"]], ["resnet"])

    def test_search_is_the_clis(self):
        for query, args in (("tag=env%3Dprod", ["--tag", "env=prod"]),
                            ("metric=acc%3E0.9", ["--where", "acc>0.9"]),
                            ("ref=%5E1", ["--ref", "^1"]),
                            ("pattern=org%2F*&status=ready&order=time",
                             ["org/*", "--status", "ready", "--sort", "time"])):
            got = self.s.json("GET", "/v1/models?" + query)["versions"]
            want = json.loads(self.s.cli("ls", "--json", *args).stdout)["versions"]
            self.assertEqual(got, want, query)
        self.error(*self.s.request("GET", "/v1/models?order=sideways"), 400, "bad_request",
                   "sideways")
        self.error(*self.s.request("GET", "/v1/models?metric=acc%3E%3Ehigh"), 400)

    def test_show_is_the_clis(self):
        got = self.s.json("GET", "/v1/models/org%2Fllama")
        want = json.loads(self.s.cli("show", "org/llama", "--json").stdout)
        self.assertEqual(got, want)
        vs = self.s.json("GET", "/v1/models/org%2Fllama/versions")["versions"]
        self.assertEqual([v["version"] for v in vs], ["2.0.0-rc.1", "1.1.0", "1.0.0"])
        self.assertEqual(vs, want["versions"])
        for ref, ver in (("latest", "1.1.0"), ("production", "1.0.0"), ("%5E2.0.0-0", "2.0.0-rc.1"),
                         ("1.1.0", "1.1.0")):
            v = self.s.json("GET", "/v1/models/org%2Fllama/versions/" + ref)
            self.assertEqual(v["version"], ver, ref)
        cli = json.loads(self.s.cli("show", "org/llama@production", "--json").stdout)["version"]
        self.assertEqual(self.s.json("GET", "/v1/models/org%2Fllama/versions/production"), cli)

    def test_not_found_names_it(self):
        self.error(*self.s.request("GET", "/v1/models/nope"), 404, "not_found", "nope")
        self.error(*self.s.request("GET", "/v1/models/resnet/versions/9.9.9"), 404, "not_found",
                   "9.9.9")
        self.error(*self.s.request("GET", "/v1/models/resnet/aliases/gone/history"), 404,
                   "not_found", "gone")
        self.error(*self.s.request("GET", "/v1/models/nope/versions/1.0.0/artifact"), 404,
                   "not_found", "nope")

    def test_bad_names(self):
        for path in ("/v1/models/..%2Fetc", "/v1/models/%2E%2E%2Fetc%2Fpasswd",
                     "/v1/models/a%01b", "/v1/models/a%00b/versions",
                     "/v1/models/resnet/versions/1.0.0%0a"):
            st, h, b = self.s.request("GET", path)
            self.assertEqual(st, 400, (path, b))
            self.assertEqual(json.loads(b)["error"]["status"], 400)
        before = self.ls()
        st, h, b = self.put("../etc", "1.0.0", b"x")
        self.assertEqual(st, 400, b)
        self.assertEqual(self.ls(), before)

    def test_aliases_routes(self):
        j = self.s.json("GET", "/v1/models/org%2Fllama/aliases")
        self.assertEqual(j["aliases"][0]["alias"], "production")
        self.assertEqual(j["aliases"],
                         json.loads(self.s.cli("show", "org/llama", "--json").stdout)["aliases"])
        h = self.s.json("GET", "/v1/models/org%2Fllama/aliases/production/history")
        want = json.loads(self.s.cli("history", "org/llama", "production", "--json").stdout)
        self.assertEqual(h, want)


class Aliases(Base):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for v in ("1.0.0", "2.0.0", "3.0.0"):
            cls.s.cli("push", "m", v, cls.s.file("m" + v, blob(2048, "m" + v)))

    def aliases(self):
        return json.loads(self.s.cli("show", "m", "--json").stdout)["aliases"]

    def test_set_move_weights_remove_rollback(self):
        base = "/v1/models/m/aliases/prod"
        j = self.s.json("PUT", base, {"targets": "1.0.0", "why": "first"})
        self.assertEqual((j["action"], j["from"], j["to"]), ("create", None, "1.0.0"))
        self.assertIn("checks", j)  # gated: mcached serves the store
        j = self.s.json("PUT", base, {"targets": {"1.0.0": 90, "2.0.0": 10}})
        self.assertEqual((j["action"], j["from"], j["to"]), ("move", "1.0.0", "1.0.0=90 2.0.0=10"))
        j = self.s.json("PUT", base, {"targets": "2.0.0", "no_gate": True})
        self.assertEqual(j["to"], "2.0.0")
        j = self.s.json("POST", base + "/rollback")
        self.assertEqual((j["action"], j["to"]), ("rollback", "1.0.0=90 2.0.0=10"))
        moves = self.s.json("GET", base + "/history")["moves"]
        self.assertEqual([m["action"] for m in moves], ["create", "move", "move", "rollback"])
        self.assertEqual(moves[0].get("why"), "first")
        j = self.s.json("DELETE", base)
        self.assertEqual((j["action"], j["to"]), ("remove", None))
        self.assertEqual(self.s.json("GET", base + "/history")["moves"][-1]["action"], "remove")

    def test_refusals_change_nothing(self):
        self.s.json("PUT", "/v1/models/m/aliases/stable", {"targets": "1.0.0"})
        before = (self.aliases(), self.ls())
        base = "/v1/models/m/aliases/stable"
        e = self.error(*self.s.request("PUT", base, {"targets": "2.0.0", "colour": "red"}), 400,
                       "unknown_field", "colour", "targets", "why", "no_gate")
        self.assertIn("nothing was changed", e["message"])
        self.error(*self.s.request("PUT", base, {"targets": "9.9.9"}), 404, "not_found", "9.9.9")
        self.error(*self.s.request("PUT", base, {"targets": {"1.0.0": 50, "2.0.0": 40}}), 400)
        self.error(*self.s.request("PUT", base, {"targets": 7}), 400, "bad_request", "targets")
        self.error(*self.s.request("PUT", base, {}), 400)
        self.error(*self.s.request("PUT", base, b"{not json", {"Content-Type": "application/json"}),
                   400, "bad_json")
        self.error(*self.s.request("PUT", base, b'{"targets": "2.0.0"}',
                                   {"Content-Type": "text/plain"}), 415)
        self.error(*self.s.request("PUT", "/v1/models/m/aliases/b%20d", {"targets": "1.0.0"}), 400)
        self.error(*self.s.request("PUT", "/v1/models/nope/aliases/other", {"targets": "1.0.0"}), 404,
                   "not_found", "nope")
        self.error(*self.s.request("DELETE", "/v1/models/m/aliases/never"), 404, "not_found",
                   "never")
        self.assertEqual((self.aliases(), self.ls()), before)


class Artifacts(Base):
    args = ("--max-upload", str(80 * MiB))

    def test_push_meta_location_and_conflict(self):
        data = blob(100000, "push")
        meta = {"description": "a test", "framework": "pytorch", "precision": "fp16",
                "metrics": {"acc": 0.91}, "params": {"lr": "0.1"}, "tags": {"env": "dev"},
                "preload": False, "pin": False, "aliases": ["canary"]}
        st, h, b = self.put("org/p", "1.0.0+b5", data, meta)
        self.assertEqual(st, 201, b)
        v = json.loads(b)
        self.assertEqual(h["location"], "/v1/models/org%2Fp/versions/1.0.0+b5")
        self.assertEqual((v["name"], v["version"], v["size"]), ("org/p", "1.0.0+b5", len(data)))
        self.assertEqual(v["metrics"], {"acc": 0.91})
        self.assertEqual(v["tags"], {"env": "dev"})
        self.assertEqual(v["aliases"], ["canary"])
        # mcached loads an aliased version on its own: residency may change meanwhile
        v.pop("residency")
        got = self.s.json("GET", h["location"])
        got.pop("residency")
        self.assertEqual(v, got)
        cli = json.loads(self.s.cli("show", "org/p@1.0.0+b5", "--json").stdout)["version"]
        cli.pop("residency")
        self.assertEqual(v, cli)
        # the same version again: 409 before the body is read, nothing changed
        before = self.ls()
        self.error(*self.put("org/p", "1.0.0", b"other bytes"), 409, "conflict", "1.0.0")
        self.assertEqual(self.ls(), before)

    def test_refused_pushes_change_nothing(self):
        self.push_cli("ref", "1.0.0", blob(5000, "ref"))
        before = self.ls()
        e = self.error(*self.put("q", "1.0.0", b"abc", {"framework": "x", "colour": "red"}), 400,
                       "unknown_field", "colour", "framework", "aliases")
        self.error(*self.put("q", "1.0.0", b"abc", "{bad json"), 400, "bad_json")
        self.error(*self.put("q", "1.0.0", b"abc", {"metrics": {"acc": "high"}}), 400,
                   "bad_request", "acc")
        self.error(*self.put("q", "1.0.0", b"abc", {"pin": "yes"}), 400, "bad_request", "pin")
        self.error(*self.put("q", "1.0.0", b"abc", ctype="text/plain"), 415,
                   "unsupported_media_type")
        self.error(*self.put("q", "not-a-version", b"abc"), 400, "bad_request", "not-a-version")
        self.error(*self.put("q", "1.0.0", b""), 400)
        self.error(*self.put("q", "1.0.0", b"abc", checksum="md5:123"), 400, "bad_request", "md5")
        e = self.error(*self.put("q", "1.0.0", b"abc", checksum="xxh3-128:" + "0" * 32), 422,
                       "checksum_mismatch")
        self.assertIn("xxh3-128:" + "0" * 32, e["message"])
        self.error(*self.headers_only("PUT", "/v1/models/q/versions/1.0.0",
                                      {"Content-Type": "application/octet-stream",
                                       "Content-Length": str(81 * MiB)}), 413, "too_large")
        self.assertEqual(self.ls(), before)
        self.assertEqual(self.s.request("GET", "/v1/models/q")[0], 404)
        for ct in ("application/octet-streamX", "application/octet-stream-x",
                   "application/octet-stream x"):  # the type exactly, not a prefix
            self.error(*self.put("q", "1.0.0", b"abc", ctype=ct), 415, "unsupported_media_type")
        self.assertEqual(self.ls(), before)
        # with the right checksum it goes in, in either case as the registry takes it, and
        # with the type's parameters
        want = json.loads(self.s.cli("show", "ref@1.0.0", "--json").stdout)["version"]["checksum"]
        st, h, b = self.put("q", "1.0.0", blob(5000, "ref"), checksum=want)
        self.assertEqual(st, 201, b)
        self.assertEqual(json.loads(b)["checksum"], want)
        upper = "xxh3-128:" + want[9:].upper()
        self.assertNotEqual(upper, want)
        st, h, b = self.put("q", "1.0.1", blob(5000, "ref"), checksum=upper,
                            ctype="Application/Octet-Stream; foo=bar")
        self.assertEqual(st, 201, b)
        self.assertEqual(json.loads(b)["checksum"], want)
        self.error(*self.put("q", "1.0.2", b"abc", checksum="xxh3-128:" + "A" * 32), 422,
                   "checksum_mismatch")

    def test_64mib_streamed_and_back(self):
        data = blob(64 * MiB, "sixtyfour")
        sha = hashlib.sha256(data).hexdigest()

        def pieces():  # chunked transfer: the server never sees a length
            for i in range(0, len(data), 1000003):
                yield data[i:i + 1000003]

        c = self.s.connection(120)
        c.request("PUT", "/v1/models/big/versions/1.0.0", body=pieces(),
                  headers={"Content-Type": "application/octet-stream"}, encode_chunked=True)
        r = c.getresponse()
        body = r.read()
        c.close()
        self.assertEqual(r.status, 201, body)
        self.assertEqual(json.loads(body)["size"], len(data))
        st, h, got = self.s.request("GET", "/v1/models/big/versions/latest/artifact", timeout=120)
        self.assertEqual(st, 200)
        self.assertEqual(h["mcache-source"], "store")
        self.assertEqual(int(h["content-length"]), len(data))
        self.assertEqual(hashlib.sha256(got).hexdigest(), sha)
        self.assertEqual(h["etag"], '"%s"' % json.loads(body)["checksum"])

    def test_pushes_around_the_gather_buffer(self):
        """An upload comes in pieces the size of a connection's read buffer, gathered into
        writes of 1 MiB: bodies under, at and over one buffer, and several buffers and a bit,
        sent with a length or chunked in odd pieces, are stored byte for byte."""
        for i, n in enumerate((1, MiB - 1, MiB, MiB + 1, 3 * MiB + 12345)):
            data = blob(n, "gather%d" % n)
            version = "1.0.%d" % i
            if i % 2:
                c = self.s.connection(60)
                c.request("PUT", "/v1/models/gather/versions/" + version,
                          body=(data[k:k + 7919] for k in range(0, n, 7919)),
                          headers={"Content-Type": "application/octet-stream"},
                          encode_chunked=True)
                r = c.getresponse()
                st, b = r.status, r.read()
                c.close()
            else:
                st, h, b = self.put("gather", version, data)
            self.assertEqual(st, 201, b)
            self.assertEqual(json.loads(b)["size"], n)
            st, h, got = self.s.request("GET", "/v1/models/gather/versions/%s/artifact" % version)
            self.assertEqual((st, len(got)), (200, n))
            self.assertTrue(got == data, "%d bytes pushed, other bytes stored" % n)

    def test_large_metadata_header_fits(self):
        """A connection's memory (kept small: libmicrohttpd clears it before every request)
        still holds a large Mcache-Meta: 64 params of 700 bytes and a long description, ~48
        KiB."""
        meta = {"description": "d" * 4000,
                "params": {"p%02d" % i: chr(97 + i % 26) * 700 for i in range(64)}}
        self.assertGreater(len(json.dumps(meta)), 48 * 1024)
        st, h, b = self.put("bigmeta", "1.0.0", b"weights", meta)
        self.assertEqual(st, 201, b)
        self.assertEqual(json.loads(b)["params"], meta["params"])

    def test_range_etag_head(self):
        data = blob(10000, "range")
        self.assertEqual(self.put("rg", "1.0.0", data)[0], 201)
        url = "/v1/models/rg/versions/1.0.0/artifact"
        st, h, b = self.s.request("GET", url)
        etag = h["etag"]
        self.assertTrue(etag.startswith('"xxh3-128:'), etag)
        self.assertEqual(h["accept-ranges"], "bytes")
        for rng, lo, hi in (("bytes=10-19", 10, 19), ("bytes=9990-", 9990, 9999),
                            ("bytes=-5", 9995, 9999), ("bytes=9000-20000", 9000, 9999)):
            st, h, b = self.s.request("GET", url, headers={"Range": rng})
            self.assertEqual(st, 206, rng)
            self.assertEqual(b, data[lo:hi + 1], rng)
            self.assertEqual(h["content-range"], "bytes %d-%d/10000" % (lo, hi))
        st, h, b = self.s.request("GET", url, headers={"Range": "bytes=10000-"})
        self.assertEqual(st, 416)
        self.assertEqual(h["content-range"], "bytes */10000")
        self.assertEqual(json.loads(b)["error"]["status"], 416)
        st, h, b = self.s.request("GET", url, headers={"Range": "bytes=0-1,5-6"})
        self.assertEqual((st, b), (200, data))
        st, h, b = self.s.request("GET", url, headers={"If-None-Match": etag})
        self.assertEqual((st, b), (304, b""))
        self.assertEqual(h["etag"], etag)
        st, h, b = self.s.request("GET", url, headers={"If-None-Match": '"xxh3-128:other"'})
        self.assertEqual((st, b), (200, data))
        st, h, b = self.s.request("HEAD", url)
        self.assertEqual((st, b), (200, b""))
        self.assertEqual((h["etag"], int(h["content-length"])), (etag, 10000))

    def test_if_range(self):
        """A resume (Range + If-Range) through an alias that moved gets the whole new version
        (200), not a splice of its bytes onto the old one's."""
        old, new = blob(5000, "ifr-old"), blob(5000, "ifr-new")
        self.assertEqual(self.put("ifr", "1.0.0", old, meta={"aliases": ["cur"]})[0], 201)
        url = "/v1/models/ifr/versions/cur/artifact"
        st, h, b = self.s.request("GET", url)
        etag = h["etag"]
        st, h, b = self.s.request("GET", url, headers={"Range": "bytes=1000-", "If-Range": etag})
        self.assertEqual((st, b), (206, old[1000:]))
        self.assertEqual(self.put("ifr", "2.0.0", new, meta={"aliases": ["cur"]})[0], 201)
        st, h, b = self.s.request("GET", url, headers={"Range": "bytes=1000-", "If-Range": etag})
        self.assertEqual((st, b), (200, new))
        self.assertNotIn("content-range", h)
        for ir in ("W/" + h["etag"], "Thu, 03 Dec 2026 14:00:00 GMT"):
            st, h2, b = self.s.request("GET", url, headers={"Range": "bytes=0-9", "If-Range": ir})
            self.assertEqual((st, b), (200, new), ir)
        st, h, b = self.s.request("GET", url, headers={"Range": "bytes=0-9",
                                                        "If-Range": h["etag"]})
        self.assertEqual((st, b), (206, new[:10]))

    def test_resident_from_arena_while_alias_moves(self):
        a, b = blob(3 * MiB, "res-a"), blob(3 * MiB, "res-b")
        self.assertEqual(self.put("res", "1.0.0", a, {"aliases": ["prod"]})[0], 201)
        self.assertEqual(self.put("res", "2.0.0", b)[0], 201)
        j = self.s.json("POST", "/v1/models/res/versions/1.0.0/load")
        self.assertEqual((j["version"], j["state"]), ("1.0.0", "resident"))
        self.assertEqual(self.s.json("GET", "/v1/models/res/versions/prod")["residency"],
                         "resident")
        c = self.s.connection(60)
        c.request("GET", "/v1/models/res/versions/prod/artifact")
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.getheader("Mcache-Source"), "arena")
        self.assertEqual(r.getheader("Mcache-Version"), "1.0.0")
        first = r.read(1024)
        # the alias moves (through mcached's gate: 2.0.0 is loaded) while the body is sent
        j = self.s.json("PUT", "/v1/models/res/aliases/prod", {"targets": "2.0.0"})
        self.assertEqual(j["to"], "2.0.0")
        rest = r.read()
        c.close()
        self.assertEqual(hashlib.sha256(first + rest).digest(), hashlib.sha256(a).digest())
        st, h, got = self.s.request("GET", "/v1/models/res/versions/prod/artifact")
        self.assertEqual((h["mcache-version"], got == b), ("2.0.0", True))
        # a range of a resident version comes from the arena too
        st, h, got = self.s.request("GET", "/v1/models/res/versions/1.0.0/artifact",
                                    headers={"Range": "bytes=100-199"})
        self.assertEqual((st, h["mcache-source"], got), (206, "arena", a[100:200]))


class Cache(Base):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for v in ("1.0.0", "2.0.0"):
            cls.s.cli("push", "c", v, cls.s.file("c" + v, blob(4096, "c" + v)))

    def test_cache_status_readers_alerts(self):
        st = self.s.json("GET", "/v1/cache")
        self.assertIn("arena", st)
        self.assertIn("models", st)
        self.assertIsInstance(self.s.json("GET", "/v1/readers")["readers"], list)
        self.assertEqual(self.s.json("GET", "/v1/alerts"),
                         json.loads(self.s.cli("alerts", "--json").stdout))
        self.error(*self.s.request("GET", "/v1/alerts?kind=weird"), 400, "bad_request", "weird")

    def test_readers_from_the_arena_without_mcached(self):
        """With mcached stopped, /v1/readers reads the arena's reader table (a worker holds a
        version there); mcached comes back for the other tests."""
        import subprocess
        import textwrap
        from servetest import LIBMCACHE as lib, stop_proc
        if not os.path.exists(lib):
            self.skipTest("libmcache.so is not built (MCACHE_LIB)")
        # A sanitizer build's runtime preloaded in the worker (skips under TSan).
        env = python_env(self.s.env, self)
        self.push_cli("rd", "1.0.0", blob(4096, "rd"))
        self.s.json("POST", "/v1/models/rd/versions/1.0.0/load")
        worker = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent("""
                import ctypes, sys
                lib = ctypes.CDLL(sys.argv[1])
                c = ctypes.c_void_p(); m = ctypes.c_void_p()
                assert lib.mc_attach_dir(sys.argv[2].encode(), b"t", ctypes.byref(c)) == 0
                assert lib.mc_get(c, b"rd", b"1.0.0", ctypes.byref(m)) == 0
                print("held", flush=True)
                sys.stdin.read()
            """), lib, self.s.shm_dir], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env=env)
        try:
            self.assertEqual(worker.stdout.readline().strip(), b"held")
            via_daemon = self.s.json("GET", "/v1/readers")["readers"]
            self.assertIn("rd@1.0.0", [h for r in via_daemon for h in r["holds"]])
            stop_proc(self.s.daemon)
            try:
                rd = self.s.json("GET", "/v1/readers")["readers"]
                self.assertEqual([r["pid"] for r in rd], [worker.pid])
                self.assertEqual(rd[0]["holds"], ["rd@1.0.0"])
            finally:
                self.s.start_daemon()
        finally:
            worker.stdin.close()
            worker.wait(10)
            worker.stdout.close()

    def test_load_pin_evict_stats(self):
        j = self.s.json("POST", "/v1/models/c/versions/1.0.0/load")
        self.assertEqual((j["state"], j["already"]), ("resident", False))
        self.assertTrue(self.s.json("POST", "/v1/models/c/versions/1.0.0/load")["already"])
        j = self.s.json("POST", "/v1/models/c/versions/1.0.0/pin")
        self.assertEqual((j["pinned"], j["daemon"]), (True, True))
        self.error(*self.s.request("POST", "/v1/models/c/versions/1.0.0/evict"), 409)
        self.s.json("POST", "/v1/models/c/versions/1.0.0/unpin")
        j = self.s.json("POST", "/v1/models/c/versions/1.0.0/evict")
        self.assertEqual(j["version"], "1.0.0")
        self.assertEqual(self.s.json("GET", "/v1/models/c/versions/1.0.0")["residency"],
                         "not-resident")
        self.s.json("POST", "/v1/models/c/versions/2.0.0/load")
        j = self.s.json("GET", "/v1/models/c/stats?ref=2.0.0")
        self.assertEqual(j["version"], "2.0.0")
        self.assertEqual([w["window"] for w in j["windows"]], ["1m", "10m", "loaded"])
        self.error(*self.s.request("GET", "/v1/models/c/stats?ref=1.0.0"), 404)
        self.error(*self.s.request("GET", "/v1/models/c/stats?window=0"), 400)
        self.error(*self.s.request("GET", "/v1/models/c/compare?a=1.0.0"), 400)
        self.error(*self.s.request("POST", "/v1/models/c/versions/9.0.0/load"), 404, None,
                   "9.0.0")

    def test_deployments(self):
        self.assertEqual(self.s.json("GET", "/v1/models/c/deployments"),
                         {"name": "c", "deployments": []})
        self.error(*self.s.request("POST", "/v1/models/c/deployments",
                                   {"version": "2.0.0", "alias": "live", "speed": 3}),
                   400, "unknown_field", "speed", "strategy")
        j = self.s.json("POST", "/v1/models/c/deployments",
                        {"version": "2.0.0", "alias": "live", "strategy": "direct"}, expect=201)
        self.assertEqual((j["state"], j["version"]), ("succeeded", "2.0.0"))
        d = self.s.json("GET", "/v1/models/c/deployments")["deployments"]
        self.assertEqual(d, json.loads(self.s.cli("deployments", "c", "--json").stdout)
                         ["deployments"])
        self.error(*self.s.request("POST", "/v1/models/c/deployments/live/pause"), 404)


class Admin(Base):
    def test_rm_gc_fsck_verify(self):
        for v in ("1.0.0", "2.0.0", "3.0.0"):
            self.push_cli("a", v, blob(3000, "a" + v))
        self.s.cli("alias", "a", "prod", "1.0.0", "--no-gate")
        before = self.ls()
        self.error(*self.s.request("DELETE", "/v1/models/a/versions/1.0.0"), 409, None, "prod")
        self.error(*self.s.request("DELETE", "/v1/models/a/versions/1.0.0?force=maybe"), 400)
        self.error(*self.s.request("DELETE", "/v1/models/a/versions/7.0.0"), 404, None, "7.0.0")
        self.error(*self.s.request("POST", "/v1/gc", {"keep": 0}), 400)
        self.error(*self.s.request("POST", "/v1/gc", {}), 400, None, "rule")
        self.error(*self.s.request("POST", "/v1/gc", {"keep": 1, "forever": True}), 400,
                   "unknown_field", "forever")
        self.assertEqual(self.ls(), before)
        j = self.s.json("POST", "/v1/gc", {"name": "a", "keep": 1, "dry_run": True})
        self.assertEqual((j["dry_run"], j["count"]), (True, 1))  # 2.0.0 (3.0.0 newest, 1.0.0 aliased)
        self.assertEqual(self.ls(), before)
        self.assertEqual([x["version"] for x in j["removed"]], ["2.0.0"])
        j = self.s.json("DELETE", "/v1/models/a/versions/3.0.0")
        self.assertEqual((j["removed"][0]["version"], j["bytes"]), ("3.0.0", 3000))
        j = self.s.json("POST", "/v1/fsck", {"checksums": True})
        self.assertEqual((j["clean"], j["problems"]), (True, []))
        j = self.s.json("POST", "/v1/models/a/versions/prod/verify")
        self.assertEqual((j["ok"], j["checked"], j["results"][0]["result"]), (True, 1, "ok"))
        j = self.s.json("DELETE", "/v1/models/a?force=true")
        self.assertEqual(len(j["removed"]), 2)
        self.assertEqual(self.s.request("GET", "/v1/models/a")[0], 404)

    def test_snapshots(self):
        self.push_cli("s", "1.0.0", blob(100, "s1"))
        self.push_cli("s", "2.0.0", blob(100, "s2"))
        self.s.cli("alias", "s", "prod", "1.0.0", "--no-gate")
        j = self.s.json("POST", "/v1/snapshots", {"name": "before"}, expect=201)
        self.assertEqual((j["action"], j["aliases"]), ("create", 1))
        self.error(*self.s.request("POST", "/v1/snapshots", {"name": "before"}), 409)
        self.error(*self.s.request("POST", "/v1/snapshots", {"nom": "x"}), 400, "unknown_field")
        self.s.cli("alias", "s", "prod", "2.0.0", "--no-gate")
        j = self.s.json("POST", "/v1/snapshots/before/restore")
        self.assertEqual(j["moves"], [{"name": "s", "alias": "prod", "from": "2.0.0", "to": "1.0.0"}])
        lst = self.s.json("GET", "/v1/snapshots")["snapshots"]
        self.assertEqual(lst, json.loads(self.s.cli("snapshot", "ls", "--json").stdout))
        self.error(*self.s.request("POST", "/v1/snapshots/nope/restore"), 404, None, "nope")
        self.s.json("DELETE", "/v1/snapshots/before")
        self.assertEqual(self.s.json("GET", "/v1/snapshots")["snapshots"], [])

    def test_method_not_allowed(self):
        st, h, b = self.s.request("PATCH", "/v1/models")
        self.assertIn(st, (400, 405, 501))
        st, h, b = self.s.request("POST", "/v1/models/x/versions")
        self.assertEqual(st, 405, b)
        self.assertIn("GET", h["allow"])


class Actors(Base):
    """Changes made over HTTP carry the token's name and the peer into the audit log, a gated
    alias move through mcached too (ctl alias WHO FROM)."""

    @classmethod
    def setUpClass(cls):
        cls.s = Server(tokens=True)
        cls.s.__enter__()

    def test_tokens_and_actor_in_audit(self):
        j = self.s.json("POST", "/v1/tokens", {"name": "ci", "role": "publisher"}, expect=201)
        self.assertTrue(j["token"].startswith("mct_"))
        ci = j["token"]
        names = [t["name"] for t in self.s.json("GET", "/v1/tokens")["tokens"]]
        self.assertEqual(sorted(names), ["admin", "ci"])
        self.assertNotIn("hash", json.dumps(self.s.json("GET", "/v1/tokens")))
        self.error(*self.s.request("POST", "/v1/tokens", {"name": "ci", "role": "reader"}), 409)
        self.error(*self.s.request("POST", "/v1/tokens", {"name": "x", "role": "king"}), 400)
        st, h, b = self.s.request("PUT", "/v1/models/act/versions/1.0.0", body=b"bytes",
                                  headers={"Content-Type": "application/octet-stream"}, token=ci)
        self.assertEqual(st, 201, b)
        st, h, b = self.s.request("PUT", "/v1/models/act/versions/2.0.0", body=b"bytes 2",
                                  headers={"Content-Type": "application/octet-stream"}, token=ci)
        self.assertEqual(st, 201, b)
        st, h, b = self.s.request("PUT", "/v1/models/act/aliases/prod", body={"targets": "2.0.0"},
                                  token=ci)
        self.assertEqual(st, 200, b)
        self.assertIn("checks", json.loads(b))  # the move went through mcached's gate
        st, h, b = self.s.request("PUT", "/v1/models/act/versions/1.0.0", body=b"again",
                                  headers={"Content-Type": "application/octet-stream"}, token=ci)
        self.assertEqual(st, 409, b)
        # a publisher may not remove
        self.error(*self.s.request("DELETE", "/v1/models/act", token=ci), 403, "forbidden")
        audit = self.s.json("GET", "/v1/audit?model=act")["audit"]
        mine = [a for a in audit if a["who"] == "token:ci"]
        whats = " | ".join(a["what"] + " -> " + a["result"] for a in audit)
        self.assertTrue(any("1.0.0" in a["what"] and a["result"] == "ok" for a in mine), whats)
        moves = [a for a in mine if "prod" in a["what"] and a["result"] == "ok"]
        self.assertTrue(moves, "the gated alias move is not recorded as token:ci: " + whats)
        self.assertTrue(all(a["from"].startswith("127.0.0.1") for a in mine), mine)
        self.assertTrue(any(a["result"].startswith("error") for a in mine), whats)
        self.assertLessEqual(len(self.s.json("GET", "/v1/audit?limit=2")["audit"]), 2)
        self.assertEqual(self.s.json("GET", "/v1/audit?model=act&limit=10000"),
                         json.loads(self.s.cli("audit", "--model", "act", "--json").stdout))
        self.assertEqual(self.s.json("GET", "/v1/tokens"),
                         json.loads(self.s.cli("token", "ls", "--json").stdout))
        self.s.json("DELETE", "/v1/tokens/ci")
        self.error(*self.s.request("GET", "/v1/models", token=ci), 401)
        self.error(*self.s.request("DELETE", "/v1/tokens/ci"), 404, None, "ci")


    def test_deploy_names_no_health_command(self):
        """mcached would run a deploy's health command as its own user: over HTTP it is refused,
        for a publisher and for an admin alike, and nothing runs."""
        pub = self.s.json("POST", "/v1/tokens", {"name": "dep", "role": "publisher"},
                          expect=201)["token"]
        self.push_cli("hc", "1.0.0", b"hc one")
        self.push_cli("hc", "2.0.0", b"hc two")
        self.s.cli("alias", "hc", "prod", "1.0.0", "--no-gate")
        marker = os.path.join(self.s.tmpdir, "ran-health")
        for tok in (pub, None):
            for body in ({"health": ["touch", marker]},
                         {"health": ["touch", marker], "health_timeout_ms": 1000},
                         {"health_timeout_ms": 1000}):
                body.update({"version": "2.0.0", "alias": "prod", "strategy": "direct"})
                self.error(*self.s.request("POST", "/v1/models/hc/deployments", body, token=tok),
                           400, "bad_request", "mcache health set")
        time.sleep(0.5)
        self.assertFalse(os.path.exists(marker))
        self.error(*self.s.request("POST", "/v1/models/hc/deployments",
                                   {"version": "2.0.0", "alias": "prod", "argv": ["x"]},
                                   token=pub), 400, "unknown_field", "argv")
        self.assertEqual(self.s.json("GET", "/v1/models/hc/deployments")["deployments"], [])
        self.s.json("DELETE", "/v1/tokens/dep")

    def test_cache_changes_carry_the_token(self):
        """pin, unpin, deploy and deploy-ctl go through mcached, which records the token (WHO
        FROM), not its own uid; a load and an evict, which no registry record tells of, are
        recorded by mcache-serve."""
        pub = self.s.json("POST", "/v1/tokens", {"name": "rel", "role": "admin"},
                          expect=201)["token"]
        self.push_cli("wh", "1.0.0", b"wh one")
        self.push_cli("wh", "2.0.0", b"wh two")
        self.s.cli("alias", "wh", "prod", "1.0.0", "--no-gate")
        for op in ("pin", "unpin"):
            st, h, b = self.s.request("POST", "/v1/models/wh/versions/1.0.0/" + op, token=pub)
            self.assertEqual(st, 200, b)
        for op in ("load", "evict"):  # cache changes with no registry record of their own
            st, h, b = self.s.request("POST", "/v1/models/wh/versions/2.0.0/" + op, token=pub)
            self.assertEqual(st, 200, b)
        st, h, b = self.s.request("POST", "/v1/models/wh/deployments",
                                  {"version": "2.0.0", "alias": "prod", "strategy": "canary",
                                   "steps": [50, 100], "interval_ms": 600000}, token=pub)
        self.assertEqual(st, 201, b)
        st, h, b = self.s.request("POST", "/v1/models/wh/deployments/prod/abort", token=pub)
        self.assertEqual(st, 200, b)
        audit = self.s.json("GET", "/v1/audit?limit=10000")["audit"]
        mine = [a["what"] for a in audit if a["who"] == "token:rel"]
        whats = " | ".join(a["who"] + ": " + a["what"] for a in audit)
        self.assertIn("flags wh@1.0.0 pinned=true", mine, whats)
        self.assertIn("flags wh@1.0.0 pinned=false", mine, whats)
        self.assertIn("load wh@2.0.0", mine, whats)
        self.assertIn("evict wh@2.0.0", mine, whats)
        self.assertTrue(any(w.startswith("deploy wh@2.0.0 to prod") for w in mine), whats)
        self.assertTrue(any(w.startswith("deploy-update") and "aborted" in w for w in mine), whats)
        self.assertTrue(all(a["from"].startswith("127.0.0.1") for a in audit
                            if a["who"] == "token:rel"), whats)
        self.s.json("DELETE", "/v1/tokens/rel")

class NoDaemon(Base):
    daemon = False

    def test_cache_routes_say_no_daemon(self):
        for method, path in (("GET", "/v1/cache"), ("POST", "/v1/models/m/versions/1.0.0/load"),
                             ("GET", "/v1/models/m/stats")):
            self.error(*self.s.request(method, path), 503, "no_daemon", "mcached")
        # readers come from the arena itself without mcached; here there is none
        self.error(*self.s.request("GET", "/v1/readers"), 404, "not_found", "mcache.t")

    def test_push_and_download_without_daemon(self):
        data = blob(50000, "nd")
        self.assertEqual(self.put("nd", "1.0.0", data, {"aliases": ["prod"], "pin": True})[0], 201)
        st, h, b = self.s.request("GET", "/v1/models/nd/versions/prod/artifact")
        self.assertEqual((st, h["mcache-source"], b), (200, "store", data))
        j = self.s.json("POST", "/v1/models/nd/versions/1.0.0/unpin")
        self.assertEqual((j["daemon"], j["pinned"]), (False, False))
        # an alias move without mcached is the registry's own
        self.push_cli("nd", "2.0.0", blob(10, "nd2"))
        j = self.s.json("PUT", "/v1/models/nd/aliases/prod", {"targets": "2.0.0"})
        self.assertEqual((j["from"], j["to"]), ("1.0.0", "2.0.0"))


class Memory(Base):
    """A 512 MiB push in constant memory: the server's RSS does not grow with the body."""

    def test_512mib_push_bounded_rss(self):
        size, piece = 512 * MiB, 4 * MiB
        chunk = blob(piece, "mem")
        pid = self.s.proc.pid

        def rss():
            with open("/proc/%d/status" % pid) as f:
                return {k: int(v.split()[0]) for k, v in
                        (line.split(":", 1) for line in f) if k in ("VmRSS", "VmHWM")}

        # warm the server's threads and buffers with a small push first
        self.assertEqual(self.put("warm", "1.0.0", chunk)[0], 201)
        start = rss()

        def pieces():
            for i in range(size // piece):
                yield chunk

        c = self.s.connection(300)
        c.request("PUT", "/v1/models/mem/versions/1.0.0", body=pieces(),
                  headers={"Content-Type": "application/octet-stream",
                           "Content-Length": str(size)})
        r = c.getresponse()
        body = r.read()
        c.close()
        self.assertEqual(r.status, 201, body)
        self.assertEqual(json.loads(body)["size"], size)
        end = rss()
        grew = end["VmHWM"] - start["VmRSS"]
        self.assertLess(grew, 64 * 1024, "mcache-serve's peak RSS grew by %d KiB for a 512 MiB "
                        "push (%s -> %s)" % (grew, start, end))


class PushFsync(unittest.TestCase):
    """A push's fsync (mc_registry_upload_finish) runs without the registry lock, so a request
    that needs the registry is not held up while a big upload reaches the disk. The fsync is
    made to take 5 s (tests/serve/slow_fsync.c, preloaded), as a 1.5 GB one did on a disk."""

    def test_get_during_a_push_fsync_is_not_blocked(self):
        shim = os.environ.get("MCACHE_TEST_SLOW_FSYNC")
        if not shim or not os.path.exists(shim):
            self.skipTest("the slow-fsync shim is not built (MCACHE_TEST_SLOW_FSYNC)")
        env = {"LD_PRELOAD": shim, "MCACHE_TEST_SLOW_FSYNC_MS": "5000",
               "ASAN_OPTIONS": "verify_asan_link_order=0:" + os.environ.get("ASAN_OPTIONS", "")}
        data = blob(4 * MiB, "fsync")
        with Server(daemon=False, env=env) as s:
            done = []
            t = threading.Thread(target=lambda: done.append(s.request(
                "PUT", "/v1/models/slow/versions/1.0.0", body=data,
                headers={"Content-Type": "application/octet-stream"}, timeout=60)))
            t.start()
            tmp = os.path.join(s.store, "tmp")

            def staged_whole():
                try:
                    return any(n.startswith("push-") and
                               os.path.getsize(os.path.join(tmp, n)) == len(data)
                               for n in os.listdir(tmp))
                except OSError:
                    return False
            wait_for("the push's staged file, whole", staged_whole, timeout=30)
            time.sleep(0.3)  # the push is in its fsync now (5 s)
            t0 = time.monotonic()
            st, h, body = s.request("GET", "/v1/models", timeout=30)
            took = time.monotonic() - t0
            t.join(60)
            self.assertEqual(st, 200, body)
            self.assertLess(took, 2.5, "GET /v1/models waited %.1f s for a push's fsync" % took)
            self.assertTrue(done, "the push did not answer")
            self.assertEqual(done[0][0], 201, done[0][2])


if __name__ == "__main__":
    need_binaries()
    unittest.main(verbosity=2)
