"""Data-movement ops: flip, dilate/undilate, zero padding and basic indexing.

Like every op, each class computes on backend arrays and differentiates with needle ops;
the gradient of an indexing op is the matching scatter into zeros, and vice versa.
"""

import numbers

from ..autograd import TensorOp
from ..backend_selection import array_api
from .ops_mathematic import _normalize_axes, _zeros

__all__ = [
    "Flip", "flip", "Dilate", "dilate", "UnDilate", "undilate", "Pad", "pad", "GetItem",
    "get_item", "ScatterItem",
]


def _axes_tuple(axes):
    if axes is None:
        return None
    return (axes,) if isinstance(axes, numbers.Integral) else tuple(axes)


class Flip(TensorOp):
    """Reverse the order of elements along each of ``axes`` (all axes for None; NumPy ``flip``)."""

    def __init__(self, axes):
        self.axes = _axes_tuple(axes)

    def compute(self, a):
        axes = _normalize_axes(self.axes, a.ndim, "flip")
        return array_api.flip(a, axes)

    def gradient(self, out_grad, node):
        return flip(out_grad, self.axes)


def flip(a, axes):
    """``a`` reversed along ``axes``."""
    return Flip(axes)(a)


def _dilation_slices(ndim, axes, dilation, what):
    """One slice per axis selecting every (dilation+1)-th element on ``axes`` (< ndim)."""
    index = [slice(None)] * ndim
    for axis in axes:
        if axis >= ndim:
            continue  # the course ignores axes beyond the tensor's rank
        if axis < -ndim:
            raise ValueError(f"{what}: axis {axis} out of range for a {ndim}-d tensor")
        index[axis] = slice(None, None, dilation + 1)
    return tuple(index)


class Dilate(TensorOp):
    """Insert ``dilation`` zeros after every element (the last included) along ``axes``.

    Shape: size n becomes n * (dilation + 1) on each listed axis; axes >= ndim are ignored.
    """

    def __init__(self, axes, dilation):
        if dilation < 0:
            raise ValueError(f"dilate: dilation must be >= 0, got {dilation}")
        self.axes = _axes_tuple(axes) or ()
        self.dilation = int(dilation)

    def compute(self, a):
        index = _dilation_slices(a.ndim, self.axes, self.dilation, "dilate")
        shape = [d * (self.dilation + 1) if s.step else d for d, s in zip(a.shape, index)]
        out = _zeros(shape, a)
        out[index] = a
        return out

    def gradient(self, out_grad, node):
        return undilate(out_grad, self.axes, self.dilation)


def dilate(a, axes, dilation):
    """``a`` with ``dilation`` zeros after each element along ``axes``."""
    return Dilate(axes, dilation)(a)


class UnDilate(TensorOp):
    """Keep every (dilation+1)-th element along ``axes``, starting at 0 (inverse of dilate)."""

    def __init__(self, axes, dilation):
        if dilation < 0:
            raise ValueError(f"undilate: dilation must be >= 0, got {dilation}")
        self.axes = _axes_tuple(axes) or ()
        self.dilation = int(dilation)

    def compute(self, a):
        return a[_dilation_slices(a.ndim, self.axes, self.dilation, "undilate")]

    def gradient(self, out_grad, node):
        grad = dilate(out_grad, self.axes, self.dilation)
        shape = node.inputs[0].shape
        if grad.shape != shape:
            # Sizes that are not a multiple of dilation+1: drop the trailing zeros past the end.
            grad = get_item(grad, tuple(slice(0, d) for d in shape))
        return grad


def undilate(a, axes, dilation):
    """Every (dilation+1)-th element of ``a`` along ``axes``."""
    return UnDilate(axes, dilation)(a)


class Pad(TensorOp):
    """Zero padding: ``axes`` gives (before, after) for every axis.

    Shape: axis k grows from d to d + before_k + after_k.
    """

    def __init__(self, axes):
        self.axes = tuple((int(lo), int(hi)) for lo, hi in axes)
        if any(lo < 0 or hi < 0 for lo, hi in self.axes):
            raise ValueError(f"pad: padding must be non-negative, got {self.axes}")

    def compute(self, a):
        if len(self.axes) != a.ndim:
            raise ValueError(
                f"pad: need one (before, after) pair per axis of shape {a.shape}, got {self.axes}"
            )
        return array_api.pad(a, self.axes)

    def gradient(self, out_grad, node):
        shape = node.inputs[0].shape
        return get_item(out_grad, tuple(slice(lo, lo + d) for (lo, _), d in zip(self.axes, shape)))


def pad(a, axes):
    """``a`` zero-padded by ``axes`` = ((before, after), ...) per axis."""
    return Pad(axes)(a)


def _expand_index(index, shape):
    """``index`` as one int or slice per axis; ints are checked and made non-negative."""
    index = index if isinstance(index, tuple) else (index,)
    ellipses = [k for k, i in enumerate(index) if i is Ellipsis]
    if len(ellipses) > 1:
        raise IndexError("get_item: an index can only have a single ellipsis")
    if ellipses:
        k = ellipses[0]
        index = index[:k] + (slice(None),) * (len(shape) - len(index) + 1) + index[k + 1 :]
    if len(index) > len(shape):
        raise IndexError(f"get_item: too many indices ({len(index)}) for shape {shape}")
    index = index + (slice(None),) * (len(shape) - len(index))
    out = []
    for axis, (i, d) in enumerate(zip(index, shape)):
        if isinstance(i, slice):
            out.append(i)
        elif isinstance(i, numbers.Integral) and not isinstance(i, bool):
            if not -d <= i < d:
                raise IndexError(f"get_item: index {i} out of range for axis {axis} of size {d}")
            out.append(int(i) % d)
        else:
            raise TypeError(f"get_item: indices must be ints, slices or ..., got {i!r}")
    return tuple(out)


class GetItem(TensorOp):
    """Basic indexing with NumPy semantics: ints drop their axis, slices may have steps."""

    def __init__(self, index):
        self.index = index

    def compute(self, a):
        return array_api.basic_index(a, _expand_index(self.index, a.shape))

    def gradient(self, out_grad, node):
        return ScatterItem(self.index, node.inputs[0].shape)(out_grad)


def get_item(a, index):
    """``a[index]`` for ints, slices (with steps) and an Ellipsis."""
    return GetItem(index)(a)


class ScatterItem(TensorOp):
    """Zeros of ``shape`` with ``a`` written at ``index`` (the adjoint of GetItem)."""

    def __init__(self, index, shape):
        self.index = index
        self.shape = tuple(shape)

    def compute(self, a):
        index = _expand_index(self.index, self.shape)
        out = _zeros(self.shape, a)
        out[index] = a
        return out

    def gradient(self, out_grad, node):
        return get_item(out_grad, self.index)
