#!/usr/bin/python3
"""test_registry.py - the registry commands with no mcached running: push, ls,
show, alias, rollback, history, rm, gc, fsck, verify; every --json output
checked field by field, every error path with its exit status and message."""
import json
import os
import pwd
import re
import stat

from clitest import (CACHE, EXIT_FAIL, EXIT_NOTFOUND, EXIT_OK, EXIT_USAGE, CliTest, main,
                     safetensors)

CHECKSUM = re.compile(r"^xxh3-128:[0-9a-f]{32}$")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
VERSION_KEYS = ["name", "version", "status", "status_reason", "size", "format", "checksum",
                "path", "created_ns", "created_at", "created_by", "description", "framework",
                "precision", "device", "parent", "source", "metrics", "params", "tags",
                "preload", "pinned", "aliases", "alias_weights", "generation", "residency"]


class Base(CliTest):
    def check_version(self, v, **want):
        """Every field of a version object: its type, and the values given."""
        self.assertEqual(list(v.keys()), VERSION_KEYS)
        self.assertRegex(v["checksum"], CHECKSUM)
        self.assertRegex(v["created_at"], ISO)
        self.assertIsInstance(v["created_ns"], int)
        self.assertGreater(v["created_ns"], 1.5e18)
        self.assertEqual(v["created_by"], os.getuid())
        self.assertEqual(v["path"], os.path.join(self.store, "models", v["name"], v["version"],
                                                 "artifact"))
        self.assertIsInstance(v["generation"], int)
        for k in ("metrics", "params", "tags"):
            self.assertIsInstance(v[k], dict)
        defaults = dict(status="ready", status_reason=None, description=None, framework=None,
                        precision=None, device=None, parent=None, source=None, metrics={},
                        params={}, tags={}, preload=False, pinned=False, aliases=[],
                        alias_weights={a: 100 for a in want.get("aliases", [])})
        defaults.update(want)
        for k, val in defaults.items():
            self.assertEqual(v[k], val, k)


