#!/usr/bin/env python3
"""mcache-serve over the fleet's backends (issue 15): --registry postgres://...
and --artifacts s3://BUCKET/PREFIX, against real servers (run under
tests/fleet/pg.sh run tests/fleet/rgw.sh run: MCACHE_TEST_PG_URL,
MCACHE_TEST_PG_DIR and AWS_* set; exit 77 without them).

One server (mcached and mcache-serve on one store, both on the shared
registry), checked in order: a push over HTTP lands in the object store,
content-addressed, and is registered; a download streams from the store
(whole, a Range, If-None-Match, If-Range, HEAD) with the bytes checked; after
a load it comes from the arena; verify over HTTP reads the object; an object
overwritten in the store fails verify, and its whole download is cut short
(never a complete body of wrong bytes); PostgreSQL stopped: reads answered,
writes 503 naming the database, /readyz 503 saying what failed; it comes back
by itself; mcache-serve started while PostgreSQL is down serves the replica,
and switches to the database by itself once it is back.
"""
import hashlib
import http.client
import json
import os
import re
import subprocess
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servetest  # noqa: E402
from servetest import Server, wait_for  # noqa: E402

MiB = 1 << 20
HERE = os.path.dirname(os.path.abspath(__file__))
PG_SH = os.path.join(HERE, "..", "fleet", "pg.sh")
BUCKET = "mcserve"
PREFIX = "p"


def s3curl(*args, check=True):
    env = os.environ
    cmd = ["curl", "-sS", "--aws-sigv4", "aws:amz:%s:s3" % env["AWS_REGION"],
           "--user", "%s:%s" % (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]),
           "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "-w", "\n%{http_code}"] + list(args)
    p = subprocess.run(cmd, capture_output=True, timeout=60)
    body, _, code = p.stdout.rpartition(b"\n")
    if check and (p.returncode != 0 or not code.startswith(b"2")):
        raise AssertionError("curl %s -> %d %s: %s%s" % (" ".join(args), p.returncode, code,
                                                         body[-2000:], p.stderr))
    return int(code or 0), body


def objects(prefix):
    """The keys under prefix in the bucket (ListObjectsV2)."""
    # libcurl 7.88 signs the query as written: sorted, every value percent-encoded
    _, body = s3curl("%s/%s?list-type=2&prefix=%s" % (os.environ["AWS_ENDPOINT_URL"], BUCKET,
                                                      urllib.parse.quote(prefix, safe="")))
    return re.findall(rb"<Key>([^<]+)</Key>", body)


def hexsum(checksum):
    return checksum.split(":", 1)[1]


