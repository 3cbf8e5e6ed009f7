"""Convolution layers: channels-first (NCHW) like PyTorch, thin over one op each.

The layers keep their weight in the op's layout ``(*kernel, C_in // groups, C_out)`` and
move channels last around the call to ``ops.conv`` (the op packs its input once).  ``Conv``
is the course's layer (signature, default padding ``k // 2``, initialisation draws) extended
with PyTorch's ``padding``, ``dilation``, ``groups`` and ``padding_mode``;
``Conv1d``/``Conv2d``/``Conv3d`` differ only in the number of spatial axes.  Every layer
describes itself: ``layer.geometry(input_shape)`` is the ``ConvGeometry`` its op runs.
Pooling layers and ``ChannelShuffle`` are in ``nn_pool.py``.
"""

import math
import numbers
from typing import Optional

from .. import init, ops
from ..autograd import Tensor
from ..ops.geometry import (
    ConvGeometry,
    check_groups,
    check_output_padding,
    check_positive,
    conv_geometry,
    conv_transpose_geometry,
    per_axis,
    resolve_padding,
)
from ..ops.ops_pool import PAD_MODES
from .nn_basic import Module, Parameter

__all__ = [
    "Conv",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
]


# --- helpers the pooling layers share --------------------------------------------------------
def to_channels_first(x: Tensor, nd: int) -> Tensor:
    """``(N, *spatial, C) -> (N, C, *spatial)`` for ``nd`` spatial axes (a view)."""
    return ops.permute(x, (0, nd + 1, *range(1, nd + 1)))


def channels_last_shape(shape):
    """``(N, C, *spatial) -> (N, *spatial, C)``: a layer's input shape in the ops' layout."""
    return (shape[0], *shape[2:], shape[1])


def check_input(name, shape, nd, channels=None):
    """A layer's input has ``nd`` spatial axes (and ``channels`` channels when given)."""
    if len(shape) != nd + 2 or (channels is not None and shape[1] != channels):
        spatial = ", ".join("DHW"[3 - nd :])
        c = "C" if channels is None else channels
        raise ValueError(
            f"{name}: expected input of shape (N, {c}, {spatial}) with {nd} spatial axes, "
            f"got {tuple(shape)}"
        )


def show(value):
    """A per-axis tuple with equal entries prints as one int."""
    if isinstance(value, tuple) and value and all(v == value[0] for v in value):
        return value[0]
    return value


# --- convolution -----------------------------------------------------------------------------
def _add_bias(y: Tensor, bias: Optional[Tensor]) -> Tensor:
    """``y`` (channels last) plus ``bias`` broadcast over every other axis."""
    if bias is None:
        return y
    return ops.bias_add(y, bias)


def _check_channels(name, in_channels, out_channels, groups):
    for arg, value in (("in_channels", in_channels), ("out_channels", out_channels)):
        if not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name}: {arg} must be a positive int, got {arg}={value!r}")
        context = " (in_channels and out_channels must be divisible by groups)"
        check_groups(name, groups, arg, value, context)


def _kernel_size(kernel_size, nd, name):
    kernel = per_axis(kernel_size, nd, "kernel_size", name)
    check_positive(kernel, "kernel_size", name)
    return kernel


