"""Convolution and pooling on NDArrays: the array API the conv and pool ops call.

``conv_forward``, ``conv_backward_weight``, ``maxpool_forward`` and ``maxpool_backward`` take
a geometry record (``needle.ops.geometry``: ``out_shape``, ``weight_shape`` and the packed
ints ``backend``) and run the device's kernel on packed buffers; an empty output gets zeros
without a kernel call.  ``flip_swap_kernel`` lays a conv weight out for the input gradient.
``needle.backend_numpy`` has the same functions for plain NumPy arrays.
"""

from .ndarray import NDArray

__all__ = [
    "conv_forward",
    "conv_backward_weight",
    "maxpool_forward",
    "maxpool_backward",
    "flip_swap_kernel",
]


def _zeros(shape, like):
    return like.device.full(shape, 0.0, like.dtype)


def conv_forward(a, b, geometry):
    """The conv of ``a`` (N, *spatial, C_in) with weight ``b``: ``geometry.out_shape``."""
    shape = geometry.out_shape
    if 0 in shape:
        return _zeros(shape, a)
    out = NDArray.make(shape, device=a.device, dtype=a.dtype)
    a.device.conv_forward(
        a.compact()._handle, b.compact()._handle, out._handle, list(geometry.backend)
    )
    return out


def conv_backward_weight(a, grad, geometry):
    """The weight gradient of the conv of ``a`` given ``grad`` (its output's gradient)."""
    shape = geometry.weight_shape
    if geometry.batch == 0:
        return _zeros(shape, a)
    out = NDArray.make(shape, device=a.device, dtype=a.dtype)
    a.device.conv_backward_weight(
        a.compact()._handle, grad.compact()._handle, out._handle, list(geometry.backend)
    )
    return out


def maxpool_forward(a, geometry):
    """The max over each pooling window of ``a``: ``geometry.out_shape``."""
    out = NDArray.make(geometry.out_shape, device=a.device, dtype=a.dtype)
    a.device.maxpool_forward(a.compact()._handle, out._handle, list(geometry.backend))
    return out


def maxpool_backward(a, grad, geometry):
    """``grad`` routed to the first arg-max of each window of ``a``: ``a``'s shape."""
    out = NDArray.make(a.shape, device=a.device, dtype=a.dtype)
    a.device.maxpool_backward(
        a.compact()._handle, grad.compact()._handle, out._handle, list(geometry.backend)
    )
    return out


def flip_swap_kernel(b, groups):
    """``(*K, Cg, G*Co) -> (*K, Co, G*Cg)``: ``out[K-1-k, j, g*Cg + c] = b[k, c, g*Co + j]``.

    One strided view (negative strides from the last tap) and one copy.
    """
    *kernel, cg, cout = b.shape
    nd, co = len(kernel), cout // groups
    b = b.compact()
    last = b[tuple(slice(k - 1, k) for k in kernel)]
    strides = (*(-s for s in b.strides[:nd]), 1, co, cout)
    view = last.as_strided((*kernel, co, groups, cg), strides)
    return view.compact().reshape((*kernel, co, groups * cg))
