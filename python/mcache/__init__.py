"""
mcache - Python access to an mcache shared-memory model cache (libmcache via ctypes).

    import mcache

    with mcache.attach() as cache:                      # $MCACHE_CACHE or "default"
        with cache.get("demo", "production") as m:      # held until the with-block ends
            print(m.name, m.version, m.size, m.metadata)
            raw = m.view                                 # read-only memoryview, zero-copy
            w = m.numpy("fc1.weight")                    # NumPy, writeable=False, zero-copy
            sd = m.torch()                               # {name: torch.Tensor}, zero-copy

Pure Python over the shared library libmcache (include/mcache.h); NumPy and
PyTorch are optional and imported only by numpy() and torch(). Errors are
mcache.Error subclasses carrying libmcache's message. See python/README.md
for lifetimes (a NumPy array or tensor keeps its model held), read-only
memory and PyTorch, dtypes, and where libmcache is looked for.
"""

from . import _lib
from .cache import Cache, CacheInfo, Model, TensorInfo, attach
from .errors import (
    AddressInUseError,
    Error,
    LibraryNotFoundError,
    LoadFailedError,
    NoDaemonError,
    NotFoundError,
    NotResidentError,
    PermissionDeniedError,
    ReleasedError,
    StaleError,
    TimedOutError,
    UnsupportedDtypeError,
)

__version__ = "0.4.0"

__all__ = [
    "attach",
    "Cache",
    "CacheInfo",
    "Model",
    "TensorInfo",
    "Error",
    "AddressInUseError",
    "LibraryNotFoundError",
    "LoadFailedError",
    "NoDaemonError",
    "NotFoundError",
    "NotResidentError",
    "PermissionDeniedError",
    "ReleasedError",
    "StaleError",
    "TimedOutError",
    "UnsupportedDtypeError",
    "library_path",
    "lib_version",
    "strerror",
]


def library_path():
    """The path libmcache is loaded from (loading it if needed)."""
    _lib.load()
    return _lib.path()


def lib_version():
    """The version of the libmcache loaded, "MAJOR.MINOR.PATCH" (mc_version),
    loading it if needed. __version__ is this package's."""
    lib = _lib.load()
    fn = getattr(lib, "mc_version", None)
    if fn is None:
        raise Error("mcache: the libmcache at %s has no mc_version(); it is older than this "
                    "package (%s): rebuild it or point MCACHE_LIB at a current one"
                    % (_lib.path(), __version__))
    return fn().decode("ascii")


def strerror(code):
    """libmcache's name for a result code (mc_strerror)."""
    return _lib.load().mc_strerror(int(code)).decode("utf-8", "replace")
