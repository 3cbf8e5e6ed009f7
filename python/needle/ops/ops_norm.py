"""Batch normalisation in training mode as one graph node.

``batch_norm(x, weight, bias, eps)`` normalises ``x`` of shape ``(N, C)`` or
``(N, C, *spatial)`` per channel (axis 1) with the batch statistics over every other axis:

    mean = Σ x / M,   var = Σ (x − mean)² / M  (biased),   M = N·Π spatial
    y = weight · (x − mean) / √(var + eps) + bias

The same numbers as the course's formula built from a dozen elementary ops, in one node:
a ResNet9 step otherwise records ~30 nodes per BatchNorm2d layer.  The op keeps the batch
statistics (``batch_mean``, ``batch_var``) for the layer's running averages.

The arrays are processed as a ``(M, C)`` matrix with channels last: a channels-last buffer
seen as NCHW (what a conv layer returns) is used in place, and the result keeps that memory
layout.

Gradient (x̂ = (x − mean)/√(var + eps), g the output gradient, sums over the M rows):

    ∂bias = Σ g,   ∂weight = Σ g·x̂,   ∂x = weight/√(var + eps) · (g − ∂bias/M − x̂·∂weight/M)

The gradient is one node of its own (``BatchNormTrainGrad``) that runs the fused kernels on
the saved forward values, with or without a recorded graph; its own gradient differentiates
the formula above written in needle ops, so second derivatives work.
"""

import math

from ..autograd import Tensor, TensorOp, TensorTupleOp, formula_gradient
from ..backend_selection import array_api
from .ops_mathematic import _zeros, broadcast_to, reshape, summation

__all__ = [
    "BatchNormTrain", "BatchNormTrainGrad", "batch_norm", "ChannelAffine", "channel_affine",
]


def _rows_shape(shape):
    """(M, C) of the channels-last matrix of an (N, C, *spatial) array."""
    return math.prod(shape) // shape[1], shape[1]


def _to_rows(a):
    """``a`` (N, C, *spatial) as its (M, C) channels-last matrix (a view when the buffer
    already is channels last)."""
    if a.ndim == 2:
        return array_api.compact(a)
    rows = array_api.compact(array_api.permute(a, (0, *range(2, a.ndim), 1)))
    return array_api.reshape(rows, _rows_shape(a.shape))


def _from_rows(rows, shape):
    """Inverse of ``_to_rows``: the (M, C) matrix seen with ``shape`` (N, C, *spatial)."""
    if len(shape) == 2:
        return rows
    n, c, *spatial = shape
    nd = len(spatial)
    grid = array_api.reshape(rows, (n, *spatial, c))
    return array_api.permute(grid, (0, nd + 1, *range(1, nd + 1)))


class BatchNormTrain(TensorOp):
    """Batch normalisation with batch statistics; see the module docstring.

    Inputs ``x (N, C, *spatial)``, ``weight (C,)``, ``bias (C,)``; output like ``x``.
    After ``compute`` the op holds ``batch_mean`` and ``batch_var`` (biased), ``(C,)``.
    """

    def __init__(self, eps=1e-5):
        self.eps = eps
        self.batch_mean = None
        self.batch_var = None

    def compute(self, x, weight, bias):
        m, c = _rows_shape(x.shape)
        rows = _to_rows(x)
        # Per-column scales and shifts run as one rows_affine pass, with no broadcast copies.
        mean = array_api.sum_rows(rows) * (1.0 / m)
        centered = array_api.rows_affine(rows, None, -mean)
        var = array_api.sum_rows(centered * centered) * (1.0 / m)
        inv_std = (var + self.eps) ** -0.5
        scale = weight.reshape((1, c)) * inv_std
        out = array_api.rows_affine(centered, scale, bias.reshape((1, c)))
        self.batch_mean, self.batch_var = mean.reshape((c,)), var.reshape((c,))
        self._saved = (centered, inv_std, scale)
        return _from_rows(out, x.shape)

    def gradient(self, out_grad, node):
        x, weight, _ = node.inputs
        grads = BatchNormTrainGrad(self)(out_grad, x, weight)
        return grads[0], grads[1], grads[2]

    def array_gradient(self, g, shape):
        """(∂x, ∂weight, ∂bias) on raw arrays from the saved forward values; ``g`` is the
        output gradient's array and ``shape`` the input's."""
        centered, inv_std, scale = self._saved
        m, c = _rows_shape(shape)
        g = _to_rows(g)
        grad_bias = array_api.sum_rows(g)
        grad_weight = array_api.sum_rows(g * centered) * inv_std  # Σ g·x̂
        k = grad_weight * inv_std * (1.0 / m)  # x̂·∂weight/M = centered·k
        # (g − ∂bias/M − centered·k)·scale as one pass
        shift = grad_bias * scale * (-1.0 / m)
        grad_x = array_api.rows_affine(g, scale, shift, b=centered, t=-(k * scale))
        return _from_rows(grad_x, shape), grad_weight.reshape((c,)), grad_bias.reshape((c,))


