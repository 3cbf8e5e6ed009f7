"""Element-wise, shape and reduction operators.

Each op is a class whose ``compute`` works on backend arrays through ``array_api`` (NDArray,
or plain NumPy arrays under ``NEEDLE_BACKEND=np``: the same functions) and whose
``gradient`` is written in needle ops, so gradients are themselves differentiable.  A
gradient may be None for an input that does not require one; the engine then skips it.

Binary element-wise ops broadcast NumPy-style; their gradients sum over the broadcast
axes, so every gradient has its input's shape.
"""

import math

import numpy

from ..autograd import Tensor, TensorOp
from ..backend_ndarray.strides import _normalize_axes  # (one rule for every op's axes)
from ..backend_selection import array_api

__all__ = [
    "EWiseAdd", "add", "BiasAdd", "bias_add", "AddScalar", "add_scalar", "EWiseMul", "multiply",
    "MulScalar", "mul_scalar", "EWisePow", "power", "PowerScalar", "power_scalar", "EWiseDiv",
    "divide", "DivScalar", "divide_scalar", "Negate", "negate", "Transpose", "transpose", "Permute",
    "permute", "Reshape", "reshape", "BroadcastTo", "broadcast_to", "Summation", "summation",
    "mean", "MatMul", "matmul", "Log", "log", "Exp", "exp", "ReLU", "relu", "ReLUGrad", "Tanh",
    "tanh", "Sigmoid", "sigmoid", "Sqrt", "sqrt", "Maximum", "maximum",
]

# --- array-level helpers --------------------------------------------------------------------
def _zeros(shape, like):
    """A zero array of ``shape`` with ``like``'s device and dtype."""
    return array_api.full_like(like, 0.0, shape=shape)


def _mask(x, dtype):
    """A 0/1 comparison result as an array of ``dtype``."""
    return array_api.astype(x, dtype)


def _scalar(s):
    """A Python number from ``s`` (NumPy scalars and 1-element arrays included)."""
    if isinstance(s, (int, float)) and not isinstance(s, bool):
        return s
    if isinstance(s, (numpy.ndarray, numpy.generic)) and s.size == 1:
        return s.item()
    raise TypeError(f"expected a scalar, got {type(s).__name__} {s!r}")


def _kept_shape(shape, axes):
    """``shape`` with the (normalized) reduced ``axes`` set to 1."""
    return tuple(1 if i in axes else d for i, d in enumerate(shape))


# --- tensor-level helpers ----------------------------------------------------------------
def _reduce_to_shape(grad, shape):
    """Sum ``grad`` over the axes that broadcasting added or stretched, giving ``shape``."""
    gshape = grad.shape
    if gshape == shape:
        return grad
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, d in enumerate(shape) if d == 1 and gshape[i + lead] != 1
    )
    if axes:
        grad = summation(grad, axes)
    return grad if grad.shape == shape else reshape(grad, shape)


def _grad_for(x, grad):
    """``grad`` reduced to ``x``'s shape, or None when ``x`` needs no gradient."""
    return _reduce_to_shape(grad, x.shape) if x.requires_grad else None


def _const(array):
    return Tensor.make_const(array)


# --- element-wise arithmetic -------------------------------------------------------------
class EWiseAdd(TensorOp):
    """a + b element-wise."""

    def compute(self, a, b):
        return a + b

    def gradient(self, out_grad, node):
        a, b = node.inputs
        return _grad_for(a, out_grad), _grad_for(b, out_grad)


def add(a, b):
    """a + b, element-wise with NumPy broadcasting."""
    return EWiseAdd()(a, b)


class BiasAdd(TensorOp):
    """``a + bias`` with ``bias`` repeated along every axis but the last (a layer's bias).

    Shape: ``a (*, C)``; ``bias`` holds C values in any shape, e.g. ``(C,)`` or the course's
    Linear ``(1, C)``; output like ``a``.  One node where ``reshape`` + ``broadcast_to`` + add
    are three; the gradient is ``out_grad`` and its sums over all axes but the last.
    """

    def compute(self, a, bias):
        return array_api.add_row(a, bias)  # one pass for a packed ``a``, no broadcast copy

    def gradient(self, out_grad, node):
        a, bias = node.inputs
        grad_bias = None
        if bias.requires_grad:
            axes = tuple(range(len(a.shape) - 1))
            grad_bias = reshape(summation(out_grad, axes), bias.shape)
        return (out_grad if a.requires_grad else None), grad_bias


