"""Numerically stable log-sum-exp, log-softmax and the softmax cross-entropy loss."""

from ..autograd import TensorOp, formula_gradient
from .ops_mathematic import (
    _kept_shape,
    _normalize_axes,
    array_api,
    broadcast_to,
    exp,
    reshape,
    summation,
)

__all__ = [
    "LogSoftmax", "logsoftmax", "LogSumExp", "logsumexp", "SoftmaxCrossEntropy",
    "SoftmaxCrossEntropyGrad", "softmax_cross_entropy",
]


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
        return array_api.reshape(out, tuple(d for i, d in enumerate(a.shape) if i not in axes))

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


class SoftmaxCrossEntropy(TensorOp):
    """Mean softmax cross-entropy of ``logits`` against one-hot targets, as one node.

    Inputs ``logits (N, K)`` and ``y_one_hot (N, K)`` (a constant); output 0-d:
    ``loss = mean_i [logsumexp_k(logits[i, k]) − Σ_k logits[i, k]·y_one_hot[i, k]]``.
    Gradient: ``∂logits = g·(softmax(logits) − y_one_hot)/N``, one node of its own
    (``SoftmaxCrossEntropyGrad``); none for the targets.
    """

    def compute(self, logits, y_one_hot):
        n = logits.shape[0]
        picked = (logits * y_one_hot).sum(axis=(1,), keepdims=True)
        per_row = _stable_logsumexp(logits, (1,)) - picked
        return array_api.sum(per_row, (0, 1)) * (1.0 / n)

    def gradient(self, out_grad, node):
        logits, y_one_hot = node.inputs
        return SoftmaxCrossEntropyGrad()(out_grad, logits, y_one_hot), None


def _softmax_cross_entropy_grad(g, logits, y_one_hot):
    """g·(softmax(logits) − y_one_hot)/N in needle ops (what SoftmaxCrossEntropyGrad computes)."""
    shape = logits.shape
    lse = broadcast_to(reshape(logsumexp(logits, (1,)), (shape[0], 1)), shape)
    scale = broadcast_to(reshape(g, (1, 1)), shape) / shape[0]
    return (exp(logits - lse) - y_one_hot) * scale


class SoftmaxCrossEntropyGrad(TensorOp):
    """``g·(softmax(logits) − y_one_hot)/N`` on the arrays in one node; its own gradient
    differentiates the same formula written in needle ops (second derivatives)."""

    def compute(self, g, logits, y_one_hot):
        shape = logits.shape
        softmax = array_api.exp(logits - _stable_logsumexp(logits, (1,)))
        scale = array_api.broadcast_to(g.reshape((1, 1)), shape) * (1.0 / shape[0])
        return (softmax - y_one_hot) * scale

    def gradient(self, out_grad, node):
        return formula_gradient(_softmax_cross_entropy_grad, node.inputs, (out_grad,))


def softmax_cross_entropy(logits, y_one_hot):
    """Mean softmax cross-entropy of ``logits (N, K)`` against one-hot targets (N, K)."""
    return SoftmaxCrossEntropy()(logits, y_one_hot)
