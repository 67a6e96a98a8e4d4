#!/usr/bin/python3
"""test_manpages.py (install_manpages) - the installed man pages are true and
complete: each renders with groff without a warning (what lintian checks);
mcache(1) names every command and option that `mcache --help` and each
`mcache COMMAND --help` name, mcached(8) every option of `mcached --help`,
mcache-bench(1) every option and scenario of `mcache-bench --help`;
libmcache(3) has the sections a library page needs, names every MC_API
function of include/mcache.h in its NAME and SYNOPSIS and every MC_E* code
under ERRORS, and its example compiles against the header, without a warning.
"""
import os
import re
import subprocess
import tempfile
import unittest

import installtest
from installtest import run

DOCS = os.path.join(installtest.SOURCE, "docs")
B = installtest.BUILD
MCACHE = os.environ.get("MC_MCACHE", os.path.join(B, "tools", "mcache"))
MCACHED = os.environ.get("MC_MCACHED", os.path.join(B, "loader", "mcached"))
BENCH = os.environ.get("MC_BENCH", os.path.join(B, "bench", "mcache-bench"))
PAGES = ["mcache.1", "mcache-bench.1", "mcached.8", "libmcache.3"]
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def source(page):
    with open(os.path.join(DOCS, page)) as f:
        return f.read()


def plain(text):
    """roff source as words: escapes for dashes and fonts dropped."""
    text = text.replace("\\-", "-").replace("\\e", "\\")
    return re.sub(r"\\f[BIRP]|\\f\[[A-Z]*\]|\\&", "", text)


def sections(page):
    """{".SH name": body} of a page (names as written, quotes dropped)."""
    out, name = {}, None
    for line in source(page).splitlines():
        if line.startswith(".SH "):
            name = line[4:].strip().strip('"')
            out[name] = ""
        elif name:
            out[name] += line + "\n"
    return out


def help_of(*args):
    p = subprocess.run(list(args) + ["--help"], capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise AssertionError("%s --help -> %d: %s" % (" ".join(args), p.returncode, p.stderr))
    return p.stdout


class ManPages(unittest.TestCase):
    def test_they_render_without_warnings(self):
        for page in PAGES:
            p = subprocess.run(["groff", "-man", "-t", "-ww", "-z", "-Tutf8",
                                os.path.join(DOCS, page)], capture_output=True, text=True,
                               env=dict(os.environ, LC_ALL="C.UTF-8"))
            self.assertEqual((p.returncode, p.stderr), (0, ""), page)

    def assert_names_all(self, page, words, what):
        text = plain(source(page))
        missing = [w for w in sorted(set(words)) if not re.search(
            r"(?<![\w-])%s(?![\w-])" % re.escape(w), text)]
        self.assertEqual(missing, [], "docs/%s lacks %s that --help names" % (page, what))

    def test_mcache_1_is_the_cli(self):
        top = help_of(MCACHE)
        commands = re.findall(r"^  ([a-z]+)  ", top.split("Commands:")[1].split("\n\n")[0], re.M)
        self.assertGreater(len(commands), 10)
        body = plain(sections("mcache.1")["COMMANDS"])
        for c in commands:
            self.assertTrue(re.search(r"(?m)^\.(B|BI|BR) .*(?<![\w-])%s(?![\w-])" % c, body),
                            "docs/mcache.1 has no entry for the command %s" % c)
        options = OPTION.findall(top)
        for c in commands:
            options += OPTION.findall(help_of(MCACHE, c))
        self.assert_names_all("mcache.1", options, "options")

    def test_mcached_8_is_the_daemon(self):
        self.assert_names_all("mcached.8", OPTION.findall(help_of(MCACHED)), "options")

    def test_mcache_bench_1_is_the_bench(self):
        h = help_of(BENCH)
        scenarios = re.findall(r"^  ([a-z]+) {2,}", h.split("Scenarios")[1].split("Options:")[0],
                               re.M)
        self.assertGreater(len(scenarios), 5)
        self.assert_names_all("mcache-bench.1", scenarios + ["all"], "scenarios")
        self.assert_names_all("mcache-bench.1", OPTION.findall(h), "options")

    def test_libmcache_3_documents_every_function_and_code(self):
        with open(os.path.join(installtest.SOURCE, "include", "mcache.h")) as f:
            header = f.read()
        api = re.findall(r"^MC_API\b[^;(]*?\b(mc_\w+)\s*\(", header, re.M)
        codes = [c for c in re.findall(r"^#define (MC_E[A-Z]+)\s", header, re.M)
                 if c != "MC_ECODE_MIN"]
        self.assertGreater(len(api), 15)
        s = sections("libmcache.3")
        for name in ("NAME", "SYNOPSIS", "DESCRIPTION", "RETURN VALUE", "ERRORS",
                     "ENVIRONMENT", "EXAMPLES"):
            self.assertIn(name, s, "docs/libmcache.3 has no %s section" % name)
        for fn in api:
            self.assertRegex(plain(s["NAME"]), r"\b%s\b" % fn, "NAME lacks " + fn)
            self.assertRegex(plain(s["SYNOPSIS"]), r"\b%s\(" % fn, "SYNOPSIS lacks " + fn)
            self.assertRegex(plain(s["DESCRIPTION"]), r"\b%s\b" % fn, "DESCRIPTION lacks " + fn)
        for code in codes:
            self.assertRegex(plain(s["ERRORS"]), r"\b%s\b" % code, "ERRORS lacks " + code)
        for env in set(re.findall(r"\$(MCACHE_[A-Z_]+)", header)):
            self.assertIn(env, s["ENVIRONMENT"])

    def test_libmcache_3_example_compiles(self):
        ex = sections("libmcache.3")["EXAMPLES"]
        code = plain(ex.split(".nf\n", 1)[1].split(".fi\n", 1)[0])
        self.assertIn("int main", code)
        with tempfile.TemporaryDirectory() as d:
            c = os.path.join(d, "example.c")
            with open(c, "w") as f:
                f.write(code)
            run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-fsyntax-only",
                 "-I" + os.path.join(installtest.SOURCE, "include"), c])


if __name__ == "__main__":
    installtest.need_tools("groff", "cc")
    unittest.main(verbosity=2)
