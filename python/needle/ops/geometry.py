"""Convolution and pooling geometry: the one pure shape rule of every conv and pool call.

Arguments are normalised per spatial axis (``per_axis``, ``pad_pairs``, ``resolve_padding``)
and checked (``check_positive``, ``check_groups``, ``check_output_padding``); the shape
rules (``conv_geometry``, ``conv_transpose_geometry``, ``pool_geometry``) turn them into
frozen records (``ConvGeometry``, ``PoolGeometry``) that hold every size, the output shape,
the flops and the packed ints the backend kernels take.  One output-size rule serves all:

    out = floor((in + pad_lo + pad_hi - dilation*(k - 1) - 1) / stride) + 1     (``out_size``)

pooling is that rule with its own window (dilation 1, symmetric padding), and a transposed
convolution inverts it (``transposed_out_size``).  Nothing here touches an array: the ops,
the layers and ``nn.summary`` all ask the same functions, and a network asks the same
questions every step, so the shape rules are cached.

The packed ints follow the NumPy backend's field lists (``CONV_GEOMETRY_FIELDS``,
``POOL_GEOMETRY_FIELDS``, the specification the compiled backends implement), in the 3-D
form: 1-D and 2-D problems are 3-D problems with size-1 leading axes.
"""

import math
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from numbers import Integral
from typing import Tuple

import numpy

from ..backend_ndarray.ndarray_backend_numpy import CONV_GEOMETRY_FIELDS, POOL_GEOMETRY_FIELDS

__all__ = [
    "is_int",
    "per_axis",
    "pad_pairs",
    "check_positive",
    "check_groups",
    "check_output_padding",
    "resolve_padding",
    "out_size",
    "transposed_out_size",
    "ConvGeometry",
    "conv_geometry",
    "conv_transpose_geometry",
    "PoolGeometry",
    "pool_geometry",
]


# --- arguments -------------------------------------------------------------------------------
def is_int(v) -> bool:
    """An integer that is not a bool."""
    return isinstance(v, Integral) and not isinstance(v, bool)


def per_axis(value, nd: int, name: str, op: str) -> Tuple[int, ...]:
    """An int or one int per spatial axis -> a tuple of ``nd`` ints."""
    if is_int(value):
        return (int(value),) * nd
    if isinstance(value, (tuple, list)) and len(value) == nd and all(is_int(v) for v in value):
        return tuple(int(v) for v in value)
    raise ValueError(f"{op}: {name} must be an int or a tuple of {nd} ints, got {value!r}")


def pad_pairs(padding, nd: int, op: str = "conv") -> Tuple[Tuple[int, int], ...]:
    """int | one int or (lo, hi) per axis -> ((lo, hi), ...) for ``nd`` axes, all >= 0.

    For one spatial axis a pair of ints ``(lo, hi)`` is also accepted.
    """
    if is_int(padding):
        pairs = ((int(padding),) * 2,) * nd
    elif isinstance(padding, (tuple, list)):
        items = list(padding)
        if nd == 1 and len(items) == 2 and all(is_int(v) for v in items):
            items = [tuple(items)]
        if len(items) != nd:
            raise ValueError(
                f"{op}: padding must be an int, or one int or (lo, hi) pair per spatial axis "
                f"({nd}), got {padding!r}"
            )
        pairs = tuple(_pad_pair(p, op) for p in items)
    else:
        raise ValueError(f"{op}: padding must be an int or a tuple, got {padding!r}")
    if any(v < 0 for pair in pairs for v in pair):
        raise ValueError(f"{op}: padding must be non-negative, got {padding!r}")
    return pairs


def _pad_pair(p, op):
    if is_int(p):
        return (int(p), int(p))
    if isinstance(p, (tuple, list)) and len(p) == 2 and all(is_int(v) for v in p):
        return (int(p[0]), int(p[1]))
    raise ValueError(f"{op}: padding entry {p!r} is neither an int nor a (lo, hi) pair")


def check_positive(values, name: str, op: str) -> None:
    """Every entry of ``values`` (one per spatial axis) is >= 1."""
    if any(v < 1 for v in values):
        raise ValueError(f"{op}: {name} must be >= 1 on every spatial axis, got {values}")


def check_groups(op: str, groups, name: str, channels: int, context: str = "") -> None:
    """``groups`` is a positive int that divides ``channels`` (called ``name``).

    ``context`` follows the message, e.g. the shape the channels were read from.
    """
    if not is_int(groups) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    if channels % groups:
        raise ValueError(f"{op}: groups={groups} must divide {name}={channels}{context}")


