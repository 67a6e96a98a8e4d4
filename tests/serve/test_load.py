#!/usr/bin/env python3
"""A bounded wrk run on loopback (wrk -t2 -c16 -d3s): every answer 2xx, no
socket errors; then a second run, after which mcache-serve's RSS
(/proc/PID/status VmRSS) has not grown past a bound: no leak per request.
Against /healthz, a metadata GET (/v1/models/{name}) and a small download,
when those routes are in this build."""
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servetest  # noqa: E402
from servetest import Server, rss_kib  # noqa: E402

DURATION = "3s"
# What a second run may add to the RSS: allocator caches settle in the first
# run; a leak of even 100 bytes a request would pass this over ~50k requests.
GROWTH_KIB = 4096


def wrk(url, path):
    p = subprocess.run(["wrk", "-t2", "-c16", "-d" + DURATION, "--latency", "--timeout", "5s",
                        url + path], capture_output=True, text=True, timeout=60)
    return p


class Load(unittest.TestCase):
    def setUp(self):
        servetest.need_binaries()
        if not shutil.which("wrk"):
            self.skipTest("wrk is not installed (Debian: wrk)")

    def check_run(self, srv, path):
        p = wrk(srv.url, path)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        out = p.stdout
        self.assertNotIn("Non-2xx or 3xx responses", out, out)
        self.assertNotIn("Socket errors", out, out)
        m = re.search(r"(\d+) requests in", out)
        self.assertTrue(m, out)
        self.assertGreater(int(m.group(1)), 100, out)
        return int(m.group(1))

    def test_wrk_no_errors_no_leak(self):
        with Server(args=["--threads", "2"]) as srv:
            paths = ["/healthz"]
            data = srv.file("m.bin", os.urandom(64 * 1024))
            srv.cli("push", "m", "1.0.0", data)
            if srv.request("GET", "/v1/models/m")[0] == 200:
                paths.append("/v1/models/m")
            if srv.request("GET", "/v1/models/m/versions/1.0.0/artifact")[0] == 200:
                paths.append("/v1/models/m/versions/1.0.0/artifact")
            # Round one warms up (allocator caches, thread-local state, the arena's reader
            # slots); round two must not grow the RSS past the bound.
            first = {path: self.check_run(srv, path) for path in paths}
            before = rss_kib(srv.proc.pid)
            second = {path: self.check_run(srv, path) for path in paths}
            after = rss_kib(srv.proc.pid)
            # Under a sanitizer the RSS measures its runtime (ASan keeps freed memory in
            # quarantine, up to 256 MiB; TSan's shadow grows): there LeakSanitizer's
            # report at exit, which fails stop_serve() below, is the leak check.
            if not os.environ.get("MCACHE_PY_PRELOAD"):
                self.assertLess(after - before, GROWTH_KIB,
                                "RSS %d KiB -> %d KiB over a second round of %s (first %s)"
                                % (before, after, second, first))
            # Still healthy, and it stops cleanly after the load.
            self.assertEqual(srv.request("GET", "/readyz")[0], 200)
            self.assertEqual(srv.stop_serve(), 0, srv.logs())


if __name__ == "__main__":
    unittest.main(verbosity=2)
