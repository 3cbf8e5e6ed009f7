"""Tests of needle.nn.nn_pool: max/average pooling layers (1-D to 3-D) against the brute-force
reference, adaptive average pooling, channel shuffle, repr, errors, the geometry each pool
reports, and PyTorch's layers where installed."""

import math

import numpy as np
import pytest
from tests.checks import check_grad, grad_dtype, tensor
from tests.conv_reference import (
    TOL,
    compare_with_torch,
    conv_reference,
    max_pool_grad_reference,
    max_pool_reference,
    out_size,
)
from tests.conv_reference import to_channels_first as _cf
from tests.conv_reference import to_channels_last as _cl

import needle as ndl
import needle.nn as nn


@pytest.mark.parametrize(
    "cls, x_shape, args",
    [
        (nn.MaxPool2d, (2, 3, 6, 6), (2,)),
        (nn.MaxPool2d, (2, 2, 7, 5), (3, 2, 1)),
        (nn.MaxPool1d, (2, 2, 9), (3, 2, 1)),
        (nn.MaxPool3d, (1, 2, 4, 4, 5), ((2, 2, 3), 1, (1, 0, 1))),
    ],
)
def test_max_pool_layers(cls, x_shape, args, device):
    dtype = grad_dtype(device)
    x = np.random.default_rng(0).permutation(np.prod(x_shape)).reshape(x_shape) / 7.0
    X = tensor(x, device, dtype)
    layer = cls(*args)
    y = layer(X)
    k, s, p = (list(args) + [None, 0])[:3]
    np.testing.assert_allclose(y.numpy(), _cf(max_pool_reference(_cl(x), k, s, p)), **TOL[dtype])
    g = np.random.randn(*y.shape)
    y.backward(tensor(g, device, dtype, requires_grad=False))
    expected = _cf(max_pool_grad_reference(_cl(x), _cl(g), k, s, p))
    np.testing.assert_allclose(X.grad.numpy(), expected, **TOL[dtype])


@pytest.mark.parametrize("args", [(2,), (3, 2, 1), ((2, 3), (1, 2), (1, 0))])
def test_avg_pool2d(args, device):
    dtype = grad_dtype(device)
    x = np.random.randn(2, 3, 7, 6)
    y = nn.AvgPool2d(*args)(tensor(x, device, dtype))
    k, s, p = (list(args) + [None, 0])[:3]
    k2 = (k, k) if isinstance(k, int) else k
    s = k if s is None else s
    w = np.full((*k2, 1, 3), 1.0 / (k2[0] * k2[1]))
    np.testing.assert_allclose(y.numpy(), _cf(conv_reference(_cl(x), w, s, p, 1, 3)), **TOL[dtype])
    check_grad(lambda a: nn.AvgPool2d(*args)(a), np.random.randn(1, 2, 5, 5), device=device)