def bias_add(a, bias):
    """``a + bias`` along the last axis of ``a`` (``bias`` has ``a.shape[-1]`` values)."""
    if not a.shape or math.prod(bias.shape) != a.shape[-1]:
        raise ValueError(f"bias_add: bias of shape {bias.shape} for input of shape {a.shape}")
    return BiasAdd()(a, bias)


class AddScalar(TensorOp):
    """a + scalar."""

    def __init__(self, scalar):
        self.scalar = _scalar(scalar)

    def compute(self, a):
        return a + self.scalar

    def gradient(self, out_grad, node):
        return out_grad


def add_scalar(a, scalar):
    """a + scalar."""
    return AddScalar(scalar)(a)


class EWiseMul(TensorOp):
    """a * b element-wise."""

    def compute(self, a, b):
        return a * b

    def gradient(self, out_grad, node):
        a, b = node.inputs
        return (
            _grad_for(a, out_grad * b) if a.requires_grad else None,
            _grad_for(b, out_grad * a) if b.requires_grad else None,
        )


def multiply(a, b):
    """a * b, element-wise with NumPy broadcasting."""
    return EWiseMul()(a, b)


class MulScalar(TensorOp):
    """a * scalar."""

    def __init__(self, scalar):
        self.scalar = _scalar(scalar)

    def compute(self, a):
        return a * self.scalar

    def gradient(self, out_grad, node):
        return out_grad * self.scalar


def mul_scalar(a, scalar):
    """a * scalar."""
    return MulScalar(scalar)(a)


class EWisePow(TensorOp):
    """a ** b element-wise; the gradient for b needs a > 0 (it uses log a)."""

    def compute(self, a, b):
        return a**b

    def gradient(self, out_grad, node):
        a, b = node.inputs
        grad_a = grad_b = None
        if a.requires_grad:
            grad_a = _grad_for(a, out_grad * b * power(a, b - 1))
        if b.requires_grad:
            grad_b = _grad_for(b, out_grad * node * log(a))
        return grad_a, grad_b


def power(a, b):
    """a ** b, element-wise with NumPy broadcasting."""
    return EWisePow()(a, b)


class PowerScalar(TensorOp):
    """a ** scalar; the scalar may be 0, negative, fractional or a NumPy integer."""

    def __init__(self, scalar):
        self.scalar = _scalar(scalar)

    def compute(self, a):
        return a**self.scalar

    def gradient(self, out_grad, node):
        s = self.scalar
        if s == 0:
            return out_grad * 0.0
        if s == 1:
            return out_grad
        a = node.inputs[0]
        return out_grad * (power_scalar(a, s - 1) * s if s != 2 else a * 2.0)


def power_scalar(a, scalar):
    """a ** scalar."""
    return PowerScalar(scalar)(a)


class EWiseDiv(TensorOp):
    """a / b element-wise."""

    def compute(self, a, b):
        return a / b

    def gradient(self, out_grad, node):
        a, b = node.inputs
        grad_a = _grad_for(a, out_grad / b) if a.requires_grad else None
        # d(a/b)/db = -(a/b)/b: reuse the forward value instead of computing b**2.
        grad_b = _grad_for(b, -(out_grad * node) / b) if b.requires_grad else None
        return grad_a, grad_b


def divide(a, b):
    """a / b, element-wise with NumPy broadcasting."""
    return EWiseDiv()(a, b)


class DivScalar(TensorOp):
    """a / scalar."""

    def __init__(self, scalar):
        # float(): the course passes a 1-element array here.
        self.scalar = float(_scalar(scalar))

    def compute(self, a):
        return a / self.scalar

    def gradient(self, out_grad, node):
        return out_grad / self.scalar


def divide_scalar(a, scalar):
    """a / scalar."""
    return DivScalar(scalar)(a)


class Negate(TensorOp):
    """-a."""

    def compute(self, a):
        return -a

    def gradient(self, out_grad, node):
        return -out_grad


def negate(a):
    """-a."""
    return Negate()(a)