def _weight_and_bias(kernel_size, c_in, c_out, groups, bias, bias_size, device, dtype):
    """The (weight, bias) Parameters of a conv from ``c_in`` to ``c_out`` channels, drawn in
    this order: weight ``(*kernel_size, c_in // groups, c_out)`` = kaiming_uniform with
    fan_in = (c_in // groups)·prod(kernel_size), fan_out = c_out·prod(kernel_size); then,
    if ``bias``, a bias ``(bias_size,)`` ~ U(±1/sqrt(fan_in)) (else None)."""
    fan_in = (c_in // groups) * math.prod(kernel_size)
    fan_out = c_out * math.prod(kernel_size)
    shape = (*kernel_size, c_in // groups, c_out)
    weight = Parameter(
        init.kaiming_uniform(fan_in, fan_out, shape=shape, device=device, dtype=dtype)
    )
    if not bias:
        return weight, None
    bound = 1.0 / math.sqrt(fan_in)
    return weight, Parameter(
        init.rand(bias_size, low=-bound, high=bound, device=device, dtype=dtype)
    )


class _ConvNd(Module):
    """Shared validation, parameters and forward of ``Conv1d``/``Conv2d``/``Conv3d``."""

    _nd = 2

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        bias: bool = True,
        device=None,
        dtype: str = "float32",
        padding=None,
        dilation=1,
        groups: int = 1,
        padding_mode: str = "zeros",
    ):
        super().__init__()
        name, nd = type(self).__name__, self._nd
        _check_channels(name, in_channels, out_channels, groups)
        if padding_mode not in PAD_MODES:
            raise ValueError(
                f"{name}: padding_mode must be one of {PAD_MODES}, "
                f"got padding_mode={padding_mode!r}"
            )
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _kernel_size(kernel_size, nd, name)
        self.stride = per_axis(stride, nd, "stride", name)
        self.dilation = per_axis(dilation, nd, "dilation", name)
        self.padding_mode = padding_mode
        self._padding_arg = padding
        self.padding = resolve_padding(padding, self.kernel_size, self.stride, self.dilation, name)

        self.weight, self.bias = _weight_and_bias(
            self.kernel_size, in_channels, out_channels, groups, bias, out_channels, device, dtype
        )

    def forward(self, x: Tensor) -> Tensor:
        check_input(type(self).__name__, x.shape, self._nd, self.in_channels)
        h = ops.channels_last(x)  # packed once for the kernel's forward and backward
        padding = self.padding
        if self.padding_mode != "zeros":  # the op pads with zeros only: pad first
            h = ops.pad_boundary(h, ((0, 0), *padding, (0, 0)), self.padding_mode)
            padding = 0
        y = ops.conv(h, self.weight, self.stride, padding, self.dilation, self.groups)
        return to_channels_first(_add_bias(y, self.bias), self._nd)

    def geometry(self, input_shape) -> ConvGeometry:
        """The convolution this layer runs on an input of ``input_shape`` ``(N, C_in,
        *spatial)``, in the op's channels-last terms (any padding mode has the sizes of
        zero padding)."""
        name = type(self).__name__
        check_input(name, input_shape, self._nd, self.in_channels)
        return conv_geometry(
            channels_last_shape(input_shape), self.weight.shape, self.stride, self.padding,
            self.dilation, self.groups, op=name,
        )  # fmt: skip

    def extra_repr(self):
        parts = [
            str(self.in_channels),
            str(self.out_channels),
            f"kernel_size={show(self.kernel_size)}",
        ]
        if any(s != 1 for s in self.stride):
            parts.append(f"stride={show(self.stride)}")
        if self._padding_arg is not None:
            parts.append(f"padding={self._padding_arg!r}")
        if any(d != 1 for d in self.dilation):
            parts.append(f"dilation={show(self.dilation)}")
        if self.groups != 1:
            parts.append(f"groups={self.groups}")
        if self.bias is None:
            parts.append("bias=False")
        if self.padding_mode != "zeros":
            parts.append(f"padding_mode={self.padding_mode!r}")
        return ", ".join(parts)


class Conv(_ConvNd):
    """2-D convolution over NCHW input (the course's ``nn.Conv``, also ``Conv2d``).

    Args:
        in_channels, out_channels: channel counts (both divisible by ``groups``).
        kernel_size, stride, dilation: int or (h, w).
        bias: learn a bias of shape ``(out_channels,)``.
        padding: ``None`` (the course's default: ``kernel_size // 2``, with dilation half the
            dilated extent), an int, per-axis ints or (lo, hi) pairs, ``"same"`` (stride 1;
            the odd pixel goes after) or ``"valid"`` (none).
        groups: channel groups; ``groups == in_channels`` is depthwise.
        padding_mode: ``"zeros"``, ``"circular"``, ``"reflect"`` or ``"replicate"``.
    Shape:
        input ``(N, C_in, H, W)``, output ``(N, C_out, H_out, W_out)`` with
        ``H_out = floor((H + lo + hi - dilation*(k - 1) - 1) / stride) + 1``.
    Parameters (drawn in this order, as the course does):
        ``weight (kH, kW, C_in // groups, C_out)`` = kaiming_uniform(fan_in, fan_out) with
        fan_in = (C_in // groups)·kH·kW, fan_out = C_out·kH·kW; ``bias (C_out,)`` ~
        U(±1/sqrt(fan_in)) from one ``init.rand`` call.
    Raises:
        ValueError for channels not divisible by groups, a bad padding or padding mode, and
        (at call time) an input with the wrong rank or channel count.
    """

    _nd = 2


Conv2d = Conv


class Conv1d(_ConvNd):
    """1-D convolution over ``(N, C_in, L)``; arguments as ``Conv``."""

    _nd = 1


class Conv3d(_ConvNd):
    """3-D convolution over ``(N, C_in, D, H, W)``; arguments as ``Conv``."""

    _nd = 3


class _ConvTransposeNd(Module):
    """The adjoint of a conv (PyTorch's ``ConvTransposeNd`` arguments and output size).

    Its weight ``(*kernel, out_channels // groups, in_channels)`` is the weight of the conv
    from ``out_channels`` to ``in_channels`` whose input gradient this layer computes.
    Output size per axis: ``(in - 1)*stride - 2*padding + dilation*(k - 1) +
    output_padding + 1``; ``output_padding`` must be smaller than stride or dilation.
    """

    _nd = 2

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        output_padding=0,
        groups: int = 1,
        bias: bool = True,
        dilation=1,
        device=None,
        dtype: str = "float32",
    ):
        super().__init__()
        name, nd = type(self).__name__, self._nd
        _check_channels(name, in_channels, out_channels, groups)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _kernel_size(kernel_size, nd, name)
        self.stride = per_axis(stride, nd, "stride", name)
        self.padding = per_axis(padding, nd, "padding", name)
        self.output_padding = per_axis(output_padding, nd, "output_padding", name)
        self.dilation = per_axis(dilation, nd, "dilation", name)
        check_output_padding(name, self.output_padding, self.stride, self.dilation)
        # the weight of the conv from out_channels to in_channels
        self.weight, self.bias = _weight_and_bias(
            self.kernel_size, out_channels, in_channels, groups, bias, out_channels, device, dtype
        )

    def forward(self, x: Tensor) -> Tensor:
        check_input(type(self).__name__, x.shape, self._nd, self.in_channels)
        y = ops.conv_transpose(
            ops.channels_last(x), self.weight, self.stride, self.padding,
            self.output_padding, self.dilation, self.groups,
        )  # fmt: skip
        return to_channels_first(_add_bias(y, self.bias), self._nd)

    def geometry(self, input_shape) -> ConvGeometry:
        """The convolution this layer runs on an input of ``input_shape`` ``(N, C_in,
        *spatial)``, in the op's channels-last terms: the input gradient (``adjoint``) of
        the conv from its output back to its input."""
        name = type(self).__name__
        check_input(name, input_shape, self._nd, self.in_channels)
        return conv_transpose_geometry(
            channels_last_shape(input_shape), self.weight.shape, self.stride, self.padding,
            self.output_padding, self.dilation, self.groups, op=name,
        )  # fmt: skip

    def extra_repr(self):
        parts = [
            str(self.in_channels),
            str(self.out_channels),
            f"kernel_size={show(self.kernel_size)}",
        ]
        for key, default in (("stride", 1), ("padding", 0), ("output_padding", 0), ("dilation", 1)):
            value = getattr(self, key)
            if any(v != default for v in value):
                parts.append(f"{key}={show(value)}")
        if self.groups != 1:
            parts.append(f"groups={self.groups}")
        if self.bias is None:
            parts.append("bias=False")
        return ", ".join(parts)


