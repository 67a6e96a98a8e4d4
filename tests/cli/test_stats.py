"""test_stats.py - `mcache stats` and `mcache compare`: the serving statistics
that worker processes report with mc_report() (through libmcache, via
ctypes), as mcached sums them: human and --json output, a worker killed with
SIGKILL whose counts stay, and a clear error for every bad request."""
import json
import os
import signal
import subprocess
import sys

from clitest import (CliTest, EXIT_FAIL, EXIT_NODAEMON, EXIT_NOTFOUND, EXIT_USAGE, CACHE,
                     LIBMCACHE, main)

# A worker: attach, get NAME@REF, report COUNT requests (request i took
# BASE_NS * (1 + i % 100) ns, failed when i % 1000 < ERR_PERMILLE, did UNITS
# units), print "reported COUNT VERSION"; MODE "hold": keep holding until killed.
WORKER = r"""
import ctypes, sys, time
lib = ctypes.CDLL(sys.argv[1])
lib.mc_last_error.restype = ctypes.c_char_p
lib.mc_model_version.restype = ctypes.c_char_p
lib.mc_model_version.argtypes = [ctypes.c_void_p]
lib.mc_report.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int, ctypes.c_uint64]
name, ref, count, base, errs, units, mode = sys.argv[4:11]
count, base, errs, units = int(count), int(base), int(errs), int(units)
c = ctypes.c_void_p()
m = ctypes.c_void_p()
rc = lib.mc_attach_dir(sys.argv[2].encode(), sys.argv[3].encode(), ctypes.byref(c))
if rc == 0:
    rc = lib.mc_get(c, name.encode(), ref.encode(), ctypes.byref(m))
for i in range(count):
    if rc:
        break
    rc = lib.mc_report(m, base * (1 + i % 100), int(i % 1000 >= errs), units)
if rc:
    print("error", rc, lib.mc_last_error().decode(), flush=True)
    sys.exit(3)
print("reported", count, lib.mc_model_version(m).decode(), flush=True)
if mode == "hold":
    sys.stdin.read()
lib.mc_release(m)
"""

WINDOW_KEYS = ["window", "seconds", "covered_s", "requests", "errors", "units",
               "requests_per_s", "error_rate", "p50_ns", "p95_ns", "p99_ns",
               "units_per_request"]