def _adaptive_reference(x, oh, ow):
    n, c, h, w = x.shape
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, h1 = (i * h) // oh, math.ceil((i + 1) * h / oh)
            w0, w1 = (j * w) // ow, math.ceil((j + 1) * w / ow)
            out[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return out


@pytest.mark.parametrize("size, expected_hw", [(1, (1, 1)), ((3, 2), (3, 2)), ((None, 4), (7, 4))])
def test_adaptive_avg_pool2d(size, expected_hw, device):
    dtype = grad_dtype(device)
    x = np.random.randn(2, 3, 7, 6)
    y = nn.AdaptiveAvgPool2d(size)(tensor(x, device, dtype))
    assert y.shape == (2, 3, *expected_hw)
    np.testing.assert_allclose(y.numpy(), _adaptive_reference(x, *expected_hw), **TOL[dtype])
    check_grad(
        lambda a: nn.AdaptiveAvgPool2d(size)(a),
        np.random.randn(1, 2, 7, 6),
        device=device,
        random_direction=True,
    )


def test_channel_shuffle(device):
    dtype = grad_dtype(device)
    x = np.random.randn(2, 6, 3, 2)
    y = nn.ChannelShuffle(3)(tensor(x, device, dtype))
    expected = x[:, [0, 2, 4, 1, 3, 5]]  # channel i*c + j -> j*g + i with g=3, c=2
    np.testing.assert_array_equal(y.numpy(), expected)
    check_grad(lambda a: nn.ChannelShuffle(2)(a), np.random.randn(1, 4, 2, 2), device=device)
    with pytest.raises(ValueError, match="groups=4 must divide channels=6"):
        nn.ChannelShuffle(4)(tensor(x, device, dtype))


def test_pool_layer_errors():
    with pytest.raises(ValueError, match="padding"):
        nn.MaxPool2d(2, padding=2)(ndl.Tensor(np.zeros((1, 1, 4, 4))))
    with pytest.raises(ValueError, match="spatial axes"):
        nn.MaxPool2d(2)(ndl.Tensor(np.zeros((1, 4, 4))))
    with pytest.raises(ValueError, match="output_size"):
        nn.AdaptiveAvgPool2d(0)


def test_pool_repr_shows_non_default_arguments_only():
    assert repr(nn.MaxPool2d(2)) == "MaxPool2d(kernel_size=2)"
    assert repr(nn.AvgPool2d(3, 2, 1)) == "AvgPool2d(kernel_size=3, stride=2, padding=1)"


@pytest.mark.parametrize(
    "layer, x_shape",
    [
        (nn.MaxPool2d(3, 2, 1), (2, 3, 9, 8)),
        (nn.MaxPool1d(2), (1, 2, 7)),
        (nn.AvgPool3d((2, 3, 2), (1, 2, 2), (1, 1, 0)), (1, 2, 4, 6, 5)),
    ],
)
def test_pool_layers_report_their_window(layer, x_shape):
    geom = layer.geometry(x_shape)
    assert geom.in_shape == (x_shape[0], *x_shape[2:], x_shape[1])
    assert (geom.kernel, geom.stride, geom.padding) == (
        layer.kernel_size,
        layer.stride,
        layer.padding,
    )
    assert geom.out_spatial == tuple(
        out_size(n, k, s, p, p)
        for n, k, s, p in zip(x_shape[2:], layer.kernel_size, layer.stride, layer.padding)
    )
    assert layer(ndl.Tensor(np.zeros(x_shape))).shape == (x_shape[0], x_shape[1], *geom.out_spatial)
    with pytest.raises(ValueError, match="spatial axes"):
        layer.geometry(x_shape[:-1])


@pytest.mark.parametrize(
    "size, hw, kernel, stride",
    [(1, (8, 6), (8, 6), (8, 6)), (2, (8, 6), (4, 3), (4, 3)), ((3, None), (7, 5), (3, 1), (2, 1))],
)
def test_adaptive_pool_reports_its_nearest_uniform_window(size, hw, kernel, stride):
    geom = nn.AdaptiveAvgPool2d(size).geometry((2, 3, *hw))
    assert (geom.kernel, geom.stride) == (kernel, stride)
    assert geom.out_shape == (
        2,
        *nn.AdaptiveAvgPool2d(size)(ndl.Tensor(np.zeros((2, 3, *hw)))).shape[2:],
        3,
    )


def test_pool_layers_against_torch(device):
    torch = pytest.importorskip("torch")
    dtype = grad_dtype(device)
    x = np.random.randn(2, 4, 9, 8)
    for ours, theirs in [
        (nn.MaxPool2d(3, 2, 1), torch.nn.MaxPool2d(3, 2, 1)),
        (nn.AvgPool2d(3, 2, 1), torch.nn.AvgPool2d(3, 2, 1)),
        (nn.AdaptiveAvgPool2d((4, 3)), torch.nn.AdaptiveAvgPool2d((4, 3))),
        (nn.ChannelShuffle(2), torch.nn.ChannelShuffle(2)),
    ]:
        compare_with_torch(ours, theirs, x, device, dtype)
