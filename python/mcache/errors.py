"""
errors.py - the exceptions of the mcache package.

Every failure of a libmcache call becomes an mcache.Error (or a subclass
chosen by its code) whose text is the library's detailed message for this
thread (mc_last_error(): what was wrong, the value, what to do), and which
carries the code as .code (a negative MC_E* number) and its name as .reason
(mc_strerror()). The subclasses also derive from the closest built-in
exception, so `except LookupError` or `except TimeoutError` work as expected.
"""

# Result codes, as in include/mcache.h (tests/python/test_mirror.py compares).
EINVAL = -1
ENOENT = -2
ENOTRESIDENT = -3
ENOMEM = -4
ENOSPC = -5
EFORMAT = -6
EBADARENA = -7
EADDRINUSE = -8
EIO = -9
ETOOMANY = -10
ESTALE = -11
EPERM = -12
EBUSY = -13
ETIMEDOUT = -14
ENODAEMON = -15
EEXIST = -16
ECORRUPT = -17
ENOTSUP = -18
EFAILED = -19


class Error(Exception):
    """A libmcache call failed. .code: the MC_E* code (negative int, or None
    for errors raised by the Python layer); .reason: mc_strerror(code)."""

    def __init__(self, message, code=None, reason=None):
        super().__init__(message)
        self.code = code
        self.reason = reason


class NotFoundError(Error, LookupError):
    """MC_ENOENT: no such cache, model, version, alias or tensor."""


class NotResidentError(Error):
    """MC_ENOTRESIDENT: registered but not loaded; get(..., load=True) asks mcached."""


class LoadFailedError(Error):
    """MC_EFAILED: the version's last load failed (the message says why)."""


class TimedOutError(Error, TimeoutError):
    """MC_ETIMEDOUT: get(..., load=True, timeout=...) ran out of time."""


class NoDaemonError(Error, ConnectionError):
    """MC_ENODAEMON: mcached is not running or not reachable."""


class StaleError(Error):
    """MC_ESTALE: the arena was superseded; release what you hold, close the
    cache and attach again."""


class AddressInUseError(Error):
    """MC_EADDRINUSE: the arena's fixed address is taken in this process."""


class PermissionDeniedError(Error, PermissionError):
    """MC_EPERM."""


class ReleasedError(Error, ValueError):
    """A Model (or Cache) was used after release() / close() / its with-block."""


class UnsupportedDtypeError(Error, TypeError):
    """The tensor's dtype has no equivalent in NumPy (BF16, F8_*) or in this
    PyTorch version (F8_*, U16/U32/U64 before torch 2.3); raw=True gives its bits."""


class LibraryNotFoundError(Error, ImportError):
    """libmcache could not be loaded (see mcache._lib for where it looks)."""


_BY_CODE = {
    ENOENT: NotFoundError,
    ENOTRESIDENT: NotResidentError,
    EFAILED: LoadFailedError,
    ETIMEDOUT: TimedOutError,
    ENODAEMON: NoDaemonError,
    ESTALE: StaleError,
    EADDRINUSE: AddressInUseError,
    EPERM: PermissionDeniedError,
}


def from_code(lib, code, what=None):
    """The exception for a failed call's code, with this thread's last
    detailed message (call it right after the failing call, same thread)."""
    detail = (lib.mc_last_error() or b"").decode("utf-8", "replace")
    reason = (lib.mc_strerror(code) or b"").decode("utf-8", "replace")
    message = detail or ("mcache: %s" % reason)
    if what and what not in message:
        message = "%s: %s" % (what, message)
    return _BY_CODE.get(code, Error)(message, code, reason)
