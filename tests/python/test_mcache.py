"""
test_mcache.py - the Python module (python/mcache) against a real mcached:
zero-copy bytes inside the arena, read-only views and arrays (and a write
through a PyTorch tensor faults), released models and closed caches raise
clearly while buffers taken from them stay valid, every safetensors dtype as
NumPy and PyTorch matching the file, errors with libmcache's messages,
fork, threads, and the package without NumPy/PyTorch or without the library.
"""

import os
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
import unittest

import mctest
from mctest import mcache

try:
    import numpy as np
except ImportError:
    np = None
try:
    import torch
except ImportError:
    torch = None

PY = sys.executable
HEADER8 = None  # the first 8 bytes of model_file()'s output, set by Base


def f32(values):
    return struct.pack("<%df" % len(values), *values)


def model_file(path):
    """A small safetensors model: two F32 tensors and metadata."""
    mctest.write_safetensors(path, {
        "w": ("F32", (2, 3), f32([0, 1, 2, 3, 4, 5])),
        "b": ("F32", (3,), f32([1, 1, 1])),
    }, {"format": "pt", "note": "test"})


def every_dtype_file(path):
    """One tensor per safetensors dtype (and a scalar, an empty and an
    unaligned tensor), with known bytes."""
    t = {  # widest first, so all but "unaligned_f32" are naturally aligned
        "f64": ("F64", (6,), struct.pack("<6d", 0.1, 1e300, -2.5, 0, 3, 4)),
        "i64": ("I64", (6,), struct.pack("<6q", -2**63, -1, 0, 1, 2, 2**63 - 1)),
        "u64": ("U64", (6,), struct.pack("<6Q", 0, 1, 2, 3, 2**63, 2**64 - 1)),
        "f32": ("F32", (1, 2, 3), f32([0.1, 0.2, 0.3, -4, 5e-8, 6e8])),
        "i32": ("I32", (3, 2), struct.pack("<6i", -2**31, -1, 0, 1, 2, 2**31 - 1)),
        "u32": ("U32", (6,), struct.pack("<6I", 1, 2, 3, 4, 2**31, 2**32 - 1)),
        "scalar": ("F32", (), f32([42.0])),
        "empty": ("F32", (0, 4), b""),
        "f16": ("F16", (2, 3), struct.pack("<6e", 0.5, -1.0, 2.0, 65504.0, 0.0, -0.125)),
        "bf16": ("BF16", (2, 3), struct.pack("<6H", 0x3f80, 0x4000, 0xbf80, 0x4049, 0, 0x7f80)),
        "i16": ("I16", (6,), struct.pack("<6h", -32768, -1, 0, 1, 2, 32767)),
        "u16": ("U16", (6,), struct.pack("<6H", 0, 1, 2, 3, 40000, 65535)),
        "f8_e4m3": ("F8_E4M3", (4,), bytes([0x38, 0x40, 0xb8, 0x00])),
        "f8_e5m2": ("F8_E5M2", (4,), bytes([0x3c, 0x40, 0xbc, 0x00])),
        "bool": ("BOOL", (2, 3), bytes([1, 0, 1, 1, 0, 0])),
        "u8": ("U8", (6,), bytes([0, 1, 2, 127, 128, 255])),
        "i8": ("I8", (2, 3), struct.pack("<6b", -128, -1, 0, 1, 2, 127)),
        "odd": ("U8", (1,), b"\x07"),  # makes the next tensor unaligned in the file
        "unaligned_f32": ("F32", (3,), f32([1.5, -2.25, 1e30])),
    }
    mctest.write_safetensors(path, t, {"kind": "every dtype"})
    return t


