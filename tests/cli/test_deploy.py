#!/usr/bin/python3
"""test_deploy.py - the deployment commands through the real binaries: weighted
`mcache alias` (through mcached, gated by the health check, and without it),
`mcache health set|show|rm`, `mcache deploy` (begin, --status, --pause,
--resume, --abort), `mcache deployments`, `mcache alerts`, and their bad input."""
import json
import time

from clitest import EXIT_FAIL, EXIT_NODAEMON, EXIT_NOTFOUND, EXIT_USAGE, CliTest, main


class Base(CliTest):
    def two(self):
        self.push("m", "1.0.0", 4096, 1)
        self.push("m", "2.0.0", 4096, 2)
        self.ok("alias", "m", "prod", "1.0.0")

    def targets(self):
        """prod's targets as text: "1.0.0", or "1.0.0=90 2.0.0=10"."""
        for a in self.json("show", "m")["aliases"]:
            if a["alias"] == "prod":
                t = a["targets"]
                if len(t) == 1:
                    return t[0]["version"]
                return " ".join("%s=%d" % (x["version"], x["weight"]) for x in t) or None
        return None


class WithoutDaemon(Base):
    def test_weighted_alias_in_the_registry_with_why(self):
        self.two()
        j = self.json("alias", "m", "prod", "1.0.0=90", "2.0.0=10", "--why", "by hand")
        self.assertEqual((j["from"], j["to"], j["action"]), ("1.0.0", "1.0.0=90 2.0.0=10", "move"))
        self.assertNotIn("checks", j)
        r = self.ok("alias", "m", "prod", "2.0.0")
        self.assertEqual(r.out, "m: prod -> 2.0.0 (was 1.0.0=90 2.0.0=10)\n")
        moves = self.json("history", "m", "prod")["moves"]
        self.assertIn("by hand", json.dumps(moves))

    def test_bad_weights_change_nothing(self):
        self.two()
        for words, match in ((["1.0.0=90", "2.0.0=20"], "110"),
                             (["1.0.0=20"] * 5, "4"),
                             (["1.0.0=x", "2.0.0=50"], "x"),
                             (["1.0.0=50", "9.9.9=50"], "9.9.9")):
            code = EXIT_NOTFOUND if "9.9.9" in match else EXIT_USAGE
            self.fails(code, "alias", "m", "prod", *words, match=match)
        r = self.ok("alias", "m", "prod", "1.0.0")
        self.assertEqual(r.out, "m: prod already points at 1.0.0\n")

    def test_health_set_show_rm(self):
        self.two()
        r = self.ok("health", "set", "m", "--json", "--timeout", "7", "--", "sh", "-c", "exit 0")
        self.assertEqual(json.loads(r.out), {"name": "m", "command": ["sh", "-c", "exit 0"], "timeout_ms": 7000})
        r = self.ok("health", "show", "m")
        self.assertEqual(r.out, "m: health check (timeout 7.0 s): sh -c 'exit 0'\n")
        self.ok("health", "set", "m", "--", "sh", "-c", "echo 'a b'; exit 0", "")
        self.assertEqual(self.ok("health", "show", "m").out,
                         "m: health check (timeout 30.0 s): sh -c 'echo '\\''a b'\\''; exit 0' ''\n")
        self.ok("health", "set", "m", "--timeout", "7", "--", "sh", "-c", "exit 0")
        # With a check and no mcached, a move is refused unless --no-gate.
        self.fails(EXIT_NODAEMON, "alias", "m", "prod", "2.0.0", match="--no-gate")
        self.assertIn("1.0.0", json.dumps(self.json("show", "m")["aliases"]))
        self.ok("alias", "m", "prod", "2.0.0", "--no-gate")
        self.ok("health", "rm", "m")
        self.assertEqual(self.ok("health", "show", "m").out, "m: no health check\n")
        self.fails(EXIT_USAGE, "health", "set", "m", "sh", match="--")
        for bad in ("0", "3601"):
            self.fails(EXIT_USAGE, "health", "set", "m", "--timeout", bad, "--", "true",
                       match='--timeout "%s" is not a whole number from 1 to 3600' % bad)
        self.fails(EXIT_USAGE, "health", "frob", "m", match="set, show or rm")
        self.fails(EXIT_NOTFOUND, "health", "show", "nosuch")

    def test_deploy_bad_input_is_refused_before_anything(self):
        self.two()
        base = ["deploy", "m", "2.0.0", "--alias", "prod"]
        for extra, match in ((["--interval", "0"], "more than 0"),
                             (["--interval", "-5s"], "more than 0"),
                             (["--interval", "soon"], "not a duration"),
                             (["--interval", "1ms"], "shorter than 1 s"),
                             (["--interval", "999ms"], "shorter than 1 s"),
                             (["--strategy", "direct", "--interval", "0"], "direct deploy"),
                             (["--min-requests", "0"], "from 1 to"),
                             (["--health-timeout", "0"], '"0" is not a whole number from 1 to 3600'),
                             (["--health-timeout", "3601"],
                              '"3601" is not a whole number from 1 to 3600'),
                             (["--steps", "10,5,100"], "increase"),
                             (["--steps", "10,50"], "100"),
                             (["--steps", "10,500,100"], "percentage"),
                             (["--max-error-rate", "2"], "0 to 1"),
                             (["--max-p99-ratio", "0.5"], "1 to 1000"),
                             (["--strategy", "yolo"], "yolo"),
                             (["--strategy", "direct", "--steps", "10,100"], "canary")):
            self.fails(EXIT_USAGE, *(base + extra), match=match)
        self.fails(EXIT_USAGE, "deploy", "m", "2.0.0", match="--alias")
        self.fails(EXIT_USAGE, "deploy", "m", "--alias", "prod", "--", "true", match="NAME VERSION")
        self.fails(EXIT_USAGE, "deploy", "m", "2.0.0", "true", "--alias", "prod",
                   match="NAME VERSION")
        self.fails(EXIT_USAGE, "deploy", "--status", "--abort", "m")
        self.fails(EXIT_NOTFOUND, "deploy", "--pause", "nosuch", match='no model "nosuch"')
        # Well-formed, but mcached runs rollouts.
        self.fails(EXIT_NODAEMON, *base, match="mcached runs rollouts")
        self.assertEqual(self.json("deployments", "m")["deployments"], [])
        self.assertEqual(self.ok("deploy", "--status").out, "no rollout in progress\n")
        self.assertEqual(self.ok("alerts").out, "no alerts\n")
        self.fails(EXIT_USAGE, "alerts", "--limit", "0", match="from 1 to 256")


    def test_snapshot_restore_and_push_alias_are_gated_by_the_health_check(self):
        self.two()
        self.ok("snapshot", "create", "s")
        self.ok("alias", "m", "prod", "2.0.0")
        self.ok("health", "set", "m", "--", "false")
        # A restore would move prod back without the check: refused, nothing moves.
        self.fails(EXIT_USAGE, "snapshot", "restore", "s", match="health check")
        self.assertEqual(self.targets(), "2.0.0")
        self.ok("snapshot", "restore", "s", "--no-gate")
        self.assertEqual(self.targets(), "1.0.0")
        # push --alias: no mcached runs the check, so nothing is pushed.
        self.fails(EXIT_NODAEMON, "push", "m", "3.0.0", self.file("m3.bin", seed=3),
                   "--alias", "prod", match="--no-gate")
        self.assertNotIn("3.0.0", json.dumps(self.json("show", "m")))
        self.ok("push", "m", "3.0.0", self.file("m3.bin", seed=3), "--alias", "prod",
                "--no-gate")
        self.assertEqual(self.targets(), "3.0.0")
        self.fails(EXIT_USAGE, "snapshot", "create", "t", "--no-gate", match="restore")


