"""View arithmetic on (shape, strides, offset): pure functions, no buffers.

Strides and offsets count elements, not bytes.  ``NDArray`` builds every view (reshape,
permute, broadcast_to, getitem, as_strided) from these helpers; they are tested on their own
(``tests/backend_ndarray/test_strides.py``).
"""

import math
import numbers
from functools import lru_cache

import numpy as np

prod = math.prod


@lru_cache(maxsize=1024)
def _permutation(axes, ndim):
    """``axes`` with negative entries counted from the end, or None when it is not a
    permutation of ``range(ndim)``."""
    try:
        axes = tuple(a + ndim if a < 0 else a for a in axes)
    except TypeError:
        return None
    return axes if sorted(axes) == list(range(ndim)) else None


@lru_cache(maxsize=4096)
def compact_strides(shape):
    """Row-major element strides of ``shape`` (a tuple; cached, since every new array and
    every packed-layout test asks for them)."""
    strides, stride = [], 1
    for dim in reversed(shape):
        strides.append(stride)
        stride *= dim
    return tuple(reversed(strides))


_compact_strides = compact_strides  # (the name other backend modules import)


def slice_view(shape, strides, offset, idxs):
    """(shape, strides, offset) of the view selected by ``idxs`` (ints and slices).

    Missing trailing indices mean ``:``; an int keeps its axis with length 1 (the course's
    convention); slices follow Python/NumPy semantics, negative steps included.
    """
    if not isinstance(idxs, tuple):
        idxs = (idxs,)
    if len(idxs) > len(shape):
        raise IndexError(f"too many indices ({len(idxs)}) for array of shape {tuple(shape)}")
    idxs = idxs + (slice(None),) * (len(shape) - len(idxs))
    new_shape, new_strides = [], []
    for axis, (idx, dim, stride) in enumerate(zip(idxs, shape, strides)):
        if isinstance(idx, slice):
            start, stop, step = idx.indices(dim)
            n = len(range(start, stop, step))
        else:
            start, step, n = _normalize_index(idx, dim, axis), 1, 1
        new_shape.append(n)
        new_strides.append(stride * step)
        offset += start * stride if n else 0
    return tuple(new_shape), tuple(new_strides), offset


def broadcast_strides(shape, strides, new_shape):
    """Strides of ``shape``/``strides`` broadcast to ``new_shape`` (stride 0 on broadcast axes)."""
    lead = len(new_shape) - len(shape)
    if lead < 0:
        raise _broadcast_error(shape, new_shape)
    out = [0] * lead
    for old, new, stride in zip(shape, new_shape[lead:], strides):
        if old == new:
            out.append(stride)
        elif old == 1:
            out.append(0)
        else:
            raise _broadcast_error(shape, new_shape)
    return tuple(out)


def _broadcast_error(shape, new_shape):
    return ValueError(f"broadcast_to: cannot broadcast shape {tuple(shape)} to {tuple(new_shape)}")


def view_extent(shape, strides, offset):
    """(lowest, highest) buffer index that a non-empty view (shape, strides, offset) touches."""
    lo = hi = offset
    for dim, stride in zip(shape, strides):
        lo += min(0, (dim - 1) * stride)
        hi += max(0, (dim - 1) * stride)
    return lo, hi


def _normalize_index(i, dim, axis):
    if not isinstance(i, (int, np.integer)):
        raise TypeError(f"NDArray index must be int or slice, got {type(i).__name__}")
    i = int(i)
    if not -dim <= i < dim:
        raise IndexError(f"index {i} is out of bounds for axis {axis} with size {dim}")
    return i + dim if i < 0 else i


def _normalize_axes(axes, ndim, what):
    """``axes`` (None: all, an int, or a sequence of ints) as a sorted tuple of distinct
    non-negative axes of an ``ndim``-d array; ValueError starting with ``what`` otherwise.
    (The op layer uses it too: one rule for the axes of every reduction and flip.)"""
    if axes is None:
        return tuple(range(ndim))
    # (Exact-class tests first: an isinstance check against the numbers ABC costs more than
    # the rest of the function, and reductions call it on every op.)
    if axes.__class__ is not tuple:
        axes = (axes,) if isinstance(axes, numbers.Integral) else tuple(axes)
    out = []
    for a in axes:
        if a.__class__ is not int:
            if not isinstance(a, numbers.Integral):
                raise ValueError(f"{what}: axis {a!r} is out of range for a {ndim}-d array")
            a = int(a)
        if not -ndim <= a < ndim:
            raise ValueError(f"{what}: axis {a!r} is out of range for a {ndim}-d array")
        out.append(a + ndim if a < 0 else a)
    if len(set(out)) != len(out):
        raise ValueError(f"{what}: repeated axis in {axes}")
    return tuple(sorted(out))


def broadcast_shapes(*shapes):
    """NumPy's broadcast rule; ValueError naming the shapes when they do not broadcast."""
    ndim = max(len(s) for s in shapes)
    out = []
    for dims in zip(*[(1,) * (ndim - len(s)) + tuple(s) for s in shapes]):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            raise ValueError(f"shapes {' and '.join(map(str, shapes))} do not broadcast")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)