class Fleet(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = os.environ["MCACHE_TEST_PG_URL"]
        cls.pgdir = os.environ["MCACHE_TEST_PG_DIR"]
        s3curl("-X", "PUT", "%s/%s" % (os.environ["AWS_ENDPOINT_URL"], BUCKET))
        env = {"MCACHE_REGISTRY": cls.pg, "MCACHE_ARTIFACTS": "s3://%s/%s" % (BUCKET, PREFIX)}
        for k in ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            env[k] = os.environ[k]
        cls.s = Server(env=env, size="64M", wait=False)
        subprocess.run([servetest.MCACHE, "db", "migrate"], env=cls.s.env, check=True,
                       capture_output=True, timeout=60)
        try:
            cls.s.start()
            wait_for("mcache-serve's /readyz", lambda: cls.s._probe("/readyz") == 200,
                     proc=cls.s.proc, log=cls.s.logs)
        except BaseException:
            cls.s.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        subprocess.run([PG_SH, "resume", cls.pgdir], capture_output=True, timeout=60)
        cls.s.stop()

    def push(self, name, version, data, expect=201):
        try:
            st, h, body = self.s.request(
                "PUT", "/v1/models/%s/versions/%s" % (name, version), body=data,
                headers={"Content-Type": "application/octet-stream"}, timeout=120)
        except OSError as e:
            raise AssertionError("push %s@%s: %s\n%s" % (name, version, e, self.s.logs()))
        self.assertEqual(st, expect, body[-2000:])
        return h, json.loads(body)

    def reads_but_no_push(self, name, data):
        """With the database down: name@1.0.0's bytes download, a push of name@2.0.0 is
        503 unavailable; its message."""
        st, _, body = self.get("/v1/models/%s/versions/1.0.0/artifact" % name)
        self.assertEqual((st, body), (200, data))
        st, _, body = self.s.request(
            "PUT", "/v1/models/%s/versions/2.0.0" % name, body=b"x" * 100,
            headers={"Content-Type": "application/octet-stream"})
        self.assertEqual(st, 503, body)
        err = json.loads(body)["error"]
        self.assertEqual(err["code"], "unavailable")
        self.assertIn("nothing was pushed", err["message"])
        return err["message"]

    def get(self, path, headers=None):
        return self.s.request("GET", path, headers=headers, timeout=120)

    def test_1_push_download_verify(self):
        data = os.urandom(5 * MiB + 12345)
        _, v = self.push("fm", "1.0.0", data)
        ck = v["checksum"]
        key = "%s/xxh3-128/%s" % (PREFIX, hexsum(ck))
        self.assertIn(key.encode(), objects(PREFIX + "/xxh3-128/"),
                      "the pushed object is not in the store under its checksum")
        # the same bytes again: the same object, stored once
        self.push("fm", "1.0.1", data)
        self.assertEqual(objects(PREFIX + "/xxh3-128/").count(key.encode()), 1)

        art = "/v1/models/fm/versions/1.0.0/artifact"
        t0 = time.monotonic()
        st, h, body = self.get(art)
        secs = time.monotonic() - t0
        self.assertEqual(st, 200)
        self.assertEqual(h["mcache-source"], "remote")
        self.assertEqual(h["etag"], '"%s"' % ck)
        self.assertEqual(hashlib.sha256(body).digest(), hashlib.sha256(data).digest())
        print("download from the store: %.1f MiB in %.3f s (%.0f MiB/s)" %
              (len(data) / MiB, secs, len(data) / MiB / max(secs, 1e-6)))

        # a Range across windows
        off, end = MiB - 7, 3 * MiB + 11
        st, h, body = self.get(art, {"Range": "bytes=%d-%d" % (off, end)})
        self.assertEqual(st, 206)
        self.assertEqual(h["content-range"], "bytes %d-%d/%d" % (off, end, len(data)))
        self.assertEqual(body, data[off:end + 1])
        st, _, body = self.get(art, {"Range": "bytes=-100"})
        self.assertEqual((st, body), (206, data[-100:]))
        st, _, _ = self.get(art, {"Range": "bytes=%d-" % len(data)})
        self.assertEqual(st, 416)
        # If-Range with another tag: the whole body
        st, _, body = self.get(art, {"Range": "bytes=0-9", "If-Range": '"xxh3-128:0"'})
        self.assertEqual((st, len(body)), (200, len(data)))
        st, h, body = self.get(art, {"If-None-Match": '"%s"' % ck})
        self.assertEqual((st, body), (304, b""))
        st, h, body = self.s.request("HEAD", art)
        self.assertEqual((st, body), (200, b""))
        self.assertEqual(int(h["content-length"]), len(data))
        self.assertEqual(h["mcache-source"], "remote")

        # verify over HTTP reads the object in the store
        j = self.s.json("POST", "/v1/models/fm/versions/1.0.0/verify", {})
        self.assertTrue(j["ok"], j)
        self.assertEqual(j["results"][0]["result"], "ok")
        self.assertEqual(j["bytes"], len(data))

        # loaded (mcached reads the store into the arena): from the arena
        self.s.json("POST", "/v1/models/fm/versions/1.0.0/load")
        st, h, body = self.get(art)
        self.assertEqual((st, h["mcache-source"]), (200, "arena"))
        self.assertEqual(body, data)

    def test_2_corrupted_object(self):
        data = os.urandom(3 * MiB + 5)
        _, v = self.push("fc", "1.0.0", data)
        bad = bytearray(data)
        bad[2 * MiB + 3] ^= 0xFF  # in the last window, and the same size
        url = "%s/%s/%s/xxh3-128/%s" % (os.environ["AWS_ENDPOINT_URL"], BUCKET, PREFIX,
                                         hexsum(v["checksum"]))
        path = self.s.file("bad.bin", bytes(bad))
        s3curl("-T", path, url, "-o", "/dev/null")

        # The whole body: cut short, never complete with the wrong bytes.
        c = self.s.connection(120)
        try:
            c.request("GET", "/v1/models/fc/versions/1.0.0/artifact")
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            with self.assertRaises(http.client.IncompleteRead):
                r.read()
        finally:
            c.close()
        self.assertIn("hashes to", self.s.serve_log())
        # The resume (a Range, which cannot be checked) of what was cut is refused.
        st, _, body = self.get("/v1/models/fc/versions/1.0.0/artifact",
                               {"Range": "bytes=%d-" % (2 * MiB)})
        self.assertEqual(st, 422, body)
        self.assertIn("failed its checksum", json.loads(body)["error"]["message"])

        j = self.s.json("POST", "/v1/models/fc/versions/1.0.0/verify", {})
        self.assertFalse(j["ok"], j)
        self.assertEqual(j["results"][0]["result"], "mismatch", j)
        self.assertIn("object store", j["results"][0]["message"])

        # The right bytes with more after them (the object grew): a mismatch too.
        s3curl("-T", self.s.file("long.bin", data + b"junk"), url, "-o", "/dev/null")
        j = self.s.json("POST", "/v1/models/fc/versions/1.0.0/verify", {})
        self.assertFalse(j["ok"], j)
        self.assertEqual(j["results"][0]["result"], "mismatch", j)
        self.assertIn("longer than the %d bytes" % len(data), j["results"][0]["message"])

        # The good bytes back under their key: verify passes and clears the mark.
        s3curl("-T", self.s.file("good.bin", data), url, "-o", "/dev/null")
        self.assertTrue(self.s.json("POST", "/v1/models/fc/versions/1.0.0/verify", {})["ok"])
        st, _, body = self.get("/v1/models/fc/versions/1.0.0/artifact")
        self.assertEqual((st, body), (200, data))

    def test_3_database_down(self):
        data = os.urandom(MiB)
        self.push("fd", "1.0.0", data)
        subprocess.run([PG_SH, "pause", self.pgdir], check=True, capture_output=True, timeout=60)
        try:
            # reads: from the state last seen (and the bytes from the store)
            self.assertEqual(self.s.json("GET", "/v1/models/fd")["name"], "fd")
            # writes: 503 naming the database, nothing changed
            msg = self.reads_but_no_push("fd", data)
            self.assertIn("registry database", msg)
            st, _, body = self.s.request("POST", "/v1/snapshots", body={"name": "down"})
            self.assertEqual(st, 503, body)
            self.assertIn("registry database", json.loads(body)["error"]["message"])
            # /readyz says what failed and what to do
            st, _, body = self.s.request("GET", "/readyz", token="")
            self.assertEqual(st, 503, body)
            ready = json.loads(body)
            self.assertIn("changes are refused", ready["checks"]["registry"])
            self.assertIn("bring the database back", ready["checks"]["registry"])
        finally:
            subprocess.run([PG_SH, "resume", self.pgdir], check=True, capture_output=True,
                           timeout=60)
        wait_for("/readyz once PostgreSQL is back", lambda: self.s._probe("/readyz") == 200,
                 timeout=60, proc=self.s.proc, log=self.s.logs)
        self.push("fd", "2.0.0", os.urandom(1000))

    def test_4_started_from_replica(self):
        """Started with PostgreSQL down: the replica, read-only; PostgreSQL back: it serves
        the database by itself (no restart), and a download streaming from the object store
        through the replica's handle meanwhile finishes whole."""
        # more than the sockets' buffers hold: the download is still reading when it switches
        data = os.urandom(24 * MiB + 3)
        self.push("fr", "1.0.0", data)
        # mcached keeps the host's replica every 2 s: wait until it holds fr
        def replica_has():
            d = os.path.join(self.s.store, "replica")
            for root, _, files in os.walk(d):
                for f in files:
                    try:
                        with open(os.path.join(root, f), "rb") as fh:
                            if b'"fr"' in fh.read():
                                return True
                    except OSError:
                        pass
            return False
        wait_for("the replica to hold fr", replica_has, timeout=30)
        self.s.stop_serve()
        subprocess.run([PG_SH, "pause", self.pgdir], check=True, capture_output=True, timeout=60)
        d = None
        try:
            self.s.wait = False
            self.s.start_serve()
            self.assertIn("unreachable", self.s.serve_log()[self.s.log_offset:])
            msg = self.reads_but_no_push("fr", data)
            self.assertIn("tries the database again every 2 s", msg)
            st, _, body = self.s.request("GET", "/readyz", token="")
            self.assertEqual(st, 503, body)
            self.assertIn("replica", json.loads(body)["checks"]["registry"])
            # verify reads the object through the replica's handle
            j = self.s.json("POST", "/v1/models/fr/versions/1.0.0/verify", {})
            self.assertTrue(j["ok"], j)
            # a download begun on the replica's handle, its first MiB read
            d = self.s.connection(120)
            d.request("GET", "/v1/models/fr/versions/1.0.0/artifact")
            r = d.getresponse()
            self.assertEqual(r.status, 200)
            got = r.read(MiB)
        finally:
            subprocess.run([PG_SH, "resume", self.pgdir], check=True, capture_output=True,
                           timeout=60)
        # back by itself, without a restart (the same process)
        proc = self.s.proc
        wait_for("/readyz once PostgreSQL is back, without a restart",
                 lambda: self.s._probe("/readyz") == 200, timeout=90, proc=proc,
                 log=self.s.logs)
        self.assertIs(self.s.proc, proc)
        self.assertIsNone(proc.poll())
        self.assertRegex(self.s.serve_log()[self.s.log_offset:],
                         r"the registry database answers \(after [0-9.]+ s, \d+ tries\): "
                         r"serving it at generation \d+ instead of this host's replica")
        # the download goes on through the replaced handle, to its last byte, hashed whole;
        # then that handle is closed
        self.assertIn("reads from the object store still going through the replica's handle "
                      "(downloads, verify): 1;", self.s.serve_log()[self.s.log_offset:])
        got += r.read()
        d.close()
        self.assertEqual(len(got), len(data))
        self.assertTrue(got == data, "the download's bytes differ after the switch")
        wait_for("the replaced handle's close", lambda: "the replaced registry handle is closed"
                 in self.s.serve_log()[self.s.log_offset:], proc=proc, log=self.s.logs)
        # writes work again, and what this server writes is the database's
        _, v = self.push("fr", "2.0.0", os.urandom(100))
        out = self.s.cli("show", "fr@2.0.0", "--json")
        self.assertEqual(json.loads(out.stdout)["version"]["checksum"], v["checksum"])
        st, _, body = self.s.request("GET", "/readyz", token="")
        self.assertEqual(st, 200, body)

    def test_8_store_stalls_mid_transfer(self):
        """The gateway stopped (SIGSTOP: it answers nothing, the connection stays open)
        while a download streams from it, mcache-serve on one libmicrohttpd thread: the
        window is read on a thread of its own, so /healthz still answers at once; SIGTERM
        stops mcache-serve within seconds, the download cut short (a prefix of the right
        bytes, never all of them); the gateway back, a new download is whole."""
        import signal
        import threading
        big = os.urandom(24 * MiB + 3)
        self.push("fs", "1.0.0", big)
        self.s.stop_serve()
        self.s.start_serve(extra=["--threads", "1"])
        gw = int(os.environ["RGW_GATEWAY_PID"])
        d = self.s.connection(120)
        d.request("GET", "/v1/models/fs/versions/1.0.0/artifact")
        r = d.getresponse()
        self.assertEqual((r.status, r.getheader("Mcache-Source")), (200, "remote"))
        got = [r.read(MiB)]
        self.assertEqual(got[0], big[:MiB])
        done = {}

        def rest():
            try:
                while True:
                    b = r.read(MiB)
                    if not b:
                        break
                    got.append(b)
                done["end"] = "eof"
            except http.client.IncompleteRead as e:
                got.append(e.partial)
                done["end"] = "IncompleteRead"
            except OSError as e:
                done["end"] = type(e).__name__
        os.kill(gw, signal.SIGSTOP)
        try:
            t = threading.Thread(target=rest, daemon=True)
            t.start()
            # the download stalls (the store answers nothing); meanwhile, the one thread
            # answers /healthz: over 4 s, every probe within 2 s
            worst, t0 = 0.0, time.monotonic()
            while time.monotonic() - t0 < 4:
                p0 = time.monotonic()
                st, _, _ = self.s.request("GET", "/healthz", token="", timeout=2)
                worst = max(worst, time.monotonic() - p0)
                self.assertEqual(st, 200)
            print("\n/healthz with the store stalled mid-download: slowest %.3f s" % worst)
            self.assertNotIn("end", done, "the download ended with the gateway stopped")
            self.assertLess(sum(map(len, got)), len(big))
            t0 = time.monotonic()
            rc = self.s.stop_serve()
            secs = time.monotonic() - t0
            print("SIGTERM to exit with a window read stalled: %.3f s" % secs)
            self.assertEqual(rc, 0, self.s.logs())
            self.assertLess(secs, 5)
            t.join(30)
            # closed short of its Content-Length (read(amt) gives b"" there, no exception)
            self.assertIn(done.get("end"), ("eof", "IncompleteRead"))
            body = b"".join(got)
            self.assertLess(len(body), len(big))
            self.assertEqual(body, big[:len(body)], "the cut download's bytes are wrong")
            d.close()
        finally:
            os.kill(gw, signal.SIGCONT)
            if self.s.proc:
                self.s.stop_serve()
            self.s.start_serve()
        st, h, body = self.get("/v1/models/fs/versions/1.0.0/artifact")
        self.assertEqual((st, h["mcache-source"]), (200, "remote"))
        self.assertEqual(hashlib.sha256(body).digest(), hashlib.sha256(big).digest())

    def test_9_store_dies_mid_transfer(self):
        """Last (the gateway does not come back): the gateway killed (-9) while a download
        streams from it and a push streams into it: the download is cut short, the push
        is 503 and nothing is registered."""
        big = os.urandom(24 * MiB + 1)
        self.push("fk", "1.0.0", big)
        d = self.s.connection(120)
        d.request("GET", "/v1/models/fk/versions/1.0.0/artifact")
        r = d.getresponse()
        self.assertEqual((r.status, r.getheader("Mcache-Source")), (200, "remote"))
        got = r.read(MiB)
        self.assertEqual(got, big[:MiB])

        p = self.s.connection(120)
        total = 40 * MiB
        p.putrequest("PUT", "/v1/models/fk/versions/2.0.0")
        p.putheader("Content-Type", "application/octet-stream")
        p.putheader("Content-Length", str(total))
        p.endheaders()
        chunk = os.urandom(MiB)
        sent = 0
        try:
            for _ in range(20):
                p.send(chunk)
                sent += MiB
            os.kill(int(os.environ["RGW_GATEWAY_PID"]), 9)
            while sent < total:
                p.send(chunk)
                sent += MiB
        except OSError:
            pass  # the server answered and closed before the whole body
        resp = p.getresponse()
        body = resp.read()
        p.close()
        self.assertEqual(resp.status, 503, body)
        self.assertIn("nothing was registered", json.loads(body)["error"]["message"])
        st, _, _ = self.get("/v1/models/fk/versions/2.0.0")
        self.assertEqual(st, 404)

        with self.assertRaises(http.client.IncompleteRead):
            r.read()
        d.close()
        wait_for("the cut download's line in the log",
                 lambda: "the download was cut short" in self.s.serve_log(),
                 proc=self.s.proc, log=self.s.logs)
        # a download begun with the store down: 503 naming it (its first window is read
        # before the headers go); HEAD reads nothing from the store
        st, _, body = self.get("/v1/models/fk/versions/1.0.0/artifact")
        self.assertEqual(st, 503, body)
        self.assertIn("object store", json.loads(body)["error"]["message"])
        st, h, _ = self.s.request("HEAD", "/v1/models/fk/versions/1.0.0/artifact")
        self.assertEqual((st, int(h["content-length"])), (200, len(big)))


if __name__ == "__main__":
    servetest.need_binaries()
    missing = [k for k in ("MCACHE_TEST_PG_URL", "MCACHE_TEST_PG_DIR", "AWS_ENDPOINT_URL")
               if not os.environ.get(k)]
    if missing:
        print("skip: %s not set: run under tests/fleet/pg.sh run tests/fleet/rgw.sh run"
              % ", ".join(missing))
        sys.exit(77)
    unittest.main(verbosity=2)