def check_output_padding(op: str, output_padding, stride, dilation) -> None:
    """A transposed conv's ``output_padding`` (per axis) is >= 0 and smaller than the stride
    or the dilation: larger values would ask for outputs no input reaches."""
    for e, s, d in zip(output_padding, stride, dilation):
        if e < 0 or (e >= s and e >= d):
            raise ValueError(
                f"{op}: output_padding={output_padding} must be >= 0 and smaller than stride "
                f"{stride} or dilation {dilation}"
            )


def resolve_padding(padding, kernel, stride, dilation, op: str):
    """A conv layer's padding argument -> per-axis (lo, hi) zero padding.

    ``None`` is the course's ``kernel_size // 2`` (with dilation, half the dilated extent,
    floor); ``"valid"`` is none; ``"same"`` (stride 1) keeps the size, the odd pixel going
    after; ints, per-axis ints or (lo, hi) pairs as ``pad_pairs``.
    """
    extents = [d * (k - 1) for k, d in zip(kernel, dilation)]
    if padding is None:
        return tuple(((e + 1) // 2,) * 2 for e in extents)
    if padding == "valid":
        return ((0, 0),) * len(kernel)
    if padding == "same":
        if any(s != 1 for s in stride):
            raise ValueError(f"{op}: padding='same' needs stride 1, got stride={stride}")
        return tuple((e // 2, e - e // 2) for e in extents)
    if isinstance(padding, str):
        raise ValueError(
            f"{op}: padding must be 'same', 'valid', an int or a tuple, got {padding!r}"
        )
    return pad_pairs(padding, len(kernel), op)


# --- output sizes ----------------------------------------------------------------------------
def out_size(size, kernel, stride=1, pad_lo=0, pad_hi=0, dilation=1) -> int:
    """Outputs along one axis: ``floor((size + lo + hi - dilation*(k - 1) - 1) / stride) + 1``
    (window positions that fit in the padded input)."""
    return (size + pad_lo + pad_hi - dilation * (kernel - 1) - 1) // stride + 1


def transposed_out_size(size, kernel, stride=1, padding=0, dilation=1, output_padding=0) -> int:
    """Outputs of a transposed conv along one axis (the input size of the conv it inverts):
    ``(size - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1``."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def _window_outputs(op, a_shape, kernel, stride, pads, dilation, name):
    """``out_size`` on every spatial axis, after checking that each window fits."""
    out, spatial = [], a_shape[1:-1]
    for axis, (n, k, s, (lo, hi), d) in enumerate(zip(spatial, kernel, stride, pads, dilation)):
        extent = d * (k - 1) + 1
        if extent > n + lo + hi:
            what = f"{name} {k}" if name else f"kernel extent {extent} (kernel {k}, dilation {d})"
            raise ValueError(
                f"{op}: {what} exceeds padded input {n + lo + hi} on spatial axis {axis} "
                f"(input shape {a_shape}, padding ({lo}, {hi}))"
            )
        out.append(out_size(n, k, s, lo, hi, d))
    return tuple(out)


def _spatial_rank(op, a_shape, what):
    if len(a_shape) not in (3, 4, 5):
        raise ValueError(
            f"{op}: input must be (N, *spatial, {what}) with 1, 2 or 3 spatial axes, "
            f"got shape {a_shape}"
        )
    return len(a_shape) - 2


# --- packing for the backend -----------------------------------------------------------------
def _pack(fields, scalars, axes):
    """The ints named by ``fields`` (the backend's order): ``scalars`` maps a name to a value,
    ``axes`` is ``(names, per-axis values, fill)`` for the 3-D axis triples."""
    value = dict(scalars)
    for names, values, fill in axes:
        value.update(zip(names, (fill,) * (3 - len(values)) + tuple(values)))
    return tuple(value[f] for f in fields)


# --- convolution -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ConvGeometry:
    """Every size of one convolution, normalised per spatial axis (see ``conv_geometry``).

    ``pad_hi`` is informational (the backend needs only ``pad_lo`` and the output size); in
    gradient geometries it may be negative (the window stops before the end of the input).
    ``adjoint`` marks a transposed convolution (the input gradient of ``transposed``).
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
    adjoint: bool = False

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

    @cached_property
    def flops(self) -> int:
        """Multiply-adds times two of the forward pass.  A transposed conv counts those of
        the conv it is the adjoint of (the taps on the zeros it inserts cost nothing)."""
        if self.adjoint:
            return self.transposed.flops
        taps = math.prod(self.kernel) * (self.in_channels // self.groups)
        return 2 * self.batch * math.prod(self.out_spatial) * self.out_channels * taps

    @cached_property
    def backend(self) -> Tuple[int, ...]:
        """The 25 ints of the backend's conv kernels, in ``CONV_GEOMETRY_FIELDS`` order."""
        return _pack(
            CONV_GEOMETRY_FIELDS,
            {"N": self.batch, "Cin": self.in_channels, "Cout": self.out_channels,
             "groups": self.groups},
            [(("Di", "Hi", "Wi"), self.in_spatial, 1), (("KD", "KH", "KW"), self.kernel, 1),
             (("Do", "Ho", "Wo"), self.out_spatial, 1), (("sd", "sh", "sw"), self.stride, 1),
             (("pd", "ph", "pw"), self.pad_lo, 0), (("dd", "dh", "dw"), self.dilation, 1),
             (("idd", "idh", "idw"), self.input_dilation, 1)],
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
            adjoint=not self.adjoint,
        )  # fmt: skip


def _frozen(value):
    if isinstance(value, (list, tuple, numpy.ndarray)):
        return tuple(_frozen(v) for v in value)
    return value


def _cached(rule):
    """``rule`` behind an LRU cache; list arguments are frozen to tuples first, and
    unhashable ones (e.g. a NumPy array) are validated without the cache."""
    cached = lru_cache(maxsize=1024)(rule)

    def call(*args):
        try:  # ints and tuples (what the layers pass) are keys as they are
            return cached(*args)
        except TypeError:
            pass
        key = tuple(_frozen(v) for v in args)
        try:
            hash(key)
        except TypeError:
            return rule(*key)
        return cached(*key)

    return call


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
    return _conv_geometry(tuple(a_shape), tuple(b_shape), stride, padding, dilation, groups, op)


@_cached
def _conv_geometry(a_shape, b_shape, stride, padding, dilation, groups, op):
    nd = _spatial_rank(op, a_shape, "C_in")
    if len(b_shape) != nd + 2:
        raise ValueError(
            f"{op}: weight must be (*kernel, C_in // groups, C_out) with {nd} kernel axes for "
            f"input shape {a_shape}, got weight shape {b_shape}"
        )
    n, spatial, cin = a_shape[0], a_shape[1:-1], a_shape[-1]
    kernel, cg, cout = b_shape[:-2], b_shape[-2], b_shape[-1]
    if min(spatial) < 1 or cin < 1:
        raise ValueError(f"{op}: input has an empty spatial or channel axis: shape {a_shape}")
    if min(kernel) < 1 or cout < 1:
        raise ValueError(f"{op}: weight has an empty axis: shape {b_shape}")
    check_groups(op, groups, "C_in", cin, f" (input shape {a_shape})")
    check_groups(op, groups, "C_out", cout, f" (weight shape {b_shape})")
    if cg != cin // groups:
        raise ValueError(
            f"{op}: weight in-channels {cg} must equal C_in // groups = {cin} // {groups} = "
            f"{cin // groups} (input shape {a_shape}, weight shape {b_shape})"
        )
    stride = per_axis(stride, nd, "stride", op)
    dilation = per_axis(dilation, nd, "dilation", op)
    check_positive(stride, "stride", op)
    check_positive(dilation, "dilation", op)
    pads = pad_pairs(padding, nd, op)
    out = _window_outputs(op, a_shape, kernel, stride, pads, dilation, None)
    return ConvGeometry(
        batch=n, in_spatial=tuple(spatial), in_channels=cin, kernel=tuple(kernel),
        out_channels=cout, groups=groups, stride=stride, pad_lo=tuple(p[0] for p in pads),
        pad_hi=tuple(p[1] for p in pads), dilation=dilation, input_dilation=(1,) * nd,
        out_spatial=out,
    )  # fmt: skip


def conv_transpose_geometry(
    a_shape, b_shape, stride=1, padding=0, output_padding=0, dilation=1, groups=1,
    *, op="conv_transpose",
) -> ConvGeometry:  # fmt: skip
    """The geometry a transposed convolution runs: the input gradient (``adjoint``) of the
    conv from its output back to ``a``, whose weight is ``b``.

    Args:
        a_shape: input ``(N, *spatial, C_in)``.
        b_shape: ``(*kernel, C_out // groups, C_in)``, the weight of that conv.
        stride, dilation, padding (int or per axis, symmetric), output_padding (int or per
            axis, smaller than stride or dilation), groups: PyTorch's meaning.
    Returns:
        a ``ConvGeometry`` with ``out_shape`` ``(N, *out, C_out)``, ``out = (in - 1)*stride
        - 2*padding + dilation*(k - 1) + output_padding + 1`` per axis.
    """
    return _conv_transpose_geometry(
        tuple(a_shape), tuple(b_shape), stride, padding, output_padding, dilation, groups, op
    )


@_cached
def _conv_transpose_geometry(a_shape, b_shape, stride, padding, output_padding, dilation,
                             groups, op):  # fmt: skip
    if len(a_shape) not in (3, 4, 5) or len(b_shape) != len(a_shape):
        raise ValueError(
            f"{op}: input (N, *spatial, C_in) and weight (*kernel, C_out // groups, C_in) need "
            f"1-3 spatial axes each, got shapes {a_shape} and {b_shape}"
        )
    nd = len(a_shape) - 2
    check_groups(op, groups, "C_in", a_shape[-1], f" (input shape {a_shape})")
    if b_shape[-1] != a_shape[-1]:
        raise ValueError(
            f"{op}: weight's last axis {b_shape[-1]} must equal C_in={a_shape[-1]} "
            f"(input shape {a_shape}, weight shape {b_shape})"
        )
    stride = per_axis(stride, nd, "stride", op)
    dilation = per_axis(dilation, nd, "dilation", op)
    pad = per_axis(padding, nd, "padding", op)
    extra = per_axis(output_padding, nd, "output_padding", op)
    check_positive(stride, "stride", op)
    check_positive(dilation, "dilation", op)
    if min(pad) < 0:
        raise ValueError(f"{op}: padding must be non-negative, got padding={padding!r}")
    check_output_padding(op, extra, stride, dilation)
    out = tuple(
        transposed_out_size(n, k, s, p, d, e)
        for n, k, s, p, d, e in zip(a_shape[1:-1], b_shape[:-2], stride, pad, dilation, extra)
    )
    if min(out) < 1:
        raise ValueError(f"{op}: output size {out} is empty (input shape {a_shape})")
    fwd_in = (a_shape[0], *out, b_shape[-2] * groups)
    fwd = _conv_geometry(fwd_in, b_shape, stride, pad, dilation, groups, op)
    if fwd.out_channels != a_shape[-1]:
        raise ValueError(f"{op}: weight shape {b_shape} does not fit input shape {a_shape}")
    # output_padding >= stride (allowed when < dilation) adds forward outputs we do not have.
    return replace(fwd, out_spatial=tuple(a_shape[1:-1])).transposed


# --- pooling ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PoolGeometry:
    """Sizes of one pooling call over a channels-last input (see ``pool_geometry``).

    The window is a conv window with dilation 1 and symmetric padding.
    """

    batch: int
    in_spatial: Tuple[int, ...]
    channels: int
    kernel: Tuple[int, ...]
    stride: Tuple[int, ...]
    padding: Tuple[int, ...]
    out_spatial: Tuple[int, ...]

    adjoint = False  # (as ConvGeometry; a pool is never transposed)

    @property
    def dilation(self):
        return (1,) * len(self.kernel)

    @property
    def input_dilation(self):
        return (1,) * len(self.kernel)

    @property
    def in_shape(self):
        return (self.batch, *self.in_spatial, self.channels)

    @property
    def out_shape(self):
        return (self.batch, *self.out_spatial, self.channels)

    @cached_property
    def backend(self) -> Tuple[int, ...]:
        """The 17 ints of the backend's pool kernels, in ``POOL_GEOMETRY_FIELDS`` order."""
        return _pack(
            POOL_GEOMETRY_FIELDS,
            {"N": self.batch, "C": self.channels},
            [(("Di", "Hi", "Wi"), self.in_spatial, 1), (("KD", "KH", "KW"), self.kernel, 1),
             (("Do", "Ho", "Wo"), self.out_spatial, 1), (("sd", "sh", "sw"), self.stride, 1),
             (("pd", "ph", "pw"), self.padding, 0)],
        )  # fmt: skip


def pool_geometry(a_shape, kernel_size, stride=None, padding=0, *, op="max_pool") -> PoolGeometry:
    """Validate a pooling call; output size ``floor((in + 2*pad - k) / stride) + 1``.

    ``stride`` defaults to the kernel size; ``padding`` must be at most half the kernel.
    """
    return _pool_geometry(tuple(a_shape), kernel_size, stride, padding, op)


@_cached
def _pool_geometry(a_shape, kernel_size, stride, padding, op):
    nd = _spatial_rank(op, a_shape, "C")
    kernel = per_axis(kernel_size, nd, "kernel_size", op)
    stride = kernel if stride is None else per_axis(stride, nd, "stride", op)
    pad = per_axis(padding, nd, "padding", op)
    check_positive(kernel, "kernel_size", op)
    check_positive(stride, "stride", op)
    if any(p < 0 or 2 * p > k for p, k in zip(pad, kernel)):
        raise ValueError(
            f"{op}: padding {pad} must be >= 0 and at most half of kernel_size {kernel}"
        )
    pads = tuple((p, p) for p in pad)
    out = _window_outputs(op, a_shape, kernel, stride, pads, (1,) * nd, "kernel_size")
    return PoolGeometry(a_shape[0], a_shape[1:-1], a_shape[-1], kernel, stride, pad, out)
