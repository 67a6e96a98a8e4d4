#!/usr/bin/python3
"""test_progress.py - the progress bar, driven in a real pseudo-terminal: it
is drawn on stderr when stderr is a terminal, fits the terminal's width, is
erased at the end, and is absent with --quiet, when stderr is not a terminal,
and for operations quicker than $MCACHE_PROGRESS_DELAY."""
import fcntl
import os
import pty
import re
import struct
import subprocess
import termios

from clitest import MCACHE, CliTest, main

FRAME = re.compile(r"^(\S.*?)  \[([#-]+)\] +(\d+)%  ")


class Progress(CliTest):
    def run_pty(self, *args, cols=100, env=None):
        """Run mcache with stderr on a pty of `cols` columns; (code, stdout, tty text)."""
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
        e = dict(self.env)
        e.update(env or {})
        p = subprocess.Popen([MCACHE] + list(args), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=slave, env=e, cwd=self.root)
        os.close(slave)
        tty = b""
        try:
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed its side
                    break
                if not chunk:
                    break
                tty += chunk
        finally:
            os.close(master)
        out = p.stdout.read().decode()
        p.stdout.close()
        return p.wait(30), out, tty.decode()

    def frames(self, tty):
        """The bar's frames: what each carriage return drew, escapes removed."""
        return [f.replace("\x1b[K", "") for f in tty.split("\r") if f.replace("\x1b[K", "")]

    def big(self, name="big.bin", size=48 << 20):
        return self.file(name, size, seed=11)

    def test_push_draws_a_bar_and_erases_it(self):
        f = self.big()
        code, out, tty = self.run_pty("push", "big", "1.0.0", f, env={"MCACHE_PROGRESS_DELAY": "0"})
        self.assertEqual(code, 0, tty)
        self.assertTrue(out.startswith("pushed big@1.0.0: 48.0 MiB"), out)
        frames = self.frames(tty)
        self.assertGreaterEqual(len(frames), 1, repr(tty))
        for fr in frames:
            m = FRAME.match(fr)
            self.assertTrue(m, repr(fr))
            self.assertEqual(m.group(1), "push big@1.0.0")
            self.assertLessEqual(len(fr), 100)
        widths = {len(FRAME.match(fr).group(2)) for fr in frames}
        self.assertEqual(len(widths), 1, frames)  # the bar keeps its width
        self.assertIn("MiB/48.0 MiB", frames[-1])
        self.assertTrue(tty.endswith("\r\x1b[K"), repr(tty[-40:]))  # erased at the end

    def test_narrow_terminal(self):
        f = self.big()
        code, _, tty = self.run_pty("push", "a-model-with-a-long-name", "1.0.0", f, cols=72,
                                    env={"MCACHE_PROGRESS_DELAY": "0"})
        self.assertEqual(code, 0)
        frames = self.frames(tty)
        self.assertTrue(frames)
        for fr in frames:
            self.assertLessEqual(len(fr), 72, repr(fr))
        # Only the numbers, and only those that fit: at 30 columns even the
        # last frame's rate must give way (a frame with the ETA overflowed 40
        # columns on a slow run: the numbers were never cut).
        for width in (40, 30):
            code, _, tty = self.run_pty("verify", cols=width, env={"MCACHE_PROGRESS_DELAY": "0"})
            self.assertEqual(code, 0)
            frames = self.frames(tty)
            self.assertTrue(frames)
            for fr in frames:
                self.assertLessEqual(len(fr), width, repr(fr))
                self.assertNotIn("[", fr)
            self.assertTrue(frames[-1].startswith("100%"), frames[-1])

    def test_quiet_and_quick_and_not_a_terminal(self):
        f = self.big()
        code, out, tty = self.run_pty("push", "q", "1.0.0", f, "--quiet",
                                      env={"MCACHE_PROGRESS_DELAY": "0"})
        self.assertEqual((code, out, tty), (0, "", ""))
        # A quick operation (under the default 250 ms) draws nothing.
        small = self.file("small.bin", 1000)
        code, out, tty = self.run_pty("push", "s", "1.0.0", small)
        self.assertEqual((code, tty), (0, ""))
        self.assertTrue(out.startswith("pushed s@1.0.0"))
        # stderr a pipe: no bar, nothing on stderr at all.
        r = self.run_cli("push", "p", "1.0.0", f, env={"MCACHE_PROGRESS_DELAY": "0"})
        self.assertEqual((r.code, r.err), (0, ""))
        r = self.run_cli("verify", env={"MCACHE_PROGRESS_DELAY": "0"})
        self.assertEqual((r.code, r.err), (0, ""))

    def test_verify_and_load(self):
        f = self.big()
        self.ok("push", "big", "1.0.0", f)
        code, out, tty = self.run_pty("verify", env={"MCACHE_PROGRESS_DELAY": "0"})
        self.assertEqual(code, 0)
        self.assertIn("all ok", out)
        frames = self.frames(tty)
        self.assertTrue(frames)
        self.assertEqual(FRAME.match(frames[0]).group(1), "verify 1 version")
        self.start_daemon(size="128M")
        code, out, tty = self.run_pty("load", "big@1.0.0", env={"MCACHE_PROGRESS_DELAY": "0"})
        self.assertEqual(code, 0, tty)
        self.assertTrue(out.startswith("loaded big@1.0.0: 48.0 MiB"), out)
        frames = self.frames(tty)
        self.assertTrue(frames, repr(tty))
        self.assertEqual(FRAME.match(frames[0]).group(1), "load big@1.0.0")
        self.assertTrue(tty.endswith("\r\x1b[K"))
        code, out, tty = self.run_pty("load", "big@1.0.0", "-q",
                                      env={"MCACHE_PROGRESS_DELAY": "0"})
        self.assertEqual((code, out, tty), (0, "", ""))


if __name__ == "__main__":
    main()
