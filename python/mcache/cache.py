"""
cache.py - Cache (an attached arena) and Model (a model version held from it).

LIFETIMES (the one rule to know)
  A model's bytes stay valid, and cannot be evicted or reused, while the model
  is held. In C the hold ends at mc_release(). Here it ends when the Model is
  released (release(), or the end of its with-block) AND every buffer taken
  from it is gone: each memoryview, NumPy array and PyTorch tensor from a Model
  keeps a reference to the model's memory, and the hold is given back
  (mc_release) by a finalizer when the last of them is collected. So nothing
  you hold can ever point at freed or reused memory, and nothing can crash on a
  dangling pointer; the price is that an array you keep keeps its model in the
  arena. Calling a released Model's methods raises mcache.ReleasedError.
  Likewise the arena is detached (mc_detach, which unmaps it) only when every
  Cache on it is closed and no model from it is held any more.

ONE ATTACHMENT PER ARENA AND PROCESS
  The arena is mapped at a fixed address, so a process can map it only once.
  attach() therefore shares one underlying attachment between all Cache
  objects of a process on the same arena (same directory and cache name): two
  libraries in one process can each attach() and close() independently.

READ-ONLY
  The arena is mapped PROT_READ. memoryviews are read-only (writing raises
  TypeError) and NumPy arrays have writeable=False (writing raises
  ValueError). PyTorch has no read-only tensors: an in-place operation on a
  tensor from torch() is not refused by PyTorch, and the CPU faults on the
  write, so the process dies with SIGSEGV. It cannot corrupt what other
  workers read. Use .clone() for a tensor you want to modify.

THREADS AND PROCESSES
  Everything is safe from any thread (libmcache is, and ctypes releases the
  GIL during calls, so a get(load=True) wait does not block other threads).
  After os.fork() a child must attach() again: a Cache or Model from the
  parent raises in the child, and the child's finalizers never touch the
  parent's reader slots. The child's attach() first detaches the inherited
  mapping (it occupies the arena's fixed address), then maps the arena anew at
  the same address; arrays inherited from the parent then still read the same
  bytes, but only the parent's hold protects them: get models again in the
  child.
"""

import collections
import ctypes
import json
import math
import os
import sys
import threading
import time
import warnings
import weakref

from . import _dtypes, _lib, errors
from .errors import Error, NotFoundError, ReleasedError, UnsupportedDtypeError, from_code

TensorInfo = collections.namedtuple(
    "TensorInfo", "name dtype shape nbytes offset address elem_size aligned"
)
TensorInfo.__doc__ = """A tensor of a safetensors model (from mc_model_tensor_at).
name, dtype (safetensors name: "F32", "BF16", ...), shape (tuple), nbytes,
offset (from the start of the model's bytes), address (in the arena),
elem_size, aligned (data aligned to elem_size)."""

CacheInfo = collections.namedtuple("CacheInfo", [f[0] for f in _lib.CacheInfo._fields_])
CacheInfo.__doc__ = """A snapshot of the arena (struct mc_cache_info): base and
size of the mapping, page_size, data_size/data_used/data_largest_free,
index_size/index_used, models, entries, generation, epoch, created_ns,
loader_pid, format."""


def _b(s, what):
    if s is None:
        return None
    if not isinstance(s, (bytes, str)):
        raise TypeError("mcache: %s must be a str, not %s" % (what, type(s).__name__))
    b = s if isinstance(s, bytes) else s.encode("utf-8")
    if b"\0" in b:
        # C would stop at the NUL and answer for a shorter name
        raise ValueError("mcache: %s %r contains a NUL character at %d; remove it"
                         % (what, s, b.index(b"\0")))
    return b


def _s(b):
    return None if b is None else b.decode("utf-8", "replace")


class _Attachment:
    """One mc_cache*, counted by its users: each open Cache, each hold, each
    call in progress. The last one to go detaches it at once (mc_detach). The
    count, not Python's references, decides: a traceback that keeps a failed
    call's frames alive must not keep the arena mapped (its fixed address
    would refuse every later attach in this process)."""

    __slots__ = ("lib", "handle", "pid", "stale", "users", "_fin", "__weakref__")

    def __init__(self, lib, handle):
        self.lib = lib
        self.handle = handle
        self.pid = os.getpid()
        self.stale = False
        self.users = 0
        self._fin = weakref.finalize(self, _detach, lib, handle, self.pid)
        self._fin.atexit = False  # at exit the kernel ends our mapping and slots anyway

    def use(self):
        with _attach_lock:
            if self.handle is None:  # its last user went while we got here
                raise ReleasedError("mcache: the cache was closed; attach again")
            self.users += 1

    def unuse(self):
        if os.getpid() != self.pid:
            return  # inherited across fork(): the child's attach() detaches it
        with _attach_lock:
            self.users -= 1
            if self.users == 0:
                self._fin()  # mc_detach, once
                self.handle = None