class Push(Base):
    def test_push_with_all_metadata(self):
        f = self.file("w.safetensors", data=safetensors(10000, 3))
        j = self.json("push", "vision/resnet", "1.2.0-rc.1+b5", f, "--metric", "accuracy=0.931",
                      "--metric", "latency_ms=12.5", "--param", "batch=32", "--tag", "env=prod",
                      "--tag", "team=cv", "--desc", "ResNet-50, fine-tuned", "--framework",
                      "pytorch", "--precision", "fp16", "--device", "cuda", "--parent",
                      "vision/base@1.0.0", "--source", "s3://models/r50", "--preload", "--pin")
        self.assertEqual(sorted(j), ["generation", "seconds", "version"])
        self.assertEqual(j["generation"], 1)
        self.assertGreaterEqual(j["seconds"], 0)
        self.check_version(j["version"], name="vision/resnet", version="1.2.0-rc.1+b5",
                           size=len(safetensors(10000, 3)), format="safetensors",
                           description="ResNet-50, fine-tuned", framework="pytorch",
                           precision="fp16", device="cuda", parent="vision/base@1.0.0",
                           source="s3://models/r50", metrics={"accuracy": 0.931,
                                                              "latency_ms": 12.5},
                           params={"batch": "32"}, tags={"env": "prod", "team": "cv"},
                           preload=True, pinned=True, residency=None)
        with open(j["version"]["path"], "rb") as a, open(f, "rb") as b:
            self.assertEqual(a.read(), b.read())

    def test_push_forms_alias_and_human_output(self):
        f = self.file("m.bin", 5000)
        r = self.ok("push", "m@1.0.0", f, "--alias", "production", "--alias", "stable")
        self.assertRegex(r.out, r"^pushed m@1\.0\.0: 4\.88 KiB, other, xxh3-128:[0-9a-f]{32} "
                                r"in \d+(\.\d+)? m?s\naliases: production,stable\n$")
        self.assertEqual(r.err, "")
        v = self.json("show", "m@production")["version"]
        self.assertEqual(v["aliases"], ["production", "stable"])
        self.assertEqual(self.ok("push", "m", "1.0.1", f, "-q").out, "")

    def test_same_content_same_checksum(self):
        f = self.file("m.bin", 3000, seed=7)
        a = self.json("push", "a", "1.0.0", f)["version"]["checksum"]
        b = self.json("push", "b", "1.0.0", f)["version"]["checksum"]
        c = self.json("push", "c", "1.0.0", self.file("n.bin", 3000, seed=8))["version"]
        self.assertEqual(a, b)
        self.assertNotEqual(a, c["checksum"])

    def test_push_errors(self):
        f = self.file("m.bin")
        self.fails(EXIT_USAGE, "push", "m", "1.x", f,
                   match='version "1.x" is not a semantic version.*expected MAJOR.MINOR.PATCH')
        self.fails(EXIT_USAGE, "push", "../etc", "1.0.0", f, match=r'model name "\.\./etc"')
        self.fails(EXIT_USAGE, "push", "m", "1.0.0", f, "--metric", "acc=high",
                   match='metric "acc" has value "high", which is not a finite number')
        self.fails(EXIT_USAGE, "push", "m", "1.0.0", f, "--metric", "acc",
                   match='--metric "acc" is not NAME=NUMBER')
        self.fails(EXIT_USAGE, "push", "m", "1.0.0", f, "--tag", "=x",
                   match='--tag "=x" is not KEY=VALUE')
        self.fails(EXIT_USAGE, "push", "m", "1.0.0", f, "--tag", "9bad=x", match='"9bad"')
        self.fails(EXIT_USAGE, "push", "m", f, match="names no version")
        self.fails(EXIT_NOTFOUND, "push", "m", "1.0.0", os.path.join(self.root, "none"),
                   match=r'cannot push m@1\.0\.0: ".*/none" is not a readable file')
        self.fails(EXIT_NOTFOUND, "push", "m", "1.0.0", self.root, match="not a readable file")
        self.fails(EXIT_USAGE, "push", "m", "1.0.0", f, "--parent", "notaref",
                   match='the parent "notaref" is not NAME@VERSION')
        self.fails(EXIT_USAGE, "push", "m", "1.0.0", f, "--desc", "x" * 5000,
                   match="is 5000 bytes long; at most 4096")
        # --artifacts is s3://BUCKET/PREFIX or the store's own models/: a typo or another
        # directory is refused, never replaced by models/ without a word
        for bad in ["s3:/b/p", "S3://b/p", os.path.join(self.root, "elsewhere")]:
            self.fails(EXIT_USAGE, "push", "m", "1.0.0", f, "--artifacts", bad,
                       match=f'the artifacts given .*"{re.escape(bad)}".* are neither an '
                             r's3://BUCKET/PREFIX URL nor this store.s own .*nothing was changed')
        r = self.fails(EXIT_USAGE, "push", "m", "1.0.0", f, env={"MCACHE_ARTIFACTS": "s3:/k:SECRETPW9@b"},
                       match="a value with credentials, not shown")
        self.assertNotIn("SECRETPW9", r.err)
        # Bad input changes nothing: none of the above created the store.
        self.assertFalse(os.path.exists(self.store), "a refused push created the store")
        self.ok("push", "m", "1.0.0", f, "--artifacts", os.path.join(self.store, "models"))
        self.fails(EXIT_FAIL, "push", "m", "1.0.0+other", f, match="1.0.0")
        r = self.fails(EXIT_USAGE, "push", "m", "1.1.0", f, "--alias", "latest",
                       match='pushed m@1.1.0, but setting alias "latest" failed')
        self.assertEqual([v["version"] for v in self.json("ls")["versions"]],
                         ["1.1.0", "1.0.0"])
        self.assertEqual(r.out, "")


