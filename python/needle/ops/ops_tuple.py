"""Ops on tuples of tensors: make_tuple, tuple_get_item, stack, split."""

from ..autograd import Tensor, TensorOp, TensorTuple, TensorTupleOp
from ..backend_selection import array_api
from .ops_mathematic import _zeros

__all__ = [
    "MakeTensorTuple", "make_tuple", "TupleGetItem", "tuple_get_item", "FusedAddScalars",
    "fused_add_scalars", "Stack", "stack", "Split", "split",
]


class MakeTensorTuple(TensorTupleOp):
    """Group tensors into one TensorTuple node."""

    def compute(self, *args):
        return tuple(args)

    def gradient(self, out_grad, node):
        return tuple(out_grad[i] for i in range(len(node.inputs)))


def make_tuple(*args):
    """A TensorTuple of the given tensors."""
    return MakeTensorTuple()(*args)


class TupleGetItem(TensorOp):
    """Element ``index`` of a TensorTuple."""

    def __init__(self, index):
        self.index = index

    def __call__(self, a, fold_const=True):
        n = len(a)
        if not -n <= self.index < n:
            # Checked before any node exists: iterating a TensorTuple ends on this IndexError.
            raise IndexError(f"tuple_get_item: index {self.index} out of range for {n} tensors")
        if fold_const and isinstance(a.op, MakeTensorTuple):
            # Indexing a freshly made tuple needs no node: hand back the original tensor.
            return a.inputs[self.index]
        return Tensor.make_from_op(self, [a])

    def compute(self, a):
        return a[self.index]

    def gradient(self, out_grad, node):
        parts = node.inputs[0].realize_cached_data()
        index = self.index % len(parts)
        grads = [
            out_grad if j == index else Tensor.make_const(_zeros(x.shape, x))
            for j, x in enumerate(parts)
        ]
        return MakeTensorTuple()(*grads)


def tuple_get_item(value, index):
    """``value[index]`` for a TensorTuple."""
    return TupleGetItem(index)(value)


class FusedAddScalars(TensorTupleOp):
    """(a + c0, a + c1) as one node."""

    def __init__(self, c0: float, c1: float):
        self.c0 = c0
        self.c1 = c1

    def compute(self, a):
        return a + self.c0, a + self.c1

    def gradient(self, out_grad, node):
        return out_grad[0] + out_grad[1]


def fused_add_scalars(x, c0, c1):
    """The tuple (x + c0, x + c1)."""
    return FusedAddScalars(c0, c1)(x)


def _check_axis(axis, ndim, what):
    if not -ndim <= axis < ndim:
        raise ValueError(f"{what}: axis {axis} out of range for a {ndim}-d result")
    return axis % ndim


class Stack(TensorOp):
    """Join same-shape tensors along a new axis.

    Shape: n tensors of shape S give S with n inserted at ``axis``.
    """

    def __init__(self, axis: int):
        self.axis = axis

    def compute(self, args):
        if not args:
            raise ValueError("stack: needs at least one tensor")
        shape = tuple(args[0].shape)
        for k, x in enumerate(args):
            if tuple(x.shape) != shape:
                raise ValueError(f"stack: tensor {k} has shape {x.shape}, tensor 0 has {shape}")
        return array_api.stack(args, _check_axis(self.axis, len(shape) + 1, "stack"))

    def gradient(self, out_grad, node):
        return split(out_grad, self.axis)


def stack(args, axis):
    """Stack a list (or TensorTuple) of same-shape tensors along a new ``axis``."""
    return Stack(axis)(args if isinstance(args, TensorTuple) else make_tuple(*args))


class Split(TensorTupleOp):
    """The slices of a tensor along ``axis``, that axis removed (inverse of stack)."""

    def __init__(self, axis: int):
        self.axis = axis

    def compute(self, a):
        return array_api.unstack(a, _check_axis(self.axis, a.ndim, "split"))

    def gradient(self, out_grad, node):
        return stack(out_grad, self.axis)


def split(a, axis):
    """The TensorTuple of slices of ``a`` along ``axis``."""
    return Split(axis)(a)
