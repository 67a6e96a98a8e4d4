#!/usr/bin/env python3
"""tcpproxy.py - a TCP proxy between a PostgreSQL client and its server that
cuts one connection at a chosen point of a registry write, for the tests of
a commit whose answer is lost (tests/fleet/commit_cut.sh).

    tcpproxy.py HOST PORT MODE

Listens on a free loopback port, prints it on stdout, and relays every
connection to HOST:PORT. It reads the client's side of the protocol (the
startup packets, then typed messages) and, in the first connection that
inserts into registry_records, acts at that transaction's COMMIT:
  after   forwards the COMMIT, waits for the server's answer (so the server
          has committed), then closes both sides without relaying it
  before  closes both sides without forwarding the COMMIT (the server rolls
          back)
  gone    as after, then the proxy exits: the client cannot reach the server
          again to find out what happened
  holdbefore, holdafter
          as before or after, but only the server's side is closed (its
          backend ends, the lock is free): the client hears nothing until the
          file named by $TCPPROXY_RELEASE exists, then its side is closed
          too; meanwhile another writer can take the lock
  pass    nothing
Once it has cut, every later connection is relayed untouched. It runs until
it is killed (SIGTERM).
"""
import os
import select
import socket
import struct
import sys
import threading
import time

SSL_REQUEST = 80877103
GSS_REQUEST = 80877104

cut_done = threading.Event()
cut_lock = threading.Lock()


def client_messages(buf, state):
    """Split complete client messages off buf: [(type, body, raw)], rest."""
    out = []
    while True:
        if state["startup"]:
            if len(buf) < 8:
                break
            n = struct.unpack("!I", buf[:4])[0]
            if len(buf) < n:
                break
            code = struct.unpack("!I", buf[4:8])[0]
            out.append((None, buf[4:n], buf[:n]))
            if code not in (SSL_REQUEST, GSS_REQUEST):
                state["startup"] = False
            buf = buf[n:]
        else:
            if len(buf) < 5:
                break
            n = struct.unpack("!I", buf[1:5])[0]
            if len(buf) < n + 1:
                break
            out.append((buf[:1], buf[5 : n + 1], buf[: n + 1]))
            buf = buf[n + 1 :]
    return out, buf


def hold(server):
    """Close the server's side; keep the client's until $TCPPROXY_RELEASE exists (2 min at most)."""
    server.shutdown(socket.SHUT_RDWR)
    release = os.environ.get("TCPPROXY_RELEASE", "")
    for _ in range(2400):
        if release and os.path.exists(release):
            return
        time.sleep(0.05)


def relay(client, mode, host, port):
    server = socket.create_connection((host, port))
    state = {"startup": True, "armed": False}
    pending = b""
    try:
        while True:
            r, _, _ = select.select([client, server], [], [])
            if server in r:
                data = server.recv(65536)
                if not data:
                    return
                client.sendall(data)
            if client in r:
                data = client.recv(65536)
                if not data:
                    return
                msgs, pending = client_messages(pending + data, state)
                for typ, body, raw in msgs:
                    if typ in (b"Q", b"P") and b"INSERT INTO registry_records" in body:
                        state["armed"] = True
                    commit = typ == b"Q" and body.rstrip(b"\0").strip().upper() == b"COMMIT"
                    if commit and state["armed"] and mode != "pass":
                        with cut_lock:
                            mine = not cut_done.is_set()
                            cut_done.set()
                        if mine:
                            if mode in ("after", "gone", "holdafter"):
                                server.sendall(raw)
                                # the server's answer: it has committed; drop it
                                select.select([server], [], [], 10)
                                server.recv(65536)
                            sys.stderr.write("tcpproxy: cut %s COMMIT\n" % mode)
                            sys.stderr.flush()
                            if mode == "gone":
                                os._exit(0)
                            if mode.startswith("hold"):
                                hold(server)
                            return
                    server.sendall(raw)
    except OSError:
        pass
    finally:
        for s in (client, server):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def main():
    host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    modes = ("after", "before", "gone", "holdbefore", "holdafter", "pass")
    if mode not in modes:
        sys.exit("tcpproxy.py: MODE is one of %s, not %r" % (", ".join(modes), mode))
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    print(ls.getsockname()[1], flush=True)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=relay, args=(c, mode, host, port), daemon=True).start()


if __name__ == "__main__":
    main()
