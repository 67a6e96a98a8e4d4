"""
test_memory.py - eight worker processes using one 256 MiB model through
mcache grow memory by far less than eight private copies would.

What is measured, in the same run, for 8 Python workers that each read every
byte of a 256 MiB model (zlib.crc32 over it) and then wait:
  - mcache:   each worker attaches and gets the model (a zero-copy memoryview
              of the arena);
  - baseline: each worker reads the model's file into its own bytearray (what
              a worker without a shared cache does).
  PSS: the sum over the workers of Pss from /proc/PID/smaps_rollup. PSS
       charges a page shared by N processes 1/N to each, so the sum counts the
       arena's pages once (shared with mcached, which maps them too, so a
       little less than once) and each private copy fully. This is the
       assertion: mcache < 8 x 256 MiB / 4, baseline > 8 x 256 MiB x 0.9 (the
       baseline proves the measurement sees copies when there are copies).
  private: the sum of Private_Clean + Private_Dirty (what the workers alone
       use, freed when they exit), printed: with mcache only the interpreters,
       since the model's one copy is the arena's, committed once when mcached
       created it. (The system's MemAvailable is no measure here: it moves by
       hundreds of MiB as the page cache of the file just written is flushed.)
Every worker's CRC must equal the file's (they all read the right bytes).
"""

import os
import subprocess
import sys
import textwrap
import time
import unittest
import zlib

import mctest

MiB = 1 << 20
SIZE = 256 * MiB
WORKERS = 8

WORKER = textwrap.dedent("""
    import sys, zlib
    mode, arg = sys.argv[1], sys.argv[2]
    if mode == "mcache":
        import mcache
        c = mcache.attach()
        m = c.get("big", "1.0.0")
        buf = m.view
    else:
        with open(arg, "rb", buffering=0) as f:
            buf = bytearray(int(sys.argv[3]))
            f.readinto(buf)
    print("ready %d" % zlib.crc32(buf), flush=True)
    sys.stdin.read()  # hold until the parent closes our stdin
""")


def rollup_kib(pid):
    """(Pss, Private_Clean + Private_Dirty) of a process, in KiB."""
    v = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                v[parts[0].rstrip(":")] = int(parts[1])
    if "Pss" not in v:
        raise AssertionError("no Pss in /proc/%d/smaps_rollup" % pid)
    return v["Pss"], v.get("Private_Clean", 0) + v.get("Private_Dirty", 0)


class TestEightWorkersShareOneCopy(unittest.TestCase):
    def setUp(self):
        self.d = mctest.Daemon(size="320M")
        self.addCleanup(self.d.close)
        self.procs = []
        self.addCleanup(self.reap)

    def reap(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            for f in (p.stdin, p.stdout):
                if f:
                    f.close()
        self.procs = []

    def run_workers(self, mode, path):
        """Start the workers, wait until all read the model; returns (PSS sum,
        private sum, both in MiB, and the CRCs), then lets them exit."""
        argv = [sys.executable, "-c", WORKER, mode, path, str(SIZE)]
        for _ in range(WORKERS):
            self.procs.append(subprocess.Popen(argv, env=self.d.env(), stdin=subprocess.PIPE,
                                               stdout=subprocess.PIPE, text=True))
        crcs = []
        for p in self.procs:
            line = p.stdout.readline()
            self.assertTrue(line.startswith("ready "), "worker %s said %r" % (mode, line))
            crcs.append(int(line.split()[1]))
        rollups = [rollup_kib(p.pid) for p in self.procs]
        pss = sum(r[0] for r in rollups) / 1024
        private = sum(r[1] for r in rollups) / 1024
        for p in self.procs:
            p.stdin.close()
        for p in self.procs:
            self.assertEqual(p.wait(60), 0)
        self.reap()
        return pss, private, crcs

    def test_eight_workers_256MiB(self):
        d = self.d
        path = os.path.join(d.root, "big.bin")
        block = os.urandom(MiB)
        with open(path, "wb") as f:
            for _ in range(SIZE // MiB):
                f.write(block)
        crc = 0
        for _ in range(SIZE // MiB):
            crc = zlib.crc32(block, crc)
        d.push("big", "1.0.0", path)
        d.start()
        t0 = time.monotonic()
        with d.attach() as c:
            c.get("big", "1.0.0", load=True, timeout=60).release()
        load_s = time.monotonic() - t0

        t0 = time.monotonic()
        shared_pss, shared_priv, crcs = self.run_workers("mcache", path)
        shared_s = time.monotonic() - t0
        self.assertEqual(crcs, [crc] * WORKERS)
        t0 = time.monotonic()
        private_pss, private_priv, crcs = self.run_workers("copy", path)
        private_s = time.monotonic() - t0
        self.assertEqual(crcs, [crc] * WORKERS)

        naive = WORKERS * SIZE / MiB
        print("\n# %d workers x %d MiB model (load %.2f s):" % (WORKERS, SIZE // MiB, load_s))
        row = "#   %-13s PSS sum %7.1f MiB, of it private %7.1f MiB  (%.2f s)"
        print(row % ("mcache:", shared_pss, shared_priv, shared_s))
        print(row % ("private copy:", private_pss, private_priv, private_s))
        print("#   naive 8 x 256 MiB = %.0f MiB" % naive)
        sys.stdout.flush()
        self.assertLess(shared_pss, naive / 4)
        self.assertGreater(private_pss, naive * 0.9)


if __name__ == "__main__":
    unittest.main()
