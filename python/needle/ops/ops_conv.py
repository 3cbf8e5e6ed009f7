"""Convolution: one graph node with backend kernels, and the ops its gradients are made of.

``conv(a, b)`` takes a channels-last input ``(N, *spatial, C_in)`` with 1, 2 or 3 spatial
axes and a weight ``(*kernel, C_in // groups, C_out)``.  Every argument is checked once by
the pure shape rule ``conv_geometry`` (``geometry.py``), which returns a frozen
``ConvGeometry``; the op then calls the array API's ``conv_forward`` with that geometry
(the NDArray backends and the NumPy mode both have it).

The op is XLA's general convolution: besides stride, padding, dilation and groups it has
an *input dilation* (``input_dilation - 1`` zeros between input elements, done inside the
kernel) and an explicit output size.  That family is closed under differentiation: the
input gradient of a convolution is again a convolution in it, so gradients of gradients
come for free.
"""

from typing import Optional

from ..autograd import Tensor, TensorOp
from ..backend_selection import array_api
from .geometry import ConvGeometry, conv_geometry, conv_transpose_geometry
from .ops_mathematic import permute

__all__ = [
    "Conv",
    "conv",
    "ConvWeightGrad",
    "FlipSwapKernel",
    "flip_swap_kernel",
    "conv_transpose",
    "ChannelsLast",
    "channels_last",
]


def _check_tensors(op, a, b):
    """Both operands are Tensors (their devices and dtypes are checked when the node is made)."""
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError(
            f"{op}: input and weight must be Tensors, got {type(a).__name__} and {type(b).__name__}"
        )


# --- the convolution op ----------------------------------------------------------------------
class Conv(TensorOp):
    """Channels-last convolution, one graph node (see ``conv``).

    ``Conv(stride, padding, dilation, groups)`` validates at call time and records a node
    whose op carries the resulting ``ConvGeometry``; gradient ops are built directly from
    a geometry (``Conv.of``), including input dilation and an explicit output size.
    """

    def __init__(self, stride=1, padding=0, dilation=1, groups=1):
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = groups
        self.geometry: Optional[ConvGeometry] = None

    @staticmethod
    def of(geometry: ConvGeometry) -> "Conv":
        op = Conv(geometry.stride, None, geometry.dilation, geometry.groups)
        op.geometry = geometry
        return op

    def __call__(self, a, b):
        if self.geometry is not None:
            return Tensor.make_from_op(self, [a, b])
        _check_tensors("conv", a, b)
        geom = conv_geometry(
            a.shape, b.shape, self.stride, self.padding, self.dilation, self.groups
        )
        return Tensor.make_from_op(Conv.of(geom), [a, b])

    def compute(self, a, b):
        geom = self.geometry
        if geom is None:
            geom = conv_geometry(
                a.shape, b.shape, self.stride, self.padding, self.dilation, self.groups
            )
        return array_api.conv_forward(a, b, geom)

    # Derivation (one spatial axis; groups act per channel block, batch rides along).
    # With x~ the input with (l-1) zeros between elements (input dilation l), the forward is
    #     y[o, co] = sum_{k, c} x~[o*s + k*d - lo, c] * w[k, c, co]
    # i.e. per group the matmul Y[m, k] = X[m, j] @ W[j, k] with X the im2col matrix
    # (m = output position, j = (tap, channel), k = out channel).  Transposing it:
    #   input  grad: X_bar[m, j] = G[m, k] @ W[j, k]^T, scattered back (col2im).  Index-wise,
    #     x~_bar[q, c] = sum_{o, k: o*s + k*d - lo = q} g[o, co] w[k, c, co].  Let g^ be g with
    #     (s-1) zeros between elements; with k' = K-1-k the sum becomes
    #     x~_bar[q, c] = sum_{k', co} g^[q + k'*d - (d(K-1) - lo), co] * w[K-1-k', c, co],
    #     a stride-1 conv of g^ with the kernel flipped and in/out channels swapped (per
    #     group), padded by lo' = d(K-1) - lo before.  x_bar[i] = x~_bar[i*l], so the window
    #     stride becomes l.  The output size is set to the input's exactly: taps that fall
    #     past the last output (rows the floor in the output size dropped) read zeros, so
    #     those rows get zero gradient; the "after" pad hi' = (H-1)l + d(K-1) + 1 - ((Ho-1)s + 1)
    #     - lo' is whatever makes that so (it may be negative), see ConvGeometry.transposed.
    #   weight grad: W_bar[j, k] = X[m, j]^T @ G[m, k] per group (ConvWeightGrad), i.e.
    #     w_bar[k, c, co] = sum_{n, o} x~[n, o*s + k*d - lo, c] g[n, o, co].
    # Both are ops with their own gradients, so second derivatives work.
    def gradient(self, out_grad, node):
        a, b = node.inputs
        geom = self.geometry
        grad_a = grad_b = None
        if a.requires_grad:
            grad_a = Conv.of(geom.transposed)(out_grad, flip_swap_kernel(b, geom.groups))
        if b.requires_grad:
            grad_b = ConvWeightGrad(geom)(a, out_grad)
        return grad_a, grad_b