class BatchNormTrainGrad(TensorTupleOp):
    """The gradient of a ``BatchNormTrain`` node as one node of its own.

    Inputs ``g`` (the output gradient), ``x``, ``weight``; output the tuple
    ``(∂x, ∂weight, ∂bias)``.  ``compute`` runs the fused kernels on the forward pass's saved
    values, whether or not a graph is being recorded; ``gradient`` (second derivatives)
    differentiates the same formula written in needle ops (``_graph_gradient``).
    """

    def __init__(self, forward: BatchNormTrain):
        self.forward = forward

    def compute(self, g, x, weight):
        return self.forward.array_gradient(g, x.shape)

    def gradient(self, out_grad, node):
        return formula_gradient(
            lambda g, x, weight: _graph_gradient(g, x, weight, self.forward.eps),
            node.inputs,
            out_grad.tuple(),
        )


class ChannelAffine(TensorOp):
    """``x · scale + shift`` per channel (axis 1) in one pass: eval-mode batch normalisation.

    Inputs ``x (N, C, *spatial)`` or ``(N, C)``, ``scale (C,)``, ``shift (C,)``; output like
    ``x``, in ``x``'s memory layout (a channels-last buffer stays channels last).
    Gradient: ``∂x = g · scale`` (this op again), ``∂scale = Σ g·x``, ``∂shift = Σ g`` (sums
    over every axis but 1).
    """

    def compute(self, x, scale, shift):
        c = x.shape[1]
        rows, scale, shift = _to_rows(x), scale.reshape((1, c)), shift.reshape((1, c))
        out = array_api.rows_affine(rows, scale, shift)
        return _from_rows(out, x.shape)

    def gradient(self, out_grad, node):
        x, scale, shift = node.inputs
        axes = (0, *range(2, len(x.shape)))
        no_shift = Tensor.make_const(_zeros(shift.shape, shift.realize_cached_data()))
        grad_x = channel_affine(out_grad, scale, no_shift) if x.requires_grad else None
        grad_scale = summation(out_grad * x, axes) if scale.requires_grad else None
        grad_shift = summation(out_grad, axes) if shift.requires_grad else None
        return grad_x, grad_scale, grad_shift


def channel_affine(x, scale, shift):
    """``x · scale + shift`` with per-channel ``scale`` and ``shift`` on axis 1."""
    return ChannelAffine()(x, scale, shift)


def _graph_gradient(g, x, weight, eps):
    """(∂x, ∂weight, ∂bias) as needle ops of the inputs (differentiable again)."""
    shape = x.shape
    c = shape[1]
    axes = (0, *range(2, len(shape)))
    m = math.prod(shape) // c
    stat = (1, c) + (1,) * (len(shape) - 2)

    def spread(v):  # (C,) -> broadcast over x's shape
        return broadcast_to(reshape(v, stat), shape)

    mean = summation(x, axes) / m
    centered = x - spread(mean)
    inv_std = (summation(centered * centered, axes) / m + eps) ** -0.5
    x_hat = centered * spread(inv_std)
    grad_bias = summation(g, axes)
    grad_weight = summation(g * x_hat, axes)
    grad_x = spread(weight * inv_std) * (
        g - spread(grad_bias / m) - x_hat * spread(grad_weight / m)
    )
    return grad_x, grad_weight, grad_bias


def batch_norm(x, weight, bias, eps=1e-5):
    """Training-mode batch normalisation over axis 1 of ``x`` (see the module docstring)."""
    return BatchNormTrain(eps)(x, weight, bias)
