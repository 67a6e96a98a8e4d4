#!/usr/bin/python3
"""test_db.py - `mcache db migrate|status` and the global --registry /
MCACHE_REGISTRY against the PostgreSQL that tests/fleet/pg.sh runs
($MCACHE_TEST_PG_URL; skipped, 77, without it): a store refused on a schema
too old until migrated, migrating twice doing nothing, the --json objects,
push/alias/ls/fsck through the shared registry, and the URL's password in no
output."""
import os
import subprocess
import sys
import uuid

from clitest import EXIT_FAIL, EXIT_OK, EXIT_USAGE, CliTest, main

PG = os.environ.get("MCACHE_TEST_PG_URL")


class Db(CliTest):
    def setUp(self):
        super().setUp()
        # a registry of its own: a fresh schema, first on the search_path
        schema = "cli_" + uuid.uuid4().hex[:12]
        subprocess.run(["psql", PG, "-qAtc", "CREATE SCHEMA " + schema], check=True)
        self.url = PG + ("&" if "?" in PG else "?") + "options=-csearch_path%3D" + schema

    def test_refused_until_migrated(self):
        r = self.run_cli("--registry", self.url, "db", "status")
        self.assertEqual(r.code, EXIT_FAIL, r)
        self.assertIn("schema version 0; this mcache needs 1: run `mcache db migrate`", r.out)
        self.fails(EXIT_FAIL, "--registry", self.url, "init",
                   match=r"has schema version 0 and this mcache needs 1; run `mcache db migrate")
        r = self.ok("--registry", self.url, "db", "migrate")
        self.assertEqual(r.out, "schema version 0 -> 1: migrated\n")
        r = self.ok("--registry", self.url, "db", "migrate")
        self.assertEqual(r.out, "schema version 1: up to date, nothing to do\n")
        self.assertEqual(self.json("db", "migrate", env={"MCACHE_REGISTRY": self.url}),
                         {"action": "migrate", "from": 1, "to": 1})
        self.assertEqual(self.json("db", "status", env={"MCACHE_REGISTRY": self.url}),
                         {"schema_version": 1, "wanted": 1, "current": True})

    def test_a_store_on_the_shared_registry(self):
        self.ok("--registry", self.url, "db", "migrate")
        env = {"MCACHE_REGISTRY": self.url}
        self.ok("push", "m", "1.0.0", self.file("a.bin"), env=env)
        self.ok("alias", "m", "prod", "1.0.0", "--no-gate", env=env)
        rows = self.json("ls", env=env)
        self.assertEqual([(v["name"], v["version"]) for v in rows["versions"]], [("m", "1.0.0")])
        self.ok("fsck", env=env)
        # another host's store (its own directory, made by init) sees the same versions
        other = os.path.join(self.root, "other")
        self.fails(3, "--store", other, "--registry", self.url, "ls", match=r"there is no store")
        self.ok("--store", other, "--registry", self.url, "init")
        r = self.ok("--store", other, "--registry", self.url, "ls", "--short")
        self.assertEqual(r.out, "m@1.0.0\n")
        # the store's own journal knows nothing of it
        self.fails(3, "ls", match=r"is not an mcache store")

    def test_no_password_in_output(self):
        bad = "postgresql://u:s3cret@127.0.0.1:1/x"
        r = self.run_cli("--registry", bad, "db", "status")
        self.assertEqual(r.code, EXIT_FAIL, r)
        self.assertIn("cannot connect to the registry database postgresql://u@127.0.0.1:1/x", r.err)
        self.assertNotIn("s3cret", r.err + r.out)

    def test_usage(self):
        self.fails(EXIT_USAGE, "db", "status", match=r"needs the registry database: pass --registry")
        self.fails(EXIT_USAGE, "db", "upgrade", match=r"db needs migrate or status")


if __name__ == "__main__":
    if not PG:
        print("test_db: skipped: MCACHE_TEST_PG_URL is not set (run it under "
              "tests/fleet/pg.sh run)", file=sys.stderr)
        sys.exit(77)
    main()