class List(Base):
    def setUp(self):
        super().setUp()
        self.push("vision/resnet", "1.0.0", 1000, 1, "--tag", "env=prod", "--metric",
                  "accuracy=0.91")
        self.push("vision/resnet", "1.1.0", 2000, 2, "--tag", "env=staging", "--metric",
                  "accuracy=0.95", "--alias", "production")
        self.push("vision/resnet", "2.0.0-rc.1", 3000, 3, "--metric", "accuracy=0.97")
        self.push("bert", "0.1.0", 500, 4, "--tag", "env=prod")

    def names(self, *args):
        return ["%s@%s" % (v["name"], v["version"]) for v in self.json("ls", *args)["versions"]]

    def test_ls_json(self):
        j = self.json("ls")
        self.assertEqual(sorted(j), ["cache", "store", "versions"])
        self.assertEqual(j["store"], self.store)
        self.assertEqual(j["cache"], CACHE)
        self.assertEqual(len(j["versions"]), 4)
        v = j["versions"][2]
        self.check_version(v, name="vision/resnet", version="1.1.0", size=2000, format="other",
                           tags={"env": "staging"}, metrics={"accuracy": 0.95},
                           aliases=["production"], residency="unknown")

    def test_filters_and_order(self):
        self.assertEqual(self.names(), ["bert@0.1.0", "vision/resnet@2.0.0-rc.1",
                                        "vision/resnet@1.1.0", "vision/resnet@1.0.0"])
        self.assertEqual(self.names("vision/*"), ["vision/resnet@2.0.0-rc.1",
                                                  "vision/resnet@1.1.0", "vision/resnet@1.0.0"])
        self.assertEqual(self.names("--tag", "env=prod"), ["bert@0.1.0", "vision/resnet@1.0.0"])
        self.assertEqual(self.names("--tag", "env=*", "--where", "accuracy>0.92"),
                         ["vision/resnet@1.1.0"])
        self.assertEqual(self.names("--where", "accuracy>=0.95", "--where", "accuracy<0.96"),
                         ["vision/resnet@1.1.0"])
        self.assertEqual(self.names("--ref", "^1.0"), ["vision/resnet@1.1.0",
                                                       "vision/resnet@1.0.0"])
        self.assertEqual(self.names("--sort", "time"), ["bert@0.1.0", "vision/resnet@2.0.0-rc.1",
                                                        "vision/resnet@1.1.0",
                                                        "vision/resnet@1.0.0"])
        self.assertEqual(self.names("--sort", "time", "--limit", "2"),
                         ["bert@0.1.0", "vision/resnet@2.0.0-rc.1"])
        self.assertEqual(self.names("--status", "failed"), [])
        self.assertEqual(self.names("nothing*"), [])

    def test_short_and_human(self):
        self.assertEqual(self.ok("ls", "--short", "vision/*").out,
                         "vision/resnet@2.0.0-rc.1\nvision/resnet@1.1.0\nvision/resnet@1.0.0\n")
        out = self.ok("ls").out.splitlines()
        self.assertRegex(out[0], r"^MODEL +VERSION +ALIASES +SIZE +FORMAT +STATUS +RESIDENT +"
                                 r"PUSHED$")
        self.assertEqual(len(out), 5)
        # Aligned: every column starts where its header does.
        for col in ("VERSION", "ALIASES", "FORMAT", "STATUS", "RESIDENT", "PUSHED"):
            x = out[0].index(col)
            for row in out[1:]:
                self.assertNotEqual(row[x], " ", (col, row))
                self.assertEqual(row[x - 2:x], "  ", (col, row))
        r = self.ok("ls", "nothing*")
        self.assertEqual(r.out, "")
        self.assertIn("no versions", r.err)

    def test_errors(self):
        self.fails(EXIT_USAGE, "ls", "--where", "accuracy>>1", match="accuracy>>1.*e.g. "
                   "accuracy>=0.9")
        self.fails(EXIT_USAGE, "ls", "--tag", "env", match='"env"')
        self.fails(EXIT_USAGE, "ls", "--status", "gone", match='--status "gone" is not a status')
        self.fails(EXIT_USAGE, "ls", "--ref", ">>1", match=">>1")


