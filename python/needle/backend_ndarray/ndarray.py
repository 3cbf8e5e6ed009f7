"""The strided NDArray and its devices.

An ``NDArray`` is a view ``(handle, shape, strides, offset, device)`` onto a flat buffer
owned by a backend module.  Views (reshape of a compact array, permute, broadcast_to,
getitem, as_strided, flip) are pure stride arithmetic and copy nothing; ``compact()`` is
the single doorway from any view to the packed row-major layout the kernels read.
Strides and offsets count elements, not bytes.
"""

import builtins
import math
import os
from functools import lru_cache

import numpy as np

from . import ndarray_backend_numpy

DTYPES = ("float32", "float64")


prod = math.prod


@lru_cache(maxsize=1024)
def _permutation(axes, ndim):
    """``axes`` with negative entries counted from the end, or None when it is not a
    permutation of ``range(ndim)``."""
    try:
        axes = tuple(a + ndim if a < 0 else a for a in axes)
    except TypeError:
        return None
    return axes if sorted(axes) == list(range(ndim)) else None


@lru_cache(maxsize=4096)
def _compact_strides(shape):
    strides, stride = [], 1
    for dim in reversed(shape):
        strides.append(stride)
        stride *= dim
    return tuple(reversed(strides))


def compact_strides(shape):
    """Row-major element strides of ``shape``."""
    return _compact_strides(tuple(shape))


def slice_view(shape, strides, offset, idxs):
    """(shape, strides, offset) of the view selected by ``idxs`` (ints and slices).

    Missing trailing indices mean ``:``; an int keeps its axis with length 1 (the course's
    convention); slices follow Python/NumPy semantics, negative steps included.
    """
    if not isinstance(idxs, tuple):
        idxs = (idxs,)
    if len(idxs) > len(shape):
        raise IndexError(f"too many indices ({len(idxs)}) for array of shape {tuple(shape)}")
    idxs = idxs + (slice(None),) * (len(shape) - len(idxs))
    new_shape, new_strides = [], []
    for axis, (idx, dim, stride) in enumerate(zip(idxs, shape, strides)):
        if isinstance(idx, slice):
            start, stop, step = idx.indices(dim)
            n = len(range(start, stop, step))
        else:
            start, step, n = _normalize_index(idx, dim, axis), 1, 1
        new_shape.append(n)
        new_strides.append(stride * step)
        offset += start * stride if n else 0
    return tuple(new_shape), tuple(new_strides), offset


def broadcast_strides(shape, strides, new_shape):
    """Strides of ``shape``/``strides`` broadcast to ``new_shape`` (stride 0 on broadcast axes)."""
    lead = len(new_shape) - len(shape)
    if lead < 0:
        raise _broadcast_error(shape, new_shape)
    out = [0] * lead
    for old, new, stride in zip(shape, new_shape[lead:], strides):
        if old == new:
            out.append(stride)
        elif old == 1:
            out.append(0)
        else:
            raise _broadcast_error(shape, new_shape)
    return tuple(out)


def _broadcast_error(shape, new_shape):
    return ValueError(f"broadcast_to: cannot broadcast shape {tuple(shape)} to {tuple(new_shape)}")


def view_extent(shape, strides, offset):
    """(lowest, highest) buffer index that a non-empty view (shape, strides, offset) touches."""
    lo = hi = offset
    for dim, stride in zip(shape, strides):
        lo += min(0, (dim - 1) * stride)
        hi += max(0, (dim - 1) * stride)
    return lo, hi


def _check_dtype(dtype):
    try:
        dtype = "float32" if dtype is None else str(np.dtype(dtype))
    except TypeError:
        pass
    if dtype not in DTYPES:
        raise TypeError(f"NDArray: unsupported dtype {dtype!r}; supported: {', '.join(DTYPES)}")
    return dtype


