"""Boundary padding and pooling: ops over channels-last ``(N, *spatial, C)`` inputs.

``pad_boundary`` pads with zeros or a boundary mode (circular, reflect, replicate) and is
differentiable both ways (its adjoint folds the borders back).  ``max_pool`` is one node
with the array API's ``maxpool_forward``/``maxpool_backward`` kernels (the gradient goes to
each window's first arg-max); ``avg_pool`` is a depthwise ``conv`` with a constant kernel.
Every pooling call is checked once by the pure shape rule ``pool_geometry`` (``geometry.py``).
"""

import math
from typing import Optional

from ..autograd import Tensor, TensorOp
from ..backend_selection import array_api
from .geometry import PoolGeometry, pool_geometry
from .ops_conv import conv

__all__ = [
    "PAD_MODES",
    "PadBoundary",
    "PadBoundaryAdjoint",
    "pad_boundary",
    "MaxPool",
    "MaxPoolGrad",
    "max_pool",
    "avg_pool",
]

PAD_MODES = ("zeros", "circular", "reflect", "replicate")


# --- padding with boundary modes -------------------------------------------------------------
def _border_copies(n, lo, hi, mode):
    """(dst, src) slice pairs, in padded coordinates, that fill the borders of one axis."""
    pairs = []
    if mode == "circular":
        pairs = [(slice(0, lo), slice(n, n + lo)), (slice(lo + n, lo + n + hi), slice(lo, lo + hi))]
    elif mode == "reflect":
        stop = lo + n - 2 - hi
        pairs = [
            (slice(0, lo), slice(2 * lo, lo, -1)),
            (slice(lo + n, lo + n + hi), slice(lo + n - 2, stop if stop >= 0 else None, -1)),
        ]
    elif mode == "replicate":
        pairs = [
            (slice(0, lo), slice(lo, lo + 1)),
            (slice(lo + n, lo + n + hi), slice(lo + n - 1, lo + n)),
        ]
    return [(dst, src) for dst, src in pairs if dst.stop > dst.start]


def _at(ndim, axis, sl):
    return (slice(None),) * axis + (sl,) + (slice(None),) * (ndim - axis - 1)


class PadBoundary(TensorOp):
    """Pad every axis by ``pads[axis] = (lo, hi)`` with a boundary mode.

    ``"zeros"``, ``"circular"`` (wrap around; pad <= size), ``"reflect"`` (mirror without
    repeating the edge; pad < size) or ``"replicate"`` (repeat the edge).  Axes are padded
    one after the other, so corners are padded copies of padded borders (as NumPy's pad).
    """

    def __init__(self, pads, mode="zeros"):
        self.pads = tuple(tuple(p) for p in pads)
        self.mode = mode

    def compute(self, a):
        out = array_api.pad(a, self.pads)
        for axis, (n, (lo, hi)) in enumerate(zip(a.shape, self.pads)):
            for dst, src in _border_copies(n, lo, hi, self.mode):
                value = out[_at(out.ndim, axis, src)]
                if self.mode == "replicate":
                    value = array_api.broadcast_to(value, out[_at(out.ndim, axis, dst)].shape)
                out[_at(out.ndim, axis, dst)] = value
        return out

    def gradient(self, out_grad, node):
        return PadBoundaryAdjoint(self.pads, self.mode)(out_grad)


class PadBoundaryAdjoint(TensorOp):
    """The adjoint of ``PadBoundary``: fold each border back onto its source, then crop."""

    def __init__(self, pads, mode="zeros"):
        self.pads = tuple(tuple(p) for p in pads)
        self.mode = mode

    def compute(self, g):
        g = g.copy()
        ndim = g.ndim
        for axis in reversed(range(ndim)):
            lo, hi = self.pads[axis]
            n = g.shape[axis] - lo - hi
            for dst, src in _border_copies(n, lo, hi, self.mode):
                border = g[_at(ndim, axis, dst)]
                if self.mode == "replicate":
                    border = border.sum(axis=axis, keepdims=True)
                target = _at(ndim, axis, src)
                g[target] = g[target] + border
            g = g[_at(ndim, axis, slice(lo, lo + n))]
        return array_api.compact(g)

    def gradient(self, out_grad, node):
        return PadBoundary(self.pads, self.mode)(out_grad)


def pad_boundary(a, pads, mode="zeros"):
    """``a`` padded by ``pads`` = one (lo, hi) per axis of ``a`` with a boundary mode.

    Raises:
        ValueError for an unknown mode, a wrong number of pairs, negative pads, or pads
        too large for the mode (reflect: < size; circular: <= size).
    """
    if mode not in PAD_MODES:
        raise ValueError(f"pad: mode must be one of {PAD_MODES}, got {mode!r}")
    pads = tuple(tuple(int(v) for v in p) for p in pads)
    if len(pads) != len(a.shape) or any(len(p) != 2 or min(p) < 0 for p in pads):
        raise ValueError(
            f"pad: need one non-negative (lo, hi) pair per axis of shape {a.shape}, got {pads}"
        )
    for axis, (n, (lo, hi)) in enumerate(zip(a.shape, pads)):
        if (mode == "reflect" and max(lo, hi) >= n) or (mode == "circular" and max(lo, hi) > n):
            bound = "< size" if mode == "reflect" else "<= size"
            raise ValueError(
                f"pad: {mode} padding ({lo}, {hi}) on axis {axis} must be {bound} {n} "
                f"(shape {a.shape})"
            )
    return PadBoundary(pads, mode)(a)


# --- pooling ---------------------------------------------------------------------------------
class MaxPool(TensorOp):
    """Max over each window of a channels-last input; padding never wins."""

    def __init__(self, kernel_size, stride=None, padding=0):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.geometry: Optional[PoolGeometry] = None

    def __call__(self, a):
        geom = pool_geometry(a.shape, self.kernel_size, self.stride, self.padding)
        op = MaxPool(self.kernel_size, self.stride, self.padding)
        op.geometry = geom
        return Tensor.make_from_op(op, [a])

    def compute(self, a):
        geom = self.geometry or pool_geometry(a.shape, self.kernel_size, self.stride, self.padding)
        return array_api.maxpool_forward(a, geom)

    def gradient(self, out_grad, node):
        return MaxPoolGrad(self.geometry)(node.inputs[0], out_grad)


class MaxPoolGrad(TensorOp):
    """``(a, out_grad) -> input gradient`` of max pooling: each window's gradient goes to
    its (first) arg-max."""

    def __init__(self, geometry: PoolGeometry):
        self.geometry = geometry

    def compute(self, a, g):
        return array_api.maxpool_backward(a, g, self.geometry)

    def gradient(self, out_grad, node):
        raise NotImplementedError("max pooling: second derivatives are not implemented")


def max_pool(a, kernel_size, stride=None, padding=0):
    """Max pooling of a channels-last ``(N, *spatial, C)`` input (stride defaults to kernel)."""
    return MaxPool(kernel_size, stride, padding)(a)


def avg_pool(a, kernel_size, stride=None, padding=0):
    """Average pooling of a channels-last input; zero padding counts in the average.

    A depthwise conv with a constant kernel 1/prod(kernel) (no gradient for the kernel).
    """
    geom = pool_geometry(a.shape, kernel_size, stride, padding, op="avg_pool")
    c = geom.channels
    data = a.device.full((*geom.kernel, 1, c), 1.0 / math.prod(geom.kernel), dtype=a.dtype)
    return conv(a, Tensor.make_const(data), stride=geom.stride, padding=geom.padding, groups=c)
