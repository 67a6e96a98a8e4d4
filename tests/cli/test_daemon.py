#!/usr/bin/python3
"""test_daemon.py - the commands that talk to mcached (load, evict, pin,
unpin, stat) against a real mcached, the same commands and show/ls/verify
when it is down, and readers holding models seen by stat and show."""
import grp
import json
import os
import re
import stat

from clitest import (CACHE, EXIT_FAIL, EXIT_NODAEMON, EXIT_NOTFOUND, CliTest, main)

ARENA_KEYS = ["path", "access", "base", "size", "page_size", "backing", "data_size", "data_used",
              "data_free", "largest_free", "index_size", "index_used", "models_resident",
              "versions", "aliases", "generation", "epoch", "created_ns", "created_at",
              "loader_pid"]
DAEMON_KEYS = ["pid", "version", "uptime_s", "started_ns", "store", "cache", "socket", "adopted",
               "adopt_ms", "registry_generation", "loads", "heap", "failures", "alerts"]
LOADS_KEYS = ["ok", "failed", "bytes", "seconds", "gbps", "in_flight", "queued", "evictions",
              "engine", "fixed_buffers", "queue_depth", "chunk_size"]
HEAP_KEYS = ["allocator", "allocated", "active", "resident", "mapped", "metadata", "retained"]
MODEL_KEYS = ["name", "version", "state", "size", "pinned", "preload", "aliases", "loaded_ns",
              "load_s", "idle_s", "loaded_bytes", "error"]
READER_KEYS = ["slot", "pid", "tid", "since_ns", "in_lookup", "holds"]
RECLAIM_KEYS = ["pending_items", "pending_bytes", "retired_total", "freed_total", "stalls"]


class Base(CliTest):
    # mcached's default: its own uid and primary group (the test's, as it starts it)
    access = "owner+group " + grp.getgrgid(os.getegid()).gr_name

    def residency(self, ref):
        return self.json("show", ref)["version"]["residency"]

    def check_arena(self, a):
        self.assertEqual(list(a), ARENA_KEYS)
        self.assertEqual(a["path"], os.path.join(self.shm, "mcache." + CACHE))
        self.assertEqual(a["access"], self.access)
        self.assertRegex(a["base"], r"^0x[0-9a-f]+$")
        self.assertEqual(a["size"], 64 << 20)
        self.assertIn(a["page_size"], (4096, 2 << 20))
        self.assertIsInstance(a["backing"], str)
        self.assertEqual(a["data_free"], a["data_size"] - a["data_used"])
        self.assertLessEqual(a["largest_free"], a["data_free"])
        self.assertLessEqual(a["index_used"], a["index_size"])
        self.assertLess(a["data_size"] + a["index_size"], a["size"] + 1)
        self.assertRegex(a["created_at"], r"^\d{4}-\d\d-\d\dT")
        for k in ("generation", "epoch", "created_ns", "models_resident", "loader_pid"):
            self.assertIsInstance(a[k], int, k)


class NotRunning(Base):
    def test_daemon_commands_say_how_to_start_it(self):
        self.push("m", "1.0.0")
        for args in (["load", "m@1.0.0"], ["evict", "m@1.0.0"], ["load", "m"]):
            r = self.fails(EXIT_NODAEMON, *args)
            self.assertEqual(r.err,
                             'mcache: mcached is not running for cache "t" (no such socket at '
                             '%s); start it with `mcached --store %s --cache t --shm-dir %s`, '
                             'or point --cache, --shm-dir or --socket at the one that runs\n'
                             % (self.sock, self.store, self.shm))
            self.assertEqual(r.out, "")
        r = self.fails(EXIT_NODAEMON, "stat", match="mcached is not running")
        self.assertIn("no arena for cache \"t\"", r.err)

    def test_pin_without_daemon_changes_the_registry(self):
        self.push("m", "1.0.0", 1000)
        j = self.json("pin", "m")
        self.assertEqual(j, {"name": "m", "version": "1.0.0", "state": None, "size": 1000,
                             "daemon": False, "pinned": True})
        self.assertTrue(self.json("show", "m@1.0.0")["version"]["pinned"])
        self.assertIn("in the registry (mcached is not running",
                      self.ok("unpin", "m@1.0.0").out)
        self.assertFalse(self.json("show", "m@1.0.0")["version"]["pinned"])
        self.fails(EXIT_NOTFOUND, "pin", "m@2.0.0", match="2.0.0")
        self.fails(EXIT_NOTFOUND, "pin", "nope@1.0.0", match="nope")