# --- shape ops ---------------------------------------------------------------------------
class Transpose(TensorOp):
    """Swap two axes: ``axes=None`` swaps the last two, ``(i, j)`` swaps i and j.

    This is the course's meaning; for a full permutation use ``permute``.
    """

    def __init__(self, axes=None):
        if axes is not None and (not isinstance(axes, (tuple, list)) or len(axes) != 2):
            raise ValueError(f"transpose: axes must be None or a pair of axes, got {axes!r}")
        self.axes = None if axes is None else tuple(axes)

    def _order(self, ndim):
        if ndim < 2:
            raise ValueError(f"transpose: needs a tensor with >= 2 axes, got {ndim}")
        i, j = (ndim - 2, ndim - 1) if self.axes is None else self.axes
        if not (-ndim <= i < ndim and -ndim <= j < ndim):
            raise ValueError(f"transpose: axes {self.axes} out of range for a {ndim}-d tensor")
        order = list(range(ndim))
        order[i], order[j] = order[j], order[i]
        return tuple(order)

    def compute(self, a):
        return array_api.permute(a, self._order(a.ndim))

    def gradient(self, out_grad, node):
        return transpose(out_grad, self.axes)


def transpose(a, axes=None):
    """Swap two axes of ``a`` (the last two by default)."""
    return Transpose(axes)(a)


class Permute(TensorOp):
    """Reorder all axes: output axis k is input axis ``axes[k]`` (NumPy ``transpose``)."""

    def __init__(self, axes):
        self.axes = tuple(axes)

    def compute(self, a):
        if sorted(x % a.ndim if a.ndim else x for x in self.axes) != list(range(a.ndim)):
            raise ValueError(f"permute: {self.axes} is not a permutation of {a.ndim} axes")
        return array_api.permute(a, self.axes)

    def gradient(self, out_grad, node):
        ndim = len(self.axes)
        inverse = [0] * ndim
        for k, a in enumerate(self.axes):
            inverse[a % ndim] = k
        return permute(out_grad, tuple(inverse))


def permute(a, axes):
    """``a`` with its axes reordered by the full permutation ``axes``."""
    return Permute(axes)(a)


class Reshape(TensorOp):
    """Row-major reshape; one axis may be -1."""

    def __init__(self, shape):
        self.shape = tuple(shape)

    def compute(self, a):
        return array_api.reshape(a, self.shape)

    def gradient(self, out_grad, node):
        return reshape(out_grad, node.inputs[0].shape)


def reshape(a, shape):
    """``a`` with a new shape of the same size."""
    return Reshape(shape)(a)


class BroadcastTo(TensorOp):
    """NumPy broadcasting to ``shape`` (new leading axes, size-1 axes stretched)."""

    def __init__(self, shape):
        self.shape = tuple(shape)

    def compute(self, a):
        return array_api.broadcast_to(a, self.shape)

    def gradient(self, out_grad, node):
        return _reduce_to_shape(out_grad, node.inputs[0].shape)


def broadcast_to(a, shape):
    """``a`` broadcast to ``shape``; the gradient sums over the broadcast axes."""
    return BroadcastTo(shape)(a)


class Summation(TensorOp):
    """Sum over ``axes`` (None: all, giving a 0-d tensor; an int; or a tuple)."""

    def __init__(self, axes=None, keepdims=False):
        self.axes = axes
        self.keepdims = keepdims

    def compute(self, a):
        axes = _normalize_axes(self.axes, a.ndim, "summation")
        return array_api.sum(a, axes, self.keepdims)

    def gradient(self, out_grad, node):
        shape = node.inputs[0].shape
        if not self.keepdims:
            kept = _kept_shape(shape, _normalize_axes(self.axes, len(shape), "summation"))
            out_grad = reshape(out_grad, kept)
        return broadcast_to(out_grad, shape)


def summation(a, axes=None, keepdims=False):
    """Sum of ``a`` over ``axes`` (None = all axes)."""
    return Summation(axes, keepdims)(a)


def mean(a, axes=None, keepdims=False):
    """Mean of ``a`` over ``axes`` (None = all axes)."""
    count = 1
    for axis in _normalize_axes(axes, len(a.shape), "mean"):
        count *= a.shape[axis]
    return summation(a, axes, keepdims) / count