def conv(a, b, stride=1, padding=1, dilation=1, groups=1):
    """Convolution of a channels-last batch ``a`` with weight ``b``.

    Args:
        a: ``(N, L, C_in)``, ``(N, H, W, C_in)`` or ``(N, D, H, W, C_in)``.
        b: ``(*kernel, C_in // groups, C_out)``.
        stride, dilation: int or one int per spatial axis (>= 1).
        padding: int, one int per axis, or one (lo, hi) pair per axis; zero padding.
            The function defaults to 1 like the course's ``ops.conv``.
        groups: output channel block g sees only input channel block g; groups == C_in
            is depthwise.
    Shape:
        output ``(N, *out, C_out)`` with
        ``out = floor((in + lo + hi - dilation*(k-1) - 1) / stride) + 1`` per axis.
    Raises:
        ValueError for bad shapes or arguments (see ``conv_geometry``), mixed devices or
        dtypes; TypeError when ``a`` or ``b`` is not a Tensor.
    """
    return Conv(stride, padding, dilation, groups)(a, b)


class ConvWeightGrad(TensorOp):
    """``(a, out_grad) -> weight gradient`` of the conv with geometry ``geometry``.

    Per group the transposed im2col matrix of ``a`` times ``out_grad`` as a matrix (backend
    ``conv_backward_weight``).  It is bilinear: its adjoint in ``out_grad`` is the forward
    conv of ``a`` with the cotangent as kernel, and in ``a`` the input-gradient conv of
    ``out_grad`` with the cotangent as kernel.
    """

    def __init__(self, geometry: ConvGeometry):
        self.geometry = geometry

    def compute(self, a, g):
        return array_api.conv_backward_weight(a, g, self.geometry)

    def gradient(self, out_grad, node):
        a, g = node.inputs
        geom = self.geometry
        grad_a = grad_g = None
        if a.requires_grad:
            grad_a = Conv.of(geom.transposed)(g, flip_swap_kernel(out_grad, geom.groups))
        if g.requires_grad:
            grad_g = Conv.of(geom)(a, out_grad)
        return grad_a, grad_g


# --- layouts ---------------------------------------------------------------------------------
class ChannelsLast(TensorOp):
    """``(N, C, *spatial) -> (N, *spatial, C)`` as one packed copy.

    A conv reads its input twice (forward, and the weight gradient in backward); packing it
    once here serves both, where a permutation view would be packed by each kernel call.
    The gradient is the inverse permutation (a view).
    """

    def compute(self, a):
        return array_api.compact(array_api.permute(a, (0, *range(2, a.ndim), 1)))

    def gradient(self, out_grad, node):
        nd = len(out_grad.shape) - 2
        return permute(out_grad, (0, nd + 1, *range(1, nd + 1)))


def channels_last(a):
    """``(N, C, *spatial)`` moved to ``(N, *spatial, C)``, packed."""
    return ChannelsLast()(a)


# --- kernel flip + per-group channel swap ----------------------------------------------------


class FlipSwapKernel(TensorOp):
    """``(*K, Cg, G*Co) -> (*K, Co, G*Cg)``: flip every spatial axis, swap in/out per group.

    ``out[K-1-k, j, g*Cg + c] = b[k, c, g*Co + j]``.  The map is a permutation that is its
    own inverse, so its gradient is itself.
    """

    def __init__(self, groups=1):
        self.groups = groups

    def compute(self, b):
        return array_api.flip_swap_kernel(b, self.groups)

    def gradient(self, out_grad, node):
        return FlipSwapKernel(self.groups)(out_grad)


def flip_swap_kernel(b, groups=1):
    """The kernel of the input-gradient conv: flipped spatially, channels swapped per group."""
    return FlipSwapKernel(groups)(b)


# --- transposed convolution ------------------------------------------------------------------
def conv_transpose(a, b, stride=1, padding=0, output_padding=0, dilation=1, groups=1):
    """The adjoint of ``conv``: the input gradient of the conv whose weight is ``b``.

    Args:
        a: channels-last ``(N, *spatial, C_in)``.
        b: ``(*kernel, C_out // groups, C_in)`` -- the weight of the conv that maps
            ``C_out`` channels to ``C_in``.
        stride, dilation, padding (int or per axis, symmetric), output_padding (int or per
            axis, smaller than stride or dilation), groups: PyTorch's meaning.
    Shape:
        output ``(N, *out, C_out)``, ``out = (in - 1)*stride - 2*padding
        + dilation*(k - 1) + output_padding + 1`` per axis.
    """
    _check_tensors("conv_transpose", a, b)
    geom = conv_transpose_geometry(
        a.shape, b.shape, stride, padding, output_padding, dilation, groups
    )
    return Conv.of(geom)(a, flip_swap_kernel(b, groups))