class ConvTranspose1d(_ConvTransposeNd):
    """Transposed 1-D convolution over ``(N, C_in, L)``."""

    _nd = 1


class ConvTranspose2d(_ConvTransposeNd):
    """Transposed 2-D convolution over NCHW input: the adjoint (input gradient) of a conv.

    Args:
        in_channels, out_channels: channel counts (both divisible by ``groups``).
        kernel_size, stride, padding, dilation: int or (h, w), PyTorch's meaning.
        output_padding: int or (h, w) added after; smaller than stride or dilation.
        groups, bias: as for ``Conv``.
    Shape:
        input ``(N, C_in, H, W)``, output ``(N, C_out, H_out, W_out)`` with
        ``H_out = (H - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1``.
    Parameters:
        ``weight (kH, kW, C_out // groups, C_in)``: the weight of the conv from C_out to C_in
        channels whose input gradient this layer computes; kaiming_uniform with
        fan_in = (C_out // groups)·kH·kW; ``bias (C_out,)`` ~ U(±1/sqrt(fan_in)).
    Raises:
        ValueError for channels not divisible by groups, a too large output_padding, or an
        input with the wrong rank or channel count.
    """

    _nd = 2


class ConvTranspose3d(_ConvTransposeNd):
    """Transposed 3-D convolution over ``(N, C_in, D, H, W)``."""

    _nd = 3
