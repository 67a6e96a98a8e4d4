#!/usr/bin/python3
"""test_usage.py - mcache's command line itself: help on every command, usage
errors and their exit status, and how the store, cache and socket are chosen."""
import json
import os
import re
import uuid

import subprocess

from clitest import (CACHE, COMMANDS, EXIT_NODAEMON, EXIT_NOTFOUND, EXIT_OK, EXIT_USAGE, MCACHE,
                     CliTest, main)

COMPLETION = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts",
                          "mcache-completion.bash")


class Help(CliTest):
    def test_no_command_prints_usage_on_stderr(self):
        r = self.run_cli()
        self.assertEqual(r.code, EXIT_USAGE, r)
        self.assertEqual(r.out, "")
        self.assertIn("usage: mcache", r.err)

    def test_top_help_lists_every_command(self):
        for args in (["--help"], ["-h"], ["help"]):
            r = self.ok(*args)
            self.assertEqual(r.err, "")
            for c in COMMANDS:
                self.assertRegex(r.out, r"\n  %s +\S" % c, args)
            self.assertIn("Exit status: 0 ok, 1 failed, 2 usage", r.out)

    def test_version(self):
        self.assertRegex(self.ok("--version").out, r"^mcache \d+\.\d+\.\d+ \(arena format \d+\)\n$")

    def test_every_command_has_help_with_examples(self):
        for c in COMMANDS:
            for args in ([c, "--help"], [c, "-h"], ["help", c], ["--help", c]):
                r = self.ok(*args)
                self.assertTrue(r.out.startswith("usage: mcache %s" % c), (args, r))
                self.assertIn("\nExamples:\n  mcache ", r.out, args)
                self.assertIn("Global options:", r.out)
                self.assertEqual(r.err, "")

    def test_help_lists_command_options(self):
        out = self.ok("push", "--help").out
        for opt in ("--metric NAME=NUMBER", "--param KEY=VALUE", "--tag KEY=VALUE", "--desc",
                    "--framework", "--precision", "--device", "--parent", "--source",
                    "--alias ALIAS", "--preload", "--pin"):
            self.assertIn(opt, out)
        self.assertIn("--dry-run", self.ok("gc", "--help").out)

    def test_help_on_unknown_command(self):
        self.fails(EXIT_USAGE, "help", "frobnicate", match='no command "frobnicate"')


class UsageErrors(CliTest):
    def test_unknown_command(self):
        r = self.fails(EXIT_USAGE, "frobnicate", match='there is no command "frobnicate"')
        self.assertIn("mcache --help", r.err)
        self.assertEqual(r.out, "")

    def test_unknown_option_names_it_and_the_command(self):
        r = self.fails(EXIT_USAGE, "push", "--frob", match='unknown option "--frob"')
        self.assertIn("usage: mcache push NAME VERSION FILE", r.err)
        self.assertIn("mcache push --help", r.err)
        self.fails(EXIT_USAGE, "ls", "-z", match='unknown option "-z"')
        self.fails(EXIT_USAGE, "--frob", "ls", match='unknown option "--frob"')

    def test_option_values(self):
        self.fails(EXIT_USAGE, "ls", "--tag", match=r"--tag needs a value \(--tag KEY=VALUE\)")
        self.fails(EXIT_USAGE, "ls", "--short=yes", match="--short takes no value")
        self.fails(EXIT_USAGE, "ls", "--sort", "size", match='--sort "size" is not an order')
        self.fails(EXIT_USAGE, "ls", "--limit", "-3", match='--limit "-3" is not a whole number')
        self.fails(EXIT_USAGE, "gc", "--keep", "x", match='--keep "x" is not a whole number')
        self.fails(EXIT_USAGE, "load", "a@1.0.0", "--timeout", "1.5", match="--timeout")
        # milliseconds past an int wrapped to "no limit" or a few seconds
        self.fails(EXIT_USAGE, "load", "a@1.0.0", "--timeout", "4294968",
                   match="--timeout.*2000000")

    def test_argument_counts(self):
        for args in (["show"], ["show", "a", "b"], ["push", "a"], ["push", "a", "1.0.0", "f",
                     "x"], ["alias", "a", "b"], ["alias", "rm", "a"], ["rollback", "a"],
                     ["history"], ["rm"], ["load"], ["stat", "x"], ["fsck", "x"],
                     ["verify", "a", "b"], ["evict"], ["pin"], ["unpin"]):
            r = self.fails(EXIT_USAGE, *args)
            self.assertIn("usage: mcache %s" % args[0], r.err)

    def test_option_value_with_equals_and_options_after_positionals(self):
        self.ok("init")
        r = self.json("ls", "--sort=time")
        self.assertEqual(r["versions"], [])

    def test_double_dash_ends_options(self):
        self.ok("init")
        self.fails(EXIT_USAGE, "show", "--", "--x", match='model name "--x"|"--x"')