class Show(List):
    def test_model(self):
        j = self.json("show", "vision/resnet")
        self.assertEqual(sorted(j), ["aliases", "history", "kind", "latest", "name", "size",
                                     "versions"])
        self.assertEqual(j["kind"], "model")
        self.assertEqual(j["name"], "vision/resnet")
        self.assertEqual(j["latest"], "1.1.0")
        self.assertEqual(j["size"], 6000)
        self.assertEqual([v["version"] for v in j["versions"]], ["2.0.0-rc.1", "1.1.0", "1.0.0"])
        self.check_version(j["versions"][0], name="vision/resnet", version="2.0.0-rc.1",
                           size=3000, format="other", metrics={"accuracy": 0.97},
                           residency="unknown")
        a = j["aliases"]
        self.assertEqual(len(a), 1)
        self.assertEqual(sorted(a[0]), ["alias", "moved_at", "moved_ns", "moves", "target",
                                        "targets"])
        self.assertEqual((a[0]["alias"], a[0]["target"], a[0]["moves"]),
                         ("production", "1.1.0", 1))
        self.assertEqual(a[0]["targets"], [{"version": "1.1.0", "weight": 100}])
        self.assertRegex(a[0]["moved_at"], ISO)
        self.assertEqual(len(j["history"]), 1)
        h = j["history"][0]
        self.assertEqual(sorted(h), ["action", "alias", "at", "at_ns", "from", "generation",
                                     "to", "uid"])
        self.assertEqual((h["alias"], h["action"], h["from"], h["to"], h["uid"]),
                         ("production", "create", None, "1.1.0", os.getuid()))

    def test_version(self):
        self.push("vision/resnet", "3.0.0", 100, 9, "--parent", "vision/resnet@1.1.0")
        j = self.json("show", "vision/resnet@production")
        self.assertEqual(sorted(j), ["daemon", "derived", "history", "kind", "load", "readers",
                                     "ref", "version"])
        self.assertEqual(j["kind"], "version")
        self.assertEqual(j["ref"], "production")
        self.assertEqual(j["derived"], ["vision/resnet@3.0.0"])
        self.assertEqual(j["daemon"], False)
        self.assertIsNone(j["load"])
        self.assertIsNone(j["readers"])
        self.check_version(j["version"], name="vision/resnet", version="1.1.0", size=2000,
                           format="other", tags={"env": "staging"},
                           metrics={"accuracy": 0.95}, aliases=["production"],
                           residency="unknown")
        self.assertEqual([h["to"] for h in j["history"]], ["1.1.0"])
        self.assertEqual(self.json("show", "vision/resnet@~1.0.0")["version"]["version"],
                         "1.0.0")
        self.assertEqual(self.json("show", "vision/resnet@latest")["version"]["version"],
                         "3.0.0")
        out = self.ok("show", "vision/resnet@production").out
        user = pwd.getpwuid(os.getuid()).pw_name
        for line in ("name         vision/resnet", "version      1.1.0",
                     "reference    production -> 1.1.0", "aliases      production",
                     "size         1.95 KiB (2000 bytes)", "derived      vision/resnet@3.0.0",
                     "pinned       no", "metrics:\n  accuracy  0.95", "tags:\n  env  staging"):
            self.assertIn(line, out)
        self.assertRegex(out, r"pushed       \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(\d+ s ago\) by %s"
                         % user)

    def test_errors(self):
        self.fails(EXIT_NOTFOUND, "show", "nope", match='no model "nope"')
        self.fails(EXIT_NOTFOUND, "show", "bert@9.9.9", match="9.9.9")
        self.fails(EXIT_NOTFOUND, "show", "bert@canary", match="canary")
        self.fails(EXIT_USAGE, "show", "bert@", match="empty reference")
        self.fails(EXIT_USAGE, "show", "@1.0.0", match="no model name")
        self.fails(EXIT_USAGE, "show", "a//b", match='model name "a//b"')


class Aliases(Base):
    def setUp(self):
        super().setUp()
        for i, v in enumerate(["1.0.0", "1.1.0", "2.0.0"]):
            self.push("m", v, 100, i)

    def test_set_move_none_remove_rollback(self):
        keys = ["name", "alias", "action", "from", "to", "generation"]
        j = self.json("alias", "m", "prod", "1.0.0")
        self.assertEqual(list(j), keys)
        self.assertEqual(j, dict(name="m", alias="prod", action="create", **{"from": None},
                                 to="1.0.0", generation=4))
        j = self.json("alias", "m", "prod", "^1")
        self.assertEqual((j["action"], j["from"], j["to"]), ("move", "1.0.0", "1.1.0"))
        j = self.json("alias", "m", "prod", "1.1.0")
        self.assertEqual((j["action"], j["from"], j["to"]), ("none", "1.1.0", "1.1.0"))
        j = self.json("alias", "set", "m", "prod", "latest")
        self.assertEqual((j["action"], j["to"]), ("move", "2.0.0"))
        j = self.json("rollback", "m", "prod")
        self.assertEqual((j["action"], j["from"], j["to"]), ("rollback", "2.0.0", "1.1.0"))
        j = self.json("alias", "rm", "m", "prod")
        self.assertEqual((j["action"], j["from"], j["to"]), ("remove", "1.1.0", None))
        j = self.json("rollback", "m", "prod")
        self.assertEqual((j["action"], j["from"], j["to"]), ("rollback", None, "1.1.0"))

    def test_human(self):
        self.assertEqual(self.ok("alias", "m", "prod", "1.0.0").out, "m: prod -> 1.0.0 (new alias)\n")
        self.assertEqual(self.ok("alias", "m", "prod", "1.1.0").out,
                         "m: prod -> 1.1.0 (was 1.0.0)\n")
        self.assertEqual(self.ok("alias", "m", "prod", "1.1.0").out,
                         "m: prod already points at 1.1.0\n")
        self.assertEqual(self.ok("rollback", "m", "prod").out,
                         "m: prod -> 1.0.0 (was 1.1.0), rolled back\n")
        self.assertEqual(self.ok("alias", "rm", "m", "prod").out,
                         "m: removed alias prod (it pointed at 1.0.0)\n")
        self.assertEqual(self.ok("alias", "m", "prod", "2.0.0", "-q").out, "")

    def test_history(self):
        self.ok("alias", "m", "prod", "1.0.0")
        self.ok("alias", "m", "canary", "2.0.0")
        self.ok("alias", "m", "prod", "1.1.0")
        self.ok("rollback", "m", "prod")
        j = self.json("history", "m")
        self.assertEqual(sorted(j), ["alias", "moves", "name"])
        self.assertEqual((j["name"], j["alias"]), ("m", None))
        self.assertEqual([(h["alias"], h["action"], h["from"], h["to"]) for h in j["moves"]],
                         [("prod", "create", None, "1.0.0"), ("canary", "create", None, "2.0.0"),
                          ("prod", "move", "1.0.0", "1.1.0"),
                          ("prod", "rollback", "1.1.0", "1.0.0")])
        gens = [h["generation"] for h in j["moves"]]
        self.assertEqual(gens, sorted(gens))
        for h in j["moves"]:
            self.assertRegex(h["at"], ISO)
            self.assertEqual(h["uid"], os.getuid())
        j = self.json("history", "m", "canary")
        self.assertEqual(j["alias"], "canary")
        self.assertEqual(len(j["moves"]), 1)
        out = self.ok("history", "m").out.splitlines()
        self.assertRegex(out[0], r"^WHEN +ALIAS +ACTION +FROM +TO +GEN +BY$")
        self.assertEqual(len(out), 5)
        self.push("lonely", "1.0.0")
        r = self.ok("history", "lonely")
        self.assertEqual(r.out, "")
        self.assertIn("never had an alias", r.err)

    def test_errors(self):
        self.fails(EXIT_NOTFOUND, "alias", "nope", "prod", "1.0.0", match='no model "nope"')
        self.fails(EXIT_NOTFOUND, "alias", "m", "prod", "9.0.0", match="9.0.0")
        self.fails(EXIT_USAGE, "alias", "m", "latest", "1.0.0", match='"latest"')
        self.fails(EXIT_USAGE, "alias", "m", "v2", "1.0.0", match='"v2"')
        self.fails(EXIT_NOTFOUND, "alias", "rm", "m", "prod", match='no alias "prod"')
        self.fails(EXIT_NOTFOUND, "rollback", "m", "prod", match='no alias "prod"')
        self.ok("alias", "m", "prod", "1.0.0")
        self.fails(EXIT_FAIL, "rollback", "m", "prod", match="no earlier target")
        self.fails(EXIT_NOTFOUND, "history", "m", "canary",
                   match='model "m" has no alias "canary"')
        self.fails(EXIT_NOTFOUND, "history", "nope", match='no model "nope"')