# (realpath of the directory, cache name) -> the live _Attachment, weakly.
_attachments = weakref.WeakValueDictionary()
# Reentrant: a hold's finalizer (unuse) may run from the garbage collector
# while this thread is inside a locked section.
_attach_lock = threading.RLock()


def _new_lock_after_fork():
    global _attach_lock
    _attach_lock = threading.RLock()  # another thread may have held it at fork()


os.register_at_fork(after_in_child=_new_lock_after_fork)


def _attachment(lib, shm_dir, cache):
    """The process's attachment to this arena: the live one, or a new one."""
    key = (os.path.realpath(shm_dir), cache)
    with _attach_lock:
        att = _attachments.get(key)
        if att is not None and att.pid != os.getpid():
            # Inherited across fork(): its mapping occupies the arena's address
            # here. In a child, mc_detach() unmaps it and leaves the parent's
            # reader slots alone; then this process attaches for itself.
            if att.handle is not None:
                lib.mc_detach(att.handle)
                att.handle = None
            att = None
        if att is not None and att.handle is None:
            att = None  # detached: its last user is gone, a stray reference is not one
        if att is not None:
            if not att.stale:
                att.use()
                return att
            # Its mapping still occupies the arena's address: the new arena
            # cannot be mapped until everything from the old one is gone.
            raise errors.StaleError(
                "mcache: cache %r in %s was replaced by a new arena, and models or Cache "
                "objects of the old one are still alive in this process: release and close "
                "them all (and drop their arrays), then attach again" % (cache, shm_dir),
                errors.ESTALE, "arena superseded")
        h = ctypes.c_void_p()
        rc = lib.mc_attach_dir(_b(shm_dir, "shm_dir"), _b(cache, "cache"), ctypes.byref(h))
        if rc:
            raise from_code(lib, rc)
        att = _Attachment(lib, h.value)
        _attachments[key] = att
        att.use()
        return att


def _detach(lib, handle, pid):
    if os.getpid() == pid:  # never from a forked child: the slots are the parent's
        lib.mc_detach(handle)


def _release(lib, handle, pid, attachment):
    if os.getpid() == pid:
        lib.mc_release(handle)
        attachment.unuse()  # the hold was one of its users


def _check_pid(att, what):
    if os.getpid() != att.pid:
        raise Error(
            "mcache: this %s belongs to process %d (this is %d, a fork): attach again "
            "in this process" % (what, att.pid, os.getpid())
        )


