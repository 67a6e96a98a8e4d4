#!/usr/bin/python3
"""test_golden.py - the human tables, compared byte for byte with the files in
tests/cli/golden/.

What would vary from run to run is fixed or normalised, never ignored:
  - artifacts have fixed contents, so sizes and checksums are fixed;
  - "now" is fixed with MCACHE_NOW at 2 h 5 min after the last push, so
    every age reads "2 h ago";
  - absolute times (local time, TZ=UTC) become "YYYY-MM-DD hh:mm:ss", which
    has the same width, so column alignment is still checked;
  - the store path becomes {store}, the user name at the end of a line
    (history's last column, show's "by") becomes {user}, durations in
    verify's summary become {duration}.
Run with MCACHE_UPDATE_GOLDEN=1 to rewrite the files after a deliberate
change, and review the diff.
"""
import os
import pwd
import re

from clitest import CliTest, main, safetensors

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")


class Golden(CliTest):
    def setUp(self):
        super().setUp()
        self.push("vision/resnet", "1.0.0", 1000, 1, "--tag", "env=prod", "--metric",
                  "accuracy=0.91", "--framework", "pytorch", "--precision", "fp16")
        f = self.file("r11.safetensors", data=safetensors(2000, 2))
        self.ok("push", "vision/resnet", "1.1.0", f, "--tag", "env=staging", "--metric",
                "accuracy=0.95", "--metric", "top5=0.99", "--param", "batch=32", "--desc",
                "fine-tuned on the 2024 set", "--device", "cuda", "--parent",
                "vision/resnet@1.0.0", "--source", "s3://models/resnet/1.1.0")
        self.push("vision/resnet", "2.0.0-rc.1", 1536000, 3, "--pin")
        self.push("bert", "0.1.0", 500, 4, "--preload")
        self.ok("alias", "vision/resnet", "production", "1.0.0")
        self.ok("alias", "vision/resnet", "production", "1.1.0")
        self.ok("alias", "vision/resnet", "canary", "2.0.0-rc.1")
        self.ok("rollback", "vision/resnet", "production")
        self.ok("alias", "vision/resnet", "production", "1.1.0")
        self.ok("alias", "rm", "vision/resnet", "canary")
        last = max(v["created_ns"] for v in self.json("ls")["versions"])
        self.env["MCACHE_NOW"] = "%.3f" % (last / 1e9 + 2 * 3600 + 300)
        self.user = pwd.getpwuid(os.getuid()).pw_name

    def normalise(self, text):
        text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "YYYY-MM-DD hh:mm:ss", text)
        text = text.replace(self.store, "{store}")
        text = re.sub(r"(?m)(\s)%s$" % re.escape(self.user), r"\1{user}", text)
        return re.sub(r" in \d+(\.\d+)? (ms|s): ", " in {duration}: ", text)

    def check(self, name, *args):
        out = self.normalise(self.ok(*args).out)
        path = os.path.join(GOLDEN, name + ".txt")
        if os.environ.get("MCACHE_UPDATE_GOLDEN") == "1":
            os.makedirs(GOLDEN, exist_ok=True)
            with open(path, "w") as f:
                f.write(out)
        with open(path) as f:
            self.assertEqual(out, f.read(), "mcache %s differs from %s" % (" ".join(args), path))

    def test_ls(self):
        self.check("ls", "ls")

    def test_ls_time_order_filtered(self):
        self.check("ls_time", "ls", "vision/*", "--sort", "time", "--where", "accuracy>=0.9")

    def test_show_model(self):
        self.check("show_model", "show", "vision/resnet")

    def test_show_version(self):
        self.check("show_version", "show", "vision/resnet@production")

    def test_history(self):
        self.check("history", "history", "vision/resnet")

    def test_gc_dry_run(self):
        self.check("gc_dry_run", "gc", "--keep", "1", "--dry-run")

    def test_verify(self):
        self.check("verify", "verify")


if __name__ == "__main__":
    main()
