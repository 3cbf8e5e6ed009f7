"""Moving NumPy data in and out of a backend's flat ``Array`` buffers (for kernel tests)."""

import numpy as np


def put(mod, arr, dtype):
    """A new ``mod.Array`` of ``dtype`` holding ``arr`` flattened (row-major)."""
    arr = np.ascontiguousarray(arr, dtype=dtype).reshape(-1)
    buf = mod.Array(arr.size, dtype)
    if arr.size:
        mod.from_numpy(arr, buf)
    return buf


def get(mod, buf):
    """The whole buffer as a 1-d NumPy array."""
    return mod.to_numpy(buf, (buf.size,), (1,), 0)
