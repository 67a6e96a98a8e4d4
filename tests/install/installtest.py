"""installtest.py - what the install tests share: install this build into a
DESTDIR the way a package build does (`cmake --install BUILD --prefix /usr`
with DESTDIR set), pip-install the Python package there, and find things in it.

CMake passes the build's facts in the environment (tests/install/CMakeLists.txt):
MC_BUILD_DIR, MC_SOURCE_DIR, MC_INSTALL_DIRS ("bindir=bin:libdir=lib:..." as
configured, relative to the prefix or absolute), MC_CONF_DIR.
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("MC_SOURCE_DIR", os.path.normpath(os.path.join(HERE, "..", "..")))
BUILD = os.environ.get("MC_BUILD_DIR", os.path.join(SOURCE, "build"))
PREFIX = "/usr"
PYTHON = "/usr/bin/python3"

sys.path.insert(0, os.path.join(SOURCE, "tests", "cli"))
import clitest  # noqa: E402  (the CLI tests' harness: a private store, shm dir and mcached)


def skip(reason):
    print("skip: " + reason)
    sys.exit(77)


def need_tools(*tools):
    """Skip (77) naming the first tool that is missing (scripts/deps.sh installs them)."""
    for t in tools:
        if t == "pip":
            ok = subprocess.run([PYTHON, "-m", "pip", "--version"], capture_output=True).returncode == 0
        elif t == "setuptools":
            ok = subprocess.run([PYTHON, "-c", "import setuptools"], capture_output=True).returncode == 0
        else:
            ok = shutil.which(t) is not None
        if not ok:
            skip("%s is not installed (scripts/deps.sh installs it)" % t)


def run(args, **kw):
    """Run, fail with the command's output if it fails; returns the CompletedProcess."""
    p = subprocess.run(args, capture_output=True, text=kw.pop("text", True), **kw)
    if p.returncode != 0:
        raise AssertionError("%s -> %d\n--- stdout\n%s\n--- stderr\n%s"
                             % (" ".join(args), p.returncode, p.stdout, p.stderr))
    return p


class Tree:
    """A DESTDIR holding this build installed with prefix /usr."""

    def __init__(self, destdir):
        self.destdir = destdir
        dirs = dict(kv.split("=", 1) for kv in os.environ["MC_INSTALL_DIRS"].split(":") if kv)
        for name, d in dirs.items():
            setattr(self, name, self.path(d))
        self.confdir = self.path(os.environ["MC_CONF_DIR"])
        self.mcached = os.path.join(self.sbindir, "mcached")
        self.mcache = os.path.join(self.bindir, "mcache")
        self.bench = os.path.join(self.bindir, "mcache-bench")
        self.pkgconfig_env = dict(os.environ, PKG_CONFIG_SYSROOT_DIR=destdir,
                                  PKG_CONFIG_PATH=os.path.join(self.libdir, "pkgconfig"))
        self.site = None

    def path(self, d):
        """Where a configured directory (relative to the prefix, or absolute) lands."""
        return os.path.join(self.destdir, os.path.join(PREFIX, d).lstrip("/"))

    def pkg_config(self, *args):
        return run(["pkg-config"] + list(args) + ["mcache"], env=self.pkgconfig_env).stdout.split()

    def install_python(self):
        """pip-install python/ (pyproject.toml) into the DESTDIR; sets .site, the
        folder holding the installed package. A copy is built, so the source tree
        gets no build/ or egg-info."""
        src = os.path.join(self.destdir, ".python-src")
        shutil.copytree(os.path.join(SOURCE, "python"), src,
                        ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
        run([PYTHON, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-deps",
             "--no-cache-dir", "--root", self.destdir, "--prefix", PREFIX, src],
            env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_ROOT_USER_ACTION="ignore"))
        shutil.rmtree(src)
        found = glob.glob(os.path.join(self.destdir, PREFIX.lstrip("/"), "**", "mcache",
                                       "__init__.py"), recursive=True)
        if len(found) != 1:
            raise AssertionError("pip installed mcache/__init__.py %d times in %s: %s"
                                 % (len(found), self.destdir, found))
        self.site = os.path.dirname(os.path.dirname(found[0]))

    def python_env(self):
        """The environment of a Python worker using the DESTDIR's package and
        library: PYTHONPATH and LD_LIBRARY_PATH (what /usr/lib and ldconfig give
        a real install), and no MCACHE_LIB."""
        env = {k: v for k, v in os.environ.items() if k != "MCACHE_LIB"}
        env.update(PYTHONPATH=self.site, LD_LIBRARY_PATH=self.libdir, PYTHONDONTWRITEBYTECODE="1")
        return env


def install():
    """Install the build into a fresh DESTDIR; the caller removes it (.destdir)."""
    destdir = tempfile.mkdtemp(prefix="mcinstall.")
    try:
        run(["cmake", "--install", BUILD, "--prefix", PREFIX], env=dict(os.environ, DESTDIR=destdir))
    except Exception:
        shutil.rmtree(destdir, True)
        raise
    return Tree(destdir)
