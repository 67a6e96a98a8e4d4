#!/usr/bin/python3
"""test_destdir.py (install_destdir) - `cmake --install build --prefix /usr`
into a DESTDIR, used as a package's user would use it: every file where the
README's Install section says; a C worker built with nothing but
`pkg-config --cflags --libs mcache` (and one linked statically with
`--static`), run against a real mcached started from the DESTDIR's sbin, with
a model pushed by the DESTDIR's mcache, prints the model's bytes; the
installed mcache-bench runs the installed mcached; and the
Python package, pip-installed from python/pyproject.toml into the DESTDIR,
imports from there and finds the DESTDIR's libmcache without MCACHE_LIB.
"""
import filecmp
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import unittest

import installtest
from installtest import run

CC = os.environ.get("CC", "cc")
MODEL = 3 << 20  # bytes: several extents, not a multiple of a page


class Installed(installtest.clitest.CliTest):
    @classmethod
    def setUpClass(cls):
        cls.tree = installtest.install()
        # The CLI tests' harness runs mcached and mcache from the DESTDIR.
        installtest.clitest.MCACHE = cls.tree.mcache
        installtest.clitest.MCACHED = cls.tree.mcached

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tree.destdir, True)

    def test_files_are_where_the_README_says(self):
        t = self.tree
        src = installtest.SOURCE
        for f in (t.mcached, t.mcache, t.bench):
            self.assertTrue(os.access(f, os.X_OK), f)
        lib = os.path.join(t.libdir, "libmcache.so")
        self.assertEqual(os.readlink(lib), "libmcache.so.0")
        self.assertTrue(os.readlink(lib + ".0").startswith("libmcache.so.0."))
        self.assertTrue(os.path.isfile(os.path.join(t.libdir, "libmcache.a")))
        self.assertTrue(os.path.isfile(os.path.join(t.libdir, "pkgconfig", "mcache.pc")))
        same = [(os.path.join(t.includedir, "mcache.h"), "include/mcache.h"),
                (os.path.join(t.mandir, "man1", "mcache.1"), "docs/mcache.1"),
                (os.path.join(t.mandir, "man1", "mcache-bench.1"), "docs/mcache-bench.1"),
                (os.path.join(t.mandir, "man3", "libmcache.3"), "docs/libmcache.3"),
                (os.path.join(t.mandir, "man8", "mcached.8"), "docs/mcached.8"),
                (os.path.join(t.datadir, "bash-completion", "completions", "mcache"),
                 "scripts/mcache-completion.bash"),
                (os.path.join(t.datadir, "mcache", "torch_worker.py"), "bench/torch_worker.py"),
                (os.path.join(t.confdir, "mcached.conf"), "docs/mcached.conf")]
        for installed, source in same:
            self.assertTrue(os.path.isfile(installed), "%s is not installed" % installed)
            self.assertTrue(filecmp.cmp(installed, os.path.join(src, source), shallow=False),
                            "%s differs from %s" % (installed, source))

    def test_programs_do_not_point_into_the_build(self):
        for f in (self.tree.mcached, self.tree.mcache, self.tree.bench,
                  os.path.join(self.tree.libdir, "libmcache.so.0")):
            out = run(["readelf", "-d", f]).stdout
            self.assertNotRegex(out, r"\((RPATH|RUNPATH)\)", f)
            self.assertNotIn(installtest.BUILD, out, f)

    def test_pkg_config_names_the_installed_paths(self):
        t = self.tree
        self.assertEqual(t.pkg_config("--modversion"), [os.environ["MC_PROJECT_VERSION"]])
        flags = t.pkg_config("--cflags", "--libs")
        self.assertIn("-I" + t.includedir, flags)
        self.assertIn("-L" + t.libdir, flags)
        self.assertIn("-lmcache", flags)
        static = t.pkg_config("--static", "--libs")
        self.assertIn("-lck", static)  # Requires.private: ck (ck_ht_get_spmc)

    def build_worker(self, static=False):
        """dump_worker.c compiled with the flags pkg-config gives, and nothing else
        (statically: libmcache.a and what `--static` adds)."""
        libs = self.tree.pkg_config("--libs", *(["--static"] if static else []))
        if static:
            libs = ["-l:libmcache.a" if f == "-lmcache" else f for f in libs]
        out = os.path.join(self.root, "worker-static" if static else "worker")
        run([CC, "-std=c11", "-Wall", "-Wextra", "-Werror", "-o", out,
             os.path.join(installtest.HERE, "dump_worker.c")]
            + self.tree.pkg_config("--cflags") + libs)
        needed = re.findall(r"\(NEEDED\).*\[(.*)\]", run(["readelf", "-d", out]).stdout)
        self.assertEqual("libmcache.so.0" in needed, not static, needed)
        return out

    def test_c_worker_built_with_pkg_config_reads_the_model(self):
        data = installtest.clitest.content(MODEL, 16)
        self.start_daemon()
        path = self.file("model.bin", data=data)
        self.ok("push", "m", "1.0.0", path, "--alias", "production")
        env = dict(self.env, LD_LIBRARY_PATH=self.tree.libdir)
        for static in (False, True):
            worker = self.build_worker(static)
            if not static:  # the DESTDIR's library, not one installed on this machine
                ldd = run(["ldd", worker], env=env).stdout
                self.assertIn(os.path.join(self.tree.libdir, "libmcache.so.0"), ldd)
            p = subprocess.run([worker, self.shm, installtest.clitest.CACHE, "m", "production"],
                               capture_output=True, env=env, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(len(p.stdout), len(data))
            self.assertTrue(p.stdout == data, "the worker printed other bytes than were pushed")

    def test_readme_c_worker_command_builds(self):
        """The README's build line for examples/worker.c, with the DESTDIR's pkg-config."""
        out = os.path.join(self.root, "mcache-worker")
        cmd = "cc -o %s examples/worker.c $(pkg-config --cflags --libs mcache) -lm" % shlex.quote(out)
        line = "cc -o mcache-worker examples/worker.c $(pkg-config --cflags --libs mcache) -lm"
        with open(os.path.join(installtest.SOURCE, "README.md")) as f:
            self.assertTrue(line in f.read(), "README.md no longer has: " + line)
        run(["sh", "-c", cmd], cwd=installtest.SOURCE, env=self.tree.pkgconfig_env)
        p = run([out, "--help"], env=dict(self.env, LD_LIBRARY_PATH=self.tree.libdir))
        self.assertIn("usage: mcache-worker", p.stdout)

    def test_installed_bench_runs_the_installed_mcached(self):
        """PREFIX/bin/mcache-bench finds PREFIX/sbin/mcached, with /usr/sbin off
        PATH as for a user (the quickest scenario that runs mcached)."""
        env = {k: v for k, v in os.environ.items() if k != "MCACHED"}
        env["PATH"] = "/usr/bin:/bin"
        p = subprocess.run([self.tree.bench, "--quick", "--no-plots", "--out",
                            os.path.join(self.root, "bench"), "restart"],
                           capture_output=True, text=True, env=env, timeout=240)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("results.json", p.stdout + p.stderr)

    def test_python_package_from_the_destdir_finds_its_library(self):
        t = self.tree
        if t.site is None:
            t.install_python()
        data = installtest.clitest.content(MODEL, 17)
        self.start_daemon()
        path = self.file("model.bin", data=data)
        self.ok("push", "m", "1.0.0", path)
        code = ("import hashlib, sys, mcache\n"
                "print(mcache.__file__)\n"
                "print(mcache.library_path())\n"
                "with mcache.attach(sys.argv[1], sys.argv[2]) as c, "
                "c.get('m', '1.0.0', load=True, timeout=30) as m:\n"
                "    print(hashlib.sha256(m.view).hexdigest())\n")
        env = t.python_env()
        env.update(MCACHE_SHM_DIR=self.shm)
        p = run([installtest.PYTHON, "-c", code, installtest.clitest.CACHE, self.shm],
                env=env, cwd=self.root)
        pkg, lib, digest = p.stdout.split()
        self.assertEqual(pkg, os.path.join(t.site, "mcache", "__init__.py"))
        self.assertEqual(lib, os.path.realpath(os.path.join(t.libdir, "libmcache.so.0")))
        self.assertEqual(digest, hashlib.sha256(data).hexdigest())


if __name__ == "__main__":
    installtest.need_tools("cmake", "pkg-config", "readelf", "ldd", "nm", "pip", "setuptools")
    if not shutil.which(CC):
        installtest.skip("no C compiler (%s; scripts/deps.sh installs build-essential)" % CC)
    unittest.main(verbosity=2)
