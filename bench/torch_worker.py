#!/usr/bin/env python3
"""
torch_worker.py - the PyTorch side of `mcache-bench torch` (bench/sc_torch.c)
and of the demo's shared-model step (scripts/demo.sh): makes a
transformer-shaped model, and is the fresh worker process that needs it as a
dict of torch tensors, by each of the routes PyTorch users take.

  torch_worker.py make DIR SIZE
      Writes DIR/model.safetensors (header JSON + raw bytes, written here) and
      DIR/model.pt (torch.save of the same state dict): about SIZE bytes
      (suffix K, M or G) of embeddings, per-layer attention and MLP weights
      (fp32) and norms (fp16). Prints "bytes=N tensors=N sum=F": the file's
      size, the tensor count and the sum over every tensor's sum, which every
      route must find again.

  torch_worker.py serve T0 ROUTE ARGS...
      A fresh worker. T0: CLOCK_MONOTONIC in ns, taken by the parent just
      before it exec'd this process. Imports torch, gets every weight as
      {name: tensor} by ROUTE, sums each tensor once (a first full pass, so
      that lazy mappings pay their page faults), prints one line
      "import_ns=N ready_ns=N pass_ns=N tensors=N sum=F" (ns since T0: torch
      imported, the dict exists, the pass is done), then holds the dict until
      its stdin ends (the parent reads its PSS meanwhile). ROUTE ARGS:
        mcache CACHE SHM_DIR NAME VERSION  attach + get + Model.torch(), zero-copy
        torch.load FILE.pt                 torch.load of the torch.save file
        mmap FILE.safetensors              numpy.memmap + torch.from_numpy
        read FILE.safetensors              the file read into a bytearray, tensors over it
        none                               torch imported, no weights (the floor)

  torch_worker.py fleet N ROUTE ARGS...
      Starts N serve workers of ROUTE at once (the demo's step; the bench
      does this itself in C) and prints one line: their medians of import
      torch (from exec), then of the time from there to ready and to the end
      of a first full pass, and their total PSS (/proc/PID/smaps_rollup)
      while all of them hold their weights.

Use Debian's /usr/bin/python3 (python3-torch, python3-numpy). The mcache
package is the one on the Python path: the bench puts the source tree's
python/ first on $PYTHONPATH when this file is in a source tree, and sets
$MCACHE_LIB to the libmcache of its own build; the demo does the same, or
uses the installed package (--installed).
"""

import json
import os
import struct
import sys
import time

HEADER_ALIGN = 64  # the data starts 64-aligned: every route sees aligned tensors


def parse_size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    mult = units.get(text[-1:].upper(), 1)
    digits = text[:-1] if mult > 1 else text
    if not digits.isdigit() or int(digits) == 0:
        raise ValueError("size %r is not a positive number of bytes (like 256M or 1G)" % text)
    return int(digits) * mult