class Resolution(CliTest):
    """--store, $MCACHE_STORE, ./mcache-data; --cache, $MCACHE_CACHE, default."""

    def test_store_default_is_mcache_data_in_the_cwd(self):
        f = self.file("m.bin")
        self.ok("push", "m", "1.0.0", f, env={"MCACHE_STORE": None})
        self.assertTrue(os.path.isdir(os.path.join(self.root, "mcache-data", "models", "m")))
        ls = self.json("ls", env={"MCACHE_STORE": None})
        self.assertEqual(ls["store"], os.path.join(self.root, "mcache-data"))
        self.assertEqual([v["name"] for v in ls["versions"]], ["m"])

    def test_store_flag_beats_environment(self):
        f = self.file("m.bin")
        other = os.path.join(self.root, "other")
        self.ok("push", "from-env", "1.0.0", f)
        self.ok("--store", other, "push", "from-flag", "1.0.0", f)
        self.ok("push", "after", "1.0.0", f, "--store", other)
        self.assertEqual([v["name"] for v in self.json("ls")["versions"]], ["from-env"])
        self.assertEqual([v["name"] for v in self.json("ls", "--store", other)["versions"]],
                         ["after", "from-flag"])

    def test_missing_store_is_not_found_and_says_where_from(self):
        missing = os.path.join(self.root, "nope")
        r = self.fails(EXIT_NOTFOUND, "ls", "--store", missing,
                       match='no store at "%s" \\(from --store\\)' % re.escape(missing))
        self.assertIn("mcache init", r.err)
        self.fails(EXIT_NOTFOUND, "ls", env={"MCACHE_STORE": missing}, match="from MCACHE_STORE")
        self.fails(EXIT_NOTFOUND, "ls", env={"MCACHE_STORE": None}, match="from the default")
        for cmd in (["show", "m"], ["history", "m"], ["rm", "m"], ["gc", "--keep", "1"],
                    ["fsck"], ["verify"], ["alias", "m", "a", "1.0.0"]):
            self.fails(EXIT_NOTFOUND, *cmd, env={"MCACHE_STORE": missing}, match="no store")
        self.assertFalse(os.path.exists(missing))

    def test_init(self):
        j = self.json("init")
        self.assertEqual(j, {"store": self.store, "created": True, "generation": 0, "models": 0})
        self.assertEqual(self.json("init")["created"], False)
        self.assertIn("already exists", self.ok("init").out)

    def test_cache(self):
        self.ok("init")
        self.assertEqual(self.json("ls")["cache"], CACHE)
        self.assertEqual(self.json("ls", env={"MCACHE_CACHE": None})["cache"], "default")
        self.assertEqual(self.json("ls", "--cache", "c2")["cache"], "c2")
        self.assertEqual(self.json("--cache", "c3", "ls")["cache"], "c3")

    def test_socket_comes_from_shm_dir_and_cache_unless_given(self):
        self.ok("init")
        r = self.fails(EXIT_NODAEMON, "load", "m@1.0.0")
        self.assertIn("at %s/mcache.t.sock" % self.shm, r.err)
        r = self.fails(EXIT_NODAEMON, "load", "m@1.0.0", "--cache", "c9")
        self.assertIn("at %s/mcache.c9.sock" % self.shm, r.err)
        self.assertIn("--cache c9", r.err)
        r = self.fails(EXIT_NODAEMON, "load", "m@1.0.0", "--socket", "/nonexistent/x.sock")
        self.assertIn("at /nonexistent/x.sock", r.err)
        cache = "mccli-" + uuid.uuid4().hex[:8]
        r = self.fails(EXIT_NODAEMON, "load", "m@1.0.0", env={"MCACHE_SHM_DIR": None,
                                                             "MCACHE_CACHE": cache})
        self.assertIn("at /dev/shm/mcache.%s.sock" % cache, r.err)
        self.assertIn("`mcached --store %s --cache %s`" % (self.store, cache), r.err)

    def test_json_errors_go_to_stderr_only(self):
        r = self.fails(EXIT_NOTFOUND, "show", "nope", "--json", match="no store")
        self.assertEqual(r.out, "")
        self.ok("init")
        r = self.fails(EXIT_NOTFOUND, "show", "nope", "--json", match='no model "nope"')
        self.assertEqual(r.out, "")
        json.loads(self.ok("ls", "--json").out)


