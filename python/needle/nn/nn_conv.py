"""Convolution and pooling layers: channels-first (NCHW) like PyTorch, thin over one op each.

The layers keep their weight in the op's layout ``(*kernel, C_in // groups, C_out)`` and
move channels last around the call to ``ops.conv`` (a permutation view; the op packs its
input once).  ``Conv`` is the course's layer (signature, default padding ``k // 2``,
initialisation draws) extended with PyTorch's ``padding``, ``dilation``, ``groups`` and
``padding_mode``; ``Conv1d``/``Conv2d``/``Conv3d`` differ only in the number of spatial axes.
"""

import math
import numbers
from typing import Optional

import numpy as np

from .. import init, ops
from ..autograd import Tensor
from ..ops.ops_conv import _pad_pairs, _per_axis
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
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "AdaptiveAvgPool2d",
    "ChannelShuffle",
]


def _to_channels_last(x: Tensor, nd: int) -> Tensor:
    return ops.channels_last(x)  # packed once for the kernel's forward and backward


def _to_channels_first(x: Tensor, nd: int) -> Tensor:
    return ops.permute(x, (0, nd + 1, *range(1, nd + 1)))


def _check_input(name, x, nd, channels):
    if len(x.shape) != nd + 2 or x.shape[1] != channels:
        spatial = ", ".join("DHW"[3 - nd :])
        raise ValueError(
            f"{name}: expected input of shape (N, {channels}, {spatial}), got {tuple(x.shape)}"
        )


def _add_bias(y: Tensor, bias: Optional[Tensor]) -> Tensor:
    """``y`` (channels last) plus ``bias`` broadcast over every other axis."""
    if bias is None:
        return y
    return ops.bias_add(y, bias)


def _show(value):
    """A per-axis tuple with equal entries prints as one int."""
    if isinstance(value, tuple) and value and all(v == value[0] for v in value):
        return value[0]
    return value


