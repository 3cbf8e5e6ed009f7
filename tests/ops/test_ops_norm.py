"""Tests of needle.ops.ops_norm: the fused training-mode batch norm against the unfused
formula (forward, batch statistics, both gradient paths, grad of grad) on every device."""

import numpy as np
import pytest
from tests.checks import check_grad, grad_dtype, supports, tensor

import needle as ndl

SHAPES = [(6, 3), (4, 3, 2, 5), (2, 4, 3)]


def reference(x, w, b, eps):
    """The course's formula in float64 NumPy: statistics over every axis but 1."""
    axes = (0, *range(2, x.ndim))
    stat = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    mean = x.mean(axis=axes)
    var = ((x - mean.reshape(stat)) ** 2).mean(axis=axes)
    y = w.reshape(stat) * (x - mean.reshape(stat)) / np.sqrt(var.reshape(stat) + eps)
    return y + b.reshape(stat), mean, var


def unfused(x, w, b, eps):
    """The same formula from elementary needle ops (the gradient reference)."""
    axes = (0, *range(2, len(x.shape)))
    stat = (1, x.shape[1]) + (1,) * (len(x.shape) - 2)
    m = np.prod(x.shape) // x.shape[1]

    def spread(v):
        return v.reshape(stat).broadcast_to(x.shape)

    centered = x - spread(x.sum(axes) / m)
    var = (centered * centered).sum(axes) / m
    return centered * spread(w * (var + eps) ** -0.5) + spread(b)


def inputs(shape):
    x = np.random.randn(*shape) * 2 + 0.5
    w = np.random.randn(shape[1])
    b = np.random.randn(shape[1])
    return x, w, b


@pytest.mark.parametrize("shape", SHAPES)
def test_forward_and_statistics(shape, device, dtype):
    if not supports(device, dtype):
        pytest.skip(f"{device} has no {dtype}")
    x, w, b = inputs(shape)
    op = ndl.ops.BatchNormTrain(1e-5)
    y = op(tensor(x, device, dtype), tensor(w, device, dtype), tensor(b, device, dtype))
    expected, mean, var = reference(x, w, b, 1e-5)
    tol = 1e-10 if dtype == "float64" else 1e-5
    assert y.shape == shape and y.dtype == dtype
    np.testing.assert_allclose(y.numpy(), expected, rtol=tol, atol=tol)
    np.testing.assert_allclose(np.asarray(op.batch_mean.numpy() if hasattr(op.batch_mean, "numpy")
                                          else op.batch_mean), mean, rtol=tol, atol=tol)
    np.testing.assert_allclose(np.asarray(op.batch_var.numpy() if hasattr(op.batch_var, "numpy")
                                          else op.batch_var), var, rtol=tol, atol=tol)


def test_channels_last_input_keeps_its_layout(device):
    # A conv layer's output: channels-last memory seen as NCHW.  The result is laid out
    # the same way and equals the formula.
    x, w, b = inputs((3, 4, 2, 5))
    nhwc = tensor(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), device)
    xt = ndl.ops.permute(nhwc, (0, 3, 1, 2))
    y = ndl.ops.batch_norm(xt, tensor(w, device), tensor(b, device))
    np.testing.assert_allclose(y.numpy(), reference(x, w, b, 1e-5)[0], rtol=1e-5, atol=1e-5)
    data = y.realize_cached_data()
    if ndl.BACKEND == "nd":
        assert data.permute((0, 2, 3, 1)).is_compact()


@pytest.mark.parametrize("shape", SHAPES)
def test_gradient_matches_unfused(shape, device):
    # Both gradient paths (raw arrays without a graph, needle ops with one) against the
    # gradients of the unfused formula.
    dtype = grad_dtype(device)
    x, w, b = inputs(shape)
    g = np.random.randn(*shape)
    results = []
    for fn, create_graph in [(unfused, False), (ndl.ops.batch_norm, False),
                             (ndl.ops.batch_norm, True)]:
        args = [tensor(a, device, dtype) for a in (x, w, b)]
        fn(*args, 1e-5).backward(tensor(g, device, dtype, requires_grad=False),
                                 create_graph=create_graph)
        results.append([a.grad.numpy() for a in args])
    tol = 1e-9 if dtype == "float64" else 2e-4
    for got in results[1:]:
        for a, e in zip(got, results[0]):
            np.testing.assert_allclose(a, e, rtol=tol, atol=tol)