class Weighted(Base):
    """A weighted alias in ls, show and history, the why of its moves, and a
    forced rm of one of its targets (the others take its weight)."""

    def setUp(self):
        super().setUp()
        self.push("demo", "2.0.0", 100, 1)
        self.push("demo", "4.0.0", 100, 2)
        self.push("demo", "5.0.0", 100, 3)
        self.ok("alias", "demo", "c2", "2.0.0=50", "5.0.0=50", "--why", "canary of 5.0.0")
        self.ok("alias", "demo", "prod", "4.0.0")

    def test_ls_shows_every_target_with_its_weight(self):
        rows = {line.split()[1]: line for line in self.ok("ls", "demo").out.splitlines()[1:]}
        self.assertRegex(rows["2.0.0"], r"^demo +2\.0\.0 +c2 \(50%\) ")
        self.assertRegex(rows["5.0.0"], r"^demo +5\.0\.0 +c2 \(50%\) ")
        self.assertRegex(rows["4.0.0"], r"^demo +4\.0\.0 +prod ")
        vs = {v["version"]: v for v in self.json("ls", "demo")["versions"]}
        for ver in ("2.0.0", "5.0.0"):
            self.check_version(vs[ver], name="demo", version=ver, size=100, format="other",
                               aliases=["c2"], alias_weights={"c2": 50}, residency="unknown")
        self.check_version(vs["4.0.0"], name="demo", version="4.0.0", size=100, format="other",
                           aliases=["prod"], residency="unknown")
        # show NAME@VERSION: its aliases with their share
        self.assertRegex(self.ok("show", "demo@5.0.0").out, r"\naliases +c2 \(50%\)\n")

    def test_show_lists_the_targets(self):
        out = self.ok("show", "demo").out
        self.assertRegex(out, r"\nc2 +2\.0\.0=50 5\.0\.0=50 +1 ")
        self.assertRegex(out, r"\nprod +4\.0\.0 +1 ")
        a = {e["alias"]: e for e in self.json("show", "demo")["aliases"]}
        self.assertEqual(a["c2"]["target"], "2.0.0")  # the heaviest, first on ties: as before
        self.assertEqual(a["c2"]["targets"], [{"version": "2.0.0", "weight": 50},
                                              {"version": "5.0.0", "weight": 50}])
        self.assertEqual(a["prod"]["targets"], [{"version": "4.0.0", "weight": 100}])
        # a version's history includes the weighted moves that name it
        moves = self.json("show", "demo@5.0.0")["history"]
        self.assertEqual([(m["alias"], m["to"]) for m in moves], [("c2", "2.0.0=50 5.0.0=50")])

    def test_why_in_history_and_show(self):
        self.ok("alias", "demo", "c2", "2.0.0=90", "5.0.0=10")  # no reason: no why
        j = self.json("history", "demo", "c2")
        self.assertEqual([m.get("why") for m in j["moves"]], ["canary of 5.0.0", None])
        self.assertNotIn("why", j["moves"][1])
        self.assertEqual(self.json("show", "demo")["history"][0]["why"], "canary of 5.0.0")
        self.assertEqual(self.json("show", "demo@5.0.0")["history"][0]["why"], "canary of 5.0.0")
        out = self.ok("history", "demo", "c2").out.splitlines()
        self.assertRegex(out[0], r"^WHEN +ALIAS +ACTION +FROM +TO +GEN +BY$")
        self.assertEqual(len(out), 4)  # header, 2 moves, 1 why under the first
        self.assertRegex(out[1], r" c2 +create +- +2\.0\.0=50 5\.0\.0=50 ")
        # the why starts where the ALIAS column does
        self.assertEqual(out[2], " " * out[0].index("ALIAS") + "why: canary of 5.0.0")
        self.assertRegex(out[3], r" c2 +move +2\.0\.0=50 5\.0\.0=50 +2\.0\.0=90 5\.0\.0=10 ")
        show = self.ok("show", "demo").out
        self.assertIn("\n" + " " * (2 + out[0].index("ALIAS")) + "why: canary of 5.0.0\n", show)

    def test_rm_force_of_one_target_keeps_the_alias(self):
        r = self.fails(EXIT_FAIL, "rm", "demo@5.0.0", match='alias "c2"')
        self.assertIn("other targets take its weight", r.err)
        # the refusal's own record (the audit log's) is the latest
        gen = self.json("audit")["audit"][-1]["generation"]
        j = self.json("rm", "demo@5.0.0", "--force")
        self.assertEqual(j["generation"], gen + 1)  # one record: the removal and the move
        a = {e["alias"]: e for e in self.json("show", "demo")["aliases"]}
        self.assertEqual(a["c2"]["targets"], [{"version": "2.0.0", "weight": 100}])
        self.assertEqual(a["prod"]["target"], "4.0.0")
        last = self.json("history", "demo", "c2")["moves"][-1]
        self.assertEqual((last["action"], last["from"], last["to"], last["generation"]),
                         ("move", "2.0.0=50 5.0.0=50", "2.0.0", gen + 1))
        self.assertEqual(last["why"], "demo@5.0.0 removed: its 50% goes to 2.0.0")
        self.assertIn("why: demo@5.0.0 removed: its 50% goes to 2.0.0",
                      self.ok("history", "demo", "c2").out)
        # three targets: the two left take 20% in proportion, summing to 100
        self.push("demo", "6.0.0", 100, 4)
        self.ok("alias", "demo", "prod", "2.0.0=10", "4.0.0=70", "6.0.0=20")
        self.ok("rm", "demo@6.0.0", "--force")
        a = {e["alias"]: e for e in self.json("show", "demo")["aliases"]}
        self.assertEqual(a["prod"]["targets"], [{"version": "2.0.0", "weight": 13},
                                                {"version": "4.0.0", "weight": 87}])
        self.assertEqual(self.json("history", "demo", "prod")["moves"][-1]["why"],
                         "demo@6.0.0 removed: its 20% goes to the other targets "
                         "(2.0.0=13 4.0.0=87)")
        self.assertEqual(self.ok("fsck").code, EXIT_OK)