class Base(CliTest):
    def worker(self, name, ref, count, base_ns, err_permille, units, mode="exit"):
        env = dict(self.env)
        preload = os.environ.get("MCACHE_PY_PRELOAD")
        if preload == "none":
            self.skipTest("a sanitizer build whose runtime python3 cannot preload")
        if preload:
            env.update(LD_PRELOAD=preload, ASAN_OPTIONS="detect_leaks=0:handle_segv=0")
        p = subprocess.Popen([sys.executable, "-c", WORKER, LIBMCACHE, self.shm, CACHE, name,
                              ref, str(count), str(base_ns), str(err_permille), str(units),
                              mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env=env)

        def stop():
            if p.poll() is None:
                p.kill()
            p.wait()
            p.stdin.close()
            p.stdout.close()
        self.addCleanup(stop)
        line = p.stdout.readline()
        if mode == "exit":
            self.assertEqual(p.wait(30), 0, line)
        return p, line

    def window(self, j, label):
        return next(w for w in j["windows"] if w["window"] == label)

    def near(self, v, want):
        self.assertLessEqual(abs(v - want), want * 0.032, "%d is not within 3.2%% of %d" % (v, want))


class NotRunning(Base):
    def test_stats_says_how_to_start_mcached(self):
        self.push("m", "1.0.0")
        self.fails(EXIT_NODAEMON, "stats", "m@1.0.0", match="mcached")
        self.fails(EXIT_NODAEMON, "compare", "m", "1.0.0", "1.0.0", match="mcached")


class Running(Base):
    def setUp(self):
        super().setUp()
        self.push("m", "1.0.0", 65536, 1)
        self.push("m", "2.0.0", 65536, 2)
        self.start_daemon()
        self.ok("load", "m@1.0.0")
        self.ok("load", "m@2.0.0")

    def test_stats_counts_and_quantiles(self):
        _, line = self.worker("m", "1.0.0", 2000, 10000, 50, 7)
        self.assertEqual(line, "reported 2000 1.0.0\n")
        j = self.json("stats", "m@1.0.0")
        self.assertEqual(list(j), ["name", "version", "split", "index", "loaded_ns", "windows"])
        self.assertIsNone(j["split"])
        self.assertEqual([w["window"] for w in j["windows"]], ["1m", "10m", "loaded"])
        w = self.window(j, "loaded")
        self.assertEqual(list(w), WINDOW_KEYS)
        self.assertEqual((w["requests"], w["errors"], w["units"]), (2000, 100, 14000))
        self.assertEqual(w["error_rate"], 0.05)
        self.assertEqual(w["units_per_request"], 7.0)
        self.near(w["p50_ns"], 500000)
        self.near(w["p95_ns"], 950000)
        self.near(w["p99_ns"], 990000)
        self.assertGreater(w["requests_per_s"], 0)
        self.assertEqual(self.window(j, "1m")["requests"], 2000)
        j = self.json("stats", "m@1.0.0", "--window", "30")
        self.assertEqual([w["window"] for w in j["windows"]], ["1m", "10m", "loaded", "30s"])
        self.assertEqual(self.window(j, "30s")["requests"], 2000)  # loaded within it
        out = self.ok("stats", "m@1.0.0").out
        self.assertIn("m@1.0.0: serving statistics", out)
        self.assertRegex(out, r"since loaded +2000 +[0-9.]+ +100 +5\.00% +")
        self.assertIn("7.00", out)
        self.assertIn("last 30 s", self.ok("stats", "m@1.0.0", "--window", "30").out)

    def test_compare_side_by_side(self):
        self.worker("m", "1.0.0", 1000, 10000, 10, 0)
        self.worker("m", "2.0.0", 1000, 20000, 40, 0)
        j = self.json("compare", "m", "1.0.0", "latest")
        self.assertEqual(list(j), ["name", "versions"])
        a, b = j["versions"]
        self.assertEqual((a["version"], b["version"]), ("1.0.0", "2.0.0"))
        self.assertEqual(self.window(a, "loaded")["errors"], 10)
        self.assertEqual(self.window(b, "loaded")["errors"], 40)
        self.near(self.window(b, "loaded")["p99_ns"], 1980000)
        out = self.ok("compare", "m", "1.0.0", "2.0.0").out
        self.assertIn("m: 2.0.0 against 1.0.0", out)
        self.assertRegex(out, r"ratio +- +[0-9.]+x +- +4\.00x +2\.00x")

    def test_killed_worker_counts_stay(self):
        p, line = self.worker("m", "2.0.0", 1500, 1000, 0, 2, mode="hold")
        self.assertEqual(line, "reported 1500 2.0.0\n")
        p.send_signal(signal.SIGKILL)
        p.wait()
        w = self.window(self.json("stats", "m@2.0.0"), "loaded")
        self.assertEqual((w["requests"], w["units"]), (1500, 3000))

    def test_errors_are_clear(self):
        self.fails(EXIT_NOTFOUND, "stats", "nosuch@1.0.0", match="nosuch")
        self.fails(EXIT_NOTFOUND, "stats", "m@9.9.9", match="9.9.9")
        self.ok("evict", "m@2.0.0")
        r = self.fails(EXIT_NOTFOUND, "stats", "m@2.0.0", match="m@2.0.0 is not resident")
        self.assertIn("mcache load m@2.0.0", r.err)
        self.fails(EXIT_NOTFOUND, "compare", "m", "1.0.0", "2.0.0", match="m@2.0.0 is not resident")
        self.fails(EXIT_USAGE, "compare", "m", "1.0.0", match="more arguments")
        self.fails(EXIT_USAGE, "stats", "m@", match="")
        self.fails(EXIT_USAGE, "stats", "m@1.0.0", "--window", "0", match='--window "0" is not a whole number from 1 to 600')
        self.fails(EXIT_USAGE, "stats", "m@1.0.0", "--window", "601",
                   match='--window "601" is not a whole number from 1 to 600')
        # Nothing changed: 1.0.0 answers, from zero.
        self.assertEqual(self.window(self.json("stats", "m@1.0.0"), "loaded")["requests"], 0)

    def test_help(self):
        out = self.ok("stats", "--help").out
        self.assertIn("usage: mcache stats NAME[@REF]", out)
        self.assertIn("untracked", out)
        self.assertIn("usage: mcache compare NAME V1 V2", self.ok("compare", "--help").out)


if __name__ == "__main__":
    main()