def _check_groups(name, in_channels, out_channels, groups):
    for arg, value in (("in_channels", in_channels), ("out_channels", out_channels)):
        if not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name}: {arg} must be a positive int, got {arg}={value!r}")
    if groups < 1 or in_channels % groups or out_channels % groups:
        raise ValueError(
            f"{name}: in_channels={in_channels} and out_channels={out_channels} must be "
            f"divisible by groups={groups}"
        )


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
        _check_groups(name, in_channels, out_channels, groups)
        if padding_mode not in PAD_MODES:
            raise ValueError(
                f"{name}: padding_mode must be one of {PAD_MODES}, "
                f"got padding_mode={padding_mode!r}"
            )
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _per_axis(kernel_size, nd, "kernel_size", name)
        if min(self.kernel_size) < 1:
            raise ValueError(f"{name}: kernel_size must be >= 1, got kernel_size={kernel_size!r}")
        self.stride = _per_axis(stride, nd, "stride", name)
        self.dilation = _per_axis(dilation, nd, "dilation", name)
        self.padding_mode = padding_mode
        self._padding_arg = padding
        self.padding = self._pads(padding, name)

        self.weight, self.bias = _weight_and_bias(
            self.kernel_size, in_channels, out_channels, groups, bias, out_channels, device, dtype
        )

    def _pads(self, padding, name):
        """Per-axis (lo, hi) zero padding: None (course default), int, tuple, 'same', 'valid'."""
        extents = [d * (k - 1) for k, d in zip(self.kernel_size, self.dilation)]
        if padding is None:  # the course's k // 2, i.e. half the dilated extent (floor)
            return tuple(((e + 1) // 2,) * 2 for e in extents)
        if padding == "valid":
            return ((0, 0),) * self._nd
        if padding == "same":
            if any(s != 1 for s in self.stride):
                raise ValueError(f"{name}: padding='same' needs stride 1, got stride={self.stride}")
            return tuple((e // 2, e - e // 2) for e in extents)  # the odd pixel goes after
        if isinstance(padding, str):
            raise ValueError(
                f"{name}: padding must be 'same', 'valid', an int or a tuple, got {padding!r}"
            )
        return _pad_pairs(padding, self._nd, name)

    def forward(self, x: Tensor) -> Tensor:
        nd = self._nd
        _check_input(type(self).__name__, x, nd, self.in_channels)
        h = _to_channels_last(x, nd)
        padding = self.padding
        if self.padding_mode != "zeros":
            h = ops.pad_boundary(h, ((0, 0), *padding, (0, 0)), self.padding_mode)
            padding = 0
        y = ops.conv(h, self.weight, self.stride, padding, self.dilation, self.groups)
        return _to_channels_first(_add_bias(y, self.bias), nd)

    def extra_repr(self):
        parts = [
            str(self.in_channels),
            str(self.out_channels),
            f"kernel_size={_show(self.kernel_size)}",
        ]
        if any(s != 1 for s in self.stride):
            parts.append(f"stride={_show(self.stride)}")
        if self._padding_arg is not None:
            parts.append(f"padding={self._padding_arg!r}")
        if any(d != 1 for d in self.dilation):
            parts.append(f"dilation={_show(self.dilation)}")
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
        _check_groups(name, in_channels, out_channels, groups)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _per_axis(kernel_size, nd, "kernel_size", name)
        if min(self.kernel_size) < 1:
            raise ValueError(f"{name}: kernel_size must be >= 1, got kernel_size={kernel_size!r}")
        self.stride = _per_axis(stride, nd, "stride", name)
        self.padding = _per_axis(padding, nd, "padding", name)
        self.output_padding = _per_axis(output_padding, nd, "output_padding", name)
        self.dilation = _per_axis(dilation, nd, "dilation", name)
        for e, s, d in zip(self.output_padding, self.stride, self.dilation):
            if e >= s and e >= d:
                raise ValueError(
                    f"{name}: output_padding={self.output_padding} must be smaller than stride "
                    f"{self.stride} or dilation {self.dilation}"
                )
        # the weight of the conv from out_channels to in_channels
        self.weight, self.bias = _weight_and_bias(
            self.kernel_size, out_channels, in_channels, groups, bias, out_channels, device, dtype
        )

    def forward(self, x: Tensor) -> Tensor:
        nd = self._nd
        _check_input(type(self).__name__, x, nd, self.in_channels)
        y = ops.conv_transpose(
            _to_channels_last(x, nd), self.weight, self.stride, self.padding,
            self.output_padding, self.dilation, self.groups,
        )  # fmt: skip
        return _to_channels_first(_add_bias(y, self.bias), nd)

    def extra_repr(self):
        parts = [
            str(self.in_channels),
            str(self.out_channels),
            f"kernel_size={_show(self.kernel_size)}",
        ]
        for key, default in (("stride", 1), ("padding", 0), ("output_padding", 0), ("dilation", 1)):
            value = getattr(self, key)
            if any(v != default for v in value):
                parts.append(f"{key}={_show(value)}")
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


# --- pooling -----------------------------------------------------------------------------------
class _PoolNd(Module):
    """Shared arguments of the pools: ``stride`` defaults to ``kernel_size``; ``padding`` is
    at most half the kernel.  Output size ``floor((in + 2*padding - k) / stride) + 1``."""

    _nd = 2
    _pool = None

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        name, nd = type(self).__name__, self._nd
        self.kernel_size = _per_axis(kernel_size, nd, "kernel_size", name)
        self.stride = self.kernel_size if stride is None else _per_axis(stride, nd, "stride", name)
        self.padding = _per_axis(padding, nd, "padding", name)

    def forward(self, x: Tensor) -> Tensor:
        nd = self._nd
        if len(x.shape) != nd + 2:
            raise ValueError(
                f"{type(self).__name__}: expected input with {nd} spatial axes (N, C, ...), "
                f"got shape {tuple(x.shape)}"
            )
        y = type(self)._pool(_to_channels_last(x, nd), self.kernel_size, self.stride, self.padding)
        return _to_channels_first(y, nd)

    def extra_repr(self):
        parts = [f"kernel_size={_show(self.kernel_size)}"]
        if self.stride != self.kernel_size:
            parts.append(f"stride={_show(self.stride)}")
        if any(self.padding):
            parts.append(f"padding={_show(self.padding)}")
        return ", ".join(parts)


class MaxPool2d(_PoolNd):
    """Max pooling over ``(N, C, H, W)``; the gradient goes to each window's arg-max and
    padding never wins."""

    _nd = 2
    _pool = staticmethod(ops.max_pool)


class MaxPool1d(MaxPool2d):
    """Max pooling over ``(N, C, L)``."""

    _nd = 1


class MaxPool3d(MaxPool2d):
    """Max pooling over ``(N, C, D, H, W)``."""

    _nd = 3


class AvgPool2d(_PoolNd):
    """Average pooling over ``(N, C, H, W)``; zero padding counts in the average
    (PyTorch's ``count_include_pad=True``)."""

    _nd = 2
    _pool = staticmethod(ops.avg_pool)


class AvgPool1d(AvgPool2d):
    """Average pooling over ``(N, C, L)``."""

    _nd = 1


class AvgPool3d(AvgPool2d):
    """Average pooling over ``(N, C, D, H, W)``."""

    _nd = 3


def _adaptive_matrix(n, out, x):
    """(n, out) averaging matrix: PyTorch's windows [floor(i n/out), ceil((i+1) n/out))."""
    m = np.zeros((n, out))
    for i in range(out):
        start, stop = (i * n) // out, -((-(i + 1) * n) // out)
        m[start:stop, i] = 1.0 / (stop - start)
    return Tensor(m, device=x.device, dtype=x.dtype, requires_grad=False)


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed ``output_size`` (int, or (h, w) with None keeping a size).

    Window i of an axis of size n covers ``[floor(i*n/out), ceil((i+1)*n/out))`` as in
    PyTorch; computed as two small matmuls with constant averaging matrices.
    Shape: ``(N, C, H, W) -> (N, C, out_h, out_w)``.
    """

    def __init__(self, output_size):
        super().__init__()
        if isinstance(output_size, int) or output_size is None:
            output_size = (output_size, output_size)
        if len(output_size) != 2 or any(o is not None and o < 1 for o in output_size):
            raise ValueError(
                "AdaptiveAvgPool2d: output_size must be a positive int or a pair, "
                f"got {output_size!r}"
            )
        self.output_size = tuple(output_size)

    def forward(self, x: Tensor) -> Tensor:
        if len(x.shape) != 4:
            raise ValueError(
                f"AdaptiveAvgPool2d: expected (N, C, H, W), got shape {tuple(x.shape)}"
            )
        h, w = x.shape[2:]
        oh, ow = (n if o is None else o for o, n in zip(self.output_size, (h, w)))
        y = x if ow == w else x @ _adaptive_matrix(w, ow, x)  # (N, C, H, ow)
        if oh != h:
            y = ops.transpose(ops.transpose(y) @ _adaptive_matrix(h, oh, x))
        return y

    def extra_repr(self):
        return f"output_size={_show(self.output_size)}"


class ChannelShuffle(Module):
    """ShuffleNet's channel permutation: ``(N, g·c, ...) -> (N, c·g, ...)``, i.e. channel
    ``i*c + j`` moves to ``j*g + i``."""

    def __init__(self, groups: int):
        super().__init__()
        if groups < 1:
            raise ValueError(f"ChannelShuffle: groups must be >= 1, got {groups}")
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        n, c, *spatial = x.shape
        if c % self.groups:
            raise ValueError(
                f"ChannelShuffle: groups={self.groups} must divide channels={c} "
                f"(input shape {tuple(x.shape)})"
            )
        y = x.reshape((n, self.groups, c // self.groups, *spatial))
        return ops.transpose(y, (1, 2)).reshape(x.shape)

    def extra_repr(self):
        return f"groups={self.groups}"
