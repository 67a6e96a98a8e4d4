"""
_dtypes.py - safetensors dtypes as NumPy and PyTorch types.

Every safetensors dtype mcached accepts is listed. Values are little-endian
in the file and so in the arena.

  safetensors  bytes  NumPy        PyTorch
  BOOL         1      bool_        torch.bool
  U8 / I8      1      uint8/int8   torch.uint8 / torch.int8
  I16/I32/I64  2/4/8  int16..64    torch.int16..64
  U16/U32/U64  2/4/8  uint16..64   torch.uint16..64 (torch >= 2.3; else raw)
  F16/F32/F64  2/4/8  float16..64  torch.float16..64
  BF16         2      -- (raw)     torch.bfloat16
  F8_E4M3      1      -- (raw)     torch.float8_e4m3fn (torch >= 2.1; else raw)
  F8_E5M2      1      -- (raw)     torch.float8_e5m2  (torch >= 2.1; else raw)

"--": NumPy has no such type. Rather than guess (a silent uint16 array of
BF16 bits looks like numbers and is not), numpy() raises
UnsupportedDtypeError; numpy(..., raw=True) returns the bits, zero-copy, as
unsigned integers of the element's width (BF16 -> uint16, F8 -> uint8). To get
BF16 values as float32 in NumPy (a copy):
    (bits.astype(np.uint32) << 16).view(np.float32)
PyTorch raw=True returns the bits as a signed integer type of the same width
(torch.uint8 for 1 byte), for versions lacking the type.
"""

# dtype: (element size, NumPy type, PyTorch attribute name)
TABLE = {
    "BOOL": (1, "?", "bool"),
    "U8": (1, "u1", "uint8"),
    "I8": (1, "i1", "int8"),
    "F8_E4M3": (1, None, "float8_e4m3fn"),
    "F8_E5M2": (1, None, "float8_e5m2"),
    "I16": (2, "<i2", "int16"),
    "U16": (2, "<u2", "uint16"),
    "F16": (2, "<f2", "float16"),
    "BF16": (2, None, "bfloat16"),
    "I32": (4, "<i4", "int32"),
    "U32": (4, "<u4", "uint32"),
    "F32": (4, "<f4", "float32"),
    "I64": (8, "<i8", "int64"),
    "U64": (8, "<u8", "uint64"),
    "F64": (8, "<f8", "float64"),
}

NUMPY_RAW = {1: "u1", 2: "<u2", 4: "<u4", 8: "<u8"}
TORCH_RAW = {1: "uint8", 2: "int16", 4: "int32", 8: "int64"}


def numpy_type(dtype, raw):
    """The NumPy type string for a safetensors dtype, or None if it has none."""
    size, np_type, _ = TABLE[dtype]
    if raw:
        return NUMPY_RAW[size]
    return np_type


def torch_type(torch, dtype, raw):
    """The torch.dtype for a safetensors dtype, or None if this torch has none."""
    size, _, name = TABLE[dtype]
    if raw:
        return getattr(torch, TORCH_RAW[size])
    t = getattr(torch, name, None)
    return t if isinstance(t, torch.dtype) else None