class Running(Base):
    def setUp(self):
        super().setUp()
        self.push("m", "1.0.0", 100000, 1)
        self.push("m", "1.1.0", 200000, 2, "--alias", "prod")
        self.start_daemon()
        self.ok("load", "m@prod")  # mcached preloads aliased versions: wait until it has

    def test_load_evict(self):
        self.assertEqual(self.residency("m@1.0.0"), "not-resident")
        j = self.json("load", "m@1.0.0")
        self.assertEqual(list(j), ["name", "version", "state", "size", "seconds", "already"])
        self.assertEqual((j["name"], j["version"], j["state"], j["size"], j["already"]),
                         ("m", "1.0.0", "resident", 100000, False))
        self.assertGreaterEqual(j["seconds"], 0)
        self.assertTrue(self.json("load", "m@1.0.0")["already"])
        self.assertEqual(self.residency("m@1.0.0"), "resident")
        self.assertEqual([v["residency"] for v in self.json("ls")["versions"]],
                         ["resident", "resident"])
        show = self.json("show", "m@1.0.0")
        self.assertTrue(show["daemon"])
        self.assertEqual(sorted(show["load"]), ["error", "idle_s", "load_s", "loaded_ns"])
        self.assertIsInstance(show["load"]["loaded_ns"], int)
        self.assertIsNone(show["load"]["error"])
        self.assertEqual(show["readers"], [])
        self.assertEqual(self.ok("load", "m@1.0.0").out,
                         "m@1.0.0 is already resident (97.7 KiB)\n")
        self.assertEqual(self.ok("load", "m@1.0.0", "-q").out, "")
        j = self.json("evict", "m@1.0.0")
        self.assertEqual(j, {"name": "m", "version": "1.0.0", "state": "registered",
                             "size": 100000, "daemon": True})
        self.assertEqual(self.residency("m@1.0.0"), "not-resident")
        self.assertRegex(self.ok("load", "m@1.0.0", "--timeout", "30").out,
                         r"^loaded m@1\.0\.0: 97\.7 KiB in \d+(\.\d+)? m?s\n$")
        self.assertEqual(self.ok("evict", "m@1.0.0").out, "evicted m@1.0.0\n")

    def test_errors(self):
        self.fails(EXIT_NOTFOUND, "load", "m@9.0.0", match="9.0.0")
        self.fails(EXIT_NOTFOUND, "load", "nope", match="nope")
        self.fails(EXIT_FAIL, "evict", "m@prod", match="alias")
        self.fails(EXIT_FAIL, "evict", "m@1.0.0", match="not")

    def test_pin_through_daemon(self):
        j = self.json("pin", "m@1.0.0")
        self.assertEqual((j["name"], j["version"], j["daemon"], j["pinned"]),
                         ("m", "1.0.0", True, True))
        self.assertTrue(self.json("show", "m@1.0.0")["version"]["pinned"])
        self.assertEqual(self.ok("unpin", "m@1.0.0").out, "unpinned m@1.0.0\n")
        self.assertFalse(self.json("show", "m@1.0.0")["version"]["pinned"])

    def test_pin_that_cannot_load_fails(self):
        # larger than the whole arena: the pin is kept, but it is not done
        self.push("huge", "1.0.0", 80 << 20, 6)
        r = self.fails(EXIT_FAIL, "pin", "huge@1.0.0",
                       match="pinned huge@1.0.0 in the registry, but mcached cannot load it: "
                             ".*larger than the arena")
        self.assertEqual(r.out, "")
        j = self.run_cli("--json", "pin", "huge@1.0.0")
        self.assertEqual(j.code, EXIT_FAIL)
        self.assertEqual(json.loads(j.out)["state"], "failed")
        self.assertIn("larger than", json.loads(j.out)["error"])

    def test_failed_load_is_reported(self):
        self.push("bad", "1.0.0", 50000, 5)
        path = self.json("show", "bad@1.0.0")["version"]["path"]
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        with open(path, "r+b") as f:
            f.seek(1000)
            f.write(b"\xff\xfe")
        r = self.fails(EXIT_FAIL, "load", "bad@1.0.0", match="checksum|mismatch")
        self.assertEqual(r.out, "")
        st = self.json("stat")
        self.assertEqual(st["daemon"]["loads"]["failed"], 1)
        self.assertTrue(st["daemon"]["failures"])
        self.assertEqual(list(st["daemon"]["failures"][0]), ["at_ns", "what", "why"])
        show = self.json("show", "bad@1.0.0")
        self.assertEqual(show["version"]["residency"], "failed")
        self.assertTrue(show["load"]["error"])
        self.assertIn("failures (most recent first)", self.ok("stat").out)

    def test_stat_and_readers(self):
        self.ok("load", "m@1.0.0")
        holder = self.hold("m", "1.0.0")
        st = self.json("stat")
        self.assertEqual(list(st), ["source", "cache", "arena", "reclaim", "readers", "daemon",
                                    "models", "note"])
        self.assertEqual((st["source"], st["cache"], st["note"]), ("mcached", CACHE, None))
        self.check_arena(st["arena"])
        self.assertEqual(st["arena"]["loader_pid"], self.daemon.pid)
        self.assertEqual(st["arena"]["models_resident"], 2)
        self.assertEqual((st["arena"]["versions"], st["arena"]["aliases"]), (2, 1))
        self.assertEqual(list(st["reclaim"]), RECLAIM_KEYS)
        d = st["daemon"]
        self.assertEqual(list(d), DAEMON_KEYS)
        self.assertEqual((d["pid"], d["store"], d["cache"], d["socket"]),
                         (self.daemon.pid, self.store, CACHE, self.sock))
        self.assertGreater(d["uptime_s"], 0)
        self.assertEqual(list(d["loads"]), LOADS_KEYS)
        self.assertEqual(d["loads"]["ok"], 2)
        self.assertEqual(d["loads"]["bytes"], 300000)
        self.assertIn(d["loads"]["engine"], ("io_uring", "pread"))
        self.assertEqual(list(d["heap"]), HEAP_KEYS)
        self.assertIsInstance(d["heap"]["allocator"], str)
        self.assertEqual(d["failures"], [])
        models = {(m["name"], m["version"]): m for m in st["models"]}
        self.assertEqual(sorted(models), [("m", "1.0.0"), ("m", "1.1.0")])
        for m in st["models"]:
            self.assertEqual(list(m), MODEL_KEYS)
        self.assertEqual(models[("m", "1.1.0")]["aliases"], 1)
        readers = [r for r in st["readers"] if r["pid"] == holder.pid]
        self.assertEqual(len(readers), 1, st["readers"])
        self.assertEqual(list(readers[0]), READER_KEYS)
        self.assertEqual(readers[0]["holds"], ["m@1.0.0"])
        out = self.ok("stat").out
        self.assertRegex(out, r"(?m)^arena +%s \(" % re.escape(st["arena"]["path"]))
        self.assertRegex(out, r"(?m)^  access +%s: only mcached's uid, group \S+ and root can "
                              r"read models$" % re.escape(self.access))
        self.assertRegex(out, r"(?m)^readers +1 attached$")
        self.assertRegex(out, r"(?m)^ +\d+ +%d +\d+ s ago +m@1\.0\.0$" % holder.pid)
        self.assertRegex(out, r"(?m)^mcached +pid %d, version " % self.daemon.pid)
        self.assertRegex(out, r"(?m)^  loads +2 ok, 0 failed")
        self.assertRegex(out, r"(?m)^  heap +")
        show = self.json("show", "m@1.0.0")
        self.assertEqual([r["pid"] for r in show["readers"]], [holder.pid])
        self.assertEqual(sorted(show["readers"][0]), ["pid", "since_at", "since_ns", "slot",
                                                      "tid"])
        self.assertIn("held by 1 reader(s):", self.ok("show", "m@1.0.0").out)
        self.assertEqual(self.json("show", "m@1.1.0")["readers"], [])

    def test_without_daemon_the_arena_speaks(self):
        self.ok("load", "m@1.0.0")
        holder = self.hold("m", "1.0.0")
        self.stop_daemon()
        st = self.json("stat")
        self.assertEqual((st["source"], st["daemon"], st["reclaim"], st["models"]),
                         ("arena", None, None, None))
        self.assertIn("mcached is not running", st["note"])
        self.check_arena(st["arena"])
        self.assertIsNone(st["arena"]["versions"])
        self.assertEqual(st["arena"]["models_resident"], 2)
        self.assertEqual([(r["pid"], r["holds"]) for r in st["readers"]],
                         [(holder.pid, ["m@1.0.0"])])
        self.assertEqual(list(st["readers"][0]), READER_KEYS)
        out = self.ok("stat").out
        self.assertRegex(out, r"(?m)^mcached +not running: ")
        self.assertRegex(out, r"(?m)^readers +1 attached$")
        show = self.json("show", "m@1.0.0")
        self.assertEqual((show["daemon"], show["version"]["residency"]), (False, "resident"))
        self.assertEqual([r["pid"] for r in show["readers"]], [holder.pid])
        self.assertEqual(self.residency("m@1.1.0"), "resident")
        j = self.json("verify", "m", "--resident")
        self.assertEqual([(r["version"], r["where"], r["result"]) for r in j["results"]],
                         [("1.0.0", "disk", "ok"), ("1.0.0", "arena", "ok"),
                          ("1.1.0", "disk", "ok"), ("1.1.0", "arena", "ok")])
        self.fails(EXIT_NODAEMON, "load", "m@1.0.0", match=re.escape(self.sock))
        self.fails(EXIT_NODAEMON, "evict", "m@1.0.0", match="mcached --store")

    def test_verify_resident_lists_what_is_not_loaded(self):
        j = self.json("verify", "--resident")
        self.assertEqual([(r["version"], r["where"], r["result"]) for r in j["results"]],
                         [("1.0.0", "disk", "ok"), ("1.0.0", "arena", "not-resident"),
                          ("1.1.0", "disk", "ok"), ("1.1.0", "arena", "ok")])
        self.assertTrue(j["ok"])


class AnyLocalUser(Base):
    """--reader-group '*' is the only way to open the cache to every local user, and
    stat says so, from mcached and from the arena's modes alike."""
    access = "any local user"

    def setUp(self):
        super().setUp()
        self.push("m", "1.0.0", 100000, 1)
        self.start_daemon(extra=("--reader-group", "*"))

    def test_stat_says_any_local_user_can_read(self):
        st = self.json("stat")
        self.check_arena(st["arena"])
        self.assertEqual(st["source"], "mcached")
        self.assertRegex(self.ok("stat").out,
                         r"(?m)^  access +ANY LOCAL USER can read every model and hold memory "
                         r"\(mcached --reader-group '\*'\)$")
        self.assertIn('warn  reader-group "*": ANY LOCAL USER can read every model in %s'
                      % st["arena"]["path"], self.daemon_log())
        self.stop_daemon()
        st = self.json("stat")
        self.assertEqual(st["source"], "arena")
        self.check_arena(st["arena"])
        self.assertIn("ANY LOCAL USER", self.ok("stat").out)


if __name__ == "__main__":
    main()