class Base(unittest.TestCase):
    WARM = ("m", "dt", "blob")  # loaded by the fixture

    @classmethod
    def setUpClass(cls):
        cls.d = mctest.Daemon(size="64M")
        cls.cache = None
        try:
            d = cls.d
            cls.model_path = os.path.join(d.root, "m.safetensors")
            model_file(cls.model_path)
            global HEADER8
            with open(cls.model_path, "rb") as f:
                HEADER8 = f.read(8)
            cls.dtypes_path = os.path.join(d.root, "dtypes.safetensors")
            cls.dtypes = every_dtype_file(cls.dtypes_path)
            cls.other_path = os.path.join(d.root, "blob.bin")
            with open(cls.other_path, "wb") as f:
                f.write(bytes(range(256)) * 64)
            cls.bad_path = os.path.join(d.root, "bad.safetensors")
            mctest.write_safetensors(cls.bad_path, {"w": ("F32", (4,), f32([1, 2, 3]))})
            d.push("m", "1.0.0", cls.model_path)
            d.push("m", "2.0.0", cls.model_path)
            d.push("dt", "1.0.0", cls.dtypes_path)
            d.push("blob", "1.0.0", cls.other_path)
            d.push("bad", "1.0.0", cls.bad_path)
            d.alias("m", "production", "1.0.0")
            d.start()
            cls.cache = d.attach()
            for name in cls.WARM:
                cls.cache.get(name, "1.0.0", load=True, timeout=20).release()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        # close(), not just dropping the reference: after a failed setUpClass
        # the exception's traceback still references the Cache, and its
        # mapping would keep the arena's address from every later class.
        if cls.cache is not None:
            cls.cache.close()
        cls.cache = None
        cls.d.close()


class TestCloseRacesGet(unittest.TestCase):
    def test_close_from_another_thread_during_get_keeps_the_arena(self):
        """close() while another thread is inside get(): the call counts as a
        user of the attachment, so the arena is not detached under it (it was:
        the call then read a freed mc_cache)."""
        data = bytes(range(256)) * 32
        with mctest.Daemon(size="64M") as d:
            path = os.path.join(d.root, "m.bin")
            with open(path, "wb") as f:
                f.write(data)
            d.push("m", "1.0.0", path)
            d.start()
            c = d.attach()
            lib = c._lib
            real = lib.mc_get_load
            entered, closed = threading.Event(), threading.Event()

            def held_at_the_door(*args):  # inside get(), before the C call
                entered.set()
                closed.wait(30)
                return real(*args)

            result = {}

            def worker():
                try:
                    with c.get("m", "1.0.0", load=True, timeout=20) as m:
                        result["bytes"] = bytes(m.view)
                except Exception as e:  # noqa: BLE001 - reported below
                    result["error"] = e

            lib.mc_get_load = held_at_the_door
            try:
                t = threading.Thread(target=worker)
                t.start()
                self.assertTrue(entered.wait(30))
                c.close()
                closed.set()
                t.join(60)
            finally:
                lib.mc_get_load = real
            self.assertNotIn("error", result)
            self.assertEqual(result["bytes"], data)


class TestFixture(unittest.TestCase):
    def test_a_failed_fixture_leaves_nothing_mapped(self):
        class Broken(Base):
            WARM = ("m", "nosuch")

        try:
            Broken.setUpClass()
        except mcache.NotFoundError as e:
            kept = e  # with its traceback and frames, as unittest keeps a failed setUpClass's
        else:
            self.fail("setUpClass did not fail")
        self.assertIn("nosuch", str(kept))
        self.assertIsNotNone(kept.__traceback__)
        # The next daemon's arena (same cache name, same address) must attach.
        with mctest.Daemon(size="64M") as d:
            d.start()
            with d.attach() as c:
                self.assertEqual(c.name, d.cache)


