#!/usr/bin/python3
"""test_versions.py (install_versions) - one version everywhere: project(VERSION)
in CMakeLists.txt is what the installed mcached, mcache and mcache-bench print
for --version, what the installed libmcache's mc_version() returns (directly
and through the Python package's mcache.lib_version()), the installed
mcache.h's MCACHE_VERSION_*, mcache.pc's Version, the library's file name, the
Python package's __version__ and the version pip installed it as (pyproject.toml
takes it from __version__), and the version in every man page's title.
"""
import ctypes
import glob
import os
import re
import shutil
import subprocess
import unittest

import installtest
from installtest import run


def project_version():
    with open(os.path.join(installtest.SOURCE, "CMakeLists.txt")) as f:
        m = re.search(r"^project\(mcache VERSION (\d+\.\d+\.\d+)\b", f.read(), re.M)
    return m.group(1)


VERSION = project_version()


class Versions(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tree = installtest.install()
        cls.tree.install_python()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tree.destdir, True)

    def test_the_build_is_of_this_tree(self):
        self.assertEqual(os.environ["MC_PROJECT_VERSION"], VERSION,
                         "the build was configured from another CMakeLists.txt: re-run cmake")

    def test_programs_print_it_for_version(self):
        for prog in (self.tree.mcached, self.tree.mcache, self.tree.bench):
            out = run([prog, "--version"]).stdout
            self.assertRegex(out, r"^%s %s \(" % (re.escape(os.path.basename(prog)),
                                                  re.escape(VERSION)), prog)

    def test_library_and_header(self):
        t = self.tree
        lib = ctypes.CDLL(os.path.join(t.libdir, "libmcache.so.0"))
        lib.mc_version.restype = ctypes.c_char_p
        self.assertEqual(lib.mc_version().decode(), VERSION)
        self.assertTrue(os.path.isfile(os.path.join(t.libdir, "libmcache.so." + VERSION)))
        with open(os.path.join(t.includedir, "mcache.h")) as f:
            h = dict(re.findall(r"#define MCACHE_VERSION_(MAJOR|MINOR|PATCH) (\d+)", f.read()))
        self.assertEqual("%s.%s.%s" % (h["MAJOR"], h["MINOR"], h["PATCH"]), VERSION)
        self.assertEqual(t.pkg_config("--modversion"), [VERSION])

    def test_python_package(self):
        code = ("import importlib.metadata, mcache\n"
                "print(mcache.__version__, importlib.metadata.version('mcache'), "
                "mcache.lib_version())\n")
        out = run([installtest.PYTHON, "-c", code], env=self.tree.python_env(),
                  cwd=self.tree.destdir).stdout.split()
        self.assertEqual(out, [VERSION] * 3, "__version__, pip's, lib_version()")

    def test_man_pages(self):
        pages = glob.glob(os.path.join(self.tree.mandir, "man*", "*"))
        self.assertEqual(len(pages), 5, pages)  # mcache mcache-bench mcache-serve libmcache mcached
        for page in pages:
            with open(page) as f:
                th = [ln for ln in f if ln.startswith(".TH ")]
            self.assertEqual(len(th), 1, page)
            self.assertIn('"mcache %s"' % VERSION, th[0], page)


if __name__ == "__main__":
    installtest.need_tools("cmake", "pkg-config", "pip", "setuptools")
    unittest.main(verbosity=2)
