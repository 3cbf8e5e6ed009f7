"""The module-level array API: what the op layer calls as ``array_api.X(...)``.

``needle.backend_numpy`` (the course's NumPy mode) exports the same names with the same
meaning over plain NumPy arrays, so an op's ``compute`` is written once, with no mode checks:
a backend is a name plus a module.  Where a function is an NDArray method it *is* that method
(``permute = NDArray.permute``), so ``array_api.permute(a, axes)`` costs what
``a.permute(axes)`` costs.

The first group are the course's names (``needle.backend_ndarray`` exports them); the rest
are the op layer's.
"""

import numpy as np

from .devices import default_device
from .fused import (  # noqa: F401
    add_row,
    concat_flat,
    flat_view,
    rows_affine,
    scaled_copy,
    split_flat,
    sum_rows,
)
from .ndarray import NDArray

__all__ = [
    "array", "empty", "full", "broadcast_to", "reshape", "maximum", "log", "exp", "tanh", "sum",
    "flip", "permute", "compact", "astype", "to_numpy", "device_of", "pad", "sqrt", "sigmoid",
    "relu", "relu_grad", "array_from", "full_like", "check_compatible", "basic_index", "stack",
    "unstack", "add_row", "rows_affine", "sum_rows", "concat_flat", "split_flat", "copy",
    "empty_like", "scaled_copy", "flat_view",
]


# --- the course's module API ---------------------------------------------------------------
def array(a, dtype="float32", device=None):
    """A new compact NDArray holding a copy of ``a``."""
    return NDArray(a, device=device, dtype=dtype)


def empty(shape, dtype="float32", device=None):
    return (default_device() if device is None else device).empty(shape, dtype)


def full(shape, fill_value, dtype="float32", device=None):
    return (default_device() if device is None else device).full(shape, fill_value, dtype)


broadcast_to = NDArray.broadcast_to
reshape = NDArray.reshape
maximum = NDArray.maximum
log = NDArray.log
exp = NDArray.exp
tanh = NDArray.tanh
sum = NDArray.sum  # sum(a, axis=None, keepdims=False)
flip = NDArray.flip  # flip(a, axes): a compact copy reversed along axes


# --- views, conversion, element-wise functions ----------------------------------------------
permute = NDArray.permute  # permute(a, axes): output axis k is input axis axes[k]
compact = NDArray.compact
copy = NDArray.copy  # copy(a): a packed copy
astype = NDArray.astype
to_numpy = NDArray.numpy
device_of = NDArray.device.fget
pad = NDArray.pad  # pad(a, ((before, after), ...))
sqrt = NDArray.sqrt
sigmoid = NDArray.sigmoid
relu = NDArray.relu
relu_grad = NDArray.relu_grad  # relu_grad(g, a): g where a > 0, else 0


def array_from(data, device=None, dtype=None):
    """``data`` (an NDArray, NumPy array, list or number) as an NDArray on ``device``.

    An NDArray already on ``device`` with ``dtype`` is returned itself (no copy); anything
    else is copied.  ``dtype=None`` keeps an NDArray's dtype and makes other data float32.
    """
    if isinstance(data, NDArray):
        out = data if device is None or device == data.device else data.to(device)
        if dtype is not None and str(dtype) != out.dtype:
            out = out.astype(dtype)
        return out
    device = default_device() if device is None else device
    return NDArray(np.asarray(data), device=device, dtype=dtype or "float32")


def empty_like(a, shape=None):
    """An uninitialized array of ``shape`` (default ``a.shape``) on ``a``'s device with
    ``a``'s dtype (NumPy's ``empty_like``)."""
    return a._device.empty(a._shape if shape is None else tuple(shape), a.dtype)


def full_like(a, fill_value, shape=None):
    """An array of ``shape`` (default ``a.shape``) filled with ``fill_value``, on ``a``'s
    device with ``a``'s dtype (NumPy's ``full_like``)."""
    return a._device.full(a._shape if shape is None else tuple(shape), fill_value, a.dtype)


def check_compatible(what, a, b):
    """ValueError unless ``a`` and ``b`` share a device and a dtype (the inputs of one op)."""
    if b.device is not a.device and b.device != a.device:
        raise ValueError(
            f"{what}: inputs on different devices: {a.device} {a.shape} and {b.device} {b.shape}"
        )
    if b.dtype != a.dtype:
        raise ValueError(
            f"{what}: inputs of different dtypes: {a.dtype} {a.shape} and {b.dtype} {b.shape}"
        )


# --- indexing and tuples ----------------------------------------------------------------------
def basic_index(a, index):
    """``a[index]`` with NumPy semantics (an int index drops its axis), as a view.

    ``index`` holds one int (non-negative) or slice per axis.
    """
    view = a[index]  # NDArray keeps int-indexed axes with length 1: drop them by restriding
    keep = [k for k, i in enumerate(index) if isinstance(i, slice)]
    if len(keep) == len(index):
        return view
    return view.as_strided(tuple(view.shape[k] for k in keep), tuple(view.strides[k] for k in keep))


def stack(arrays, axis):
    """Same-shape arrays joined along a new ``axis`` (non-negative), as a new array."""
    first = arrays[0]
    shape = first.shape
    out = first.device.empty(shape[:axis] + (len(arrays),) + shape[axis:], first.dtype)
    lead = (slice(None),) * axis
    for k, x in enumerate(arrays):
        out[lead + (k,)] = x
    return out


def unstack(a, axis):
    """The slices of ``a`` along ``axis`` (non-negative), that axis removed, as views."""
    lead = (slice(None),) * axis
    shape = a.shape[:axis] + a.shape[axis + 1 :]
    strides = a.strides[:axis] + a.strides[axis + 1 :]
    # a[..., k] keeps the axis with length 1; restriding drops it without a copy.
    return tuple(a[lead + (k,)].as_strided(shape, strides) for k in range(a.shape[axis]))
