#!/usr/bin/env python3
"""Slow handlers (ROUTE_SLOW) and slow clients.

T1: with one libmicrohttpd thread (--threads 1), a gated alias move whose
health check sleeps 3 s runs on a worker thread: /healthz keeps answering
while it waits, and a download read slowly on another connection of the
same thread completes, every byte."""
import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servetest  # noqa: E402
from servetest import Server  # noqa: E402


def blob(n, seed):
    b = (seed.encode() * (n // len(seed) + 1))[:n]
    return b


class SlowHandlers(unittest.TestCase):
    def setUp(self):
        servetest.need_binaries()

    def test_gated_alias_does_not_stall_the_thread(self):
        with Server(args=["--threads", "1", "--timeout", "5"]) as s:
            size = 4 << 20
            s.cli("push", "m", "1.0.0", s.file("m1", blob(size, "one")))
            s.cli("push", "m", "2.0.0", s.file("m2", blob(2048, "two")))
            s.cli("alias", "m", "prod", "1.0.0", "--no-gate")
            s.cli("health", "set", "m", "--", "sh", "-c", "sleep 3; exit 0")

            # A download read slowly: 16 KiB every 20 ms over the whole move.
            dl = socket.create_connection((s.host, s.port), timeout=30)
            dl.sendall(b"GET /v1/models/m/versions/1.0.0/artifact HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            got = bytearray()
            dl_err = []

            def read_slowly():
                try:
                    while True:
                        b = dl.recv(16384)
                        if not b:
                            return
                        got.extend(b)
                        if b"\r\n\r\n" in got and len(got) - got.index(b"\r\n\r\n") - 4 >= size:
                            return
                        time.sleep(0.02)
                except OSError as e:
                    dl_err.append(e)

            reader = threading.Thread(target=read_slowly)
            reader.start()

            moved = {}

            def move():
                t0 = time.monotonic()
                moved["r"] = s.request("PUT", "/v1/models/m/aliases/prod",
                                       body=b'{"targets": "2.0.0"}',
                                       headers={"Content-Type": "application/json"})
                moved["t"] = time.monotonic() - t0

            mover = threading.Thread(target=move)
            mover.start()
            time.sleep(0.5)
            worst = 0.0
            while mover.is_alive():
                t0 = time.monotonic()
                st, _, _ = s.request("GET", "/healthz", timeout=10)
                worst = max(worst, time.monotonic() - t0)
                self.assertEqual(st, 200)
                time.sleep(0.1)
            mover.join()
            reader.join(60)
            dl.close()
            st, _, body = moved["r"]
            self.assertEqual(st, 200, body)
            self.assertGreater(moved["t"], 2.5, "the health check did not run: the test proves "
                               "nothing")
            self.assertLess(worst, 1.0, "/healthz waited %.2f s behind the gated move\n%s" %
                            (worst, s.logs()))
            self.assertFalse(dl_err, dl_err)
            head_end = got.index(b"\r\n\r\n") + 4
            self.assertTrue(got.startswith(b"HTTP/1.1 200"), got[:200])
            self.assertEqual(bytes(got[head_end:]), blob(size, "one"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