class TestBytes(Base):
    def test_view_lies_inside_the_arena_and_is_the_file(self):
        info = self.cache.info()
        with open(self.model_path, "rb") as f:
            data = f.read()
        with self.cache.get("m", "production") as m:
            self.assertEqual((m.name, m.version, m.format, m.size), ("m", "1.0.0", "safetensors",
                                                                      len(data)))
            self.assertTrue(m.checksum.startswith("xxh3-128:"))
            view = m.view
            self.assertIsInstance(view, memoryview)
            self.assertEqual(view.nbytes, len(data))
            # Zero-copy: the buffer's address (as NumPy sees it, when there is
            # NumPy) is the model's, inside the mapping.
            addr = m.address
            if np is not None:
                addr = np.frombuffer(view, dtype=np.uint8).__array_interface__["data"][0]
                self.assertEqual(addr, m.address)
            self.assertGreaterEqual(addr, info.base)
            self.assertLessEqual(addr + m.size, info.base + info.size)
            self.assertEqual(bytes(view), data)
            for t in m.tensors.values():
                self.assertGreaterEqual(t.address, info.base)
                self.assertLessEqual(t.address + t.nbytes, info.base + info.size)
            self.assertEqual(m.tensor_metadata, {"format": "pt", "note": "test"})
            meta = m.metadata
            self.assertEqual((meta["name"], meta["version"]), ("m", "1.0.0"))
            del view

    def test_write_through_view_and_arrays_is_refused(self):
        with self.cache.get("m", "1.0.0") as m:
            view = m.view
            with self.assertRaises(TypeError):
                view[0] = 1
            with self.assertRaises(TypeError):
                view[0:2] = b"xx"
            if np is not None:
                w = m.numpy("w")
                self.assertFalse(w.flags.writeable)
                with self.assertRaises(ValueError):
                    w[0, 0] = 7
                with self.assertRaises(ValueError):
                    w.flags.writeable = True
                with self.assertRaises(ValueError):
                    np.add(w, 1, out=w)
            del view, w

    @unittest.skipIf(torch is None, "needs python3-torch")
    def test_write_through_torch_tensor_faults_and_changes_nothing(self):
        # PyTorch has no read-only tensors; the mapping is PROT_READ, so the
        # write faults: the writer dies by SIGSEGV and nobody sees a change.
        code = textwrap.dedent("""
            import mcache
            c = mcache.attach(%r, %r)
            m = c.get("m", "1.0.0")
            t = m.torch("w")
            print("before", float(t[0, 0]), flush=True)
            t.add_(100.0)
            print("wrote", float(t[0, 0]), flush=True)
        """) % (self.d.cache, self.d.shm)
        r = subprocess.run([PY, "-c", code], env=self.d.env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=60)
        self.assertEqual(r.returncode, -signal.SIGSEGV, r.stdout + r.stderr)
        self.assertIn("before 0.0", r.stdout)
        self.assertNotIn("wrote", r.stdout)
        self.assertNotIn("not writable", r.stderr)  # the warning is ours to explain, not print
        with self.cache.get("m", "1.0.0") as m:
            self.assertEqual(m.torch("w").tolist(), [[0, 1, 2], [3, 4, 5]])


