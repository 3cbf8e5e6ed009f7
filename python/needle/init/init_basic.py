"""Tensor factories; random ones draw exactly one call from NumPy's global RNG (course order)."""

import numpy as np

from ..autograd import Tensor
from ..backend_selection import array_api, cpu, default_device


def _tensor(array, requires_grad):
    return Tensor.make_const(array, requires_grad=requires_grad)


def _device(device):
    # The course defaults to cpu(); fall back to the default device where it is not built.
    if device is None:
        return cpu() if cpu().enabled() else default_device()
    return device


def rand(*shape, low=0.0, high=1.0, device=None, dtype="float32", requires_grad=False):
    """Uniform in [low, high): one ``np.random.rand(*shape)`` draw."""
    device = _device(device)
    array = device.rand(*shape, dtype=dtype) * (high - low) + low
    return _tensor(array, requires_grad)


def randn(*shape, mean=0.0, std=1.0, device=None, dtype="float32", requires_grad=False):
    """Normal(mean, std²): one ``np.random.randn(*shape)`` draw."""
    device = _device(device)
    array = device.randn(*shape, dtype=dtype) * std + mean
    return _tensor(array, requires_grad)


def constant(*shape, c=1.0, device=None, dtype="float32", requires_grad=False):
    """Every element equal to ``c``."""
    device = _device(device)
    return _tensor(device.full(shape, c, dtype=dtype), requires_grad)


def ones(*shape, device=None, dtype="float32", requires_grad=False):
    return constant(*shape, c=1.0, device=device, dtype=dtype, requires_grad=requires_grad)


def zeros(*shape, device=None, dtype="float32", requires_grad=False):
    return constant(*shape, c=0.0, device=device, dtype=dtype, requires_grad=requires_grad)


def randb(*shape, p=0.5, device=None, dtype="bool", requires_grad=False):
    """Bernoulli(p) as 1/0: one ``np.random.rand(*shape)`` draw, kept where u <= p."""
    device = _device(device)
    if array_api is np:
        return _tensor(device.rand(*shape, dtype="float32") <= p, requires_grad)
    dtype = "float32" if dtype == "bool" else dtype
    return _tensor(device.rand(*shape, dtype=dtype) <= p, requires_grad)


def one_hot(n, i, device=None, dtype="float32", requires_grad=False):
    """Rows of the n×n identity picked by the integer labels ``i``: shape ``i.shape + (n,)``."""
    device = _device(device)
    labels = i.numpy() if isinstance(i, Tensor) else np.asarray(i)
    return _tensor(device.one_hot(n, labels.astype(np.int64), dtype=dtype), requires_grad)


def zeros_like(array, *, device=None, requires_grad=False):
    device = array.device if device is None else device
    return zeros(*array.shape, dtype=array.dtype, device=device, requires_grad=requires_grad)


def ones_like(array, *, device=None, requires_grad=False):
    device = array.device if device is None else device
    return ones(*array.shape, dtype=array.dtype, device=device, requires_grad=requires_grad)
