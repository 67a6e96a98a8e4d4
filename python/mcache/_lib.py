"""
_lib.py - finds libmcache and declares its C API (include/mcache.h) for ctypes.

Where the library is looked for, first match wins:
  1. $MCACHE_LIB: a path to the shared library (libmcache.so[.0]).
  2. Next to this package: mcache/libmcache.so* (a bundled copy).
  3. The source tree's build, when this package is <repo>/python/mcache:
     <repo>/build/index/libmcache.so.
  4. The installed library by its SONAME, libmcache.so.0 (the ABI this
     package speaks), found as the dynamic loader finds any library:
     $LD_LIBRARY_PATH, then the ld.so cache (ldconfig; the package's
     /usr/lib/<triplet>, or /usr/local/lib after `cmake --install` and
     `ldconfig`), then /lib and /usr/lib.
The library is loaded on first use (mcache.attach()), so `import mcache` works
without it; a missing library is an mcache.LibraryNotFoundError naming every
place that was tried.

The structures below must match include/mcache.h field for field; the C header
is the contract (tests/python/test_mirror.py compares them with the compiler's
layout).
"""

import ctypes
import os
import threading

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(os.path.dirname(_HERE))
# The SONAME: libmcache.so.1, if there is ever one, is another ABI.
SONAME = "libmcache.so.0"


class Tensor(ctypes.Structure):
    """struct mc_tensor"""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("dtype", ctypes.c_char_p),
        ("elem_size", ctypes.c_uint),
        ("ndim", ctypes.c_uint),
        ("shape", ctypes.POINTER(ctypes.c_uint64)),
        ("data", ctypes.c_void_p),
        ("size", ctypes.c_uint64),
        ("aligned", ctypes.c_int),
    ]


class CacheInfo(ctypes.Structure):
    """struct mc_cache_info"""

    _fields_ = [
        ("base", ctypes.c_uint64),
        ("size", ctypes.c_uint64),
        ("page_size", ctypes.c_uint64),
        ("data_size", ctypes.c_uint64),
        ("data_used", ctypes.c_uint64),
        ("data_largest_free", ctypes.c_uint64),
        ("index_size", ctypes.c_uint64),
        ("index_used", ctypes.c_uint64),
        ("models", ctypes.c_uint64),
        ("entries", ctypes.c_uint64),
        ("generation", ctypes.c_uint64),
        ("epoch", ctypes.c_uint64),
        ("created_ns", ctypes.c_uint64),
        ("loader_pid", ctypes.c_uint32),
        ("format", ctypes.c_uint32),
    ]


_P = ctypes.c_void_p
_S = ctypes.c_char_p
_PP = ctypes.POINTER(ctypes.c_void_p)

# name: (restype, argtypes)
_PROTOS = {
    "mc_attach": (ctypes.c_int, [_S, _PP]),
    "mc_attach_dir": (ctypes.c_int, [_S, _S, _PP]),
    "mc_detach": (None, [_P]),
    "mc_get": (ctypes.c_int, [_P, _S, _S, _PP]),
    "mc_get_load": (ctypes.c_int, [_P, _S, _S, ctypes.c_int, _PP]),
    "mc_get_keyed": (ctypes.c_int, [_P, _S, _S, ctypes.c_char_p, ctypes.c_size_t, _PP]),
    "mc_report": (ctypes.c_int, [_P, ctypes.c_uint64, ctypes.c_int, ctypes.c_uint64]),
    "mc_release": (None, [_P]),
    "mc_model_data": (_P, [_P]),
    "mc_model_size": (ctypes.c_size_t, [_P]),
    "mc_model_name": (_S, [_P]),
    "mc_model_version": (_S, [_P]),
    "mc_model_format": (_S, [_P]),
    "mc_model_checksum": (_S, [_P]),
    "mc_model_metadata": (_S, [_P]),
    "mc_model_generation": (ctypes.c_uint64, [_P]),
    "mc_model_tensor_count": (ctypes.c_size_t, [_P]),
    "mc_model_tensor_at": (ctypes.c_int, [_P, ctypes.c_size_t, ctypes.POINTER(Tensor)]),
    "mc_model_tensor_find": (ctypes.c_int, [_P, _S, ctypes.POINTER(Tensor)]),
    "mc_model_tensor_metadata": (_S, [_P]),
    "mc_cache_info": (ctypes.c_int, [_P, ctypes.POINTER(CacheInfo)]),
    "mc_strerror": (_S, [ctypes.c_int]),
    "mc_last_error": (_S, []),
}

# Declared only where the library has them: a libmcache built before they
# existed still loads (lib_version() then says what is missing).
_OPTIONAL = {
    "mc_version": (_S, []),
}

_lock = threading.Lock()
_lib = None
_lib_path = None


def candidates():
    """Every path tried, in order (an entry may not exist)."""
    out = []
    env = os.environ.get("MCACHE_LIB")
    if env:
        out.append(env)
    for name in ("libmcache.so", SONAME):
        out.append(os.path.join(_HERE, name))
    if os.path.exists(os.path.join(_REPO, "include", "mcache.h")):  # a source tree
        out.append(os.path.join(_REPO, "build", "index", "libmcache.so"))
    out.append(SONAME)
    return out


def _loaded_from(soname):
    """The file the dynamic loader mapped for `soname` (from /proc/self/maps,
    which names the file the SONAME's link points at: libmcache.so.0.4.0)."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                fields = line.split(None, 5)
                name = os.path.basename(fields[5].strip()) if len(fields) == 6 else ""
                if name == soname or name.startswith(soname + "."):
                    return fields[5].strip()
    except OSError:
        pass
    return soname


def _declare(lib):
    for name, (restype, argtypes) in _PROTOS.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    for name, (restype, argtypes) in _OPTIONAL.items():
        fn = getattr(lib, name, None)
        if fn is not None:
            fn.restype = restype
            fn.argtypes = argtypes


def load():
    """The loaded library (loads it on first call)."""
    global _lib, _lib_path
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is not None:
            return _lib
        tried = []
        env = os.environ.get("MCACHE_LIB")
        for path in candidates():
            # $MCACHE_LIB is taken as given; the others only if they exist
            # (the SONAME is resolved by the dynamic loader).
            if path != env and os.path.isabs(path) and not os.path.exists(path):
                tried.append(path + " (absent)")
                continue
            try:
                lib = ctypes.CDLL(path)
                _declare(lib)
            except (OSError, AttributeError) as e:
                tried.append("%s (%s)" % (path, e))
                if path == env:
                    break  # an explicit choice that fails is an error, not a hint
                continue
            _lib, _lib_path = lib, path if os.path.isabs(path) else _loaded_from(path)
            return lib
        from .errors import LibraryNotFoundError

        raise LibraryNotFoundError(
            "mcache: cannot load libmcache; tried: %s. Install it (the libmcache0 package, "
            "or cmake --install build, then ldconfig), build it (cmake -S . -B build && "
            "cmake --build build), or set MCACHE_LIB to its path" % "; ".join(tried)
        )


def path():
    """The path libmcache was loaded from, or None before the first load."""
    return _lib_path