class Completion(CliTest):
    """scripts/mcache-completion.bash, driven as bash drives it."""

    def complete(self, line):
        words = line.split(" ")
        script = ('source "$1"; COMP_WORDS=("${@:2}"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); '
                  '_mcache; printf "%s\\n" "${COMPREPLY[@]}"')
        env = dict(self.env, PATH=os.path.dirname(MCACHE) + ":" + os.environ.get("PATH", ""))
        p = subprocess.run(["bash", "-c", script, "bash", COMPLETION] + words, env=env,
                           cwd=self.root, capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        return sorted(x for x in p.stdout.split("\n") if x)

    def test_commands_and_options(self):
        self.assertEqual(self.complete("mcache sh"), ["show"])
        self.assertEqual(self.complete("mcache --store x r"), ["rm", "rollback"])
        self.assertEqual(set(self.complete("mcache ")), set(COMMANDS + ["help"]))
        self.assertTrue({"--keep", "--max-age", "--dry-run", "--json"}
                        <= set(self.complete("mcache gc --")))
        self.assertEqual(self.complete("mcache ls --sort "), ["time", "version"])
        self.assertEqual(self.complete("mcache ls --status f"), ["failed"])
        self.assertEqual(self.complete("mcache help pu"), ["push"])

    def test_models_and_versions(self):
        f = self.file("m.bin")
        self.ok("push", "resnet", "1.0.0", f)
        self.ok("push", "resnet", "1.1.0", f)
        self.ok("push", "vision/bert", "2.0.0", f)
        self.assertEqual(self.complete("mcache show "), ["resnet", "vision/bert"])
        self.assertEqual(self.complete("mcache load res"), ["resnet"])
        self.assertEqual(self.complete("mcache load resnet@"),
                         ["resnet@1.0.0", "resnet@1.1.0", "resnet@latest"])
        self.assertEqual(self.complete("mcache alias r"), ["resnet", "rm"])
        self.assertEqual(self.complete("mcache alias rm v"), ["vision/bert"])
        other = os.path.join(self.root, "other")
        self.ok("--store", other, "push", "only-here", "1.0.0", f)
        self.assertEqual(self.complete("mcache --store %s show " % other), ["only-here"])
        self.assertIn("m.bin", self.complete("mcache push resnet 2.0.0 m"))

    def test_cache_names_from_the_shm_dir(self):
        for f in ("mcache.gpu0", "mcache.gpu0.readers", "mcache.gpu0.sock", "mcache.cpu"):
            open(os.path.join(self.shm, f), "w").close()
        self.assertEqual(self.complete("mcache --cache "), ["cpu", "gpu0"])
        self.assertEqual(self.complete("mcache --shm-dir %s stat --cache g" % self.shm),
                         ["gpu0"])


if __name__ == "__main__":
    main()
