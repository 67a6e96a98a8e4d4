#!/usr/bin/python3
"""
make_demo_model.py - writes the demo model's two versions as safetensors files,
with NumPy only (nothing is downloaded).

The demo model is a small multilayer perceptron, the same architecture in
both versions, with different weights:

    y = fc2(relu(fc1(x)))      x: [batch, 8]  ->  hidden 32  ->  y: [batch, 4]

    fc1.weight F32 [32, 8]   fc1.bias F32 [32]
    fc2.weight F32 [4, 32]   fc2.bias F32 [4]

The weights are a fixed formula of (version, layer, row, column), not random
numbers, so every run writes byte-identical files (a second run of the demo
finds in the store exactly the versions the first one pushed). examples/worker.c and examples/torch_worker.py run
this model; make it bigger with --hidden to see zero-copy pay off.

    examples/make_demo_model.py OUTDIR [--hidden N]
        writes OUTDIR/demo-1.0.0.safetensors and OUTDIR/demo-2.0.0.safetensors
        and prints their paths
"""

import argparse
import json
import os
import struct
import sys

import numpy as np

VERSIONS = ("1.0.0", "2.0.0")
INPUTS, OUTPUTS = 8, 4


def demo_weights(version, hidden=32):
    """{name: float32 array} of the demo model at `version` ("1.0.0" or "2.0.0")."""
    v = VERSIONS.index(version) + 1

    def layer(k, rows, cols):
        r = np.arange(rows, dtype=np.float64)[:, None]
        c = np.arange(cols, dtype=np.float64)[None, :]
        # Scaled like He initialisation so activations stay near 1.
        w = np.sin(1.3 * v + 0.7 * k + 0.37 * r + 1.1 * c * v) * np.sqrt(2.0 / cols)
        b = 0.1 * np.cos(0.5 * v + k + 0.9 * np.arange(rows, dtype=np.float64))
        return w.astype(np.float32), b.astype(np.float32)

    w1, b1 = layer(1, hidden, INPUTS)
    w2, b2 = layer(2, OUTPUTS, hidden)
    return {"fc1.weight": w1, "fc1.bias": b1, "fc2.weight": w2, "fc2.bias": b2}


def write_safetensors(path, tensors, metadata=None):
    """Write {name: array} as a safetensors file: an 8-byte little-endian
    header length, a JSON header {name: {dtype, shape, data_offsets}} (padded
    with spaces to 8 bytes, so the data starts 8-aligned), then the data of
    each tensor, little-endian, in the header's order."""
    kinds = {np.dtype("<f4"): "F32", np.dtype("<f2"): "F16", np.dtype("<f8"): "F64",
             np.dtype("<i8"): "I64", np.dtype("<i4"): "I32", np.dtype("u1"): "U8",
             np.dtype("?"): "BOOL"}
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        dt = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
        if dt not in kinds:
            raise ValueError("make_demo_model: no safetensors dtype for %s (%s)" % (name, a.dtype))
        data = a.astype(dt, copy=False).tobytes()
        header[name] = {"dtype": kinds[dt], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    p.add_argument("outdir", help="directory for demo-<version>.safetensors")
    p.add_argument("--hidden", type=int, default=32, help="hidden units (default 32)")
    a = p.parse_args(argv)
    if a.hidden < 1:
        p.error("--hidden must be at least 1")
    os.makedirs(a.outdir, exist_ok=True)
    for version in VERSIONS:
        path = os.path.join(a.outdir, "demo-%s.safetensors" % version)
        meta = {"format": "pt", "arch": "mlp", "activation": "relu", "inputs": INPUTS,
                "hidden": a.hidden, "outputs": OUTPUTS, "version": version,
                "made_by": "examples/make_demo_model.py"}
        write_safetensors(path, demo_weights(version, a.hidden), meta)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
