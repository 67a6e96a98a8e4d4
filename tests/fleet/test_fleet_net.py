#!/usr/bin/env python3
"""test_fleet_net.py - three hosts over real network namespaces (issue 15).

    netns.sh run 2 pg.sh run rgw.sh run test_fleet_net.py MCACHE MCACHED MP_READER

Host a runs in the root namespace, hosts b and c each in their own (netns.sh),
joined to the root by a veth pair; PostgreSQL (the registry) and the Ceph
gateway (the artifacts, s3://) listen on 127.0.0.1 and on each veth's root
side. Every host is one mcached with its own --store, cache, shm directory and
control socket, all with --registry postgres://ADDR and --artifacts s3://...;
its workers (mp_reader, separately exec'd, libmcache) and its CLI run in the
host's namespace and reach the servers through its link.

  a. push on one host, served by all: each host's worker loads it and hashes
     every byte to the record's checksum (the same checksum on every host).
  b. alias moves (made by the CLI on each host in turn) reach every host's
     worker: p50/p99 per host and overall printed; each must arrive (10 s).
  c. host b's link down, host c's link blackholed (silent drops): they keep
     serving; a write through them is refused naming the database; b restarts
     while cut and serves its replica; after the links return both catch up
     with a move made meanwhile.
  d. host c's mcached killed (-9) mid-download of a 256 MiB version from S3
     (in flight: mcached's own stat says so); restarted, it loads it whole,
     every byte verified; nothing torn at a published name.
  e. PostgreSQL stopped, and separately the gateway killed, in the middle of a
     push (its multipart upload listed by the gateway): the push fails naming
     what failed; once back, nothing is half-registered (no version, fsck
     clean, no orphan object after gc) and the same push again succeeds.

Every wait is for an event, bounded; servers and namespaces are removed by the
wrapping scripts' traps, our own processes by pid in `finally`.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from urllib.parse import quote

SLOW = float(os.environ.get("MC_TEST_SLOWDOWN", "1"))  # sanitizer builds: bounds x this
BUCKET = "mcnet"
PREFIX = "p/"
MB = 1 << 20
STEP = 0.05  # poll period of the bounded waits


class Fail(Exception):
    pass


def log(msg):
    print(msg, flush=True)


def now_ns():
    return time.monotonic_ns()


def wait_for(what, limit_s, pred):
    """Poll pred() until it is true (an event), for at most limit_s * SLOW seconds."""
    end = time.monotonic() + limit_s * SLOW
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise Fail(f"timed out after {limit_s * SLOW:.0f} s waiting for {what}")
        time.sleep(STEP)


def pct(xs, p):
    s = sorted(xs)
    return s[min(len(s) - 1, int(len(s) * p / 100))]


# ---- the object store, seen from the root namespace (curl signs SigV4) --------------
def s3(path, *extra, check=True):
    r = subprocess.run(
        ["curl", "-sS", "--max-time", "30", "--aws-sigv4", f"aws:amz:{os.environ['AWS_REGION']}:s3",
         "--user", f"{os.environ['AWS_ACCESS_KEY_ID']}:{os.environ['AWS_SECRET_ACCESS_KEY']}",
         "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", *extra,
         f"{os.environ['AWS_ENDPOINT_URL']}/{path}"], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise Fail(f"curl {path}: {r.stderr.strip()}")
    return r.stdout


def s3_keys():
    keys, token = [], None
    for _ in range(100):
        # parameters sorted and each with its "=": curl's SigV4 signs the query as written
        q = f"{BUCKET}?" + (f"continuation-token={quote(token, safe='')}&" if token else "") + \
            f"list-type=2&prefix={quote(PREFIX, safe='')}"
        out = s3(q)
        keys += re.findall(r"<Key>([^<]*)</Key>", out)
        m = re.search(r"<NextContinuationToken>([^<]*)</NextContinuationToken>", out)
        if not m:
            return keys
        token = m.group(1)
    raise Fail("listing the bucket did not end in 100 pages")


def s3_uploads():
    """Unfinished multipart uploads under the prefix (a push in flight, or a dead one's)."""
    out = s3(f"{BUCKET}?prefix={quote(PREFIX, safe='')}&uploads=")
    if "<ListMultipartUploadsResult" not in out:
        raise Fail(f"listing the multipart uploads: {out.strip()}")
    return re.findall(r"<Upload>.*?<Key>([^<]*)</Key>", out, re.S)


def gateway_answers():
    return subprocess.run(["curl", "-s", "-o", "/dev/null", "--max-time", "2",
                           os.environ["AWS_ENDPOINT_URL"] + "/"]).returncode == 0


# ---- a host: an mcached, its namespace, its CLI and workers -------------------------
class Host:
    def __init__(self, name, ns, server_addr, root, shm_root):
        self.name, self.ns, self.addr = name, ns, server_addr
        self.store = f"{root}/{name}/store"
        self.shm = f"{shm_root}/{name}"
        self.cache = f"net{name}"
        self.sock = f"{root}/{name}/sock"
        self.logf = f"{root}/{name}/mcached.log"
        os.makedirs(self.shm)
        os.makedirs(os.path.dirname(self.sock), exist_ok=True)
        pg = os.environ["MCACHE_TEST_PG_URL"]
        self.registry = pg.replace("@127.0.0.1:", f"@{server_addr}:")
        self.endpoint = os.environ["AWS_ENDPOINT_URL"].replace("127.0.0.1", server_addr)
        self.env = dict(os.environ, MCACHE_REGISTRY=self.registry,
                        MCACHE_ARTIFACTS=f"s3://{BUCKET}/{PREFIX}", AWS_ENDPOINT_URL=self.endpoint,
                        MCACHE_STORE=self.store, MCACHE_SHM_DIR=self.shm, MCACHE_CACHE=self.cache)
        self.proc = None

    def prefix(self):
        return ["ip", "netns", "exec", self.ns] if self.ns else []

    def run(self, argv, limit_s=60, env=None):
        """A command of this host's; (status, stdout, stderr); a hang past the bound fails."""
        try:
            r = subprocess.run(self.prefix() + argv, capture_output=True, text=True,
                               timeout=limit_s * SLOW, env=env or self.env)
        except subprocess.TimeoutExpired:
            raise Fail(f"host {self.name}: {' '.join(argv[:4])}... did not return in "
                       f"{limit_s * SLOW:.0f} s")
        return r.returncode, r.stdout, r.stderr

    def cli(self, *args, limit_s=60, env=None):
        return self.run([MCACHE, "--socket", self.sock, *args], limit_s, env)

    def reader(self, *args, limit_s=120):
        return self.run([READER, *args], limit_s)

    def getload(self, name, ref):
        rc, out, err = self.reader("getload", self.shm, self.cache, name, ref, str(int(120000 * SLOW)))
        if rc != 0 or not out.startswith("ok "):
            self.tail()
            raise Fail(f"host {self.name}: worker's getload {name}@{ref}: rc {rc}: {out}{err}")
        return out.split()

    def verify(self, name, ref):
        rc, out, err = self.reader("verify", self.shm, self.cache, name, ref)
        if rc != 0 or not out.startswith("ok "):
            raise Fail(f"host {self.name}: worker's verify {name}@{ref}: rc {rc}: {out}{err}")
        return out.split()

    def stat(self):
        rc, out, _ = self.cli("stat", "--json", limit_s=30)
        try:
            return json.loads(out) if rc == 0 else None
        except ValueError:
            return None

    def up(self, loading=False):
        d = self.stat()
        ok = d is not None and d.get("source") == "mcached" and d["daemon"]["pid"] == self.proc.pid
        return ok and (not loading or d["daemon"]["loads"]["in_flight"] > 0)

    def start(self):
        with open(self.logf, "a") as lf:
            # ip netns exec execs mcached: the pid is mcached's
            self.proc = subprocess.Popen(
                self.prefix() + [MCACHED, "--store", self.store, "--shm-dir", self.shm, "--cache",
                                 self.cache, "--socket", self.sock, "--size", "1G", "--registry",
                                 self.registry, "--artifacts", f"s3://{BUCKET}/{PREFIX}",
                                 "--log-level", "debug"],
                stdout=lf, stderr=lf, env=self.env, start_new_session=True)
        try:
            wait_for(f"host {self.name}'s mcached (pid {self.proc.pid}) to answer", 60,
                     lambda: self.proc.poll() is None and self.up() or self.proc.poll() is not None)
        except Fail:
            self.tail()
            raise
        if self.proc.poll() is not None:
            self.tail()
            raise Fail(f"host {self.name}'s mcached exited with {self.proc.returncode} at start")

    def stop(self, sig=signal.SIGTERM, limit_s=20 * SLOW):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=limit_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        st = self.proc.returncode if self.proc else 0
        self.proc = None
        return st

    def log_has(self, s):
        with open(self.logf, errors="replace") as f:
            return s in f.read()

    def tail(self, n=25):
        try:
            with open(self.logf, errors="replace") as f:
                lines = f.readlines()[-n:]
            print(f"--- host {self.name}: mcached log (tail)\n" + "".join(lines), end="", flush=True)
        except OSError:
            pass


class Follower:
    """mp_reader follow on a host: waits (10 s at most) until NAME@REF is a version."""

    def __init__(self, host):
        self.host = host
        self.p = subprocess.Popen(host.prefix() + [READER, "follow", host.shm, host.cache, "m", "prod"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env=host.env)
        line = self.p.stdout.readline()
        if line != "ready\n":
            raise Fail(f"host {host.name}'s follower: {line!r}")

    def ask(self, version, t0, t1):
        self.p.stdin.write(f"{version} {t0} {t1}\n")
        self.p.stdin.flush()

    def answer(self):
        line = self.p.stdout.readline()
        m = re.match(r"saw (\S+) (\d+) (\d+)", line)
        return (m.group(1), int(m.group(2)), int(m.group(3))) if m else (line.strip() or "EOF",)

    def sees(self, version):
        t = now_ns()
        self.ask(version, t, t)
        a = self.answer()
        return a[0] == version, a

    def close(self):
        if self.p.poll() is None:
            self.p.stdin.close()
            try:
                self.p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def refused_naming_db(host, version, cut_how):
    """A write through a cut host fails, naming the database, within 20 s, both through the
    host's mcached (its socket) and straight to the registry (no mcached). Soft checks: the
    rest of the test runs either way."""
    for via, sock in (("through its mcached", host.sock), ("without mcached", host.sock + ".none")):
        t0 = time.monotonic()
        try:
            rc, _, err = host.run([MCACHE, "--socket", sock, "alias", "set", "m", "prod", version],
                                  limit_s=20 / SLOW)  # 20 s whatever the build: a refusal is prompt
        except Fail as e:
            soft_fail(f"host {host.name} ({cut_how}): a write {via} was not refused: {e}")
            continue
        dt = time.monotonic() - t0
        if rc == 0:
            raise Fail(f"host {host.name} ({cut_how}): a write {via} succeeded")
        if "registry database" not in err or host.addr not in err:
            soft_fail(f"host {host.name} ({cut_how}): the refusal of a write {via} (status {rc}, "
                      f"{dt:.1f} s) does not name the database at {host.addr}: {err.strip()}")
            continue
        log(f"ok c: host {host.name} ({cut_how}): a write {via} is refused in {dt:.1f} s: "
            f"{err.strip().splitlines()[0]}")


# ---- the link cuts ------------------------------------------------------------------
def blackhole(ns, nsif, rif, on):
    """Silently drop everything on a veth (both ways). Tries netem loss 100%, then a pfifo
    qdisc of length 0 (every packet dropped at enqueue), then blackhole routes (not silent:
    the sender gets EINVAL). Returns the way used."""
    def ip_ns(*a):
        return subprocess.run(["ip", "netns", "exec", ns, *a], capture_output=True).returncode == 0

    def ip_root(*a):
        return subprocess.run(list(a), capture_output=True).returncode == 0

    if not on:
        ip_ns("tc", "qdisc", "del", "dev", nsif, "root")
        ip_root("tc", "qdisc", "del", "dev", rif, "root")
        ip_ns("ip", "route", "del", "blackhole", PEER[ns] + "/32")
        ip_root("ip", "route", "del", "blackhole", ADDR[ns] + "/32")
        return None
    for how, q in (("tc netem loss 100%", ["netem", "loss", "100%"]),
                   ("tc pfifo limit 0 (every packet dropped)", ["pfifo", "limit", "0"])):
        if ip_ns("tc", "qdisc", "add", "dev", nsif, "root", *q):
            if ip_root("tc", "qdisc", "add", "dev", rif, "root", *q):
                return how
            ip_ns("tc", "qdisc", "del", "dev", nsif, "root")
    if ip_ns("ip", "route", "add", "blackhole", PEER[ns] + "/32") and \
            ip_root("ip", "route", "add", "blackhole", ADDR[ns] + "/32"):
        return "ip route blackhole (not silent: sends fail at once)"
    raise Fail("no way to blackhole a veth here (tc netem, tc pfifo, ip route blackhole)")


PEER, ADDR = {}, {}
SOFT = []


def soft_fail(msg):
    """A failed check after which the rest can still run: reported now, fails the test at the end."""
    print(f"FAIL (continuing): {msg}", flush=True)
    SOFT.append(msg)


def main():
    global MCACHE, MCACHED, READER
    if len(sys.argv) != 4:
        print("usage: test_fleet_net.py MCACHE MCACHED MP_READER", file=sys.stderr)
        return 2
    MCACHE, MCACHED, READER = sys.argv[1:]
    for k in ("MCACHE_TEST_PG_URL", "MCACHE_TEST_PG_DIR", "AWS_ENDPOINT_URL", "RGW_CONF",
              "RGW_GATEWAY_PID", "NETNS_1", "NETNS_2"):
        if k not in os.environ:
            print(f"test_fleet_net: skipped: {k} unset; run under netns.sh run 2 pg.sh run "
                  f"rgw.sh run", file=sys.stderr)
            return 77
    for i in (1, 2):
        ns = os.environ[f"NETNS_{i}"]
        PEER[ns], ADDR[ns] = os.environ[f"NETNS_{i}_PEER"], os.environ[f"NETNS_{i}_ADDR"]

    root = tempfile.mkdtemp(prefix="mcnet.", dir="/tmp")
    shm_root = tempfile.mkdtemp(prefix="mcnet.", dir="/dev/shm")
    hosts, followers, extra = [], [], []
    try:
        return run(root, shm_root, hosts, followers, extra)
    except Fail as e:
        print(f"FAIL: {e}", flush=True)
        for h in hosts:
            h.tail(15)
        return 1
    finally:
        for f in followers:
            f.p.kill()
            f.p.wait()
        for h in hosts:
            if h.proc:
                h.proc.kill()
                h.proc.wait()
        for p in extra:  # a gateway we restarted
            p.kill()
            p.wait()
        for i in (1, 2):
            blackhole(os.environ[f"NETNS_{i}"], os.environ[f"NETNS_{i}_NSIF"],
                      os.environ[f"NETNS_{i}_IF"], False)
            subprocess.run(["ip", "link", "set", os.environ[f"NETNS_{i}_IF"], "up"])
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(shm_root, ignore_errors=True)


def run(root, shm_root, hosts, followers, extra):
    t_start = time.monotonic()
    pg_sh = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pg.sh")
    a = Host("a", None, "127.0.0.1", root, shm_root)
    b = Host("b", os.environ["NETNS_1"], os.environ["NETNS_1_PEER"], root, shm_root)
    c = Host("c", os.environ["NETNS_2"], os.environ["NETNS_2_PEER"], root, shm_root)
    hosts += [a, b, c]
    s3(BUCKET, "-X", "PUT", "-o", "/dev/null")
    rc, _, err = a.cli("db", "migrate")
    if rc:
        subprocess.run(["tail", "-n", "20", os.environ["MCACHE_TEST_PG_DIR"] + "/server.log"])
        raise Fail(f"mcache db migrate: {err}")
    for h in hosts:
        rc, _, err = h.cli("init")
        if rc:
            raise Fail(f"host {h.name}: mcache init: {err}")
        rc, _, err = h.cli("ls")
        if rc:
            raise Fail(f"host {h.name}: the store `mcache init` made (postgres registry, s3 "
                       f"artifacts) is refused by the next command: {err.strip()}")
    files = {}

    def blob(tag, size):
        path = f"{root}/{tag}.bin"
        with open(path, "wb") as f:
            f.write(os.urandom(size))
        files[tag] = path
        return path

    def push(host, version, path, limit_s=180, env=None):
        return host.cli("push", "m", version, path, limit_s=limit_s, env=env)

    # ---- a. push on host b, served by all ------------------------------------------
    for v in ("1.0.0", "2.0.0"):
        rc, _, err = push(b, v, blob(v, 16 * MB + int(v[0]) * 4096))
        if rc:
            raise Fail(f"host b: push m {v}: {err}")
    rc, _, err = b.cli("alias", "set", "m", "prod", "1.0.0")
    if rc:
        raise Fail(f"alias set m prod 1.0.0: {err}")
    for h in hosts:
        h.start()
    sums = {}
    for h in hosts:
        for v in ("1.0.0", "2.0.0"):
            got = h.getload("m", v)
            if got[1:3] != [v, str(os.path.getsize(files[v]))]:
                raise Fail(f"host {h.name}: loaded {got}, not m@{v}")
            rc, meta, err = h.reader("meta", h.shm, h.cache, "m", v)
            sums.setdefault(v, set()).add(json.loads(meta).get("checksum") if rc == 0 else err)
    for v, s in sums.items():
        if len(s) != 1:
            raise Fail(f"m@{v}: the hosts' workers saw different checksums: {s}")
    log(f"ok a: pushed on host b, every host's worker read m@1.0.0 and m@2.0.0 whole, bytes "
        f"hashing to {sorted(sums['1.0.0'])[0]} and {sorted(sums['2.0.0'])[0]}")

    # ---- b. alias moves reach every host's workers ---------------------------------
    followers += [Follower(h) for h in hosts]
    moves = int(os.environ.get("MC_NET_MOVES", "30"))
    lat = {h.name: [] for h in hosts}
    lat_cli = {h.name: [] for h in hosts}
    cur = "1.0.0"
    for i in range(moves):
        mover = hosts[i % 3]
        v = "2.0.0" if cur == "1.0.0" else "1.0.0"
        t0 = now_ns()
        rc, _, err = mover.cli("alias", "set", "m", "prod", v)
        t1 = now_ns()
        if rc:
            raise Fail(f"move {i} on host {mover.name}: {err}")
        cur = v
        for f in followers:
            f.ask(v, t0, t1)
        for f in followers:
            ans = f.answer()
            if ans[0] != v or len(ans) != 3:
                f.host.tail()
                raise Fail(f"move {i} to {v} (made on host {mover.name}) did not reach host "
                           f"{f.host.name}'s worker in 10 s: {ans}")
            lat[f.host.name].append(ans[1] / 1e6)
            lat_cli[f.host.name].append(ans[2] / 1e6)
    allv = [x for v in lat.values() for x in v]
    log(f"ok b: {moves} alias moves (the CLI on hosts a, b, c in turn) reached every host's worker;"
        f" latency from before the CLI ran to the worker seeing it (the CLI's start and round "
        f"trips included), ms:")
    for h in hosts:
        log(f"    host {h.name}{' (netns)' if h.ns else ' (root) '}: p50 {pct(lat[h.name], 50):7.1f} "
            f"p99 {pct(lat[h.name], 99):7.1f}   after the CLI returned: p50 "
            f"{pct(lat_cli[h.name], 50):6.1f} p99 {pct(lat_cli[h.name], 99):6.1f}")
    p99 = pct(allv, 99)
    log(f"    overall: p50 {pct(allv, 50):.1f} p99 {p99:.1f} max {max(allv):.1f}; p99 <= 1 s: "
        f"{'yes' if p99 <= 1000 else 'NO'}")

    # ---- c. cut links: b's down, c's blackholed ------------------------------------
    fa, fb, fc = followers
    ns_b, ns_c = b.ns, c.ns
    subprocess.run(["ip", "link", "set", os.environ["NETNS_1_IF"], "down"], check=True)
    how = blackhole(ns_c, os.environ["NETNS_2_NSIF"], os.environ["NETNS_2_IF"], True)
    log(f"c: host b's link down (ip link set {os.environ['NETNS_1_IF']} down); host c's "
        f"blackholed with {how}")
    for h, f in ((b, fb), (c, fc)):
        ok, ans = f.sees(cur)
        if not ok:
            raise Fail(f"host {h.name} cut: its worker does not see m@prod = {cur}: {ans}")
        got = h.verify("m", "prod")
        if got[1] != cur:
            raise Fail(f"host {h.name} cut: worker's m@prod is {got[1]}, not {cur}")
    log(f"ok c: both cut hosts' workers still resolve m@prod -> {cur} and read it whole")
    other = "2.0.0" if cur == "1.0.0" else "1.0.0"
    refused_naming_db(b, other, "link down")
    refused_naming_db(c, other, how.split(" (")[0])
    # host b restarts while cut: it serves its replica
    t0 = time.monotonic()
    st = b.stop(limit_s=20)
    if st != 0:
        b.tail(12)
        soft_fail(f"host b's mcached, cut, did not stop on SIGTERM: killed after "
                  f"{time.monotonic() - t0:.0f} s (status {st}; its log's tail above)")
    b.start()
    wait_for("host b's log to say it serves its replica", 30,
             lambda: b.log_has("serving this host's replica of generation"))
    got = b.getload("m", "prod")
    ok, ans = fb.sees(cur)
    b_stale = got[1] != cur or not ok
    if b_stale:
        with open(b.logf, errors="replace") as f:
            said = [ln.strip() for ln in f if "serving this host's replica" in ln][-1:]
        soft_fail(f"host b restarted while cut serves m@prod = {got[1]} (its follower: {ans}), "
                  f"not {cur}, what it served before the restart: {' '.join(said)}")
    else:
        log(f"ok c: host b restarted while cut: started from its replica, its workers read "
            f"m@prod -> {cur} whole")
    # a move on host a meanwhile; then the links come back and both catch up
    rc, _, err = a.cli("alias", "set", "m", "prod", other)
    if rc:
        raise Fail(f"the move on host a while b and c are cut: {err}")
    ok, ans = fa.sees(other)
    if not ok:
        raise Fail(f"host a's own worker: {ans}")
    if (not b_stale and b.verify("m", "prod")[1] != cur) or c.verify("m", "prod")[1] != cur:
        raise Fail("a cut host saw a move it could not have heard of")
    t_back = time.monotonic()
    subprocess.run(["ip", "link", "set", os.environ["NETNS_1_IF"], "up"], check=True)
    blackhole(ns_c, os.environ["NETNS_2_NSIF"], os.environ["NETNS_2_IF"], False)
    caught = {}
    for h, f in ((b, fb), (c, fc)):
        # each ask waits 10 s at most; bounded by the count too
        for _ in range(int(9 * SLOW)):
            ok, ans = f.sees(other)
            if ok:
                caught[h.name] = time.monotonic() - t_back
                break
        else:
            h.tail()
            raise Fail(f"host {h.name} did not catch up with m@prod -> {other} within "
                       f"{90 * SLOW:.0f} s of its link's return: {ans}")
    cur = other
    log(f"ok c: links restored; host b caught up in {caught['b']:.1f} s, host c in "
        f"{caught['c']:.1f} s (from the link's return)")

    # ---- d. kill -9 mid-download from S3 ------------------------------------------
    big = 256 * MB
    rc, _, err = push(a, "3.0.0", blob("3.0.0", big))
    if rc:
        raise Fail(f"push m 3.0.0: {err}")
    vdir = f"{c.store}/models/m/3.0.0"
    bg = subprocess.Popen(c.prefix() + [READER, "getload", c.shm, c.cache, "m", "3.0.0", "120000"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=c.env)
    try:
        wait_for("host c's download of m@3.0.0 to be in flight", 60, lambda: c.up(loading=True))
        if not c.log_has("loading m@3.0.0"):
            raise Fail("a load is in flight on host c, but not m@3.0.0's")
        st = c.stop(signal.SIGKILL)
    finally:
        bg.wait(timeout=60)
    if os.path.exists(f"{vdir}/artifact"):
        raise Fail(f"host c killed mid-download left {vdir}/artifact published")
    log(f"ok d: host c's mcached killed (-9, status {st}) with m@3.0.0's download in flight; "
        f"nothing published at {vdir}/artifact")
    c.start()
    got = c.getload("m", "3.0.0")
    if got[1:3] != ["3.0.0", str(big)]:
        raise Fail(f"host c after the restart: {got}")
    wait_for("host c's node-local copy of m@3.0.0", 30, lambda: os.path.exists(f"{vdir}/artifact"))
    if subprocess.run(["cmp", "-s", files["3.0.0"], f"{vdir}/artifact"]).returncode:
        raise Fail(f"{vdir}/artifact differs from the pushed bytes")
    left = [n for n in os.listdir(vdir) if n != "artifact"]
    if left:
        raise Fail(f"temp files left in {vdir}: {left}")
    log(f"ok d: restarted, host c loaded m@3.0.0 ({big >> 20} MiB) whole: {' '.join(got)}; its "
        f"local copy matches, no temp file left")

    # ---- e. servers lost mid-push: nothing half-registered, a retry succeeds -------
    slow_push = dict(b.env, MCACHE_S3_PARALLEL="1", MCACHE_S3_PART_MB="8")

    def push_mid(version, path, host, env, cut, what):
        p = subprocess.Popen(host.prefix() + [MCACHE, "push", "m", version, path],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            wait_for(f"the push of m@{version}'s multipart upload to be listed", 60,
                     lambda: s3_uploads() or p.poll() is not None)
            if p.poll() is not None:
                raise Fail(f"the push of m@{version} ended (status {p.returncode}) before it was "
                           f"seen mid-upload")
            ups = s3_uploads()
            cut()
            out, err = p.communicate(timeout=180 * SLOW)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        if p.returncode == 0:
            raise Fail(f"the push of m@{version} succeeded though {what} was lost mid-upload")
        log(f"ok e: {what} lost mid-push (upload {ups[0]} listed): the push failed "
            f"(status {p.returncode}): {err.strip().splitlines()[0] if err.strip() else '(no message)'}")
        return err

    def nothing_half(version):
        rc, out, _ = a.cli("show", f"m@{version}")
        if rc == 0:
            raise Fail(f"m@{version} is registered after its failed push: {out}")
        rc, out, err = a.cli("gc", "--keep", "100")
        if rc:
            raise Fail(f"mcache gc after the failed push of m@{version}: {out}{err}")
        rc, out, err = a.cli("fsck")
        if rc:
            raise Fail(f"mcache fsck after the failed push of m@{version}: {out}{err}")
        # An object the push placed at its content address before failing is spared by gc for
        # MCACHE_S3_STALE_S (a push in flight binds its object after placing it); with no push
        # in flight here, a gc with no grace must sweep it.
        rc, out, err = a.cli("gc", "--keep", "100", env={**a.env, "MCACHE_S3_STALE_S": "0"})
        if rc:
            raise Fail(f"mcache gc (no grace) after the failed push of m@{version}: {out}{err}")
        keys = s3_keys()
        tmp = [k for k in keys if k.startswith(PREFIX + "tmp/")]
        objs = {k.split("/")[-1] for k in keys if k.startswith(PREFIX + "xxh3-128/")}
        refd = {k.split("/")[2] for k in keys if k.startswith(PREFIX + "refs/")}
        ups = s3_uploads()
        if tmp or ups or objs - refd:
            raise Fail(f"left after the failed push of m@{version} and gc: temp objects {tmp}, "
                       f"unfinished uploads {ups}, unreferenced objects {sorted(objs - refd)}")
        log(f"ok e: after the failed push m@{version} is absent, gc and fsck clean, no temp "
            f"object, upload or orphan object in the bucket ({len(objs)} objects, all referenced)")

    def retry(version, path):
        rc, _, err = push(b, version, path)
        if rc:
            raise Fail(f"the retried push of m@{version}: {err}")
        got = a.getload("m", version)
        if got[1] != version:
            raise Fail(f"m@{version} after its retried push: {got}")
        log(f"ok e: the push of m@{version} again succeeded; host a's worker read it whole")

    pg_dir = os.environ["MCACHE_TEST_PG_DIR"]
    path4 = blob("4.0.0", big)

    def pg_stop():
        subprocess.run([pg_sh, "pause", pg_dir], check=True, timeout=60 * SLOW)

    err = push_mid("4.0.0", path4, b, slow_push, pg_stop, "PostgreSQL (pg.sh pause)")
    subprocess.run([pg_sh, "resume", pg_dir], check=True, timeout=60 * SLOW)
    if "registry database" not in err:
        raise Fail(f"the push's error does not name the registry database: {err.strip()}")
    nothing_half("4.0.0")
    retry("4.0.0", path4)

    path5 = blob("5.0.0", big)
    gw = int(os.environ["RGW_GATEWAY_PID"])

    def gw_kill():
        os.kill(gw, signal.SIGKILL)

    err = push_mid("5.0.0", path5, b, slow_push, gw_kill, "the S3 gateway (kill -9)")
    if b.endpoint.split("//")[1] not in err and f"s3://{BUCKET}" not in err:
        raise Fail(f"the push's error names neither the gateway nor the bucket: {err.strip()}")
    wait_for("the killed gateway to stop answering", 10, lambda: not gateway_answers())
    extra.append(subprocess.Popen(["setpriv", "--pdeathsig", "KILL", "radosgw", "--conf",
                                   os.environ["RGW_CONF"], "-n", "client.rgw", "-f"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    wait_for("the restarted gateway to answer", 60, gateway_answers)
    nothing_half("5.0.0")
    retry("5.0.0", path5)

    for f in followers:
        f.close()
    followers.clear()
    for h in hosts:
        st = h.stop()
        if st != 0:
            h.tail()
            raise Fail(f"host {h.name}'s mcached stopped with status {st}")
    if SOFT:
        print(f"FAIL: {len(SOFT)} check(s) failed above ({time.monotonic() - t_start:.0f} s):")
        for m in SOFT:
            print(f"  - {m}")
        return 1
    log(f"PASS ({time.monotonic() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