class BackendDevice:
    """A device is a name plus the backend module that implements the function table."""

    def __init__(self, name, mod, dtypes=DTYPES):
        self.name = name
        self.mod = mod
        self.dtypes = dtypes

    @property
    def mod(self):
        return self.__dict__["_mod"]

    @mod.setter
    def mod(self, mod):
        # The backend's functions become instance attributes: a kernel call on the hot
        # path is then a plain attribute lookup, not a __getattr__ call.
        for name in self.__dict__.pop("_functions", ()):
            self.__dict__.pop(name, None)
        self.__dict__["_mod"] = mod
        names = [n for n in dir(mod) if not n.startswith("_")] if mod is not None else []
        names = [n for n in names if n not in type(self).__dict__ and n not in ("name", "dtypes")]
        for n in names:
            self.__dict__[n] = getattr(mod, n)
        self.__dict__["_functions"] = names

    def __eq__(self, other):
        return isinstance(other, BackendDevice) and self.name == other.name

    def __hash__(self):
        return hash(self.name)

    def __repr__(self):
        return self.name + "()"

    def __getattr__(self, name):
        mod = self.__dict__.get("_mod")
        if mod is None:
            raise AttributeError(f"device {self.__dict__.get('name')}() is not available")
        return getattr(mod, name)

    def enabled(self):
        return self.mod is not None

    def check_dtype(self, dtype):
        dtype = _check_dtype(dtype)
        if dtype not in self.dtypes:
            raise TypeError(f"device {self!r} does not support dtype {dtype!r}")
        return dtype

    def randn(self, *shape, dtype="float32"):
        return NDArray(np.random.randn(*shape).astype(dtype), device=self)

    def rand(self, *shape, dtype="float32"):
        return NDArray(np.random.rand(*shape).astype(dtype), device=self)

    def one_hot(self, n, i, dtype="float32"):
        return NDArray(np.eye(n, dtype=dtype)[np.asarray(i, dtype=np.int64)], device=self)

    def empty(self, shape, dtype="float32"):
        return NDArray.make(tuple(shape), device=self, dtype=self.check_dtype(dtype))

    def full(self, shape, fill_value, dtype="float32"):
        arr = self.empty(shape, dtype)
        arr.fill(fill_value)
        return arr


def cpu_numpy():
    """The NumPy reference backend."""
    return _CPU_NUMPY


def cpu():
    """The C++ backend (disabled when the extension is not built)."""
    return _CPU


def cuda():
    """The CUDA backend; ``enabled()`` is False when not built or no GPU is present."""
    return _CUDA


def default_device():
    return _CPU if _CPU.enabled() else _CPU_NUMPY


def all_devices():
    """Every enabled device."""
    return [d for d in (_CPU_NUMPY, _CPU, _CUDA) if d.enabled()]


def _load_cpu():
    # The C++ backend's OpenMP threads spin only briefly before sleeping.  libgomp reads
    # GOMP_SPINCOUNT once, when the extension loads it; its default (300,000 spins, when
    # OMP_WAIT_POLICY is unset) makes every parallel region wait milliseconds for a
    # descheduled thread once another process shares the cores (docs/PERFORMANCE.md,
    # Convolution).  Settings made by the user win; other libraries' OpenMP runtimes (loaded
    # later) do not see this default.
    # 20,000 spins (~10 us): a ResNet9 training step (~500 kernel calls, many of them small
    # parallel regions) takes ~10.5 ms on an idle machine against ~12.2 ms with 2,000 spins
    # (threads that fall asleep between calls are woken through the kernel), and stays at
    # ~25 ms (median) with one competing process, where 50,000 spins already give ~90 ms.
    spin_default = "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ
    if spin_default:
        os.environ["GOMP_SPINCOUNT"] = "20000"
    try:
        from . import ndarray_backend_cpu
    except ImportError:
        return None
    finally:
        if spin_default:
            os.environ.pop("GOMP_SPINCOUNT", None)
    return ndarray_backend_cpu


def _load_cuda():
    try:
        from . import ndarray_backend_cuda
    except ImportError:
        return None
    try:
        if not ndarray_backend_cuda.device_available():
            return None
    except Exception:
        return None
    return ndarray_backend_cuda


_CPU_NUMPY = BackendDevice("cpu_numpy", ndarray_backend_numpy)
_CPU = BackendDevice("cpu", _load_cpu())
_CUDA = BackendDevice("cuda", _load_cuda())


