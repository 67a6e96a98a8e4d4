#!/usr/bin/python3
"""test_token_audit.py - `mcache token add|ls|rm` and `mcache audit` with no
mcached running: the secret printed once (alone on stdout, or in --json) and
found in no file of the store, listings without hashes, every error path with
its exit status and message, and the audit log's entries for changes and for
refused attempts, filtered by model and limited."""
import os
import re

from clitest import EXIT_FAIL, EXIT_NOTFOUND, EXIT_USAGE, CliTest, main

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SECRET = re.compile(r"^mct_[A-Za-z0-9_-]{43}$")


class Tokens(CliTest):
    def setUp(self):
        super().setUp()
        self.ok("init")

    def store_bytes(self):
        """Every file of the store, concatenated."""
        out = b""
        for d, _, files in os.walk(self.store):
            for f in files:
                with open(os.path.join(d, f), "rb") as fh:
                    out += fh.read()
        return out

    def test_add_prints_the_secret_alone(self):
        r = self.ok("token", "add", "--role", "publisher", "ci")
        secret = r.out.rstrip("\n")
        self.assertRegex(secret, SECRET)
        self.assertEqual(r.out, secret + "\n")
        self.assertIn('token "ci" (publisher) added', r.err)
        self.assertIn("only this once", r.err)
        # --quiet: only the secret
        r = self.ok("token", "add", "--role", "reader", "dash", "--quiet")
        self.assertRegex(r.out.rstrip("\n"), SECRET)
        self.assertEqual(r.err, "")
        data = self.store_bytes()
        self.assertNotIn(secret.encode(), data)
        self.assertNotIn(secret[4:].encode(), data)
        self.assertIn(b"sha256:", data)

    def test_add_json(self):
        j = self.json("token", "add", "--role", "admin", "root-1")
        self.assertEqual(list(j), ["name", "role", "token"])
        self.assertEqual(j["name"], "root-1")
        self.assertEqual(j["role"], "admin")
        self.assertRegex(j["token"], SECRET)
        self.assertNotIn(j["token"][4:].encode(), self.store_bytes())

    def test_ls(self):
        self.assertEqual(self.json("token", "ls"), {"tokens": []})
        r = self.ok("token", "ls")
        self.assertEqual(r.out, "")
        self.assertIn("no tokens", r.err)
        self.ok("token", "add", "--role", "reader", "b")
        self.ok("token", "add", "-r", "publisher", "a")
        j = self.json("token", "ls")["tokens"]
        self.assertEqual([t["name"] for t in j], ["a", "b"])
        for t in j:
            self.assertEqual(list(t), ["name", "role", "created_at", "created_ns", "created_by"])
            self.assertRegex(t["created_at"], ISO)
            self.assertRegex(t["created_by"], r"^uid:%d(\(.+\))?$" % os.getuid())
            self.assertNotIn("hash", t)
        self.assertEqual(j[0]["role"], "publisher")
        out = self.ok("token", "ls").out.splitlines()
        self.assertRegex(out[0], r"^NAME +ROLE +CREATED +BY$")
        self.assertRegex(out[1], r"^a +publisher +\S+")
        self.assertRegex(out[2], r"^b +reader +\S+")
        self.assertNotIn("sha256", "\n".join(out))

    def test_rm(self):
        self.ok("token", "add", "--role", "reader", "x")
        self.assertEqual(self.ok("token", "rm", "x").out, "token x: removed\n")
        self.assertEqual(self.json("token", "ls"), {"tokens": []})
        self.fails(EXIT_NOTFOUND, "token", "rm", "x", match='no token "x"')
        self.ok("token", "add", "--role", "reader", "y")
        j = self.json("token", "rm", "y")
        self.assertEqual(j["name"], "y")
        self.assertEqual(j["action"], "remove")
        self.assertGreater(j["generation"], 0)

    def test_errors(self):
        self.fails(EXIT_USAGE, "token", "add", "ci", match="needs --role")
        self.fails(EXIT_USAGE, "token", "add", "--role", "root", "ci",
                   match='--role must be reader, publisher or admin, not "root"')
        self.fails(EXIT_USAGE, "token", "add", "--role", "reader", match="token add needs a NAME")
        self.fails(EXIT_USAGE, "token", "frob", match='token needs add, ls or rm')
        self.fails(EXIT_USAGE, "token", "rm", "x", "--role", "reader", match="--role is for token add")
        self.fails(EXIT_USAGE, "token", "add", "--role", "reader", "a b", match="contains ' '")
        self.ok("token", "add", "--role", "reader", "ci")
        r = self.fails(EXIT_FAIL, "token", "add", "--role", "admin", "ci",
                       match='token "ci" exists; remove it first')
        self.assertEqual(r.out, "")
        self.fails(EXIT_NOTFOUND, "--store", os.path.join(self.root, "none"), "token", "ls",
                   match="there is no store")