@pytest.mark.parametrize("shape", [(5, 2), (3, 2, 2, 2)])
def test_gradcheck(shape, device):
    check_grad(lambda x, w, b: ndl.ops.batch_norm(x, w, b, 1e-3), *inputs(shape), device=device)


def test_grad_of_grad(device):
    # The gradient built with create_graph is itself differentiable.
    dtype = grad_dtype(device)
    x, w, b = inputs((4, 3))
    g = tensor(np.random.randn(4, 3), device, dtype, requires_grad=False)

    def input_grad(x, w, b):
        y = ndl.ops.batch_norm(x, w, b, 1e-3)
        (y * g).sum().backward(create_graph=True)
        return x.grad + w.grad.reshape((1, 3)).broadcast_to((4, 3))

    # (b gets no second-order check: the inner backward leaves its .grad set.)
    check_grad(input_grad, x, w, b, device=device, requires_grad=[True, True, False])


def test_batchnorm_layers_use_one_node(device):
    bn = ndl.nn.BatchNorm2d(3, device=device)
    x = tensor(np.random.randn(2, 3, 4, 4), device)
    y = bn(x)
    assert isinstance(y.op, ndl.ops.BatchNormTrain)
    expected, mean, var = reference(x.numpy().astype(np.float64), np.ones(3), np.zeros(3), 1e-5)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * var, rtol=1e-5, atol=1e-6)


def channel_affine_reference(x, scale, shift):
    stat = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    return x * scale.reshape(stat) + shift.reshape(stat)


@pytest.mark.parametrize("shape", SHAPES)
def test_channel_affine_forward_and_gradient(shape, device):
    x, s, t = inputs(shape)
    check_grad(ndl.ops.channel_affine, x, s, t, device=device)
    out = ndl.ops.channel_affine(tensor(x, device), tensor(s, device), tensor(t, device))
    np.testing.assert_allclose(out.numpy(), channel_affine_reference(x, s, t), rtol=1e-5,
                               atol=1e-5)


def test_channel_affine_keeps_a_channels_last_layout(device):
    # A conv layer's output is a channels-last buffer seen as NCHW; the result keeps that.
    x = np.random.randn(2, 4, 3, 5)
    nhwc = tensor(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), device)
    seen_nchw = ndl.ops.permute(nhwc, (0, 3, 1, 2))
    s, t = np.random.randn(4), np.random.randn(4)
    out = ndl.ops.channel_affine(seen_nchw, tensor(s, device), tensor(t, device))
    np.testing.assert_allclose(out.numpy(), channel_affine_reference(x, s, t), rtol=1e-5,
                               atol=1e-5)
    if ndl.BACKEND == "nd":
        assert out.realize_cached_data().strides == seen_nchw.realize_cached_data().strides


def test_channel_affine_grad_of_grad(device):
    x, s, t = inputs((3, 2, 4))
    dtype = grad_dtype(device)
    g = tensor(np.random.randn(3, 2, 4), device, dtype, requires_grad=False)

    def input_and_scale_grad(x, s, t):
        (ndl.ops.channel_affine(x, s, t) * g * x).sum().backward(create_graph=True)
        return x.grad + s.grad.reshape((1, 2, 1)).broadcast_to((3, 2, 4))

    check_grad(input_and_scale_grad, x, s, t, device=device, requires_grad=[True, True, False])


def test_eval_batchnorm_is_one_affine_node_with_the_running_statistics(device):
    bn = ndl.nn.BatchNorm2d(3, device=device)
    bn.running_mean = tensor(np.array([0.5, -1.0, 2.0]), device, requires_grad=False)
    bn.running_var = tensor(np.array([4.0, 0.25, 1.0]), device, requires_grad=False)
    bn.weight = ndl.nn.Parameter(tensor(np.array([1.5, 2.0, -1.0]), device))
    bn.bias = ndl.nn.Parameter(tensor(np.array([0.1, 0.2, 0.3]), device))
    bn.eval()
    x = np.random.randn(2, 3, 4, 4)
    y = bn(tensor(x, device))
    assert isinstance(y.op, ndl.ops.ChannelAffine)
    stat = (1, 3, 1, 1)
    expected = (x - np.array([0.5, -1.0, 2.0]).reshape(stat)) / np.sqrt(
        np.array([4.0, 0.25, 1.0]).reshape(stat) + 1e-5
    ) * np.array([1.5, 2.0, -1.0]).reshape(stat) + np.array([0.1, 0.2, 0.3]).reshape(stat)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-5)