class Remove(Base):
    def setUp(self):
        super().setUp()
        self.push("m", "1.0.0", 1000, 1)
        self.push("m", "1.1.0", 2000, 2, "--alias", "prod")
        self.push("m", "1.2.0", 3000, 3, "--pin")

    def test_rm_version(self):
        path = self.json("show", "m@1.0.0")["version"]["path"]
        j = self.json("rm", "m@1.0.0")
        self.assertEqual(sorted(j), ["bytes", "generation", "name", "removed"])
        self.assertEqual((j["name"], j["bytes"], j["generation"]), ("m", 1000, 5))
        self.assertEqual(len(j["removed"]), 1)
        self.assertEqual(sorted(j["removed"][0]), ["created_at", "created_ns", "name", "size",
                                                   "version"])
        self.assertEqual((j["removed"][0]["version"], j["removed"][0]["size"]), ("1.0.0", 1000))
        self.assertFalse(os.path.exists(path))
        self.fails(EXIT_NOTFOUND, "show", "m@1.0.0")

    def test_refusals_and_force(self):
        r = self.fails(EXIT_FAIL, "rm", "m@1.1.0", match='alias "prod"')
        self.assertIn("force", r.err)
        self.fails(EXIT_FAIL, "rm", "m@1.2.0", match="pinned")
        self.fails(EXIT_FAIL, "rm", "m")
        self.assertEqual(self.ok("rm", "m@1.1.0", "--force").out, "removed m@1.1.0 (1.95 KiB)\n")
        self.assertEqual(self.json("show", "m")["aliases"][0]["target"], None)
        self.assertEqual(self.ok("rm", "m", "-f").out, "removed model m: 2 version(s), 3.91 KiB\n")
        self.fails(EXIT_NOTFOUND, "show", "m")

    def test_errors(self):
        self.fails(EXIT_NOTFOUND, "rm", "m@9.9.9", match=r"no version 9\.9\.9 \(it has")
        self.fails(EXIT_NOTFOUND, "rm", "nope")
        self.fails(EXIT_USAGE, "rm", "a//b")