class Audit(CliTest):
    def entries(self, *args):
        return self.json("audit", *args)["audit"]

    def test_changes_and_refusals(self):
        self.push("m", "1.0.0", 100, 1)
        self.push("m", "2.0.0", 100, 2)
        self.push("n", "1.0.0", 100, 3)
        self.ok("alias", "m", "production", "1.0.0")
        self.fails(EXIT_FAIL, "rm", "m@1.0.0", match="production")
        self.ok("token", "add", "--role", "publisher", "ci")
        e = self.entries()
        self.assertEqual([x["what"] for x in e], [
            "push m@1.0.0", "push m@2.0.0", "push n@1.0.0", "alias m production 1.0.0",
            "rm m@1.0.0", "token add ci (publisher)"])
        self.assertEqual([x["result"] for x in e][:4], ["ok"] * 4)
        self.assertTrue(e[4]["result"].startswith("error: "), e[4])
        self.assertIn("production", e[4]["result"])
        for x in e:
            self.assertEqual(list(x), ["id", "at", "at_ns", "generation", "who", "from", "what",
                                       "result"])
            self.assertRegex(x["who"], r"^uid:%d(\(.+\))?$" % os.getuid())
            self.assertEqual(x["from"], "local")
            self.assertRegex(x["at"], ISO)
            self.assertEqual(x["id"], x["generation"])
        self.assertEqual([x["generation"] for x in e], list(range(1, 7)))
        # a push refused because the version exists is recorded too
        self.fails(EXIT_FAIL, "push", "m", "2.0.0", self.file("again.bin", 100, 9),
                   match="already registered")
        last = self.entries()[-1]
        self.assertEqual(last["what"], "push m@2.0.0")
        self.assertIn("already registered", last["result"])

        # --model, --limit
        self.assertEqual([x["what"] for x in self.entries("--model", "n")], ["push n@1.0.0"])
        self.assertEqual([x["what"] for x in self.entries("--model", "m", "--limit", "2")],
                         ["rm m@1.0.0", "push m@2.0.0"])
        self.assertEqual(self.entries("--model", "ci"), [])  # a token's name is no model's
        out = self.ok("audit", "--limit", "3").out.splitlines()
        self.assertRegex(out[0], r"^WHEN +WHO +FROM +WHAT +RESULT$")
        self.assertEqual(len(out), 4)
        self.assertRegex(out[1], r" local +rm m@1\.0\.0 +error: ")
        self.assertRegex(out[3], r" local +push m@2\.0\.0 +error: .*already registered")

    def test_control_bytes_never_reach_the_terminal(self):
        self.push("m", "1.0.0", 100, 1)
        self.fails(EXIT_USAGE, "alias", "m", "prod", "1.0.0", "--no-gate",
                   "--why", "\x1b[31mred", match="contains control characters")
        self.run_cli("alias", "m", "prod", "1.0.0\x1b]0;PWNED\x07", "--no-gate")
        out = self.ok("audit").out
        self.assertNotIn("\x1b", out)
        self.assertNotIn("\x07", out)
        self.assertIn("alias m prod 1.0.0\\x1b]0;PWNED\\x07", out)
        self.assertTrue(all(c >= " " for line in out.splitlines() for c in line), out)

    def test_empty_and_errors(self):
        self.ok("init")
        r = self.ok("audit")
        self.assertEqual(r.out, "")
        self.assertIn("no audit entries", r.err)
        self.assertEqual(self.entries(), [])
        self.fails(EXIT_USAGE, "audit", "--limit", "0", match="limit")
        self.fails(EXIT_USAGE, "audit", "x", match="")

    def test_fsck_reads_it(self):
        for i in range(3):
            self.push("m", "1.0.%d" % i, 100, i)
        self.ok("token", "add", "--role", "reader", "r")
        before = self.entries()
        self.ok("fsck")
        self.assertEqual(self.entries(), before)


if __name__ == "__main__":
    main()
