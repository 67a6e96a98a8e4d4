#!/usr/bin/python3
"""
torch_worker.py - an inference worker in PyTorch over mcache: builds the demo
model (examples/make_demo_model.py) from the cached tensors without copying
them, and runs it on fixed inputs.

    examples/torch_worker.py [--cache NAME] [--shm-dir DIR] [--watch SECONDS] [NAME [REF]]

Once (default): get NAME@REF (default demo@production; asks mcached to load
it if needed), build the model with its parameters pointing into the arena,
check that they do, and print one line per fixed input:
"y[i] = v0 v1 ... -> argmax" (the same format as examples/worker.c).

--watch SECONDS: serve as a long-running worker does. Keep the model held
between requests and, per request, ask the cache which version NAME@REF is
now (a warm get: no system call). When the alias has moved, build the new
version's model (zero-copy, so this costs microseconds) and drop the old one,
which releases it. Prints a line on each switch and a summary; exit 1 on any
error or if a version's result ever changed.

Needs PyTorch (Debian: python3-torch; run it with /usr/bin/python3), not NumPy.
"""

import argparse
import math
import os
import sys
import time

try:
    import mcache
except ImportError:  # run from a source checkout: use <repo>/python
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    import mcache

import torch
from torch import nn

BATCH = 4


def fixed_inputs(n_in):
    """The fixed inputs, the same formula as examples/worker.c."""
    rows = [[math.cos(0.3 * r + 0.7 * c) for c in range(n_in)] for r in range(BATCH)]
    return torch.tensor(rows, dtype=torch.float64).to(torch.float32)


def build_model(state):
    """The demo MLP over `state` ({name: tensor}), sharing the tensors' memory.

    The layers are made on the "meta" device (no memory, no initialisation),
    then each parameter is set to a Parameter wrapping the given tensor: a
    Parameter over a tensor shares its storage, so nothing is copied."""
    w1, b1, w2, b2 = (state[k] for k in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"))
    hidden, n_in = w1.shape
    n_out = w2.shape[0]
    model = nn.Sequential(
        nn.Linear(n_in, hidden, device="meta"), nn.ReLU(), nn.Linear(hidden, n_out, device="meta")
    )
    for layer, w, b in ((model[0], w1, b1), (model[2], w2, b2)):
        layer.weight = nn.Parameter(w, requires_grad=False)
        layer.bias = nn.Parameter(b, requires_grad=False)
    return model.eval()


def infer(model):
    with torch.inference_mode():
        return model(fixed_inputs(model[0].in_features))


def format_outputs(y):
    lines = []
    for r, row in enumerate(y.tolist()):
        best = max(range(len(row)), key=lambda o: row[o])
        lines.append("y[%d] = %s -> %d" % (r, " ".join("%.6f" % v for v in row), best))
    return "\n".join(lines)


def check_zero_copy(model, m):
    """Every parameter's data must be the tensor's bytes in the arena."""
    infos = m.tensors
    for name, p in model.named_parameters():
        key = {"0": "fc1", "2": "fc2"}[name.split(".")[0]] + "." + name.split(".")[1]
        if p.data_ptr() != infos[key].address:
            raise SystemExit(
                "torch_worker: parameter %s is at %#x, not at tensor %s in the arena (%#x): "
                "it was copied" % (name, p.data_ptr(), key, infos[key].address)
            )
    return len(infos)


def run_once(cache, name, ref):
    with cache.get(name, ref, load=True, timeout=30) as m:
        model = build_model(m.torch())
        n = check_zero_copy(model, m)
        print("%s@%s (%s, %d bytes, %s) as %s@%s" % (m.name, m.version, m.format, m.size,
                                                      m.checksum, name, ref))
        print("torch %s: %d tensors used in place from the arena at %#x (zero-copy)"
              % (torch.__version__, n, m.address))
        print(format_outputs(infer(model)))
        del model  # drops the tensors, so the with-block's release frees the hold now
    return 0


def run_watch(cache, name, ref, seconds):
    current, model = None, None
    first = {}  # version -> first result
    served = {}
    errors, inferences = 0, 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        try:
            m = cache.get(name, ref, load=True, timeout=30)
        except mcache.Error as e:
            print("torch_worker: %s@%s: %s" % (name, ref, e), file=sys.stderr)
            errors += 1
            time.sleep(0.01)
            continue
        if current is None or m.version != current.version:
            # The alias moved (or first request): switch. The old model's
            # tensors go with the old module, which releases its hold.
            model = build_model(m.torch())
            if current is not None:
                current.release()
            current = m
            print("%7.3f s: %s@%s serves %s" % (time.monotonic() - start, name, ref, m.version),
                  flush=True)
        else:
            m.release()  # we already hold this version
        y = infer(model)
        v = current.version
        if v not in first:
            first[v] = y
        elif not torch.equal(first[v], y):
            print("torch_worker: %s@%s gave a different result than before" % (name, v),
                  file=sys.stderr)
            errors += 1
        served[v] = served.get(v, 0) + 1
        inferences += 1
        time.sleep(0.001)
    print("watched %.1f s: %d inferences, %s, errors %d" % (
        seconds, inferences, " ".join("%s=%d" % kv for kv in served.items()), errors))
    return 1 if errors else 0


def main(argv):
    p = argparse.ArgumentParser(description="Run the demo MLP from an mcache cache with PyTorch.")
    p.add_argument("name", nargs="?", default="demo")
    p.add_argument("ref", nargs="?", default="production")
    p.add_argument("--cache", help="cache name (default $MCACHE_CACHE or default)")
    p.add_argument("--shm-dir", help="arena directory (default $MCACHE_SHM_DIR or /dev/shm)")
    p.add_argument("--watch", type=float, metavar="SECONDS", help="serve for SECONDS")
    a = p.parse_args(argv)
    torch.set_num_threads(1)  # a tiny model: threads only add noise
    try:
        with mcache.attach(a.cache, a.shm_dir) as cache:
            if a.watch:
                return run_watch(cache, a.name, a.ref, a.watch)
            return run_once(cache, a.name, a.ref)
    except mcache.Error as e:
        print("torch_worker: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
