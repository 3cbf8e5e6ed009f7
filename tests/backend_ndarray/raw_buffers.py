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


SENTINEL = 12345.0  # what an output buffer holds before a kernel writes it


class Out:
    """An output buffer of ``size`` elements, initially ``init`` (or the sentinel)."""

    def __init__(self, size, init=None):
        self.size, self.init = size, init


def call(mod, name, dtype, *args):
    """Run mod.name on buffers made from the NumPy arrays / Out specs in args (other values are
    passed as they are); return the Out buffers' contents after the call."""
    real, outs = [], []
    for a in args:
        if isinstance(a, Out):
            init = np.full(a.size, SENTINEL) if a.init is None else a.init
            buf = put(mod, init, dtype)
            outs.append(buf)
            real.append(buf)
        elif isinstance(a, np.ndarray):
            real.append(put(mod, a, dtype))
        else:
            real.append(a)
    getattr(mod, name)(*real)
    if hasattr(mod, "synchronize"):
        mod.synchronize()
    return [get(mod, b) for b in outs]