def transformer_shapes(size):
    """[(name, shape, dtype name)] of a decoder-only transformer of about size
    bytes: embeddings and LM head an eighth each, the rest in layers."""
    hidden = 1024 if size >= 512 << 20 else 512 if size >= 48 << 20 else 128
    ffn = (hidden * 8 // 3 + 255) // 256 * 256
    vocab = max(256, size // 8 // (hidden * 4) // 64 * 64)
    layer_bytes = (4 * hidden * hidden + 3 * hidden * ffn) * 4 + 2 * hidden * 2
    layers = max(1, (size - 2 * vocab * hidden * 4) // layer_bytes)
    # What whole layers leave over goes to the vocabulary, so the total is close to size.
    vocab = max(vocab, (size - layers * layer_bytes - hidden * 2) // (2 * hidden * 4) // 64 * 64)
    out = [("model.embed_tokens.weight", (vocab, hidden), "F32")]
    for i in range(layers):
        p = "model.layers.%d." % i
        for proj in ("q", "k", "v", "o"):
            out.append((p + "self_attn.%s_proj.weight" % proj, (hidden, hidden), "F32"))
        out.append((p + "mlp.gate_proj.weight", (ffn, hidden), "F32"))
        out.append((p + "mlp.up_proj.weight", (ffn, hidden), "F32"))
        out.append((p + "mlp.down_proj.weight", (hidden, ffn), "F32"))
        out.append((p + "input_layernorm.weight", (hidden,), "F16"))
        out.append((p + "post_attention_layernorm.weight", (hidden,), "F16"))
    out.append(("model.norm.weight", (hidden,), "F16"))
    out.append(("lm_head.weight", (vocab, hidden), "F32"))
    return out


def torch_dtypes(torch):
    return {"F32": torch.float32, "F16": torch.float16}


def full_pass(state, torch):
    """One full read: the sum of every tensor (fp16 ones summed as fp32:
    PyTorch's CPU fp16 sum is ~25x slower, and they are only the norms)."""
    total = 0.0
    for t in state.values():
        total += float(t.sum() if t.dtype == torch.float32 else t.float().sum())
    return total


def write_safetensors(path, state, dtype_names):
    """Write {name: tensor} as safetensors: an 8-byte little-endian header
    length, the JSON header {name: {dtype, shape, data_offsets}} padded with
    spaces so that the data starts HEADER_ALIGN-aligned, then each tensor's
    bytes in the header's order. Streams the tensors (no copy of the model)."""
    header, offset = {}, 0
    for name, t in state.items():
        n = t.numel() * t.element_size()
        header[name] = {"dtype": dtype_names[name], "shape": list(t.shape),
                        "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % HEADER_ALIGN)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for t in state.values():
            f.write(memoryview(t.contiguous().numpy()).cast("B"))
    os.replace(tmp, path)


def make(outdir, size):
    import torch

    gen = torch.Generator().manual_seed(17)
    dtypes = torch_dtypes(torch)
    state, names = {}, {}
    for name, shape, dt in transformer_shapes(size):
        # Positive values: the sum is then far from zero, so that a relative
        # tolerance can tell a right read from a wrong one.
        state[name] = torch.empty(shape, dtype=torch.float32).uniform_(0.0, 0.02, generator=gen)
        state[name] = state[name].to(dtypes[dt])
        names[name] = dt
    st = os.path.join(outdir, "model.safetensors")
    write_safetensors(st, state, names)
    tmp = os.path.join(outdir, "model.pt.tmp")
    torch.save(state, tmp)
    os.replace(tmp, os.path.join(outdir, "model.pt"))
    print("bytes=%d tensors=%d sum=%.17g" % (os.path.getsize(st), len(state),
                                             full_pass(state, torch)), flush=True)


def safetensors_header(first_bytes):
    """({name: (dtype, shape, begin, end)}, data offset) of a safetensors
    file, read through first_bytes(n) (the file's first n bytes)."""
    (n,) = struct.unpack("<Q", bytes(first_bytes(8)))
    header = json.loads(bytes(first_bytes(8 + n))[8:])
    header.pop("__metadata__", None)
    return {k: (v["dtype"], tuple(v["shape"]), *v["data_offsets"]) for k, v in header.items()}, 8 + n


def route_mcache(torch, cache, shm_dir, name, version):
    import mcache

    c = mcache.attach(cache, shm_dir)
    m = c.get(name, version)
    return m.torch(), (c, m)


def route_torch_load(torch, path):
    return torch.load(path), None


def route_mmap(torch, path):
    import warnings

    import numpy as np

    mm = np.memmap(path, dtype=np.uint8, mode="r")
    tensors, base = safetensors_header(lambda n: mm[:n])
    np_types = {"F32": np.float32, "F16": np.float16}
    state = {}
    with warnings.catch_warnings():
        # "The given NumPy array is not writable": the mapping is read-only on purpose.
        warnings.simplefilter("ignore", UserWarning)
        for name, (dt, shape, begin, end) in tensors.items():
            a = mm[base + begin:base + end].view(np_types[dt]).reshape(shape)
            state[name] = torch.from_numpy(a)
    return state, mm


def route_read(torch, path):
    buf = bytearray(os.path.getsize(path))
    with open(path, "rb", buffering=0) as f:
        view, done = memoryview(buf), 0
        while done < len(buf):
            n = f.readinto(view[done:])
            if not n:
                raise EOFError("%s ended after %d of %d bytes" % (path, done, len(buf)))
            done += n
    tensors, base = safetensors_header(lambda n: buf[:n])
    dtypes = torch_dtypes(torch)
    state = {}
    for name, (dt, shape, begin, end) in tensors.items():
        count = (end - begin) // torch.tensor([], dtype=dtypes[dt]).element_size()
        state[name] = torch.frombuffer(buf, dtype=dtypes[dt], count=count,
                                       offset=base + begin).reshape(shape)
    return state, buf


ROUTES = {"mcache": (route_mcache, 4), "torch.load": (route_torch_load, 1),
          "mmap": (route_mmap, 1), "read": (route_read, 1), "none": (None, 0)}


def serve(t0, route, args):
    import torch

    t_import = time.monotonic_ns()
    fn, nargs = ROUTES[route]
    if len(args) != nargs:
        raise ValueError("route %s takes %d arguments, not %d" % (route, nargs, len(args)))
    state, keep = fn(torch, *args) if fn else ({}, None)
    t_ready = time.monotonic_ns()
    total = full_pass(state, torch)
    t_pass = time.monotonic_ns()
    print("import_ns=%d ready_ns=%d pass_ns=%d tensors=%d sum=%.17g" %
          (t_import - t0, t_ready - t0, t_pass - t0, len(state), total), flush=True)
    sys.stdin.read()  # hold the weights until the parent is done with us
    del state, keep


def proc_pss(pid):
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no Pss in /proc/%d/smaps_rollup" % pid)


def fleet(n, route, args):
    import statistics
    import subprocess

    procs = []
    try:
        for _ in range(n):
            t0 = time.monotonic_ns()  # just before the exec
            procs.append(subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "serve", str(t0), route, *args],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        got = [dict(kv.split("=") for kv in p.stdout.readline().split()) for p in procs]
        if not all("ready_ns" in g for g in got):
            raise RuntimeError("a %s worker died before it was ready (its message is above)" % route)
        pss = sum(proc_pss(p.pid) for p in procs)  # every worker holds its weights now
    finally:
        for p in procs:
            p.stdin.close()
        failed = sum(p.wait() != 0 for p in procs)
    if failed:
        raise RuntimeError("%d of %d %s workers failed" % (failed, n, route))

    def ms(key, since=None):
        return statistics.median(int(g[key]) - int(g[since] if since else 0) for g in got) / 1e6

    print("%d workers, %-11s import torch %5.0f ms, then ready in %5.0f ms and through a first "
          "full pass in %5.0f ms; total PSS %5.0f MiB" %
          (n, route + ":", ms("import_ns"), ms("ready_ns", "import_ns"),
           ms("pass_ns", "import_ns"), pss / 2**20), flush=True)


def main(argv):
    try:
        if len(argv) == 4 and argv[1] == "make":
            make(argv[2], parse_size(argv[3]))
        elif len(argv) >= 4 and argv[1] == "serve" and argv[3] in ROUTES:
            serve(int(argv[2]), argv[3], argv[4:])
        elif len(argv) >= 4 and argv[1] == "fleet" and argv[3] in ROUTES:
            fleet(int(argv[2]), argv[3], argv[4:])
        else:
            sys.stderr.write("usage: torch_worker.py make DIR SIZE | serve T0 ROUTE ARGS... | "
                             "fleet N ROUTE ARGS... "
                             "(ROUTE: %s; see the file's header)\n" % ", ".join(ROUTES))
            return 2
    except Exception as e:  # one clear line for the bench's log, not a traceback
        sys.stderr.write("torch_worker.py %s: %s: %s\n" % (" ".join(argv[1:4]),
                                                           type(e).__name__, e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
