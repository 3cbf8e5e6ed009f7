"""Pooling layers and ChannelShuffle: channels-first (NCHW) like PyTorch, thin over one op each.

``MaxPoolNd``/``AvgPoolNd`` move channels last around ``ops.max_pool``/``ops.avg_pool``;
``AdaptiveAvgPool2d`` averages with two small matmuls; ``ChannelShuffle`` is a reshape and a
transpose.  The pools describe themselves: ``layer.geometry(input_shape)`` is the
``PoolGeometry`` of their window.
"""

import numpy as np

from .. import ops
from ..autograd import Tensor
from ..ops.geometry import PoolGeometry, check_groups, per_axis, pool_geometry
from .nn_basic import Module
from .nn_conv import channels_last_shape, check_input, show, to_channels_first

__all__ = [
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "AdaptiveAvgPool2d",
    "ChannelShuffle",
]


# --- pooling -----------------------------------------------------------------------------------
class _PoolNd(Module):
    """Shared arguments of the pools: ``stride`` defaults to ``kernel_size``; ``padding`` is
    at most half the kernel.  Output size ``floor((in + 2*padding - k) / stride) + 1``."""

    _nd = 2
    _pool = None

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        name, nd = type(self).__name__, self._nd
        self.kernel_size = per_axis(kernel_size, nd, "kernel_size", name)
        self.stride = self.kernel_size if stride is None else per_axis(stride, nd, "stride", name)
        self.padding = per_axis(padding, nd, "padding", name)

    def forward(self, x: Tensor) -> Tensor:
        check_input(type(self).__name__, x.shape, self._nd)
        y = type(self)._pool(ops.channels_last(x), self.kernel_size, self.stride, self.padding)
        return to_channels_first(y, self._nd)

    def geometry(self, input_shape) -> PoolGeometry:
        """The pooling window on an input of ``input_shape`` ``(N, C, *spatial)``, in the
        op's channels-last terms."""
        name = type(self).__name__
        check_input(name, input_shape, self._nd)
        shape = channels_last_shape(input_shape)
        return pool_geometry(shape, self.kernel_size, self.stride, self.padding, op=name)

    def extra_repr(self):
        parts = [f"kernel_size={show(self.kernel_size)}"]
        if self.stride != self.kernel_size:
            parts.append(f"stride={show(self.stride)}")
        if any(self.padding):
            parts.append(f"padding={show(self.padding)}")
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
        check_input("AdaptiveAvgPool2d", x.shape, 2)
        h, w = x.shape[2:]
        oh, ow = self._out_size((h, w))
        y = x if ow == w else x @ _adaptive_matrix(w, ow, x)  # (N, C, H, ow)
        if oh != h:
            y = ops.transpose(ops.transpose(y) @ _adaptive_matrix(h, oh, x))
        return y

    def _out_size(self, spatial):
        return tuple(n if o is None else o for o, n in zip(self.output_size, spatial))

    def geometry(self, input_shape) -> PoolGeometry:
        """The uniform window nearest to the adaptive ones on an input of ``input_shape``
        ``(N, C, H, W)``: stride ``max(in // out, 1)`` and kernel ``in - (out - 1)*stride``
        (at least 1), exact when ``out`` divides ``in``."""
        check_input("AdaptiveAvgPool2d", input_shape, 2)
        spatial = tuple(input_shape[2:])
        out = self._out_size(spatial)
        stride = tuple(max(n // o, 1) for n, o in zip(spatial, out))
        kernel = tuple(max(n - (o - 1) * s, 1) for n, o, s in zip(spatial, out, stride))
        return PoolGeometry(input_shape[0], spatial, input_shape[1], kernel, stride, (0, 0), out)

    def extra_repr(self):
        return f"output_size={show(self.output_size)}"


class ChannelShuffle(Module):
    """ShuffleNet's channel permutation: ``(N, g·c, ...) -> (N, c·g, ...)``, i.e. channel
    ``i*c + j`` moves to ``j*g + i``."""

    def __init__(self, groups: int):
        super().__init__()
        check_groups("ChannelShuffle", groups, "channels", 0)
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        n, c, *spatial = x.shape
        check_groups("ChannelShuffle", self.groups, "channels", c, f" (input shape {x.shape})")
        y = x.reshape((n, self.groups, c // self.groups, *spatial))
        return ops.transpose(y, (1, 2)).reshape(x.shape)

    def extra_repr(self):
        return f"groups={self.groups}"