class Retention(Base):
    def setUp(self):
        super().setUp()
        for i, v in enumerate(["1.0.0", "1.1.0", "1.2.0", "1.3.0"]):
            self.push("m", v, 1000, i)
        self.ok("alias", "m", "prod", "1.0.0")
        self.push("n", "0.1.0", 500, 9)
        self.now = self.json("ls")["versions"][0]["created_ns"] / 1e9

    def test_keep(self):
        j = self.json("gc", "--keep", "1", "--dry-run")
        self.assertEqual(sorted(j), ["bytes", "count", "dry_run", "generation", "removed"])
        self.assertEqual((j["dry_run"], j["count"], j["bytes"]), (True, 2, 2000))
        self.assertEqual(sorted(r["version"] for r in j["removed"]), ["1.1.0", "1.2.0"])
        self.assertEqual(len(self.json("ls")["versions"]), 5)
        r = self.ok("gc", "--keep", "1", "--dry-run")
        self.assertIn("would remove 2 version(s), 1.95 KiB", r.out)
        j = self.json("gc", "m", "--keep", "2")
        self.assertEqual((j["dry_run"], j["count"]), (False, 1))
        self.assertEqual([v["version"] for v in self.json("show", "m")["versions"]],
                         ["1.3.0", "1.2.0", "1.0.0"])

    def test_max_age_uses_mcache_now(self):
        j = self.json("gc", "--max-age", "1", "--dry-run", env={"MCACHE_NOW": str(self.now)})
        self.assertEqual(j["count"], 0)
        later = str(self.now + 2 * 86400)
        j = self.json("gc", "--max-age", "1", env={"MCACHE_NOW": later})
        self.assertEqual(j["count"], 4)  # everything but the aliased 1.0.0
        self.assertEqual([v["version"] for v in self.json("ls")["versions"]], ["1.0.0"])

    def test_errors(self):
        self.fails(EXIT_USAGE, "gc", match="needs a rule")
        self.fails(EXIT_USAGE, "gc", "--keep", "0", match="--keep 0 would keep nothing")
        self.fails(EXIT_USAGE, "gc", "--max-age", "0", match="--max-age 0")
        self.fails(EXIT_NOTFOUND, "gc", "nope", "--keep", "1", match="nope")


