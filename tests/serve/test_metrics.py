#!/usr/bin/env python3
"""GET /metrics: valid Prometheus text (promtool check metrics), HTTP
requests counted by route pattern, method and code, the latency histogram
consistent (_bucket cumulative, +Inf = _count), the cache's numbers from
mcached's status, per-version serving statistics from mc_report, and
mcache_daemon_up 0 (still valid) without mcached."""
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servetest  # noqa: E402
from servetest import LIBMCACHE, Server  # noqa: E402

# A worker: attach, hold NAME@REF, report N requests (one failed), release.
REPORTER = r"""
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.mc_last_error.restype = ctypes.c_char_p
c = ctypes.c_void_p(); m = ctypes.c_void_p()
rc = lib.mc_attach_dir(sys.argv[2].encode(), sys.argv[3].encode(), ctypes.byref(c))
assert rc == 0, lib.mc_last_error()
rc = lib.mc_get(c, sys.argv[4].encode(), sys.argv[5].encode(), ctypes.byref(m))
assert rc == 0, lib.mc_last_error()
n = int(sys.argv[6])
for i in range(n):
    rc = lib.mc_report(m, ctypes.c_uint64(2000000), 0 if i == 0 else 1, ctypes.c_uint64(10))
    assert rc == 0, (rc, lib.mc_last_error())
lib.mc_release(m)
lib.mc_detach(c)
"""


def samples(text):
    """{(name, frozenset(labels)): value} from exposition text."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
        assert m, line
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def get(s, name, **labels):
    return s.get((name, frozenset(labels.items())))


class Metrics(unittest.TestCase):
    def setUp(self):
        servetest.need_binaries()
        if not shutil.which("promtool"):
            self.skipTest("promtool is not installed (Debian: prometheus)")

    def scrape(self, srv):
        st, h, body = srv.request("GET", "/metrics")
        self.assertEqual(st, 200, body)
        self.assertEqual(h["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        text = body.decode()
        p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, "promtool:\n%s%s\n---\n%s" % (p.stdout, p.stderr, text))
        return text, samples(text)

    def test_with_daemon(self):
        with Server() as srv:
            path = srv.file("m.bin", os.urandom(200000))
            srv.cli("push", "m", "1.0.0", path)
            srv.cli("load", "m@1.0.0")
            for _ in range(3):
                self.assertEqual(srv.request("GET", "/healthz")[0], 200)
            self.assertEqual(srv.request("GET", "/nope")[0], 404)
            self.assertEqual(srv.request("POST", "/healthz")[0], 405)
            r = subprocess.run([sys.executable, "-c", REPORTER, LIBMCACHE, srv.shm_dir, srv.cache,
                                "m", "1.0.0", "7"], capture_output=True, text=True, timeout=60,
                               env=servetest.python_env(srv.env, self))
            self.assertEqual(r.returncode, 0, r.stderr)

            def reported():
                text, s = self.scrape(srv)
                return (text, s) if get(s, "mcache_serving_requests_total", model="m",
                                        version="1.0.0") == 7 else None
            text, s = servetest.wait_for("the reported requests in /metrics", reported,
                                         proc=srv.proc, log=srv.logs)

            # HTTP requests by route pattern, method, code.
            self.assertEqual(get(s, "mcache_http_requests_total", route="/healthz", method="GET",
                                 code="200"), 3)
            self.assertEqual(get(s, "mcache_http_requests_total", route="unmatched",
                                 method="GET", code="404"), 1)
            # A 405 on a known path counts under its route.
            self.assertEqual(get(s, "mcache_http_requests_total", route="/healthz",
                                 method="POST", code="405"), 1)
            self.assertIsNone(get(s, "mcache_http_requests_total", route="unmatched",
                                  method="POST", code="405"))
            # The histogram: cumulative buckets, +Inf equal to _count.
            buckets = sorted(((float(dict(k[1])["le"]), v) for k, v in s.items()
                              if k[0] == "mcache_http_request_duration_seconds_bucket"
                              and dict(k[1])["route"] == "/healthz"), key=lambda x: x[0])
            self.assertGreater(len(buckets), 5)
            self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets))
            self.assertEqual(buckets[-1], (float("inf"), 4))  # 3 GETs and the 405
            self.assertEqual(get(s, "mcache_http_request_duration_seconds_count",
                                 route="/healthz"), 4)
            self.assertGreater(get(s, "mcache_http_request_duration_seconds_sum",
                                   route="/healthz"), 0)
            # The cache, from mcached.
            self.assertEqual(get(s, "mcache_daemon_up"), 1)
            self.assertEqual(get(s, "mcache_resident_versions"), 1)
            self.assertEqual(get(s, "mcache_loads_total"), 1)
            self.assertEqual(get(s, "mcache_load_bytes_total"), 200000)
            self.assertEqual(get(s, "mcache_arena_size_bytes"), 64 << 20)
            self.assertGreaterEqual(get(s, "mcache_arena_data_used_bytes"), 200000)
            self.assertGreater(get(s, "mcache_arena_largest_free_extent_bytes"), 0)
            for name in ("mcache_arena_data_free_bytes", "mcache_evictions_total",
                         "mcache_loads_failed_total", "mcache_readers", "mcache_readers_stalled",
                         "mcache_control_requests_total", "mcache_registry_generation",
                         "mcache_load_seconds_total"):
                self.assertIsNotNone(get(s, name), name)
            self.assertEqual(get(s, "mcache_version_bytes", model="m", version="1.0.0",
                                 state="resident"), 200000)
            # Serving statistics (mc_report): 7 requests, 1 failed, 70 units, 2 ms.
            self.assertEqual(get(s, "mcache_serving_errors_total", model="m", version="1.0.0"), 1)
            self.assertEqual(get(s, "mcache_serving_units_total", model="m", version="1.0.0"),
                             70)
            p99 = get(s, "mcache_serving_latency_p99_seconds", model="m", version="1.0.0")
            self.assertIsNotNone(p99)
            self.assertAlmostEqual(p99, 0.002, delta=0.0005)
            # Names follow the conventions: mcache_ prefix, counters end in _total.
            for line in text.splitlines():
                m = re.match(r"# TYPE (\S+) (\S+)", line)
                if m:
                    self.assertTrue(m.group(1).startswith("mcache_"), line)
                    if m.group(2) == "counter":
                        self.assertTrue(m.group(1).endswith("_total"), line)

    def test_without_daemon(self):
        with Server(daemon=False) as srv:
            text, s = self.scrape(srv)
            self.assertEqual(get(s, "mcache_daemon_up"), 0)
            self.assertIsNone(get(s, "mcache_resident_versions"))
            self.assertIsNotNone(get(s, "mcache_serve_uptime_seconds"))
            self.assertGreaterEqual(get(s, "mcache_http_connections"), 1)  # this scrape's
            self.assertEqual(get(s, "mcache_http_connections_refused_total"), 0)

    def test_route_label_is_the_pattern(self):
        """Paths with names in them count under their route, not one series per name."""
        with Server(daemon=False) as srv:
            for name in ("a", "b", "c"):
                srv.request("GET", "/v1/models/%s" % name)
            text, s = self.scrape(srv)
            self.assertNotIn('route="/v1/models/a"', text)
            counts = [v for k, v in s.items() if k[0] == "mcache_http_requests_total"
                      and dict(k[1])["route"] == "/v1/models/{name}"]
            self.assertEqual(sum(counts), 3, text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
