"""
test_mirror.py - the Python package's hand-made copy of include/mcache.h
matches the header: every MC_E* code and its value against mcache.errors, and
every ctypes Structure in the package (size, alignment, each field's offset
and size) against the C struct as the compiler lays it out, printed by
tests/abi_layout. A change to one side only fails here.

Environment (set by ctest, see tests/python/CMakeLists.txt):
  MC_ABI_LAYOUT  tests/abi_layout (default: <repo>/build/tests/abi_layout)
"""

import ctypes
import importlib
import json
import os
import pkgutil
import re
import subprocess
import sys
import unittest

import mctest
from mcache import errors

HEADER = os.path.join(mctest.REPO, "include", "mcache.h")

# "#define MC_EINVAL       (-1)  /* ... */"
DEFINE = re.compile(r"^#define\s+MC_(E[A-Z0-9_]+)\s+(.*?)\s*(?:/\*.*)?$")
VALUE = re.compile(r"^\(?\s*(-?\d+)\s*\)?$")


def header_codes():
    """{"EINVAL": -1, ...} from include/mcache.h, and MC_ECODE_MIN."""
    codes, code_min = {}, None
    with open(HEADER) as f:
        for line in f:
            m = DEFINE.match(line.strip())
            if not m:
                continue
            v = VALUE.match(m.group(2))
            if not v:
                raise AssertionError("include/mcache.h: MC_%s is %r, not a number this test can "
                                     "read; write codes as (-N)" % (m.group(1), m.group(2)))
            if m.group(1) == "ECODE_MIN":
                code_min = int(v.group(1))
            else:
                codes[m.group(1)] = int(v.group(1))
    return codes, code_min


def python_codes():
    """{"EINVAL": -1, ...}: the module-level E* integers of mcache.errors."""
    return {k: v for k, v in vars(errors).items()
            if re.fullmatch(r"E[A-Z0-9_]+", k) and isinstance(v, int)}


def c_layouts():
    exe = mctest.tool("MC_ABI_LAYOUT", "tests/abi_layout")
    out = subprocess.run([exe], stdout=subprocess.PIPE, check=True, text=True, timeout=30).stdout
    return json.loads(out)


def python_structs():
    """{"mc_tensor": Tensor, ...}: every ctypes Structure defined in the package,
    keyed by the C struct its docstring names ("struct mc_tensor")."""
    out = {}
    for info in pkgutil.iter_modules(mctest.mcache.__path__):
        mod = importlib.import_module("mcache." + info.name)
        for obj in vars(mod).values():
            if not (isinstance(obj, type) and issubclass(obj, ctypes.Structure)
                    and obj.__module__ == mod.__name__):
                continue
            m = re.match(r"\s*struct (mc_\w+)", obj.__doc__ or "")
            if not m:
                raise AssertionError("%s.%s: its docstring must name the C struct it mirrors "
                                     "(\"struct mc_...\")" % (mod.__name__, obj.__name__))
            out[m.group(1)] = obj
    return out


class TestErrorCodes(unittest.TestCase):
    def test_every_header_code_is_in_errors_with_its_value(self):
        c, _ = header_codes()
        py = python_codes()
        self.assertTrue(c, "no MC_E* codes found in " + HEADER)
        for name, value in sorted(c.items(), key=lambda kv: -kv[1]):
            with self.subTest(code="MC_" + name):
                self.assertIn(name, py, "MC_%s (%d) is in include/mcache.h but not in "
                              "python/mcache/errors.py" % (name, value))
                self.assertEqual(py[name], value, "MC_%s is %d in include/mcache.h but %s in "
                                 "python/mcache/errors.py" % (name, value, py[name]))

    def test_errors_has_no_code_the_header_lacks(self):
        c, _ = header_codes()
        extra = sorted(set(python_codes()) - set(c))
        self.assertEqual(extra, [], "python/mcache/errors.py has codes include/mcache.h lacks")

    def test_codes_are_distinct_and_ECODE_MIN_is_the_lowest(self):
        c, code_min = header_codes()
        self.assertEqual(len(set(c.values())), len(c), "two MC_E* codes share a value")
        self.assertEqual(code_min, min(c.values()), "MC_ECODE_MIN is not the lowest code")


class TestStructs(unittest.TestCase):
    def test_every_structure_has_a_c_layout_and_back(self):
        py, c = python_structs(), c_layouts()
        self.assertTrue(py, "no ctypes Structure found in the mcache package")
        self.assertEqual(sorted(set(py) - set(c)), [],
                         "ctypes Structures with no entry in tests/abi_layout.c")
        self.assertEqual(sorted(set(c) - set(py)), [],
                         "tests/abi_layout.c lists structs the package does not mirror")

    def test_each_structure_matches_the_c_layout(self):
        layouts = c_layouts()
        for cname, cls in sorted(python_structs().items()):
            if cname not in layouts:
                continue  # reported by test_every_structure_has_a_c_layout_and_back
            c = layouts[cname]
            with self.subTest(struct=cname):
                what = "struct %s (C) vs %s.%s (Python)" % (cname, cls.__module__, cls.__name__)
                self.assertEqual([f[0] for f in c["fields"]], [f[0] for f in cls._fields_],
                                 what + ": fields differ (names or order)")
                for name, offset, size in c["fields"]:
                    d = getattr(cls, name)
                    self.assertEqual((d.offset, d.size), (offset, size),
                                     "%s: field %s at (offset, size) %s in C, %s in Python"
                                     % (what, name, (offset, size), (d.offset, d.size)))
                self.assertEqual(ctypes.sizeof(cls), c["size"], what + ": sizeof differs (a field "
                                 "on one side only? tests/abi_layout.c lists the C fields)")
                self.assertEqual(ctypes.alignment(cls), c["align"], what + ": alignment differs")


if __name__ == "__main__":
    sys.exit(unittest.main())
