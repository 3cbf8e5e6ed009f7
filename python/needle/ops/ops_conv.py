"""Convolution: one graph node with backend kernels, and the ops its gradients are made of.

``conv(a, b)`` takes a channels-last input ``(N, *spatial, C_in)`` with 1, 2 or 3 spatial
axes and a weight ``(*kernel, C_in // groups, C_out)``.  Every argument is checked once by
the pure shape rule ``conv_geometry``, which returns a frozen ``ConvGeometry``; the op then
calls the backend's ``conv_forward`` with that geometry in its 3-D form (1-D and 2-D
problems are 3-D problems with size-1 leading axes; the buffers need no reshape).

The op is XLA's general convolution: besides stride, padding, dilation and groups it has
an *input dilation* (``input_dilation - 1`` zeros between input elements, done inside the
kernel) and an explicit output size.  That family is closed under differentiation: the
input gradient of a convolution is again a convolution in it, so gradients of gradients
come for free.
"""

import math
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from numbers import Integral
from typing import Optional, Tuple

import numpy

from ..autograd import Tensor, TensorOp
from ..backend_ndarray import ndarray as _nd
from ..backend_ndarray import ndarray_backend_numpy as _np_backend
from ..backend_selection import BACKEND
from .ops_mathematic import permute

__all__ = [
    "ConvGeometry",
    "conv_geometry",
    "Conv",
    "conv",
    "ConvWeightGrad",
    "FlipSwapKernel",
    "flip_swap_kernel",
    "conv_transpose",
    "ChannelsLast",
    "channels_last",
]


# --- argument normalisation ------------------------------------------------------------------
def _is_int(v):
    return isinstance(v, Integral) and not isinstance(v, bool)


def _per_axis(value, nd, name, op):
    """An int or one int per spatial axis -> a tuple of ``nd`` ints."""
    if _is_int(value):
        return (int(value),) * nd
    if isinstance(value, (tuple, list)) and len(value) == nd and all(_is_int(v) for v in value):
        return tuple(int(v) for v in value)
    raise ValueError(f"{op}: {name} must be an int or a tuple of {nd} ints, got {value!r}")


def _pad_pairs(padding, nd, op="conv"):
    """int | one int or (lo, hi) per axis -> ((lo, hi), ...) for ``nd`` axes.

    For one spatial axis a pair of ints ``(lo, hi)`` is also accepted.
    """
    if _is_int(padding):
        pairs = ((int(padding),) * 2,) * nd
    elif isinstance(padding, (tuple, list)):
        items = list(padding)
        if nd == 1 and len(items) == 2 and all(_is_int(v) for v in items):
            items = [tuple(items)]
        if len(items) != nd:
            raise ValueError(
                f"{op}: padding must be an int, or one int or (lo, hi) pair per spatial axis "
                f"({nd}), got {padding!r}"
            )
        pairs = []
        for p in items:
            if _is_int(p):
                pairs.append((int(p), int(p)))
            elif isinstance(p, (tuple, list)) and len(p) == 2 and all(_is_int(v) for v in p):
                pairs.append((int(p[0]), int(p[1])))
            else:
                raise ValueError(f"{op}: padding entry {p!r} is neither an int nor a (lo, hi) pair")
        pairs = tuple(pairs)
    else:
        raise ValueError(f"{op}: padding must be an int or a tuple, got {padding!r}")
    if any(v < 0 for pair in pairs for v in pair):
        raise ValueError(f"{op}: padding must be non-negative, got {padding!r}")
    return pairs


def _positive(values, name, op):
    if any(v < 1 for v in values):
        raise ValueError(f"{op}: {name} must be >= 1 on every spatial axis, got {values}")