class TestLifetimes(Base):
    def test_released_model_raises_clearly(self):
        with self.cache.get("m", "production") as m:
            pass
        self.assertTrue(m.released)
        self.assertFalse(m.held)
        for use in (lambda: m.view, lambda: m.metadata, lambda: m.tensors,
                    lambda: m.tensor("w"), lambda: m.numpy("w"), lambda: m.torch("w"),
                    lambda: m.tensor_metadata):
            with self.assertRaises(mcache.ReleasedError) as cm:
                use()
            self.assertIsInstance(cm.exception, ValueError)
            self.assertIn("m@1.0.0 was released", str(cm.exception))
        m.release()  # twice is fine
        self.assertEqual((m.name, m.version), ("m", "1.0.0"))  # plain attributes stay
        self.assertIn("released", repr(m))

    @unittest.skipIf(np is None, "needs python3-numpy")
    def test_buffers_keep_the_model_held_and_the_arena_mapped(self):
        c = self.d.attach()  # shares this process's attachment with self.cache
        m = c.get("m", "1.0.0")
        w = m.numpy("w")
        v = m.view[8:16]
        m.release()
        c.close()
        with self.assertRaises(mcache.ReleasedError):
            c.get("m", "1.0.0")
        self.assertTrue(m.held)
        self.assertEqual(w.tolist(), [[0, 1, 2], [3, 4, 5]])
        with open(self.model_path, "rb") as f:
            self.assertEqual(bytes(v), f.read()[8:16])
        del w
        self.assertTrue(m.held)  # v still refers to it
        del v
        self.assertFalse(m.held)

    @unittest.skipIf(np is None, "needs python3-numpy")
    def test_arena_stays_mapped_until_the_last_array_goes(self):
        # In a process of its own, where this Cache is the only one: had
        # close() unmapped the arena, reading the array would die by SIGSEGV.
        code = textwrap.dedent("""
            import gc, mcache
            c = mcache.attach()
            c2 = mcache.attach()
            assert c2._att is c._att, "one attachment per arena and process"
            c2.close()
            m = c.get("m", "1.0.0")
            w = m.numpy("w")
            del m
            c.close()
            del c
            gc.collect()
            print("sum", float(w.sum()))
            import weakref
            att = w.base
            del w, att
            gc.collect()
            c = mcache.attach()  # the old attachment is gone: a new mapping works
            with c.get("m", "1.0.0") as m:
                print("again", m.version)
        """)
        r = subprocess.run([PY, "-c", code], env=self.d.env(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn("sum 15.0", r.stdout)
        self.assertIn("again 1.0.0", r.stdout)

    def test_fork_child_must_attach_again(self):
        m = self.cache.get("m", "1.0.0")
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                os.close(r)
                report = []
                try:
                    m.view
                    report.append("inherited model usable")
                except mcache.Error as e:
                    if "attach again" not in str(e):
                        report.append("unclear: %s" % e)
                try:
                    self.cache.get("m", "1.0.0")
                    report.append("inherited cache usable")
                except mcache.Error:
                    pass
                c = self.d.attach()  # a fresh attach in the child works
                with c.get("m", "1.0.0") as m2:
                    if m2.address != m.address or bytes(m2.view[:8]) != HEADER8:
                        report.append("child read other bytes")
                c.close()
                os.write(w, ("\n".join(report) or "ok").encode())
                status = 0
            except BaseException as e:  # noqa: BLE001 - reported to the parent
                os.write(w, ("child raised %r" % e).encode())
            finally:
                os._exit(status)
        os.close(w)
        with os.fdopen(r) as f:
            said = f.read()
        _, st = os.waitpid(pid, 0)
        self.assertEqual(said, "ok")
        self.assertEqual(os.waitstatus_to_exitcode(st), 0)
        # The parent is unaffected: still held, still readable, still gets.
        self.assertTrue(m.held)
        self.assertEqual(bytes(m.view[:8]), HEADER8)
        self.cache.get("m", "1.0.0").release()
        m.release()

    def test_threads_get_and_release_concurrently(self):
        errors = []

        def work():
            try:
                for _ in range(300):
                    with self.cache.get("m", "production") as m:
                        if bytes(m.view[8:9]) != b"{":
                            errors.append("bad byte")
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])


