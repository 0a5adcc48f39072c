"""Arrow arrays built from buffers, for the per-batch hot paths.

``pa.array`` imports pandas on its first call in a process (~250 ms here, paid by
the first fetch or send of every new consumer, producer or actor), and goes through
Python-level conversion. These helpers build the same arrays with
``pa.Array.from_buffers`` from numpy or bytes, which costs microseconds from the start.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_NUMPY_TYPES = {np.dtype(np.int32): pa.int32(), np.dtype(np.int64): pa.int64()}


def int_array(values: np.ndarray) -> pa.Array:
    """A non-null int32/int64 Arrow array sharing ``values``' memory (keep it alive)."""
    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(_NUMPY_TYPES[values.dtype], len(values), [None, pa.py_buffer(values)])


def full_int64(n: int, value: int) -> pa.Array:
    return int_array(np.full(n, value, dtype=np.int64))


def binary_array(items: list[bytes]) -> pa.BinaryArray:
    """A non-null binary array of ``items``."""
    lengths = np.fromiter((len(b) for b in items), dtype=np.int32, count=len(items))
    offsets = np.zeros(len(items) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    data = b"".join(items)
    return pa.Array.from_buffers(pa.binary(), len(items), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def int64_values(array: pa.Int64Array) -> np.ndarray:
    """A zero-copy numpy view of a non-null int64 array (``to_numpy``'s first call imports pandas)."""
    start, n = array.offset, len(array)
    return np.frombuffer(array.buffers()[1], dtype=np.int64, count=start + n)[start:]