class _With:
    """`with x:` ends x (close or release) at the end of the block."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._end()
        return False


class Cache(_With):
    """An attached cache (mc_attach_dir). Use mcache.attach() to make one.

    get() models from it; close() it (or use `with`) when done."""

    def __init__(self, cache=None, shm_dir=None):
        lib = _lib.load()
        # The defaults of mc_attach_dir(), resolved here to name the arena.
        self.name = cache or os.environ.get("MCACHE_CACHE") or "default"
        self.shm_dir = shm_dir or os.environ.get("MCACHE_SHM_DIR") or "/dev/shm"
        _b(self.name, "cache")
        _b(self.shm_dir, "shm_dir")
        self._att = _attachment(lib, self.shm_dir, self.name)
        self._lib = lib
        # An open Cache is a user of the attachment until close() or its end.
        self._closer = weakref.finalize(self, self._att.unuse)
        self._closer.atexit = False

    def _live(self):
        att = self._att
        if att is None:
            raise ReleasedError("mcache: cache %r is closed; attach again" % self.name)
        _check_pid(att, "cache")
        return att

    def _call(self, fn, *args, keep=False):
        """fn(handle, *args) as a user of the attachment: a close() from
        another thread meanwhile cannot detach the arena under the call.
        keep=True: if fn returns 0, the use is not given back here (it
        becomes the hold's, given back by _release())."""
        att = self._live()
        att.use()
        rc = -1
        try:
            rc = fn(att.handle, *args)
            return att, rc
        finally:
            if not (keep and rc == 0):
                att.unuse()

    def get(self, name, ref=None, load=False, timeout=None, key=None):
        """Hold model `name` at `ref` and return it as a Model.

        ref: an exact version ("1.2.3"), an alias ("production"), "latest"
        (also None) or a range ("^1.2", ">=1.0.0 <2.0.0").
        key: a request key (str or bytes: a user or session id). Through a
        weighted alias (a canary), the same key gets the same version while
        the weights stay (mc_get_keyed); without one, each get picks by
        weight. Not with load=True.
        load=False: mc_get(), no system call; NotResidentError if the version
        is registered but not in the arena.
        load=True: mc_get_load(); asks mcached to load it and waits up to
        `timeout` seconds (None: no limit). A name or version the arena does
        not know yet (pushed a moment ago) is asked of mcached too. TimedOutError, NoDaemonError,
        LoadFailedError tell what went wrong.
        Use it as a context manager: `with cache.get("demo", "production") as m:`.
        """
        h = ctypes.c_void_p()
        bname, bref = _b(name, "name"), _b(ref, "ref")
        if key is not None:
            if isinstance(key, str):
                key = key.encode()
            if not isinstance(key, (bytes, bytearray)):
                raise TypeError("mcache: key must be str or bytes, not %s" % type(key).__name__)
            if load:
                raise ValueError("mcache: key= and load=True do not go together; load the "
                                 "versions first (mcache load), then get with the key")
            att, rc = self._call(self._lib.mc_get_keyed, bname, bref, bytes(key), len(key),
                                 ctypes.byref(h), keep=True)
        elif load:
            if timeout is None or timeout == math.inf:
                ms = -1
            elif (not isinstance(timeout, (int, float)) or isinstance(timeout, bool)
                  or math.isnan(timeout) or timeout < 0):
                raise ValueError("mcache: timeout must be a number of seconds >= 0 or None, "
                                 "not %r" % (timeout,))
            else:
                ms = min(int(timeout * 1000 + 0.5), 2**31 - 1)
            att, rc = self._call(self._lib.mc_get_load, bname, bref, ms, ctypes.byref(h),
                                 keep=True)
        else:
            att, rc = self._call(self._lib.mc_get, bname, bref, ctypes.byref(h), keep=True)
        if rc:
            if rc == errors.ESTALE:
                att.stale = True  # the next attach() maps the new arena
            raise from_code(self._lib, rc)
        return Model(att, h.value, ref)  # the call's use is now the hold's

    def info(self):
        """A CacheInfo snapshot of the arena (mc_cache_info)."""
        out = _lib.CacheInfo()
        _, rc = self._call(self._lib.mc_cache_info, ctypes.byref(out))
        if rc:
            raise from_code(self._lib, rc)
        return CacheInfo(*(getattr(out, f) for f in CacheInfo._fields))

    def close(self):
        """No more get(). The arena is detached once no model from it is held."""
        self._att = None
        self._closer()  # once: the Cache stops being a user of the attachment

    _end = close

    @property
    def closed(self):
        return self._att is None

    def __repr__(self):
        return "<mcache.Cache %r in %s%s>" % (
            self.name,
            self.shm_dir,
            " closed" if self._att is None else "",
        )


class _Serving:
    """The context manager of Model.serving()."""

    __slots__ = ("_m", "units", "_t0")

    def __init__(self, model, units):
        self._m = model
        self.units = units  # may be set inside the block, once the count is known
        self._t0 = None

    def __enter__(self):
        self._t0 = time.perf_counter_ns()
        return self

    def __exit__(self, etype, exc, tb):
        self._m.report((time.perf_counter_ns() - self._t0) / 1e9, ok=etype is None,
                       units=self.units)
        return False


class Model(_With):
    """A model version held from a Cache (made by Cache.get()).

    Plain attributes (still readable after release): name, version, format,
    checksum, size, generation, address (of the bytes in the arena), ref (as
    asked). Everything else reads the arena and raises ReleasedError once the
    model is released."""

    def __init__(self, att, handle, ref):
        lib = att.lib
        self._lib = lib
        self._att = att
        self._h = handle
        self.ref = ref
        self.name = _s(lib.mc_model_name(handle))
        self.version = _s(lib.mc_model_version(handle))
        self.format = _s(lib.mc_model_format(handle))
        self.checksum = _s(lib.mc_model_checksum(handle))
        self.size = lib.mc_model_size(handle)
        self.generation = lib.mc_model_generation(handle)
        self.address = lib.mc_model_data(handle) or 0
        # The exporter of every buffer we hand out: a ctypes array over the
        # bytes (never handed out itself: it is writable, the mapping is not).
        exporter = (ctypes.c_char * self.size).from_address(self.address)
        self._view = memoryview(exporter).cast("B").toreadonly()
        self._hold = weakref.finalize(exporter, _release, lib, handle, att.pid, att)
        self._hold.atexit = False
        self._tensors = None

    # -- lifetime --

    def release(self):
        """End this handle. The hold in the arena ends when no buffer taken from
        the model (view, NumPy array, tensor) is alive any more. Idempotent."""
        if self._h is None:
            return
        self._h = None
        self._tensors = None
        self._view = None  # may be the exporter's last reference: mc_release now
        # A released handle must not keep the attachment alive: after a rebuild
        # of the arena, attach() would stay stale until this object died.
        # (Buffers still alive keep it through their hold's finalizer.)
        self._att = None

    _end = release

    @property
    def released(self):
        """True after release() (or the end of the with-block)."""
        return self._h is None

    @property
    def held(self):
        """True while the arena holds the bytes for us: until release() and
        the collection of every buffer taken from this model."""
        return self._hold.alive

    def _live(self):
        if self._h is None:
            raise ReleasedError(
                "mcache: model %s@%s was released; get it again (cache.get(%r, %r))"
                % (self.name, self.version, self.name, self.ref)
            )
        _check_pid(self._att, "model")
        return self._h

    # -- serving statistics --

    def report(self, latency, ok=True, units=0):
        """Record one request served with this model (mc_report): its
        latency in seconds, success, and work units (tokens, images). No
        system call. Returns False if the version is not tracked (the cache's
        63 statistics indices are taken), True otherwise."""
        h = self._live()
        if isinstance(latency, bool) or not isinstance(latency, (int, float)) or not (
                latency >= 0) or math.isinf(latency):
            raise ValueError("mcache: latency must be a number of seconds >= 0, not %r"
                             % (latency,))
        if isinstance(units, bool) or not isinstance(units, int) or units < 0:
            raise ValueError("mcache: units must be an integer >= 0, not %r" % (units,))
        rc = self._lib.mc_report(h, min(int(latency * 1e9), 2**64 - 1), 1 if ok else 0, units)
        if rc == errors.ENOTSUP:
            return False
        if rc:
            raise from_code(self._lib, rc)
        return True

    def serving(self, units=0):
        """`with model.serving(units=n):` times the block and reports it as
        one request: an exception in it counts as an error (and goes on)."""
        return _Serving(self, units)

    def __repr__(self):
        return "<mcache.Model %s@%s %s %d bytes%s>" % (
            self.name,
            self.version,
            self.format,
            self.size,
            " released" if self._h is None else "",
        )

    # -- bytes and metadata --

    @property
    def view(self):
        """The model's bytes: a read-only, zero-copy memoryview (format "B")
        into the arena. A new view object each time; each keeps the model held."""
        self._live()
        return memoryview(self._view)

    @property
    def metadata(self):
        """The version's registry metadata (mc_model_metadata), JSON decoded."""
        text = _s(self._lib.mc_model_metadata(self._live()))
        return json.loads(text) if text else {}

    @property
    def tensor_metadata(self):
        """The safetensors __metadata__ object (a dict of strings), or None."""
        text = _s(self._lib.mc_model_tensor_metadata(self._live()))
        return json.loads(text) if text else None

    # -- tensors --

    @property
    def tensors(self):
        """{name: TensorInfo} of a safetensors model, in name order ({} for
        other formats)."""
        h = self._live()
        if self._tensors is None:
            out = collections.OrderedDict()
            t = _lib.Tensor()
            for i in range(self._lib.mc_model_tensor_count(h)):
                rc = self._lib.mc_model_tensor_at(h, i, ctypes.byref(t))
                if rc:
                    raise from_code(self._lib, rc)
                info = self._info(t)
                out[info.name] = info
            self._tensors = out
        return self._tensors

    def _info(self, t):
        address = t.data or 0
        offset = address - self.address
        if not (0 <= offset and offset + t.size <= self.size):
            raise Error(
                "mcache: tensor %r of %s@%s lies outside the model's bytes (address %#x, "
                "model %#x+%d); this is a bug in libmcache"
                % (_s(t.name), self.name, self.version, address, self.address, self.size)
            )
        return TensorInfo(
            name=_s(t.name),
            dtype=_s(t.dtype),
            shape=tuple(t.shape[i] for i in range(t.ndim)),
            nbytes=t.size,
            offset=offset,
            address=address,
            elem_size=t.elem_size,
            aligned=bool(t.aligned),
        )

    def tensor(self, name):
        """The TensorInfo called `name`; NotFoundError (naming the tensors
        there are) if there is none."""
        self._live()
        info = self.tensors.get(name)
        if info is None:
            if self.format != "safetensors":
                raise NotFoundError(
                    "mcache: %s@%s is %s, not safetensors: it has no tensors"
                    % (self.name, self.version, self.format)
                )
            raise NotFoundError(
                "mcache: %s@%s has no tensor %r (it has %d: %s)"
                % (self.name, self.version, name, len(self.tensors),
                   ", ".join(list(self.tensors)[:8]) + (", ..." if len(self.tensors) > 8 else ""))
            )
        return info

    def numpy(self, name=None, raw=False):
        """Tensor `name` as a read-only, zero-copy NumPy array (writeable=False),
        or all of them as {name: array} if name is None.

        BF16 and F8 have no NumPy type: UnsupportedDtypeError, unless raw=True,
        which gives every dtype's bits as unsigned integers of its width."""
        np = _import("numpy", "numpy()", "python3-numpy")
        self._live()
        if name is None:
            return collections.OrderedDict((n, self.numpy(n, raw)) for n in self.tensors)
        info = self.tensor(name)
        np_type = _dtypes.numpy_type(info.dtype, raw)
        if np_type is None:
            raise UnsupportedDtypeError(
                "mcache: tensor %r of %s@%s is %s, which NumPy has no type for; use "
                "torch() (torch.bfloat16 / float8) or numpy(%r, raw=True) for its bits "
                "as uint%d" % (name, self.name, self.version, info.dtype, name,
                                 8 * info.elem_size)
            )
        count = info.nbytes // info.elem_size
        a = np.frombuffer(self._view, dtype=np_type, count=count, offset=info.offset)
        return a.reshape(info.shape)

    def torch(self, name=None, raw=False):
        """Tensor `name` as a zero-copy PyTorch CPU tensor over the arena, or all
        of them as {name: tensor} (a state dict) if name is None.

        PyTorch has no read-only tensors: do not modify these in place (the
        mapping is read-only; the write kills the process with SIGSEGV). Types
        this torch lacks raise UnsupportedDtypeError unless raw=True (bits)."""
        torch = _import("torch", "torch()", "python3-torch")
        self._live()
        if name is None:
            return collections.OrderedDict((n, self.torch(n, raw)) for n in self.tensors)
        info = self.tensor(name)
        if sys.byteorder != "little":
            raise UnsupportedDtypeError("mcache: torch() needs a little-endian host")
        t_type = _dtypes.torch_type(torch, info.dtype, raw)
        if t_type is None:
            raise UnsupportedDtypeError(
                "mcache: tensor %r of %s@%s is %s, which torch %s has no type for; use "
                "torch(%r, raw=True) for its bits"
                % (name, self.name, self.version, info.dtype, torch.__version__, name)
            )
        count = info.nbytes // info.elem_size
        if count == 0:  # frombuffer refuses empty buffers; there is no data to share
            return torch.empty(info.shape, dtype=t_type)
        with warnings.catch_warnings():
            # "The given buffer is not writable...": known and documented above.
            warnings.filterwarnings("ignore", message="The given buffer is not writable")
            t = torch.frombuffer(self._view, dtype=t_type, count=count, offset=info.offset)
        return t.reshape(info.shape)


def _import(module, what, package):
    try:
        return __import__(module)
    except ImportError as e:
        raise ImportError(
            "mcache: %s needs %s (on Debian: apt install %s): %s" % (what, module, package, e)
        ) from e


def attach(cache=None, shm_dir=None):
    """Attach to cache `cache` (None: $MCACHE_CACHE or "default") whose arena
    lives in `shm_dir` (None: $MCACHE_SHM_DIR or /dev/shm). Returns a Cache."""
    return Cache(cache, shm_dir)