class MatMul(TensorOp):
    """Matrix product; leading (batch) axes broadcast as in NumPy ``matmul``.

    Shape: (..., m, n) @ (..., n, p) -> (broadcast(...), m, p).
    """

    def compute(self, a, b):
        return a @ b

    def gradient(self, out_grad, node):
        a, b = node.inputs
        grad_a = grad_b = None
        if a.requires_grad:
            grad_a = _reduce_to_shape(matmul(out_grad, transpose(b)), a.shape)
        if b.requires_grad:
            if len(b.shape) == 2 and len(a.shape) > 2:
                # A batch of rows times one matrix: one (n, B*m) @ (B*m, p) product instead of
                # B products followed by a sum over the batch.
                n, p = b.shape
                grad_b = matmul(transpose(reshape(a, (-1, n))), reshape(out_grad, (-1, p)))
            else:
                grad_b = _reduce_to_shape(matmul(transpose(a), out_grad), b.shape)
        return grad_a, grad_b


def matmul(a, b):
    """a @ b (2-D, or batched with broadcast batch axes)."""
    return MatMul()(a, b)


# --- element-wise functions --------------------------------------------------------------
class Log(TensorOp):
    """Natural logarithm element-wise."""

    def compute(self, a):
        return array_api.log(a)

    def gradient(self, out_grad, node):
        return out_grad / node.inputs[0]


def log(a):
    """Natural logarithm, element-wise."""
    return Log()(a)


class Exp(TensorOp):
    """e ** a element-wise."""

    def compute(self, a):
        return array_api.exp(a)

    def gradient(self, out_grad, node):
        return out_grad * node


def exp(a):
    """e ** a, element-wise."""
    return Exp()(a)


class ReLU(TensorOp):
    """max(a, 0); the derivative at 0 is taken as 0."""

    def compute(self, a):
        return array_api.relu(a)

    def gradient(self, out_grad, node):
        return ReLUGrad()(out_grad, node.inputs[0])


class ReLUGrad(TensorOp):
    """ReLU's gradient ``g · 1[a > 0]`` as one op (one kernel pass, no mask array).

    Inputs ``g`` (the output gradient) and ``a`` (the ReLU's input); its own gradient is this
    op again for ``g`` and none for ``a`` (the mask is piecewise constant).
    """

    def compute(self, g, a):
        return array_api.relu_grad(g, a)

    def gradient(self, out_grad, node):
        return ReLUGrad()(out_grad, node.inputs[1]), None


def relu(a):
    """max(a, 0), element-wise."""
    return ReLU()(a)


class Tanh(TensorOp):
    """Hyperbolic tangent element-wise."""

    def compute(self, a):
        return array_api.tanh(a)

    def gradient(self, out_grad, node):
        return out_grad * (1.0 - node * node)


def tanh(a):
    """Hyperbolic tangent, element-wise."""
    return Tanh()(a)


class Sigmoid(TensorOp):
    """1 / (1 + e ** -a) element-wise."""

    def compute(self, a):
        return array_api.sigmoid(a)

    def gradient(self, out_grad, node):
        return out_grad * node * (1.0 - node)


def sigmoid(a):
    """1 / (1 + e ** -a), element-wise."""
    return Sigmoid()(a)


class Sqrt(TensorOp):
    """Square root element-wise."""

    def compute(self, a):
        return array_api.sqrt(a)

    def gradient(self, out_grad, node):
        return out_grad / (node * 2.0)


def sqrt(a):
    """Square root, element-wise."""
    return Sqrt()(a)


class Maximum(TensorOp):
    """Element-wise maximum with broadcasting.

    The gradient goes to the larger input; on ties it is split evenly (0.5 each), which is
    what a central difference measures and what PyTorch does.
    """

    def compute(self, a, b):
        return array_api.maximum(a, b)

    def gradient(self, out_grad, node):
        a, b = node.inputs
        x, y = a.realize_cached_data(), b.realize_cached_data()
        to_a = _const(_mask(x > y, x.dtype) + _mask(x == y, x.dtype) * 0.5)
        grad_a = _grad_for(a, out_grad * to_a) if a.requires_grad else None
        grad_b = _grad_for(b, out_grad * (1.0 - to_a)) if b.requires_grad else None
        return grad_a, grad_b


def maximum(a, b):
    """Element-wise maximum of two tensors."""
    return Maximum()(a, b)
