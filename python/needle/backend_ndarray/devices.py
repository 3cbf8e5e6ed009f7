"""Devices: a name plus a backend module (the flat table of kernels), and the loading of the
compiled backends (with the OpenMP settings the CPU backend is loaded with)."""

import os

import numpy as np

from . import ndarray_backend_numpy

DTYPES = ("float32", "float64")


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

    # The factories build NDArrays (ndarray.py imports this module, so NDArray is looked up
    # when they run).
    def randn(self, *shape, dtype="float32"):
        return _ndarray_class()(np.random.randn(*shape).astype(dtype), device=self)

    def rand(self, *shape, dtype="float32"):
        return _ndarray_class()(np.random.rand(*shape).astype(dtype), device=self)

    def one_hot(self, n, i, dtype="float32"):
        # Rows of eye(n) without building eye(n): n x n is 144 MB for a 6,000-word vocabulary.
        index = np.asarray(i, dtype=np.int64)
        out = np.zeros((*index.shape, n), dtype=dtype)
        np.put_along_axis(out, index[..., None], 1, axis=-1)
        return _ndarray_class()(out, device=self)

    def empty(self, shape, dtype="float32"):
        return _ndarray_class().make(tuple(shape), device=self, dtype=self.check_dtype(dtype))

    def full(self, shape, fill_value, dtype="float32"):
        arr = self.empty(shape, dtype)
        arr.fill(fill_value)
        return arr


def _ndarray_class():
    from .ndarray import NDArray

    return NDArray


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
