#!/usr/bin/python3
"""test_abi.py (install_abi) - libmcache.so's ABI: the dynamic symbols it
exports are exactly tests/install/libmcache.symbols (so an accidental export or
removal fails), they are the MC_API functions of include/mcache.h, its SONAME
is libmcache.so.0, and it needs no library beyond libck, libxxhash and libc.

After a deliberate change of the API: update the list with
    MCACHE_UPDATE_SYMBOLS=1 ctest -R install_abi
and review the diff (a removed or changed function needs a new SONAME:
SOVERSION in index/CMakeLists.txt).
"""
import os
import re
import subprocess
import sys
import unittest

import installtest

LIB = os.environ.get("MC_LIBMCACHE", os.path.join(installtest.BUILD, "index", "libmcache.so"))
LIST = os.path.join(installtest.HERE, "libmcache.symbols")
HEADER = os.path.join(installtest.SOURCE, "include", "mcache.h")
UPDATE = ("If this change is deliberate, update the list: MCACHE_UPDATE_SYMBOLS=1 ctest -R "
          "install_abi, and review its diff (removing or changing a function needs a new "
          "SONAME: SOVERSION in index/CMakeLists.txt)")


def exported():
    """["T mc_attach@@MCACHE_0", ...]: type and versioned name of every defined dynamic symbol."""
    out = installtest.run(["nm", "-D", "--defined-only", "--with-symbol-versions", LIB]).stdout
    syms = []
    for line in out.splitlines():
        f = line.split()
        if len(f) == 3:
            syms.append("%s %s" % (f[1], f[2]))
    return sorted(syms, key=lambda s: s.split()[1])


def committed():
    with open(LIST) as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]


class Abi(unittest.TestCase):
    maxDiff = None

    def test_exports_are_the_committed_list(self):
        have, want = exported(), committed()
        added = sorted(set(have) - set(want))
        removed = sorted(set(want) - set(have))
        self.assertFalse(added or removed,
                         "%s exports symbols not in %s: %s; and lacks symbols listed there: %s. %s"
                         % (LIB, LIST, added or "none", removed or "none", UPDATE))

    def test_exports_are_the_header_api(self):
        with open(HEADER) as f:
            api = set(re.findall(r"^MC_API\b[^;(]*?\b(mc_\w+)\s*\(", f.read(), re.M))
        self.assertGreater(len(api), 15)
        funcs = {s.split()[1].split("@")[0] for s in exported() if s.split()[0] == "T"}
        others = [s for s in exported() if s.split()[0] not in ("T", "A")]
        self.assertEqual(others, [], "libmcache exports data, not only functions")
        self.assertEqual(sorted(funcs - api), [],
                         "exported but not declared MC_API in include/mcache.h")
        self.assertEqual(sorted(api - funcs), [],
                         "declared MC_API in include/mcache.h but not exported by " + LIB)

    def test_every_export_is_versioned_MCACHE_0(self):
        # MCACHE_0 (0.1) and the nodes of later minor versions (MCACHE_0.N:
        # functions added since, index/libmcache.map), nothing else.
        nodes = {s.split()[1] for s in exported() if s.split()[0] == "A"}
        self.assertIn("MCACHE_0", nodes)
        for n in nodes:
            self.assertRegex(n, r"^MCACHE_0(\.[0-9]+)?$")
        for s in exported():
            kind, name = s.split()
            if kind != "A":
                self.assertTrue(name.startswith("mc_") and name.split("@@")[1] in nodes, s)

    def test_soname_and_needed(self):
        out = installtest.run(["readelf", "-d", LIB]).stdout
        self.assertEqual(re.findall(r"\(SONAME\).*\[(.*)\]", out), ["libmcache.so.0"], out)
        needed = re.findall(r"\(NEEDED\).*\[(.*)\]", out)
        # libmcache links libck, libxxhash and pthreads (in libc) only (its XXH3 is
        # inlined: clang names libxxhash anyway, gcc drops it). A sanitizer build
        # adds its runtime.
        allowed = re.compile(r"^(libck|libxxhash|libc|libpthread|ld-linux-x86-64|libasan|"
                             r"libubsan|libtsan|libgcc_s)\.so")
        self.assertEqual([n for n in needed if not allowed.match(n)], [],
                         "libmcache needs a library it must not (docs/layout.md)")


if __name__ == "__main__":
    if os.environ.get("MCACHE_UPDATE_SYMBOLS") == "1":
        installtest.need_tools("nm")
        with open(LIST, "w") as f:
            f.write("# The dynamic symbols libmcache.so.0 exports (nm -D --defined-only "
                    "--with-symbol-versions),\n# checked by install_abi "
                    "(tests/install/test_abi.py says how to update it).\n")
            f.write("\n".join(exported()) + "\n")
        print("wrote " + LIST)
        sys.exit(0)
    installtest.need_tools("nm", "readelf")
    unittest.main(verbosity=2)