def _normalize_index(i, dim, axis):
    if not isinstance(i, (int, np.integer)):
        raise TypeError(f"NDArray index must be int or slice, got {type(i).__name__}")
    i = int(i)
    if not -dim <= i < dim:
        raise IndexError(f"index {i} is out of bounds for axis {axis} with size {dim}")
    return i + dim if i < 0 else i


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

    @staticmethod
    def compact_strides(shape):
        return compact_strides(shape)

    @staticmethod
    def make(shape, strides=None, device=None, handle=None, offset=0, dtype="float32"):
        """An array over ``handle`` (or a fresh uninitialised buffer) with the given view."""
        array = NDArray.__new__(NDArray)
        array._shape = tuple(int(s) for s in shape)
        array._strides = compact_strides(array._shape) if strides is None else tuple(strides)
        array._offset = int(offset)
        array._device = default_device() if device is None else device
        if handle is None:
            handle = array._device.Array(prod(array._shape), dtype)
        array._handle = handle
        return array

    @staticmethod
    def _view(shape, strides, device, handle, offset=0):
        """``make`` for internal callers whose shape and strides are already int tuples."""
        array = _new_ndarray(NDArray)
        array._shape = shape
        array._strides = strides
        array._offset = offset
        array._device = device
        array._handle = handle
        return array

    @staticmethod
    def _fresh(shape, device, dtype):
        """A new compact array (uninitialised) of int-tuple ``shape``."""
        return NDArray._view(
            shape, _compact_strides(shape), device, device.Array(prod(shape), dtype)
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
            self._strides == _compact_strides(self._shape)
            and prod(self._shape) == self._handle.size
        )

    def compact(self):
        """Self when packed row-major, else a packed copy (or, when only the strides of
        length-1 axes differ, a view of the same buffer with the packed strides)."""
        if self.is_compact():
            return self
        if self._offset == 0 and prod(self._shape) == self._handle.size and self.is_compact_view():
            return NDArray._view(
                self._shape, _compact_strides(self._shape), self._device, self._handle
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
            and self._strides == _compact_strides(self._shape)
            and builtins.all(type(s) is int and s >= 0 for s in new_shape)
            and prod(new_shape) == prod(self._shape)
        ):  # the common case: a packed array, a fully given shape
            return NDArray._view(new_shape, _compact_strides(new_shape), self._device, self._handle)
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
            new_shape, _compact_strides(new_shape), self._device, base._handle, base._offset
        )

    def is_compact_view(self):
        """Row-major strides (the buffer may be larger than the view)."""
        return all(
            st == cs
            for st, cs, d in zip(self._strides, _compact_strides(self._shape), self._shape)
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
        if self._strides == _compact_strides(self._shape):
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
            and self._strides == _compact_strides(self._shape)
        ):
            # The common case, packed operands alike, decided in one test (small ops are
            # dispatch-bound: every attribute lookup here shows in their time).
            device, dtype = self._device, self._handle.dtype
            if other._handle.dtype == dtype:
                out = _new_ndarray(NDArray)
                out._shape, out._strides, out._offset, out._device = (
                    self._shape, self._strides, 0, device
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
            if a._shape == b._shape and _same_strides(a, b) and a._dense():
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


def add_row(x, row):
    """``x (..., C) + row``, ``row`` holding C values: one ``rows_affine`` pass when ``x`` is
    packed and the backend has the kernel (a layer's bias), else the broadcasting ``+``."""
    c = x._shape[-1] if x._shape else 0
    if (
        "rows_affine" in x._device.__dict__
        and c
        and x._offset == 0
        and x._strides == _compact_strides(x._shape)
        and prod(row._shape) == c
    ):
        row = _packed(row, c)  # a bias inside a larger buffer (an optimizer's flat copy) is copied
        m = prod(x._shape) // c
        out = NDArray._fresh((m, c), x._device, x._handle.dtype)
        ones = _ones_row(x._device, x._handle.dtype, c)
        x._device.rows_affine(
            x._handle, x._handle, ones._handle, _zeros_row(x._device, x._handle.dtype, c)._handle,
            row._handle, out._handle,
        )  # fmt: skip
        return NDArray._view(x._shape, x._strides, out._device, out._handle)
    return x + row.reshape((1,) * (len(x._shape) - 1) + (c,))


def _add_row(x, v):
    """x + v by the rows_affine kernel when x is packed and v repeats one row along the
    last axis (a bias added to every position): no broadcast copy of v.  None otherwise."""
    if x.ndim < 2 or x._offset or x._strides != _compact_strides(x._shape) or v._strides[-1] != 1:
        return None
    if any(st != 0 for st, d in zip(v._strides[:-1], v._shape[:-1]) if d != 1):
        return None
    c = x._shape[-1]
    if c == 0 or prod(x._shape) == 0:
        return None
    row = _packed(NDArray._view((1, c), (c, 1), v._device, v._handle, v._offset), c)
    ones = _ones_row(x._device, x._handle.dtype, c)
    out = rows_affine(
        NDArray._view((prod(x._shape) // c, c), (c, 1), x._device, x._handle), ones, row
    )
    return NDArray._view(x._shape, x._strides, out._device, out._handle)


def _same_strides(a, b):
    """Equal strides on every axis longer than 1 (the same memory layout)."""
    if a._strides == b._strides:
        return True
    return all(x == y or d == 1 for x, y, d in zip(a._strides, b._strides, a._shape))


def _finish_reduce(out, shape, axes, keepdims):
    if keepdims:
        out = out.reshape(tuple(1 if a in axes else d for a, d in enumerate(shape)))
    return out


_CONSTANT_ROWS = {}  # (device, dtype, n, value) -> a (1, n) row filled with value


def _constant_row(device, dtype, n, value):
    """A cached read-only (1, n) row of ``value`` (at most 256 rows are kept)."""
    key = (device, dtype, n, value)
    row = _CONSTANT_ROWS.get(key)
    if row is None:
        row = device.full((1, n), value, dtype)
        if len(_CONSTANT_ROWS) < 256:
            _CONSTANT_ROWS[key] = row
    return row


def _ones_row(device, dtype, n):
    return _constant_row(device, dtype, n, 1.0)


def sum_rows(x):
    """Column sums (1, C) of a compact (M, C) matrix.

    With the backend's ``sum_rows`` kernel, one pass; otherwise ones (1, M) @ x, where a
    tall, narrow matrix is first folded to (M/r, r·C) (a free reshape, its product runs
    faster) and the r partial rows are summed after.
    """
    m, c = x._shape
    device = x._device
    if "sum_rows" in device.__dict__:  # the backend's column-sum kernel
        if x._offset or x._strides != _compact_strides(x._shape):
            x = x.copy()
        out = NDArray._fresh((1, c), device, x._handle.dtype)
        device.sum_rows(x._handle, out._handle, m)
        return out
    r = 1
    if c < 32:  # only the narrowest matrices gain enough to pay for the second step
        while m % (2 * r) == 0 and 2 * r * c <= 256 and m // (2 * r) >= 256:
            r *= 2
    if r == 1:
        return _ones_row(x.device, x.dtype, m) @ x
    partial = _ones_row(x.device, x.dtype, m // r) @ x.reshape((m // r, r * c))
    return partial.reshape((r, c)).sum(axis=0, keepdims=True)


def _packed(x, size=None):
    """``x`` itself when it is packed from the start of its buffer (of exactly ``size``
    elements when given), else a packed copy."""
    if x._offset == 0 and x._strides == _compact_strides(x._shape):
        if size is None or x._handle.size == size:
            return x
    return x.copy()


def rows_affine(a, s, u, b=None, t=None):
    """``a * s + b * t + u`` for (M, C) arrays ``a``, ``b`` and (1, C) rows ``s``, ``t``,
    ``u`` (broadcast down the rows); without ``b`` the middle term is left out.

    With the backend's ``rows_affine`` kernel one pass and no broadcast copies; otherwise
    the same arithmetic with broadcasting operators.
    """
    m, c = a._shape
    device = a._device
    if "rows_affine" in device.__dict__:
        if b is None:
            b, t = a, _zeros_row(device, a._handle.dtype, c)
        out = NDArray._fresh((m, c), device, a._handle.dtype)
        device.rows_affine(
            _packed(a)._handle, _packed(b)._handle, _packed(s, c)._handle,
            _packed(t, c)._handle, _packed(u, c)._handle, out._handle,
        )  # fmt: skip
        return out
    shape = (m, c)
    out = a * s.broadcast_to(shape)
    if b is not None:
        out = out + b * t.broadcast_to(shape)
    return out + u.broadcast_to(shape)


def _zeros_row(device, dtype, n):
    return _constant_row(device, dtype, n, 0.0)


def _batched_operand(x, batch_shape):
    """x broadcast over batch_shape, packed as (batch, rows, cols) unless it needs no batch."""
    if x.ndim == 2:
        return x.compact()
    if tuple(x.shape[:-2]) == tuple(batch_shape):
        return x.compact()
    return x.broadcast_to((*batch_shape, *x.shape[-2:])).compact()


def _normalize_axes(axis, ndim, what):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < ndim:
            raise ValueError(f"{what}: axis {a} out of range for {ndim}-d array")
        out.append(a + ndim if a < 0 else a)
    if len(set(out)) != len(out):
        raise ValueError(f"{what}: repeated axis in {axes}")
    return tuple(sorted(out))


def broadcast_shapes(*shapes):
    """NumPy's broadcast rule; ValueError naming the shapes when they do not broadcast."""
    ndim = max(len(s) for s in shapes)
    out = []
    for dims in zip(*[(1,) * (ndim - len(s)) + tuple(s) for s in shapes]):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            raise ValueError(f"shapes {' and '.join(map(str, shapes))} do not broadcast")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


# --- convolution and pooling kernels (used by needle.ops.ops_conv) ------------------------
def conv_forward(a, b, geometry, out_shape):
    """Run the backend conv kernel; ``geometry`` is the 25-int list of the backend table."""
    out = NDArray.make(out_shape, device=a.device, dtype=a.dtype)
    a.device.conv_forward(a.compact()._handle, b.compact()._handle, out._handle, list(geometry))
    return out


def conv_backward_weight(a, grad, geometry, weight_shape):
    out = NDArray.make(weight_shape, device=a.device, dtype=a.dtype)
    a.device.conv_backward_weight(
        a.compact()._handle, grad.compact()._handle, out._handle, list(geometry)
    )
    return out


def maxpool_forward(a, geometry, out_shape):
    out = NDArray.make(out_shape, device=a.device, dtype=a.dtype)
    a.device.maxpool_forward(a.compact()._handle, out._handle, list(geometry))
    return out


def maxpool_backward(a, grad, geometry):
    out = NDArray.make(a.shape, device=a.device, dtype=a.dtype)
    a.device.maxpool_backward(
        a.compact()._handle, grad.compact()._handle, out._handle, list(geometry)
    )
    return out


# --- flat packing (the optimizers update all parameters as one buffer) -----------------------
def concat_flat(arrays, out=None):
    """The elements of ``arrays`` (row-major each) one after another in a 1-D array.

    All arrays share one device and dtype; ``out`` (1-D, that total size) is written when
    given.  One kernel call per array.
    """
    arrays = list(arrays)
    total = builtins.sum(prod(a._shape) for a in arrays)
    if out is None:
        out = NDArray.make((total,), device=arrays[0].device, dtype=arrays[0].dtype)
    elif out.shape != (total,):
        raise ValueError(
            f"concat_flat: out has shape {out.shape}, the arrays hold {total} elements"
        )
    offset = 0
    for a in arrays:
        n = prod(a._shape)
        if a.device != out.device or a.dtype != out.dtype:
            raise ValueError(
                f"concat_flat: array {a.shape} is {a.dtype} on {a.device}, "
                f"out is {out.dtype} on {out.device}"
            )
        a = a.compact()
        out.device.ewise_setitem(a._handle, out._handle, (n,), (1,), out._offset + offset)
        offset += n
    return out


def split_flat(flat, shapes):
    """Compact arrays of ``shapes`` holding consecutive pieces of 1-D ``flat`` (copies)."""
    total = builtins.sum(prod(shape) for shape in shapes)
    if flat.ndim != 1 or flat._strides != (1,) or total != prod(flat._shape):
        raise ValueError(
            f"split_flat: shapes {shapes} do not cover a 1-D array of shape {flat.shape}"
        )
    out, offset = [], flat._offset
    for shape in shapes:
        n = prod(shape)
        piece = NDArray.make(shape, device=flat.device, dtype=flat.dtype)
        flat.device.compact(flat._handle, piece._handle, (n,), (1,), offset)
        out.append(piece)
        offset += n
    return out


# --- module-level API (the course's names) -----------------------------------------------
def array(a, dtype="float32", device=None):
    """A new compact NDArray holding a copy of ``a``."""
    return NDArray(a, device=device, dtype=dtype)


def empty(shape, dtype="float32", device=None):
    return (default_device() if device is None else device).empty(shape, dtype)


def full(shape, fill_value, dtype="float32", device=None):
    return (default_device() if device is None else device).full(shape, fill_value, dtype)


def broadcast_to(array, new_shape):
    return array.broadcast_to(new_shape)


def reshape(array, new_shape):
    return array.reshape(new_shape)


def maximum(a, b):
    return a.maximum(b)


def log(a):
    return a.log()


def exp(a):
    return a.exp()


def tanh(a):
    return a.tanh()


def sum(a, axis=None, keepdims=False):
    return a.sum(axis=axis, keepdims=keepdims)


def flip(a, axes):
    return a.flip(axes)