# --- the shape rule --------------------------------------------------------------------------
@dataclass(frozen=True)
class ConvGeometry:
    """Every size of one convolution, normalised per spatial axis (see ``conv_geometry``).

    ``pad_hi`` is informational (the backend needs only ``pad_lo`` and the output size); in
    gradient geometries it may be negative (the window stops before the end of the input).
    """

    batch: int
    in_spatial: Tuple[int, ...]
    in_channels: int
    kernel: Tuple[int, ...]
    out_channels: int
    groups: int
    stride: Tuple[int, ...]
    pad_lo: Tuple[int, ...]
    pad_hi: Tuple[int, ...]
    dilation: Tuple[int, ...]
    input_dilation: Tuple[int, ...]
    out_spatial: Tuple[int, ...]

    @property
    def ndim(self) -> int:
        return len(self.in_spatial)

    @property
    def in_shape(self):
        return (self.batch, *self.in_spatial, self.in_channels)

    @property
    def weight_shape(self):
        return (*self.kernel, self.in_channels // self.groups, self.out_channels)

    @property
    def out_shape(self):
        return (self.batch, *self.out_spatial, self.out_channels)

    @property
    def flops(self) -> int:
        """Multiply-adds times two of the forward pass."""
        taps = math.prod(self.kernel) * (self.in_channels // self.groups)
        return 2 * self.batch * math.prod(self.out_spatial) * self.out_channels * taps

    @cached_property
    def backend(self) -> Tuple[int, ...]:
        """The 25-int geometry of the backend table (3-D form, size-1 leading axes)."""

        def three(values, fill):
            return (fill,) * (3 - len(values)) + tuple(values)

        return (
            self.batch, *three(self.in_spatial, 1), self.in_channels,
            *three(self.kernel, 1), self.out_channels, *three(self.out_spatial, 1),
            *three(self.stride, 1), *three(self.pad_lo, 0), *three(self.dilation, 1),
            *three(self.input_dilation, 1), self.groups,
        )  # fmt: skip

    @cached_property
    def transposed(self) -> "ConvGeometry":
        """The geometry of the input gradient: a conv of ``out_grad`` back to the input.

        Window stride and input dilation trade places; the kernel (flipped, channels
        swapped per group) starts ``dilation*(k-1) - pad_lo`` before ``out_grad``, and the
        output size is the input's exactly, so ``pad_hi`` absorbs the rows the floor dropped.
        """
        lo, hi = [], []
        for n, o, k, s, d, idl, p in zip(
            self.in_spatial, self.out_spatial, self.kernel, self.stride, self.dilation,
            self.input_dilation, self.pad_lo,
        ):  # fmt: skip
            extent = d * (k - 1)
            lo.append(extent - p)
            hi.append((n - 1) * idl + extent + 1 - ((o - 1) * s + 1) - (extent - p))
        return ConvGeometry(
            batch=self.batch, in_spatial=self.out_spatial, in_channels=self.out_channels,
            kernel=self.kernel, out_channels=self.in_channels, groups=self.groups,
            stride=self.input_dilation, pad_lo=tuple(lo), pad_hi=tuple(hi),
            dilation=self.dilation, input_dilation=self.stride, out_spatial=self.in_spatial,
        )  # fmt: skip


def _frozen(value):
    if isinstance(value, (list, tuple, numpy.ndarray)):
        return tuple(_frozen(v) for v in value)
    return value


def conv_geometry(
    a_shape, b_shape, stride=1, padding=0, dilation=1, groups=1, *, op="conv"
) -> ConvGeometry:
    """Validate a convolution's arguments and return its ``ConvGeometry`` (pure: shapes only).

    Args:
        a_shape: input ``(N, *spatial, C_in)`` with 1, 2 or 3 spatial axes.
        b_shape: weight ``(*kernel, C_in // groups, C_out)``, same number of spatial axes.
        stride, dilation: an int or one int (>= 1) per spatial axis.
        padding: an int, or one int or (lo, hi) pair (>= 0) per spatial axis.
        groups: divides both C_in and C_out.
    Returns:
        the geometry; output size per axis is
        ``floor((in + lo + hi - dilation*(k-1) - 1) / stride) + 1``.
    Raises:
        ValueError naming the argument and quoting the shapes.
    """
    try:  # ints and tuples (what the layers pass) are keys as they are
        return _conv_geometry(tuple(a_shape), tuple(b_shape), stride, padding, dilation, groups, op)
    except TypeError:  # a list: frozen to tuples first
        pass
    key = (tuple(a_shape), tuple(b_shape), _frozen(stride), _frozen(padding), _frozen(dilation))
    try:
        hash(key + (groups,))
    except TypeError:  # e.g. a NumPy array argument: validate without the cache
        return _conv_geometry.__wrapped__(*key, groups, op)
    return _conv_geometry(*key, groups, op)


@lru_cache(maxsize=1024)
def _conv_geometry(a_shape, b_shape, stride, padding, dilation, groups, op):
    """``conv_geometry`` on hashable arguments; a network asks the same questions each step."""
    a_shape, b_shape = tuple(a_shape), tuple(b_shape)
    if len(a_shape) not in (3, 4, 5):
        raise ValueError(
            f"{op}: input must be (N, *spatial, C_in) with 1, 2 or 3 spatial axes, "
            f"got shape {a_shape}"
        )
    nd = len(a_shape) - 2
    if len(b_shape) != nd + 2:
        raise ValueError(
            f"{op}: weight must be (*kernel, C_in // groups, C_out) with {nd} kernel axes for "
            f"input shape {a_shape}, got weight shape {b_shape}"
        )
    if not _is_int(groups) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    n, spatial, cin = a_shape[0], a_shape[1:-1], a_shape[-1]
    kernel, cg, cout = b_shape[:-2], b_shape[-2], b_shape[-1]
    if min(spatial) < 1 or cin < 1:
        raise ValueError(f"{op}: input has an empty spatial or channel axis: shape {a_shape}")
    if min(kernel) < 1 or cout < 1:
        raise ValueError(f"{op}: weight has an empty axis: shape {b_shape}")
    if cin % groups:
        raise ValueError(f"{op}: groups={groups} must divide C_in={cin} (input shape {a_shape})")
    if cout % groups:
        raise ValueError(f"{op}: groups={groups} must divide C_out={cout} (weight shape {b_shape})")
    if cg != cin // groups:
        raise ValueError(
            f"{op}: weight in-channels {cg} must equal C_in // groups = {cin} // {groups} = "
            f"{cin // groups} (input shape {a_shape}, weight shape {b_shape})"
        )
    stride = _per_axis(stride, nd, "stride", op)
    dilation = _per_axis(dilation, nd, "dilation", op)
    _positive(stride, "stride", op)
    _positive(dilation, "dilation", op)
    pads = _pad_pairs(padding, nd, op)
    out = []
    for axis, (size, k, s, d, (lo, hi)) in enumerate(zip(spatial, kernel, stride, dilation, pads)):
        extent = d * (k - 1) + 1
        if extent > size + lo + hi:
            raise ValueError(
                f"{op}: kernel extent {extent} (kernel {k}, dilation {d}) exceeds padded input "
                f"{size + lo + hi} on spatial axis {axis} (input shape {a_shape}, padding "
                f"({lo}, {hi}))"
            )
        out.append((size + lo + hi - extent) // s + 1)
    return ConvGeometry(
        batch=n, in_spatial=tuple(spatial), in_channels=cin, kernel=tuple(kernel),
        out_channels=cout, groups=groups, stride=stride, pad_lo=tuple(p[0] for p in pads),
        pad_hi=tuple(p[1] for p in pads), dilation=dilation, input_dilation=(1,) * nd,
        out_spatial=tuple(out),
    )  # fmt: skip


# --- backend calls (NDArray, or plain NumPy arrays when NEEDLE_BACKEND=np) -------------------
class _Flat:
    """A NumPy array seen as a backend ``Array`` (``.array`` is the flat buffer)."""

    def __init__(self, x):
        self.array = x.reshape(-1)
        self.size = self.array.size


def _np_kernel(name, inputs, out_shape, geometry):
    dtype = numpy.result_type(*inputs)  # NumPy mode mixes dtypes as NumPy does
    out = numpy.empty(out_shape, dtype=dtype)
    flats = [_Flat(numpy.ascontiguousarray(x, dtype=dtype)) for x in inputs]
    getattr(_np_backend, name)(*flats, _Flat(out), list(geometry))
    return out


def _zeros_like_shape(like, shape):
    if isinstance(like, numpy.ndarray):
        return numpy.zeros(shape, dtype=like.dtype)
    return like.device.full(shape, 0.0, like.dtype)


def _run_conv(a, b, geom: ConvGeometry):
    if 0 in geom.out_shape or geom.batch == 0:
        return _zeros_like_shape(a, geom.out_shape)
    if isinstance(a, numpy.ndarray):
        return _np_kernel("conv_forward", (a, b), geom.out_shape, geom.backend)
    return _nd.conv_forward(a, b, geom.backend, geom.out_shape)


def _run_conv_weight(a, g, geom: ConvGeometry):
    if geom.batch == 0:
        return _zeros_like_shape(a, geom.weight_shape)
    if isinstance(a, numpy.ndarray):
        return _np_kernel("conv_backward_weight", (a, g), geom.weight_shape, geom.backend)
    return _nd.conv_backward_weight(a, g, geom.backend, geom.weight_shape)


def _check_operands(op, a, b):
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError(
            f"{op}: input and weight must be Tensors, got {type(a).__name__} and {type(b).__name__}"
        )
    if a.device != b.device:
        raise ValueError(
            f"{op}: input and weight on different devices: input {a.device} {a.shape}, "
            f"weight {b.device} {b.shape}"
        )
    if a.dtype != b.dtype and BACKEND == "nd":
        raise ValueError(
            f"{op}: input and weight of different dtypes: input {a.dtype} {a.shape}, "
            f"weight {b.dtype} {b.shape}"
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
        _check_operands("conv", a, b)
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
        return _run_conv(a, b, geom)

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
        return _run_conv_weight(a, g, self.geometry)

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
def _contiguous(x):
    return numpy.ascontiguousarray(x) if isinstance(x, numpy.ndarray) else x.compact()


class ChannelsLast(TensorOp):
    """``(N, C, *spatial) -> (N, *spatial, C)`` as one packed copy.

    A conv reads its input twice (forward, and the weight gradient in backward); packing it
    once here serves both, where a permutation view would be packed by each kernel call.
    The gradient is the inverse permutation (a view).
    """

    def compute(self, a):
        axes = (0, *range(2, a.ndim), 1)
        view = a.transpose(axes) if isinstance(a, numpy.ndarray) else a.permute(axes)
        return _contiguous(view)

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
        *kernel, cg, cout = b.shape
        nd, G = len(kernel), self.groups
        co = cout // G
        if isinstance(b, numpy.ndarray):
            x = numpy.ascontiguousarray(b).reshape((*kernel, cg, G, co))
            x = x[(slice(None, None, -1),) * nd].transpose((*range(nd), nd + 2, nd + 1, nd))
            return numpy.ascontiguousarray(x).reshape((*kernel, co, G * cg))
        # One strided view (negative strides from the last tap) and one copy.
        b = b.compact()
        last = b[tuple(slice(k - 1, k) for k in kernel)]
        strides = (*(-s for s in b.strides[:nd]), 1, co, cout)
        view = last.as_strided((*kernel, co, G, cg), strides)
        return view.compact().reshape((*kernel, co, G * cg))

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
    op = "conv_transpose"
    _check_operands(op, a, b)
    if len(a.shape) not in (3, 4, 5) or len(b.shape) != len(a.shape):
        raise ValueError(
            f"{op}: input (N, *spatial, C_in) and weight (*kernel, C_out // groups, C_in) need "
            f"1-3 spatial axes each, got shapes {a.shape} and {b.shape}"
        )
    nd = len(a.shape) - 2
    if not _is_int(groups) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    if b.shape[-1] != a.shape[-1]:
        raise ValueError(
            f"{op}: weight's last axis {b.shape[-1]} must equal C_in={a.shape[-1]} "
            f"(input shape {a.shape}, weight shape {b.shape})"
        )
    stride_t = _per_axis(stride, nd, "stride", op)
    dil = _per_axis(dilation, nd, "dilation", op)
    pad = _per_axis(padding, nd, "padding", op)
    extra = _per_axis(output_padding, nd, "output_padding", op)
    _positive(stride_t, "stride", op)
    _positive(dil, "dilation", op)
    for p, e, s, d in zip(pad, extra, stride_t, dil):
        if p < 0 or e < 0 or (e >= s and e >= d):
            raise ValueError(
                f"{op}: need padding >= 0 and 0 <= output_padding < stride or dilation, got "
                f"padding={padding!r}, output_padding={output_padding!r}, stride={stride!r}, "
                f"dilation={dilation!r}"
            )
    kernel = b.shape[:-2]
    out = tuple(
        (n - 1) * s - 2 * p + d * (k - 1) + e + 1
        for n, s, p, d, k, e in zip(a.shape[1:-1], stride_t, pad, dil, kernel, extra)
    )
    if min(out) < 1:
        raise ValueError(f"{op}: output size {out} is empty (input shape {a.shape})")
    fwd_in = (a.shape[0], *out, b.shape[-2] * groups)
    fwd = conv_geometry(fwd_in, b.shape, stride_t, pad, dil, groups, op=op)
    if fwd.out_channels != a.shape[-1]:
        raise ValueError(f"{op}: weight shape {b.shape} does not fit input shape {a.shape}")
    # output_padding >= stride (allowed when < dilation) adds forward outputs we do not have.
    fwd = replace(fwd, out_spatial=tuple(a.shape[1:-1]))
    return Conv.of(fwd.transposed)(a, flip_swap_kernel(b, groups))
