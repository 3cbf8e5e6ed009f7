"""The strided NDArray and its devices.

An ``NDArray`` is a view ``(handle, shape, strides, offset, device)`` onto a flat buffer
owned by a backend module.  Views (reshape of a compact array, permute, broadcast_to,
getitem, as_strided, flip) are pure stride arithmetic and copy nothing; ``compact()`` is
the single doorway from any view to the packed row-major layout the kernels read.
Strides and offsets count elements, not bytes.
"""

import builtins
import math

import numpy as np

from .devices import (  # noqa: F401  (the course's names live here too)
    DTYPES,
    BackendDevice,
    _check_dtype,
    all_devices,
    cpu,
    cpu_numpy,
    cuda,
    default_device,
)
from .strides import (  # noqa: F401
    _broadcast_error,
    _compact_strides,
    _normalize_axes,
    _normalize_index,
    _permutation,
    broadcast_shapes,
    broadcast_strides,
    compact_strides,
    slice_view,
    view_extent,
)

prod = math.prod


_new_ndarray = object.__new__


class NDArray:
    """A strided n-dimensional array on a device (float32 or float64)."""

    # NumPy scalars and arrays on the left of an operator defer to our reflected methods
    # (np.float32(2) * x stays an NDArray on x's device instead of becoming a NumPy array).
    __array_ufunc__ = None
    # Fixed fields: creating and reading small arrays is part of every op's dispatch cost.
    __slots__ = ("_shape", "_strides", "_offset", "_device", "_handle", "__weakref__")

    def __init__(self, other, device=None, dtype=None):
        if isinstance(other, NDArray):
            device = other.device if device is None else device
            dtype = other.dtype if dtype is None else dtype
            if device == other.device and dtype == other.dtype:
                self._init(other.copy())
            else:
                self._init(NDArray(other.numpy(), device=device, dtype=dtype))
            return
        device = default_device() if device is None else device
        if dtype is None and isinstance(other, np.ndarray) and other.dtype == np.float64:
            dtype = "float64" if "float64" in device.dtypes else "float32"
        dtype = device.check_dtype(dtype)
        arr = np.asarray(other, dtype=dtype, order="C")  # keeps 0-d arrays 0-d
        self._init(NDArray.make(arr.shape, device=device, dtype=dtype))
        device.from_numpy(arr, self._handle)

    def _init(self, other):
        self._shape = other._shape
        self._strides = other._strides
        self._offset = other._offset
        self._device = other._device
        self._handle = other._handle

    compact_strides = staticmethod(compact_strides)  # the course's NDArray.compact_strides

    @staticmethod
    def make(shape, strides=None, device=None, handle=None, offset=0, dtype="float32"):
        """An array over ``handle`` (or a fresh uninitialised buffer of ``dtype``) with the
        given view; ``shape`` and ``strides`` may be any sequences of ints."""
        shape = tuple(int(s) for s in shape)
        strides = compact_strides(shape) if strides is None else tuple(int(s) for s in strides)
        device = default_device() if device is None else device
        if handle is None:
            handle = device.Array(prod(shape), dtype)
        return NDArray._view(shape, strides, device, handle, int(offset))

    @staticmethod
    def _view(shape, strides, device, handle, offset=0):
        """The constructor (``make`` and ``_fresh`` call it): ``shape`` and ``strides`` are
        int tuples already, as internal callers have them."""
        out = _new_ndarray(NDArray)
        out._shape = shape
        out._strides = strides
        out._offset = offset
        out._device = device
        out._handle = handle
        return out

    @staticmethod
    def _fresh(shape, device, dtype):
        """A new compact array (uninitialised) of int-tuple ``shape``."""
        return NDArray._view(
            shape, compact_strides(shape), device, device.Array(prod(shape), dtype)
        )

    # --- properties -------------------------------------------------------------------
    @property
    def shape(self):
        return self._shape

    @property
    def strides(self):
        return self._strides

    @property
    def device(self):
        return self._device

    @property
    def dtype(self):
        return self._handle.dtype

    @property
    def ndim(self):
        return len(self._shape)

    @property
    def size(self):
        return prod(self._shape)

    def __len__(self):
        if not self._shape:
            raise TypeError("len() of a 0-d NDArray")
        return self._shape[0]

    def __repr__(self):
        return f"NDArray({self.numpy()!r}, device={self.device!r})"

    def __str__(self):
        return str(self.numpy())

    # --- conversion -------------------------------------------------------------------
    def numpy(self):
        return self.device.to_numpy(self._handle, self._shape, self._strides, self._offset)

    def __array__(self, dtype=None, copy=None):
        out = self.numpy()
        return out if dtype is None else out.astype(dtype)

    def astype(self, dtype):
        dtype = self.device.check_dtype(dtype)
        return self if dtype == self.dtype else NDArray(self.numpy().astype(dtype), self.device)

    def to(self, device):
        return self if device == self.device else NDArray(self.numpy(), device=device)

    def fill(self, value):
        """Set every element of the buffer to ``value`` in place."""
        self.device.fill(self._handle, value)

    def copy(self):
        out = NDArray._fresh(self._shape, self._device, self._handle.dtype)
        self.device.compact(self._handle, out._handle, self.shape, self.strides, self._offset)
        return out

    def is_compact(self):
        return (
            self._strides == compact_strides(self._shape)
            and prod(self._shape) == self._handle.size
        )

    def compact(self):
        """Self when packed row-major, else a packed copy (or, when only the strides of
        length-1 axes differ, a view of the same buffer with the packed strides)."""
        if self.is_compact():
            return self
        if self._offset == 0 and prod(self._shape) == self._handle.size and self.is_compact_view():
            return NDArray._view(
                self._shape, compact_strides(self._shape), self._device, self._handle
            )
        return self.copy()

    # --- views ------------------------------------------------------------------------
    def as_strided(self, shape, strides):
        """A view with any (shape, strides) from this view's offset; it must stay in the buffer."""
        if len(shape) != len(strides):
            raise ValueError(f"as_strided: shape {shape} and strides {strides} differ in rank")
        shape, strides = tuple(int(d) for d in shape), tuple(int(s) for s in strides)
        lo, hi = view_extent(shape, strides, self._offset)
        if prod(shape) > 0 and (lo < 0 or hi >= self._handle.size):
            raise IndexError(
                f"as_strided: view shape {shape} strides {strides} offset {self._offset} reaches "
                f"elements [{lo}, {hi}] of a buffer of {self._handle.size}"
            )
        return self._restride(shape, strides)

    def _restride(self, shape, strides):
        return NDArray._view(shape, strides, self._device, self._handle, self._offset)

    @property
    def flat(self):
        return self.reshape((self.size,))

    def reshape(self, new_shape):
        """A view with ``new_shape`` (one axis may be -1); the array must be compact."""
        if (
            type(new_shape) is tuple
            and self._offset == 0
            and self._strides == compact_strides(self._shape)
            and builtins.all(type(s) is int and s >= 0 for s in new_shape)
            and prod(new_shape) == prod(self._shape)
        ):  # the common case: a packed array, a fully given shape
            return NDArray._view(new_shape, compact_strides(new_shape), self._device, self._handle)
        new_shape = tuple(int(s) for s in new_shape)
        if new_shape.count(-1) > 1:
            raise ValueError(f"reshape: only one axis may be -1, got {new_shape}")
        if -1 in new_shape:
            known = prod(s for s in new_shape if s != -1)
            if known == 0 or self.size % known:
                raise ValueError(
                    f"reshape: cannot reshape array of shape {self.shape} into {new_shape}"
                )
            new_shape = tuple(self.size // known if s == -1 else s for s in new_shape)
        if prod(new_shape) != self.size or builtins.any(s < 0 for s in new_shape):
            raise ValueError(
                f"reshape: cannot reshape array of shape {self.shape} into {new_shape}"
            )
        base = self if self.is_compact_view() else self.compact()
        return NDArray._view(
            new_shape, compact_strides(new_shape), self._device, base._handle, base._offset
        )

    def is_compact_view(self):
        """Row-major strides (the buffer may be larger than the view)."""
        return all(
            st == cs
            for st, cs, d in zip(self._strides, compact_strides(self._shape), self._shape)
            if d != 1
        )

    def permute(self, new_axes):
        axes = _permutation(tuple(new_axes), len(self._shape))
        if axes is None:
            raise ValueError(
                f"permute: {tuple(new_axes)} is not a permutation of the axes of shape {self.shape}"
            )
        shape, strides = self._shape, self._strides
        return NDArray._view(
            tuple([shape[a] for a in axes]), tuple([strides[a] for a in axes]),
            self._device, self._handle, self._offset,
        )  # fmt: skip

    def broadcast_to(self, new_shape):
        """A view with stride 0 on broadcast axes (NumPy rules; new leading axes allowed)."""
        new_shape = tuple(int(s) for s in new_shape)
        return self._restride(new_shape, broadcast_strides(self._shape, self._strides, new_shape))

    def process_slice(self, sl, dim):
        """``sl`` on axis ``dim`` with start, stop and step filled in from ``self.shape[dim]``.

        The course's contract (its ``__getitem__`` passes the axis index); bounds follow NumPy:
        negative indices count from the end and out-of-range ones are clipped. The one bound
        no int can express, a negative step running past index 0, stays ``None``, so applying
        the result selects what ``sl`` selects.
        """
        start, stop, step = sl.indices(self._shape[dim])
        return slice(start, None if stop < 0 else stop, step)

    def _view_of(self, idxs):
        shape, strides, offset = slice_view(self._shape, self._strides, self._offset, idxs)
        return NDArray._view(shape, strides, self._device, self._handle, offset)

    def __getitem__(self, idxs):
        """A view; an int index keeps its axis with length 1 (the course's convention)."""
        return self._view_of(idxs)

    def __setitem__(self, idxs, other):
        view = self._view_of(idxs)
        if isinstance(other, NDArray):
            self._check_same_device(other, "setitem")
            if other.size != view.size:
                raise ValueError(
                    f"setitem: value of shape {other.shape} does not fit view {view.shape}"
                )
            other = other.compact()
            if other._handle is self._handle:
                other = other.copy()  # e.g. a[::-1] = a: never read what is being overwritten
            if other.dtype != self.dtype:
                other = other.astype(self.dtype)
            self.device.ewise_setitem(
                other._handle, view._handle, view.shape, view.strides, view._offset
            )
        else:
            self.device.scalar_setitem(
                view.size, float(other), view._handle, view.shape, view.strides, view._offset
            )

    def flip(self, axes=None):
        """A compact copy reversed along ``axes`` (all axes when None)."""
        axes = range(self.ndim) if axes is None else (axes,) if isinstance(axes, int) else axes
        axes = {a + self.ndim if a < 0 else a for a in axes}
        offset, strides = self._offset, list(self._strides)
        for a in axes:
            if not 0 <= a < self.ndim:
                raise ValueError(f"flip: axis {a} out of range for shape {self.shape}")
            if self._shape[a] > 0:
                offset += (self._shape[a] - 1) * strides[a]
            strides[a] = -strides[a]
        view = NDArray.make(self._shape, tuple(strides), self.device, self._handle, offset)
        return view.copy()

    def pad(self, axes):
        """Zero padding: ``axes`` gives (before, after) for every axis."""
        if len(axes) != self.ndim or builtins.any(lo < 0 or hi < 0 for lo, hi in axes):
            raise ValueError(
                f"pad: need one non-negative (before, after) per axis of {self.shape}, got {axes}"
            )
        out = self.device.full(
            tuple(d + lo + hi for d, (lo, hi) in zip(self._shape, axes)), 0.0, self.dtype
        )
        out[tuple(slice(lo, lo + d) for d, (lo, _) in zip(self._shape, axes))] = self
        return out

    # --- elementwise ------------------------------------------------------------------
    def _check_same_device(self, other, what):
        if other._device is not self._device and other._device != self._device:
            raise ValueError(
                f"{what}: arrays on different devices: {self.device!r} {self.shape} and "
                f"{other.device!r} {other.shape}"
            )

    def _dense(self):
        """True when the view covers buffer[0:size] exactly, in some axis order.

        Compact arrays are dense, and so are permutations of compact arrays (a channels-last
        buffer seen as NCHW): an elementwise kernel can then run over the flat buffer and its
        result take the same strides (the memory format is preserved, as in PyTorch).
        """
        if self._offset != 0:
            return False
        if self._strides == compact_strides(self._shape):
            return True
        expected = 1
        for stride, dim in sorted(zip(self._strides, self._shape)):
            if dim != 1:
                if stride != expected:
                    return False
                expected *= dim
        return True

    def _like(self):
        """A fresh uninitialised array with this (dense) view's shape and strides."""
        device = self._device
        return NDArray._view(
            self._shape, self._strides, device, device.Array(prod(self._shape), self._handle.dtype)
        )

    def _binary(self, other, ewise_name, scalar_name):
        if (
            other.__class__ is NDArray
            and self._shape == other._shape
            and self._strides == other._strides
            and self._device is other._device
            and not self._offset
            and not other._offset
            and self._strides == compact_strides(self._shape)
        ):
            # The common case, packed operands alike, decided in one test (small ops are
            # dispatch-bound: every attribute lookup here shows in their time).
            device, dtype = self._device, self._handle.dtype
            if other._handle.dtype == dtype:
                out = _new_ndarray(NDArray)
                out._shape, out._strides, out._offset, out._device = (
                    self._shape,
                    self._strides,
                    0,
                    device,
                )
                out._handle = device.Array(prod(self._shape), dtype)
                device.__dict__[ewise_name](self._handle, other._handle, out._handle)
                return out
        if isinstance(other, NDArray):
            self._check_same_device(other, ewise_name)
            if other._handle.dtype != self._handle.dtype:
                raise TypeError(
                    f"{ewise_name}: dtype mismatch {self.dtype} {self.shape} vs "
                    f"{other.dtype} {other.shape}"
                )
            a, b = self, other
            if a._shape == b._shape and _same_strides(a, b) and a._dense() and not b._offset:
                out = a._like()  # same layout on both sides: keep it
                getattr(self.device, ewise_name)(a._handle, b._handle, out._handle)
                return out
            if a._shape != b._shape:
                shape = broadcast_shapes(a._shape, b._shape)
                a, b = a.broadcast_to(shape), b.broadcast_to(shape)
                if ewise_name == "ewise_add" and "rows_affine" in self._device.__dict__:
                    out = _add_row(a, b) or _add_row(b, a)
                    if out is not None:
                        return out
            out = NDArray._fresh(a._shape, self._device, self._handle.dtype)
            getattr(self._device, ewise_name)(a.compact()._handle, b.compact()._handle, out._handle)
        else:
            src = self if self._dense() else self.compact()
            out = src._like()
            getattr(self.device, scalar_name)(src._handle, float(other), out._handle)
        return out

    def _unary(self, name):
        src = self if self._dense() else self.compact()
        out = src._like()
        getattr(self.device, name)(src._handle, out._handle)
        return out

    def __add__(self, other):
        return self._binary(other, "ewise_add", "scalar_add")

    __radd__ = __add__

    def __sub__(self, other):
        return self._binary(other, "ewise_sub", "scalar_sub")

    def __rsub__(self, other):
        return (
            self._binary(other, "ewise_sub", "scalar_rsub")
            if not isinstance(other, NDArray)
            else other - self
        )

    def __mul__(self, other):
        return self._binary(other, "ewise_mul", "scalar_mul")

    __rmul__ = __mul__

    def __truediv__(self, other):
        return self._binary(other, "ewise_div", "scalar_div")

    def __rtruediv__(self, other):
        return self._binary(other, "ewise_div", "scalar_rdiv")

    def __neg__(self):
        return self._unary("ewise_neg")

    def __pow__(self, other):
        return self._binary(other, "ewise_power", "scalar_power")

    def __rpow__(self, other):
        return self._binary(other, "ewise_power", "scalar_rpower")

    def relu_grad(self, a):
        """ReLU's gradient: ``self`` where ``a`` (the ReLU's input) > 0, else 0, one pass."""
        if not isinstance(a, NDArray) or a._shape != self._shape:
            raise ValueError(f"relu_grad: needs an array of shape {self.shape}")
        return self._binary(a, "ewise_relu_grad", None)

    def maximum(self, other):
        return self._binary(other, "ewise_maximum", "scalar_maximum")

    def __eq__(self, other):
        return self._binary(other, "ewise_eq", "scalar_eq")

    def __ne__(self, other):
        return self._binary(other, "ewise_ne", "scalar_ne")

    def __ge__(self, other):
        return self._binary(other, "ewise_ge", "scalar_ge")

    def __gt__(self, other):
        return self._binary(other, "ewise_gt", "scalar_gt")

    def __le__(self, other):
        return self._binary(other, "ewise_le", "scalar_le")

    def __lt__(self, other):
        return self._binary(other, "ewise_lt", "scalar_lt")

    __hash__ = None

    def log(self):
        return self._unary("ewise_log")

    def exp(self):
        return self._unary("ewise_exp")

    def tanh(self):
        return self._unary("ewise_tanh")

    def sqrt(self):
        return self._unary("ewise_sqrt")

    def abs(self):
        return self._unary("ewise_abs")

    def sign(self):
        return self._unary("ewise_sign")

    def sigmoid(self):
        return self._unary("ewise_sigmoid")

    def relu(self):
        return self._unary("ewise_relu")

    # --- matmul -----------------------------------------------------------------------
    def __matmul__(self, other):
        """2-D or batched matmul; leading (batch) axes broadcast as in NumPy."""
        self._check_same_device(other, "matmul")
        if self._handle.dtype != other._handle.dtype:
            raise TypeError(f"matmul: dtype mismatch {self.dtype} vs {other.dtype}")
        if self.ndim < 2 or other.ndim < 2:
            raise ValueError(
                f"matmul: both operands need >= 2 axes, got {self.shape} @ {other.shape}"
            )
        (m, n), (n2, p) = self.shape[-2:], other.shape[-2:]
        if n != n2:
            raise ValueError(f"matmul: inner dimensions differ: {self.shape} @ {other.shape}")
        if self.ndim == 2 and other.ndim == 2:
            out = NDArray._fresh((m, p), self._device, self._handle.dtype)
            self._device.matmul(
                self.compact()._handle, other.compact()._handle, out._handle, m, n, p
            )
            return out
        batch_shape = broadcast_shapes(self.shape[:-2], other.shape[:-2])
        a = _batched_operand(self, batch_shape)
        b = _batched_operand(other, batch_shape)
        batch = prod(batch_shape)
        out = NDArray.make((*batch_shape, m, p), device=self.device, dtype=self.dtype)
        self.device.matmul_batched(
            a._handle,
            b._handle,
            out._handle,
            batch,
            m,
            n,
            p,
            m * n if a.size > m * n else 0,
            n * p if b.size > n * p else 0,
        )
        return out

    # --- reductions -------------------------------------------------------------------
    def _reduce(self, axis, keepdims, name):
        axes = _normalize_axes(axis, self.ndim, name)
        rest = tuple(a for a in range(self.ndim) if a not in axes)
        kept = tuple(self._shape[a] for a in rest)
        reduce_size = prod(self._shape[a] for a in axes)
        if reduce_size == 0 and name == "max":
            raise ValueError(f"max: zero-size reduction over axes {axes} of shape {self.shape}")
        order = rest + axes
        if name == "sum" and rest and axes and reduce_size > 1:
            leading = self.permute(axes + rest)
            if leading._dense() and leading.is_compact_view():
                # The reduced axes are the outer ones in memory (the per-channel sums of a
                # channels-last batch): one product with a row of ones reads the array in
                # place, where the reduction kernel would need a transposed copy first.
                out = sum_rows(leading.reshape((reduce_size, prod(kept))))
                return _finish_reduce(out.reshape(kept), self._shape, axes, keepdims)
        # The reduced axes last, packed (no permute when they already are the last ones).
        view = self if order == tuple(range(len(order))) else self.permute(order)
        view = view.compact()
        out = NDArray._fresh(kept, self._device, self._handle.dtype)
        if reduce_size == 0:
            out.fill(0.0)
        else:
            getattr(self.device, "reduce_" + name)(view._handle, out._handle, reduce_size)
        return _finish_reduce(out, self._shape, axes, keepdims)

    def sum(self, axis=None, keepdims=False):
        return self._reduce(axis, keepdims, "sum")

    def max(self, axis=None, keepdims=False):
        return self._reduce(axis, keepdims, "max")


def _same_strides(a, b):
    """Equal strides on every axis longer than 1 (the same memory layout)."""
    if a._strides == b._strides:
        return True
    return all(x == y or d == 1 for x, y, d in zip(a._strides, b._strides, a._shape))


def _finish_reduce(out, shape, axes, keepdims):
    if keepdims:
        out = out.reshape(tuple(1 if a in axes else d for a, d in enumerate(shape)))
    return out


def _batched_operand(x, batch_shape):
    """x broadcast over batch_shape, packed as (batch, rows, cols) unless it needs no batch."""
    if x.ndim == 2:
        return x.compact()
    if tuple(x.shape[:-2]) == tuple(batch_shape):
        return x.compact()
    return x.broadcast_to((*batch_shape, *x.shape[-2:])).compact()


# The course's module-level API (api.py, also reachable from this module) and the fused-kernel
# wrappers use NDArray, and NDArray's methods use the wrappers: imported last.
from .api import (  # noqa: E402, F401
    array,
    broadcast_to,
    empty,
    exp,
    flip,
    full,
    log,
    maximum,
    reshape,
    sum,
    tanh,
)
from .fused import (  # noqa: E402, F401
    _add_row,
    _constant_row,
    _ones_row,
    _packed,
    _zeros_row,
    add_row,
    concat_flat,
    rows_affine,
    split_flat,
    sum_rows,
)