@unittest.skipIf(np is None, "needs python3-numpy")
class TestNumpy(Base):
    def test_every_dtype_matches_the_file(self):
        with self.cache.get("dt", "1.0.0") as m:
            infos = m.tensors
            self.assertEqual(sorted(infos), sorted(self.dtypes))
            self.assertFalse(infos["unaligned_f32"].aligned)
            self.assertTrue(infos["f64"].aligned)
            for name, (dtype, shape, raw) in self.dtypes.items():
                info = infos[name]
                self.assertEqual((info.dtype, info.shape, info.nbytes), (dtype, shape, len(raw)))
                if dtype in ("BF16", "F8_E4M3", "F8_E5M2"):
                    with self.assertRaises(mcache.UnsupportedDtypeError) as cm:
                        m.numpy(name)
                    self.assertIn("raw=True", str(cm.exception))
                    self.assertIsInstance(cm.exception, TypeError)
                    a = m.numpy(name, raw=True)
                    self.assertEqual(a.dtype.itemsize, info.elem_size)
                    self.assertEqual(a.dtype.kind, "u")
                else:
                    a = m.numpy(name)
                self.assertEqual(a.shape, shape, name)
                self.assertFalse(a.flags.writeable, name)
                self.assertEqual(a.tobytes(), raw, name)
                if a.size:
                    self.assertEqual(a.__array_interface__["data"][0], info.address, name)
            self.assertEqual(m.numpy("i64")[0], -2**63)
            self.assertEqual(m.numpy("u64")[-1], 2**64 - 1)
            self.assertEqual(m.numpy("scalar").shape, ())
            self.assertEqual(float(m.numpy("scalar")), 42.0)
            self.assertEqual(m.numpy("unaligned_f32").tolist()[:2], [1.5, -2.25])
            self.assertFalse(m.numpy("unaligned_f32").flags.aligned)
            self.assertTrue(m.numpy("f64").flags.aligned)
            self.assertEqual(m.numpy("bool").dtype, np.bool_)
            self.assertEqual(m.numpy("f16").dtype, np.float16)
            bf = m.numpy("bf16", raw=True).astype(np.uint32) << 16
            self.assertEqual(bf.view(np.float32)[0].tolist(), [1.0, 2.0, -1.0])
            with self.assertRaises(mcache.UnsupportedDtypeError):
                m.numpy()  # all of them: refuses rather than skip the BF16 ones
            self.assertEqual(list(m.numpy(raw=True)), list(infos))  # in name order

    def test_no_such_tensor_and_formats_without_tensors(self):
        with self.cache.get("m", "1.0.0") as m:
            with self.assertRaises(mcache.NotFoundError) as cm:
                m.numpy("nope")
            self.assertIn("no tensor 'nope'", str(cm.exception))
            self.assertIn("b, w", str(cm.exception))
        with self.cache.get("blob", "1.0.0") as m:
            self.assertEqual(m.format, "other")
            self.assertEqual(m.tensors, {})
            self.assertIsNone(m.tensor_metadata)
            with self.assertRaises(LookupError) as cm:
                m.numpy("w")
            self.assertIn("not safetensors", str(cm.exception))
            self.assertEqual(bytes(m.view), bytes(range(256)) * 64)


@unittest.skipIf(torch is None, "needs python3-torch")
class TestTorch(Base):
    def test_every_dtype_matches_the_file(self):
        with self.cache.get("dt", "1.0.0") as m:
            infos = m.tensors
            for name, (dtype, shape, raw) in self.dtypes.items():
                info = infos[name]
                try:
                    t = m.torch(name)
                except mcache.UnsupportedDtypeError as e:
                    # Only what this torch lacks (float8 before 2.1, uint16+ before 2.3).
                    self.assertIn(dtype, ("F8_E4M3", "F8_E5M2", "U16", "U32", "U64"), name)
                    self.assertIn("raw=True", str(e))
                    t = m.torch(name, raw=True)
                self.assertEqual(tuple(t.shape), shape, name)
                self.assertEqual(t.element_size(), info.elem_size, name)
                if t.numel():
                    self.assertEqual(t.data_ptr(), info.address, name)
                    as_bytes = bytes(t.reshape(-1).view(torch.uint8).tolist())
                    self.assertEqual(as_bytes, raw, name)
            self.assertEqual(m.torch("bf16").dtype, torch.bfloat16)
            self.assertEqual(m.torch("bf16")[0].tolist(), [1.0, 2.0, -1.0])
            self.assertEqual(m.torch("bool").dtype, torch.bool)
            self.assertEqual(m.torch("f16").dtype, torch.float16)
            self.assertEqual(m.torch("i64")[0].item(), -2**63)
            self.assertEqual(m.torch("scalar").item(), 42.0)
            self.assertEqual(m.torch("unaligned_f32")[:2].tolist(), [1.5, -2.25])
            sd = m.torch(raw=True)
            self.assertEqual(list(sd), list(infos))

    def test_tensor_outlives_release_safely(self):
        m = self.cache.get("m", "1.0.0")
        t = m.torch("w")
        m.release()
        self.assertTrue(m.held)
        self.assertEqual(t.sum().item(), 15.0)
        del t
        self.assertFalse(m.held)