class Fsck(Base):
    def test_clean(self):
        self.push("m", "1.0.0")
        j = self.json("fsck")
        self.assertEqual(j, {"store": self.store, "clean": True, "problems": [],
                             "repaired": False, "repair": []})
        self.assertEqual(self.ok("fsck", "--checksums").out, "store %s is clean\n" % self.store)

    def test_damage_detected_and_repaired(self):
        self.push("m", "1.0.0", 100, 1)
        self.push("m", "1.1.0", 100, 2)
        self.push("m", "1.2.0", 100, 3)
        journal = os.path.join(self.store, "journal")
        with open(journal, "r+b") as f:
            data = f.read()
            lines = data.split(b"\n")
            # flip a byte in the middle of the second record (not the tail)
            off = len(lines[0]) + 1 + len(lines[1]) + 1 + len(lines[2]) // 2
            f.seek(off)
            f.write(bytes([data[off] ^ 0x20]))
        r = self.run_cli("fsck", "--json")
        self.assertEqual(r.code, EXIT_FAIL, r)
        j = json.loads(r.out)
        self.assertFalse(j["clean"])
        self.assertTrue(j["problems"])
        self.assertRegex(" ".join(j["problems"]), r"journal.*(offset|byte)")
        r = self.run_cli("fsck")
        self.assertEqual(r.code, EXIT_FAIL)
        self.assertIn("mcache fsck --repair", r.out)
        r = self.run_cli("fsck", "--repair", "--json")
        j = json.loads(r.out)
        self.assertTrue(j["repaired"])
        self.assertRegex(j["repair"][0], r"journal is damaged at byte \d+")
        # The records after the damage are gone; their artifacts stay, reported as strays.
        self.assertEqual([v["version"] for v in self.json("ls")["versions"]], ["1.0.0"])
        self.assertEqual(j["clean"], not j["problems"])
        self.assertEqual(r.code, EXIT_OK if j["clean"] else EXIT_FAIL, r)
        for p in j["problems"]:
            self.assertIn("a version directory the manifest does not hold", p)

    def test_missing_artifact(self):
        self.push("m", "1.0.0")
        path = self.json("show", "m@1.0.0")["version"]["path"]
        os.chmod(os.path.dirname(path), 0o755)
        os.unlink(path)
        r = self.run_cli("fsck")
        self.assertEqual(r.code, EXIT_FAIL, r)
        self.assertIn("problem: ", r.out)


class Verify(Base):
    def setUp(self):
        super().setUp()
        self.push("m", "1.0.0", 5000, 1)
        self.push("m", "1.1.0", 6000, 2)
        self.push("n", "1.0.0", 7000, 3)

    def damage(self, ref):
        path = self.json("show", ref)["version"]["path"]
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        with open(path, "r+b") as f:
            f.seek(100)
            b = f.read(1)
            f.seek(100)
            f.write(bytes([b[0] ^ 1]))
        return path

    def test_all_ok(self):
        j = self.json("verify")
        self.assertEqual(sorted(j), ["bytes", "checked", "failed", "ok", "results", "seconds"])
        self.assertEqual((j["ok"], j["checked"], j["failed"], j["bytes"]), (True, 3, 0, 18000))
        r = j["results"][0]
        self.assertEqual(sorted(r), ["actual", "expected", "message", "name", "result", "seconds",
                                     "size", "version", "where"])
        self.assertEqual((r["name"], r["version"], r["where"], r["result"], r["size"]),
                         ("m", "1.0.0", "disk", "ok", 5000))
        self.assertEqual(r["actual"], r["expected"])
        self.assertIsNone(r["message"])
        self.assertEqual(self.json("verify", "--all")["checked"], 3)
        self.assertEqual(self.json("verify", "m")["checked"], 2)
        self.assertEqual(self.json("verify", "m@latest")["checked"], 1)
        out = self.ok("verify").out
        self.assertRegex(out, r"3 check\(s\) of 3 version\(s\), 17.6 KiB in .*: all ok\n$")
        self.assertEqual(self.ok("verify", "-q").out, "")

    def test_mismatch(self):
        path = self.damage("m@1.1.0")
        r = self.run_cli("verify", "--json")
        self.assertEqual(r.code, EXIT_FAIL, r)
        j = json.loads(r.out)
        self.assertEqual((j["ok"], j["failed"]), (False, 1))
        bad = [x for x in j["results"] if x["result"] != "ok"]
        self.assertEqual(len(bad), 1)
        self.assertEqual((bad[0]["version"], bad[0]["result"]), ("1.1.0", "mismatch"))
        self.assertNotEqual(bad[0]["actual"], bad[0]["expected"])
        self.assertRegex(bad[0]["actual"], CHECKSUM)
        self.assertIn(path, r.err)
        self.assertIn("but the manifest says", r.err)
        r = self.run_cli("verify", "-q")
        self.assertEqual((r.code, r.out), (EXIT_FAIL, ""))
        self.assertIn("m@1.1.0", r.err)
        self.ok("verify", "n")

    def test_missing(self):
        path = self.json("show", "n@1.0.0")["version"]["path"]
        os.chmod(os.path.dirname(path), 0o755)
        os.unlink(path)
        r = self.run_cli("verify", "n", "--json")
        self.assertEqual(r.code, EXIT_FAIL)
        self.assertIn("cannot be opened", r.err)

    def test_errors(self):
        self.fails(EXIT_USAGE, "verify", "m", "--all", match="not both")
        self.fails(EXIT_NOTFOUND, "verify", "nope", match='no model "nope"')
        self.fails(EXIT_NOTFOUND, "verify", "m@9.0.0", match="9.0.0")
        self.fails(EXIT_NOTFOUND, "verify", "--resident", match="no arena for cache \"t\"")


if __name__ == "__main__":
    main()