class WithDaemon(Base):
    def test_push_alias_goes_through_the_gate(self):
        self.two()
        self.ok("health", "set", "m", "--", "sh", "-c", 'echo "no $MCACHE_VERSION"; exit 5')
        self.start_daemon()
        r = self.fails(EXIT_FAIL, "push", "m", "3.0.0", self.file("m3.bin", seed=3),
                       "--alias", "prod", match="exit status 5")
        self.assertIn("pushed m@3.0.0", r.err)
        self.assertIn("no 3.0.0", r.err)
        self.assertEqual(self.targets(), "1.0.0")
        self.ok("health", "set", "m", "--", "true")
        self.push("m", "4.0.0", 4096, 4, "--alias", "prod")
        self.assertEqual(self.targets(), "4.0.0")
        self.assertIn("push", json.dumps(self.json("history", "m", "prod")))

    def test_failing_health_check_refuses_a_move_and_raises_an_alert(self):
        self.two()
        self.ok("health", "set", "m", "--", "sh", "-c",
                'echo "smoke $MCACHE_MODEL@$MCACHE_VERSION"; exit 4')
        self.start_daemon()
        r = self.fails(EXIT_FAIL, "alias", "m", "prod", "1.0.0=50", "2.0.0=50",
                       match="exit status 4")
        self.assertIn("smoke m@2.0.0", r.err)
        self.assertEqual(self.json("show", "m")["aliases"][0]["target"], "1.0.0")
        a = self.json("alerts")["alerts"]
        self.assertEqual([x["kind"] for x in a], ["health"])
        self.assertEqual((a[0]["model"], a[0]["version"], a[0]["alias"]), ("m", "2.0.0", "prod"))
        self.assertIn("health", self.ok("alerts", "m", "--kind", "health").out)
        st = self.json("stat")
        self.assertEqual(st["daemon"]["alerts"]["health"], 1)
        self.assertIn("1 health", self.ok("stat").out)

    def test_alerts_table_shows_the_end_of_a_long_output_indented(self):
        self.two()
        self.ok("health", "set", "m", "--", "sh", "-c", "echo head; seq 1 30; exit 4")
        self.start_daemon()
        self.fails(EXIT_FAIL, "alias", "m", "prod", "2.0.0", match="exit status 4")
        out = self.ok("alerts").out
        lines = out.splitlines()
        self.assertRegex(lines[0], r"health +m@2.0.0 prod: health check of m@2.0.0 failed")
        self.assertRegex(lines[1], r"^    \.\.\. \(\d+ more lines; --json has them\)$")
        self.assertEqual(lines[2:], ["    27", "    28", "    29", "    30"])
        self.assertIn("\nhead\n", self.json("alerts")["alerts"][0]["message"])

    def test_passing_check_moves_through_mcached(self):
        self.two()
        self.ok("health", "set", "m", "--", "sh", "-c", 'test "$MCACHE_CACHE" = t')
        self.start_daemon()
        j = self.json("alias", "m", "prod", "1.0.0=90", "2.0.0=10", "--why", "canary")
        self.assertEqual(j["to"], "1.0.0=90 2.0.0=10")
        self.assertEqual([c["version"] for c in j["checks"]], ["2.0.0"])
        r = self.ok("alias", "m", "prod", "2.0.0")
        self.assertIn("health check of 2.0.0 passed", r.out)
        self.assertIn("m: prod -> 2.0.0 (was 1.0.0=90 2.0.0=10)", r.out)

    def test_alias_in_another_store_is_not_sent_to_this_mcached(self):
        self.two()
        self.start_daemon()
        other = {"MCACHE_STORE": self.root + "/other"}
        self.ok("init", env=other)
        self.ok("push", "m", "1.0.0", self.file("o.bin"), env=other)
        r = self.ok("alias", "m", "prod", "1.0.0", env=other)
        self.assertEqual(r.out, "m: prod -> 1.0.0 (new alias)\n")
        self.assertEqual(self.json("show", "m", env=other)["aliases"][0]["target"], "1.0.0")
        self.ok("health", "set", "m", "--", "true", env=other)
        self.fails(EXIT_NODAEMON, "alias", "m", "prod", "1.0.0", env=other,
                   match="no mcached serves this store")
        self.fails(EXIT_NODAEMON, "deploy", "m", "1.0.0", "--alias", "prod", env=other,
                   match="serves the store")

    def test_deploy_status_pause_resume_abort_and_deployments(self):
        self.two()
        self.start_daemon()
        r = self.ok("deploy", "m", "2.0.0", "--alias", "prod", "--steps", "25,100",
                    "--interval", "10m")
        self.assertIn("m: prod -> 1.0.0=75 2.0.0=25 (rollout", r.out)
        self.assertIn("step 1/2): running", r.out)
        st = self.json("deploy", "--status", "m")["deployments"]
        self.assertEqual([(d["state"], d["weight"], d["from"]) for d in st],
                         [("running", 25, "1.0.0")])
        self.assertIn("running, step 1/2 (25%)", self.ok("deploy", "--status").out)
        self.fails(EXIT_FAIL, "deploy", "m", "2.0.0", "--alias", "prod",
                   match=r"rollout \d+ of m@2.0.0 on alias prod is running")
        self.assertIn("paused", self.ok("deploy", "--pause", "m").out)
        self.fails(EXIT_FAIL, "deploy", "--pause", "m", match="is paused already")
        self.fails(EXIT_NOTFOUND, "deploy", "--pause", "nosuch", match='no model "nosuch"')
        self.assertEqual(self.json("deploy", "--status")["deployments"][0]["state"], "paused")
        self.ok("deploy", "--resume", "m", "--alias", "prod")
        self.ok("deploy", "--abort", "m")
        self.assertEqual(self.json("show", "m")["aliases"][0]["target"], "1.0.0")
        # A rollback during a rollout aborts it, says so, and is not undone.
        self.ok("deploy", "m", "2.0.0", "--alias", "prod", "--steps", "25,100", "--interval", "1h")
        r = self.ok("rollback", "m", "prod")
        self.assertIn("this move aborts it", r.err)
        d = self.json("deployments", "m")["deployments"][-1]
        for _ in range(100):
            if d["state"] != "running":
                break
            time.sleep(0.02)
            d = self.json("deployments", "m")["deployments"][-1]
        self.assertEqual(d["state"], "aborted")
        self.assertIn("moved outside the rollout", d["reason"])
        self.assertEqual(self.json("show", "m")["aliases"][0]["target"], "1.0.0")
        self.fails(EXIT_NOTFOUND, "deploy", "--abort", "m", match="no rollout")
        # A direct one succeeds at once.
        j = self.json("deploy", "m", "2.0.0", "--alias", "prod", "--strategy", "direct")
        self.assertEqual((j["state"], j["targets"]), ("succeeded", "2.0.0"))
        # The same shape as --status --json: step counted from 1, steps the percentages.
        self.assertEqual((j["step"], j["steps"], j["weight"]), (1, [100], 100))
        d = self.json("deployments", "m")["deployments"]
        self.assertEqual([(x["strategy"], x["state"]) for x in d],
                         [("canary", "aborted"), ("canary", "aborted"), ("direct", "succeeded")])
        out = self.ok("deployments", "m").out
        self.assertIn("aborted", out)
        self.assertIn("succeeded", out)


if __name__ == "__main__":
    main()