class TestServing(Base):
    """Weighted aliases by key, and serving statistics from Python."""

    def _loaded(self, d, ref):
        for w in d["windows"]:
            if w["window"] == "loaded":
                return w
        self.fail("no 'loaded' window in %r" % (d,))

    def test_keyed_get_is_sticky_through_a_canary(self):
        self.cache.get("m", "2.0.0", load=True, timeout=20).release()
        self.d.alias("m", "canary", "1.0.0=50", "2.0.0=50")
        # Wait for mcached to publish the split: both versions come out.
        seen, deadline = set(), time.monotonic() + 20
        while seen != {"1.0.0", "2.0.0"} and time.monotonic() < deadline:
            try:
                with self.cache.get("m", "canary") as m:
                    seen.add(m.version)
            except mcache.NotFoundError:
                time.sleep(0.01)
        self.assertEqual(seen, {"1.0.0", "2.0.0"})
        first = {}
        for k in range(200):
            with self.cache.get("m", "canary", key="user-%d" % k) as m:
                first[k] = m.version
        self.assertEqual(set(first.values()), {"1.0.0", "2.0.0"})
        for _ in range(3):
            for k in range(200):
                with self.cache.get("m", "canary", key=("user-%d" % k).encode()) as m:
                    self.assertEqual(m.version, first[k], "key user-%d moved" % k)
        with self.assertRaises(TypeError):
            self.cache.get("m", "canary", key=42)
        with self.assertRaises(ValueError):
            self.cache.get("m", "canary", key="u", load=True)

    def test_serving_counts_requests_errors_and_units(self):
        before = self._loaded(self.d.ctl("stats", "blob", "1.0.0"), "1.0.0")
        with self.cache.get("blob", "1.0.0") as m:
            for _ in range(3):
                with m.serving(units=5):
                    pass
            with self.assertRaises(KeyError):
                with m.serving(units=2):
                    raise KeyError("the request failed")
            self.assertTrue(m.report(0.25, ok=True, units=1))
            with self.assertRaises(ValueError):
                m.report(-1)
            with self.assertRaises(ValueError):
                m.report(0.1, units=-3)
        after = self._loaded(self.d.ctl("stats", "blob", "1.0.0"), "1.0.0")
        self.assertEqual(after["requests"] - before["requests"], 5)
        self.assertEqual(after["errors"] - before["errors"], 1)
        self.assertEqual(after["units"] - before["units"], 18)
        # A released model cannot report.
        with self.assertRaises(mcache.ReleasedError):
            m.report(0.1)


