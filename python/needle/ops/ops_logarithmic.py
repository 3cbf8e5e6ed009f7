"""Numerically stable log-sum-exp and log-softmax."""

from ..autograd import TensorOp
from .ops_mathematic import (
    _as_array,
    _kept_shape,
    _normalize_axes,
    array_api,
    broadcast_to,
    exp,
    reshape,
    summation,
)

__all__ = ["LogSoftmax", "logsoftmax", "LogSumExp", "logsumexp"]


def _stable_logsumexp(a, axes):
    """log(sum(exp(a))) over ``axes`` with the reduced axes kept as size 1.

    Shifting by the per-slice maximum keeps every exponent <= 0, so entries like 1e10 and
    -1e10 give finite results.
    """
    m = a.max(axis=axes, keepdims=True)
    s = array_api.exp(a - m).sum(axis=axes, keepdims=True)
    return array_api.log(s) + m


class LogSumExp(TensorOp):
    """log(sum(exp(a))) over ``axes`` (None: all; an int; or a tuple).

    Shape: ``a.shape`` without ``axes`` (a 0-d tensor for ``axes=None``), or with them kept as
    size 1 when ``keepdims``.
    """

    def __init__(self, axes=None, keepdims=False):
        self.axes = axes
        self.keepdims = keepdims

    def compute(self, a):
        axes = _normalize_axes(self.axes, a.ndim, "logsumexp")
        out = _stable_logsumexp(a, axes)
        if self.keepdims:
            return out
        return _as_array(out.reshape(tuple(d for i, d in enumerate(a.shape) if i not in axes)))

    def gradient(self, out_grad, node):
        a = node.inputs[0]
        shape = a.shape
        kept = _kept_shape(shape, _normalize_axes(self.axes, len(shape), "logsumexp"))
        # d lse / d a = softmax over the reduced axes = exp(a - lse).
        softmax = exp(a - broadcast_to(reshape(node, kept), shape))
        return broadcast_to(reshape(out_grad, kept), shape) * softmax


def logsumexp(a, axes=None, keepdims=False):
    """Numerically stable log(sum(exp(a), axes))."""
    return LogSumExp(axes, keepdims)(a)


class LogSoftmax(TensorOp):
    """a - logsumexp(a) along ``axis`` (the last axis by default; axis 1 of a 2-D input).

    Shape: same as the input.
    """

    def __init__(self, axis=-1):
        self.axis = axis

    def compute(self, a):
        axes = _normalize_axes(self.axis, a.ndim, "logsoftmax")
        return a - _stable_logsumexp(a, axes)

    def gradient(self, out_grad, node):
        shape = node.shape
        kept = _kept_shape(shape, _normalize_axes(self.axis, len(shape), "logsoftmax"))
        total = broadcast_to(reshape(summation(out_grad, self.axis), kept), shape)
        return out_grad - exp(node) * total


def logsoftmax(a, axis=-1):
    """log(softmax(a)) along ``axis``, computed stably."""
    return LogSoftmax(axis)(a)
