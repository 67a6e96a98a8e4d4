#!/usr/bin/python3
"""test_snapshot.py - `mcache snapshot create|restore|ls|rm` with no mcached
running: what each records and restores, every --json output checked field by
field, all-or-none restores, and every error path with its exit status and
message. (Weighted targets in snapshots are covered by registry_api; here the
aliases are plain, as `mcache alias` sets them.)"""
import os
import re

from clitest import EXIT_FAIL, EXIT_NOTFOUND, EXIT_USAGE, CliTest, main

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class Snapshot(CliTest):
    def setUp(self):
        super().setUp()
        for i, v in enumerate(["1.0.0", "1.1.0", "2.0.0"]):
            self.push("m", v, 100, i)
        self.push("n", "1.0.0", 100, 9)
        self.ok("alias", "m", "prod", "1.0.0")
        self.ok("alias", "m", "staging", "2.0.0")
        self.ok("alias", "n", "prod", "1.0.0")

    def targets(self, name, alias):
        for a in self.json("show", name)["aliases"]:
            if a["alias"] == alias:
                return a["target"]
        return None

    def test_create_json(self):
        j = self.json("snapshot", "create", "before")
        self.assertEqual(list(j), ["name", "created_ns", "created_at", "uid", "aliases",
                                   "entries", "action", "generation"])
        self.assertEqual(j["name"], "before")
        self.assertEqual(j["action"], "create")
        self.assertEqual(j["generation"], 8)
        self.assertEqual(j["uid"], os.getuid())
        self.assertRegex(j["created_at"], ISO)
        self.assertGreater(j["created_ns"], 1.5e18)
        self.assertEqual(j["aliases"], 3)
        self.assertEqual(j["entries"], [
            dict(name="m", alias="prod", targets="1.0.0"),
            dict(name="m", alias="staging", targets="2.0.0"),
            dict(name="n", alias="prod", targets="1.0.0")])

    def test_human_round_trip(self):
        self.assertEqual(self.ok("snapshot", "create", "before").out,
                         "snapshot before: recorded 3 aliases\n")
        self.ok("alias", "m", "prod", "1.1.0")
        self.ok("alias", "rm", "m", "staging")
        self.ok("alias", "m", "fresh", "2.0.0")  # made after the snapshot: left alone
        out = self.ok("snapshot", "restore", "before").out
        self.assertEqual(out, "m: prod -> 1.0.0 (was 1.1.0)\n"
                              "m: staging -> 2.0.0 (restored; it was removed)\n"
                              "snapshot before: restored 2 aliases\n")
        self.assertEqual(self.targets("m", "prod"), "1.0.0")
        self.assertEqual(self.targets("m", "staging"), "2.0.0")
        self.assertEqual(self.targets("m", "fresh"), "2.0.0")
        self.assertEqual(self.ok("snapshot", "restore", "before").out,
                         "snapshot before: every alias is already where it records\n")
        self.assertEqual(self.ok("snapshot", "restore", "before", "-q").out, "")
        self.assertTrue(self.json("fsck")["clean"])
        # the restore is in the aliases' history, as one generation
        moves = self.json("history", "m")["moves"]
        last = [mv for mv in moves if mv["generation"] == moves[-1]["generation"]]
        self.assertEqual(sorted(mv["alias"] for mv in last), ["prod", "staging"])

    def test_restore_json(self):
        self.ok("snapshot", "create", "before")
        self.ok("alias", "m", "prod", "2.0.0")
        g = self.json("alias", "n", "prod", "1.0.0")["generation"]
        j = self.json("snapshot", "restore", "before")
        self.assertEqual(j, dict(name="before", action="restore", generation=g + 1, moves=[
            {"name": "m", "alias": "prod", "from": "2.0.0", "to": "1.0.0"}]))
        j = self.json("snapshot", "restore", "before")
        self.assertEqual((j["moves"], j["generation"]), ([], g + 1))

    def test_restore_is_all_or_none(self):
        self.ok("snapshot", "create", "before")
        self.ok("alias", "m", "prod", "1.1.0")
        self.ok("alias", "m", "staging", "1.1.0")
        self.ok("rm", "m@2.0.0")
        gen = self.json("snapshot", "ls", "before")
        r = self.fails(EXIT_NOTFOUND, "snapshot", "restore", "before",
                       match=r'snapshot "before" sets alias "staging" of "m" to 2.0.0, but '
                             r'm@2.0.0 has been removed; nothing was restored')
        self.assertEqual(r.out, "")
        self.assertEqual(self.targets("m", "prod"), "1.1.0")  # not moved either
        self.assertEqual(self.json("snapshot", "ls", "before"), gen)
        self.assertEqual(len(self.json("history", "m", "prod")["moves"]), 2)

    def test_ls(self):
        r = self.ok("snapshot", "ls")
        self.assertEqual(r.out, "")
        self.assertIn("no snapshots", r.err)
        self.assertEqual(self.json("snapshot", "ls"), [])
        self.ok("snapshot", "create", "b")
        self.ok("alias", "rm", "n", "prod")
        self.ok("snapshot", "create", "a")
        j = self.json("snapshot", "ls")
        self.assertEqual([s["name"] for s in j], ["a", "b"])  # by name
        self.assertEqual([s["aliases"] for s in j], [2, 3])
        out = self.ok("snapshot", "ls").out.splitlines()
        self.assertEqual(out[0].split(), ["NAME", "ALIASES", "TAKEN", "BY"])
        self.assertEqual(out[1].split()[:2], ["a", "2"])
        self.assertEqual(out[2].split()[:2], ["b", "3"])
        out = self.ok("snapshot", "ls", "a").out.splitlines()
        self.assertRegex(out[0], r"^snapshot a, taken \d{4}-\d\d-\d\d \d\d:\d\d:\d\d by \S+: "
                                 r"2 aliases$")
        self.assertEqual([l.split() for l in out[1:]],
                         [["MODEL", "ALIAS", "TARGETS"], ["m", "prod", "1.0.0"],
                          ["m", "staging", "2.0.0"]])
        self.assertEqual(self.json("snapshot", "ls", "a")["entries"][1],
                         dict(name="m", alias="staging", targets="2.0.0"))

    def test_rm(self):
        self.ok("snapshot", "create", "a")
        g = self.json("snapshot", "ls", "a")
        self.assertEqual(self.ok("snapshot", "rm", "a").out, "snapshot a: removed\n")
        self.assertEqual(self.json("snapshot", "ls"), [])
        self.ok("snapshot", "create", "a")
        j = self.json("snapshot", "rm", "a")
        self.assertEqual(list(j), ["name", "action", "generation"])
        self.assertEqual((j["name"], j["action"]), ("a", "remove"))
        self.assertIsInstance(g["created_ns"], int)

    def test_errors(self):
        self.fails(EXIT_USAGE, "snapshot", match=r"snapshot needs more arguments")
        self.fails(EXIT_USAGE, "snapshot", "take", "x",
                   match=r'snapshot needs create, restore, ls or rm \(not "take"\)')
        for sub in ("create", "restore", "rm"):
            self.fails(EXIT_USAGE, "snapshot", sub, match=r"snapshot %s needs a NAME" % sub)
        self.fails(EXIT_USAGE, "snapshot", "create", "../x",
                   match=r'snapshot name "../x" may hold only letters, digits')
        self.ok("snapshot", "create", "a")
        self.fails(EXIT_FAIL, "snapshot", "create", "a",
                   match=r'snapshot "a" exists; remove it first or pick another name')
        for sub in ("restore", "rm", "ls"):
            self.fails(EXIT_NOTFOUND, "snapshot", sub, "nope",
                       match=r'there is no snapshot "nope"')
        self.fails(EXIT_NOTFOUND, "snapshot", "ls", "--store", os.path.join(self.root, "none"),
                   match=r"none")


if __name__ == "__main__":
    main()