class TestErrors(Base):
    def test_not_found_names_the_model(self):
        with self.assertRaises(mcache.NotFoundError) as cm:
            self.cache.get("nope", "1.0.0")
        e = cm.exception
        self.assertIsInstance(e, LookupError)
        self.assertEqual(e.code, -2)
        self.assertIn("nope", str(e))
        with self.assertRaises(mcache.NotFoundError):
            self.cache.get("m", "9.9.9")

    def test_not_resident_then_load(self):
        with self.assertRaises(mcache.NotResidentError) as cm:
            self.cache.get("m", "2.0.0")
        self.assertIn("m@2.0.0", str(cm.exception))
        with self.cache.get("m", "2.0.0", load=True, timeout=20) as m:
            self.assertEqual(m.version, "2.0.0")
        for bad in (-1, float("nan"), "5", True):
            with self.assertRaises(ValueError) as cm:
                self.cache.get("m", "2.0.0", load=True, timeout=bad)
            self.assertIn("timeout must be a number of seconds", str(cm.exception))
        with self.assertRaises(TypeError):
            self.cache.get(3, "2.0.0")

    def test_a_nul_character_is_refused_not_cut_short(self):
        # C stops at a NUL: "m\0x" would have been answered as "m"
        for name, ref in (("m\0evil", "1.0.0"), ("m", "1.0.0\0 || ^2"), (b"m\0", None)):
            with self.assertRaises(ValueError) as cm:
                self.cache.get(name, ref)
            self.assertIn("NUL character", str(cm.exception))
        with self.assertRaises(ValueError):
            mcache.attach("t\0x", self.d.shm)

    def test_a_released_model_does_not_keep_the_attachment(self):
        # After an arena rebuild the advice is: release, close, attach again;
        # a released Model object still around must not keep the old one.
        code = textwrap.dedent("""
            import gc, weakref, mcache
            c = mcache.attach()
            m = c.get("m", "1.0.0")
            att = weakref.ref(c._att)
            m.release()
            c.close()
            del c
            gc.collect()
            print("attachment", "kept" if att() is not None else "gone", m.released)
        """)
        r = subprocess.run([PY, "-c", code], env=self.d.env(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn("attachment gone True", r.stdout)

    def test_a_bad_file_fails_to_load_with_the_reason(self):
        with self.assertRaises(mcache.LoadFailedError) as cm:
            self.cache.get("bad", "1.0.0", load=True, timeout=20)
        self.assertIn('bad@1.0.0 failed to load: ', str(cm.exception))
        self.assertIn('tensor "w"', str(cm.exception))
        with self.assertRaises(mcache.LoadFailedError) as cm:
            self.cache.get("bad", "1.0.0")
        self.assertIn("bad@1.0.0 failed to load", str(cm.exception))

    def test_no_such_cache(self):
        with self.assertRaises(mcache.Error) as cm:
            mcache.attach("nosuchcache", self.d.shm)
        self.assertIn("nosuchcache", str(cm.exception))
        self.assertTrue(cm.exception.reason)

    def test_strerror(self):
        self.assertEqual(mcache.strerror(0), "success")
        self.assertTrue(mcache.library_path())


class TestPackage(unittest.TestCase):
    """The package itself, each in a fresh interpreter."""

    def run_py(self, code, env=None):
        e = dict(os.environ, PYTHONPATH=os.path.join(mctest.REPO, "python"))
        e.update(env or {})
        return subprocess.run([PY, "-c", textwrap.dedent(code)], env=e, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=60)

    def test_bad_MCACHE_LIB_is_a_clear_error(self):
        r = self.run_py("""
            import mcache
            try:
                mcache.attach()
            except mcache.LibraryNotFoundError as e:
                assert isinstance(e, ImportError)
                print(e)
        """, {"MCACHE_LIB": "/nonexistent/libmcache.so"})
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn("/nonexistent/libmcache.so", r.stdout)
        self.assertIn("MCACHE_LIB", r.stdout)

    def test_lib_version_is_the_package_version(self):
        r = self.run_py("""
            import mcache
            print("lib", mcache.lib_version(), "package", mcache.__version__)
        """)
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertRegex(r.stdout, r"^lib (\d+\.\d+\.\d+) package \1$")

    def small_daemon(self):
        """A started mcached with m@1.0.0 pushed (not loaded), and that file's size."""
        d = mctest.Daemon()
        self.addCleanup(d.close)
        path = os.path.join(d.root, "m.safetensors")
        model_file(path)
        d.push("m", "1.0.0", path)
        d.start()
        return d, os.path.getsize(path)

    def test_works_without_numpy_and_torch(self):
        d, size = self.small_daemon()
        r = self.run_py("""
            import sys
            class Block:
                def find_spec(self, name, path=None, target=None):
                    if name.split(".")[0] in ("numpy", "torch"):
                        raise ImportError("blocked " + name)
            sys.meta_path.insert(0, Block())
            import mcache
            with mcache.attach() as c, c.get("m", "1.0.0", load=True, timeout=20) as m:
                print(m.version, len(m.view), sorted(m.tensors))
                for f in (m.numpy, m.torch):
                    try:
                        f("w")
                    except ImportError as e:
                        print("no:", e)
            assert "numpy" not in sys.modules and "torch" not in sys.modules
        """, {"MCACHE_CACHE": d.cache, "MCACHE_SHM_DIR": d.shm})
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn("1.0.0 %d ['b', 'w']" % size, r.stdout)
        self.assertIn("numpy() needs numpy (on Debian: apt install python3-numpy)", r.stdout)
        self.assertIn("torch() needs torch", r.stdout)

    def test_load_without_a_daemon(self):
        d, _ = self.small_daemon()
        d.stop()  # the arena stays; nobody serves it
        with d.attach() as c:
            with self.assertRaises(mcache.NotResidentError):
                c.get("m", "1.0.0")
            with self.assertRaises(mcache.NoDaemonError) as cm:
                c.get("m", "1.0.0", load=True, timeout=1)
            self.assertIsInstance(cm.exception, ConnectionError)
            self.assertIn("no mcached", str(cm.exception))


if __name__ == "__main__":
    unittest.main()
