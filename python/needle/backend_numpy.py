"""The plain-NumPy array API used when ``NEEDLE_BACKEND=np`` (the course's early mode)."""

import numpy
from numpy import *  # noqa: F401,F403  (the op layer calls array_api.<numpy function>)

ndarray = numpy.ndarray


class Device:
    """The single device of the NumPy mode."""

    name = "cpu"

    def __repr__(self):
        return "cpu()"

    def __hash__(self):
        return hash("cpu")

    def __eq__(self, other):
        return isinstance(other, Device)

    def enabled(self):
        return True

    def randn(self, *shape, dtype="float32"):
        return numpy.random.randn(*shape).astype(dtype)

    def rand(self, *shape, dtype="float32"):
        return numpy.random.rand(*shape).astype(dtype)

    def one_hot(self, n, i, dtype="float32"):
        return numpy.eye(n, dtype=dtype)[numpy.asarray(i, dtype=numpy.int64)]

    def empty(self, shape, dtype="float32"):
        return numpy.empty(shape, dtype=dtype)

    def full(self, shape, fill_value, dtype="float32"):
        return numpy.full(shape, fill_value, dtype=dtype)


_CPU = Device()


def cpu():
    return _CPU


cpu_numpy = cpu


def cuda():
    return _DisabledDevice()


class _DisabledDevice(Device):
    name = "cuda"

    def __repr__(self):
        return "cuda()"

    def enabled(self):
        return False


def default_device():
    return _CPU


def all_devices():
    return [_CPU]


# --- convolution and pooling (the conv and pool ops; see backend_ndarray/conv.py) ------------
# The NumPy backend's reference kernels (ndarray_backend_numpy) run on flat views of the
# arrays; NumPy mode mixes dtypes as NumPy does, so the inputs meet in their common dtype.
from .backend_ndarray import ndarray_backend_numpy as _reference  # noqa: E402


class _Flat:
    """A NumPy array seen as a backend ``Array`` (``.array`` is the flat buffer)."""

    def __init__(self, x):
        self.array = x.reshape(-1)
        self.size = self.array.size


def _reference_kernel(name, inputs, out_shape, geometry):
    dtype = numpy.result_type(*inputs)
    out = numpy.zeros(out_shape, dtype=dtype)
    if out.size and all(x.size for x in inputs):
        flats = [_Flat(numpy.ascontiguousarray(x, dtype=dtype)) for x in inputs]
        getattr(_reference, name)(*flats, _Flat(out), list(geometry.backend))
    return out


def conv_forward(a, b, geometry):
    """The conv of ``a`` (N, *spatial, C_in) with weight ``b``: ``geometry.out_shape``."""
    return _reference_kernel("conv_forward", (a, b), geometry.out_shape, geometry)


def conv_backward_weight(a, grad, geometry):
    """The weight gradient of the conv of ``a`` given ``grad`` (its output's gradient)."""
    return _reference_kernel("conv_backward_weight", (a, grad), geometry.weight_shape, geometry)


def maxpool_forward(a, geometry):
    """The max over each pooling window of ``a``: ``geometry.out_shape``."""
    return _reference_kernel("maxpool_forward", (a,), geometry.out_shape, geometry)


def maxpool_backward(a, grad, geometry):
    """``grad`` routed to the first arg-max of each window of ``a``: ``a``'s shape."""
    return _reference_kernel("maxpool_backward", (a, grad), a.shape, geometry)


def flip_swap_kernel(b, groups):
    """``(*K, Cg, G*Co) -> (*K, Co, G*Cg)``: ``out[K-1-k, j, g*Cg + c] = b[k, c, g*Co + j]``."""
    *kernel, cg, cout = b.shape
    nd, co = len(kernel), cout // groups
    x = numpy.ascontiguousarray(b).reshape((*kernel, cg, groups, co))
    x = x[(slice(None, None, -1),) * nd].transpose((*range(nd), nd + 2, nd + 1, nd))
    return numpy.ascontiguousarray(x).reshape((*kernel, co, groups * cg))
