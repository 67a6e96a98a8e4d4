"""
test_examples.py - the examples against a real mcached: the demo model made by
examples/make_demo_model.py, run by the C worker (examples/worker.c) and the
PyTorch worker (examples/torch_worker.py) from the cache, must give the same
results as the same model run from its safetensors file (by the PyTorch
code, and by an independent NumPy forward pass); and both workers, serving in
--watch mode while `production` moves from 1.0.0 to 2.0.0, switch without an
error.

Environment: MC_WORKER, the C worker binary (default <repo>/build/examples/
mcache-worker), besides what mctest.py reads.
"""

import os
import re
import subprocess
import sys
import time
import unittest

import mctest

try:
    import numpy as np
    import torch
except ImportError:
    np = torch = None

EXAMPLES = os.path.join(mctest.REPO, "examples")
PY = sys.executable
LINE = re.compile(r"^y\[(\d+)\] = ((?:-?\d+\.\d+ ?)+) -> (\d+)$", re.M)


def outputs(text):
    """[[floats] per row] from "y[i] = ... -> k" lines."""
    rows = [[float(v) for v in m.group(2).split()] for m in LINE.finditer(text)]
    if not rows:
        raise AssertionError("no y[i] lines in:\n" + text)
    return rows


@unittest.skipIf(torch is None, "needs python3-numpy and python3-torch")
class TestExamples(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.worker = mctest.tool("MC_WORKER", "examples/mcache-worker")
        sys.path.insert(0, EXAMPLES)
        import torch_worker  # noqa: E402 - the module the worker runs

        cls.tw = torch_worker
        cls.d = d = mctest.Daemon(size="64M", cache="demo")
        try:
            out = subprocess.run([PY, os.path.join(EXAMPLES, "make_demo_model.py"), d.root],
                                 check=True, stdout=subprocess.PIPE, text=True).stdout
            cls.files = out.split()
            assert [os.path.basename(f) for f in cls.files] == [
                "demo-1.0.0.safetensors", "demo-2.0.0.safetensors"], out
            d.push("demo", "1.0.0", cls.files[0])
            d.push("demo", "2.0.0", cls.files[1])
            d.alias("demo", "production", "1.0.0")
            d.start()
        except BaseException:
            d.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.d.close()

    def run_worker(self, argv, timeout=60):
        r = subprocess.run(argv, env=self.d.env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout)
        self.assertEqual(r.returncode, 0, "%s\n%s%s" % (argv, r.stdout, r.stderr))
        return r.stdout

    def set_production(self, version):
        """Move the alias and wait until mcached has published the move."""
        self.d.alias("demo", "production", version)
        with self.d.attach() as c:
            deadline = time.monotonic() + 10
            while True:
                with c.get("demo", "production", load=True, timeout=10) as m:
                    if m.version == version:
                        return
                self.assertLess(time.monotonic(), deadline, "production did not move")
                time.sleep(0.01)

    def from_file(self, path):
        """The model run from its file: by torch_worker's own code, and by NumPy."""
        tensors, meta = mctest.read_safetensors(path)
        arrays = {n: np.frombuffer(raw, dtype="<f4").reshape(shape).copy()
                  for n, (dtype, shape, raw) in tensors.items()}
        model = self.tw.build_model({n: torch.from_numpy(a) for n, a in arrays.items()})
        by_torch = self.tw.format_outputs(self.tw.infer(model))
        x = self.tw.fixed_inputs(arrays["fc1.weight"].shape[1]).numpy().astype(np.float64)
        h = np.maximum(x @ arrays["fc1.weight"].T + arrays["fc1.bias"], 0)
        by_numpy = h @ arrays["fc2.weight"].T + arrays["fc2.bias"]
        return by_torch, by_numpy, meta

    def test_workers_match_the_file(self):
        self.set_production("1.0.0")
        v1_torch, v1_numpy, meta = self.from_file(self.files[0])
        self.assertEqual(meta["version"], "1.0.0")
        v2_torch, v2_numpy, _ = self.from_file(self.files[1])
        self.assertGreater(np.abs(v1_numpy - v2_numpy).max(), 0.01)  # the versions differ

        out = self.run_worker([PY, os.path.join(EXAMPLES, "torch_worker.py")])
        self.assertIn("demo@1.0.0 (safetensors", out)
        self.assertIn("4 tensors used in place from the arena", out)
        got = "\n".join(line for line in out.splitlines() if line.startswith("y["))
        self.assertEqual(got, v1_torch)  # same weights, same code: the same bits
        np.testing.assert_allclose(outputs(out), v1_numpy, rtol=0, atol=2e-5)

        out = self.run_worker([self.worker])
        self.assertIn("demo@1.0.0 (safetensors", out)
        self.assertIn("zero-copy", out)
        np.testing.assert_allclose(outputs(out), v1_numpy, rtol=0, atol=2e-5)

        # An exact version, named on the command line, loaded on demand.
        out = self.run_worker([self.worker, "demo", "2.0.0"])
        np.testing.assert_allclose(outputs(out), v2_numpy, rtol=0, atol=2e-5)
        out = self.run_worker([PY, os.path.join(EXAMPLES, "torch_worker.py"), "demo", "2.0.0"])
        self.assertIn("\n" + v2_torch, out)

    def test_blue_green_under_running_workers(self):
        with self.d.attach() as c:  # both versions resident before the move
            for v in ("1.0.0", "2.0.0"):
                c.get("demo", v, load=True, timeout=20).release()
        self.set_production("1.0.0")
        watch = "3"
        argvs = [  # the PyTorch worker first: it takes a while to import torch
            [PY, os.path.join(EXAMPLES, "torch_worker.py"), "--watch", watch],
            [self.worker, "--watch", watch],
        ]
        procs, first = [], []
        try:
            # Move the alias once both serve 1.0.0, well inside their 3 s.
            for argv in argvs:
                procs.append(subprocess.Popen(argv, env=self.d.env(), stdout=subprocess.PIPE,
                                              stderr=subprocess.PIPE, text=True))
                first.append(procs[-1].stdout.readline())
                self.assertIn("serves 1.0.0", first[-1])
            self.d.alias("demo", "production", "2.0.0")
            results = []
            for i, p in enumerate(procs):
                out, err = p.communicate(timeout=60)
                results.append((first[i] + out, p.returncode, err))
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        for out, rc, err in results:
            self.assertEqual(rc, 0, out + err)
            switches = re.findall(r"serves ([^\s,]+)", out)
            self.assertEqual(switches, ["1.0.0", "2.0.0"], out)
            self.assertRegex(out, r"1\.0\.0=\d+ 2\.0\.0=\d+, errors 0\n")


if __name__ == "__main__":
    unittest.main()
