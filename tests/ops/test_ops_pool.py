"""Tests of needle.ops.ops_pool: boundary padding (every mode, both ways, grad of grad),
max pooling against a brute-force reference, average pooling, and the shape rule's errors."""

import numpy as np
import pytest
from tests.checks import check_grad, grad_dtype, tensor
from tests.conv_reference import TOL, conv_reference, max_pool_grad_reference, max_pool_reference

import needle as ndl


def _dtype(device):
    return grad_dtype(device)


# --- boundary padding ------------------------------------------------------------------------
NP_MODE = {"zeros": "constant", "circular": "wrap", "reflect": "reflect", "replicate": "edge"}


@pytest.mark.parametrize("mode", ["zeros", "circular", "reflect", "replicate"])
def test_pad_boundary(mode, device):
    dtype = _dtype(device)
    x = np.random.randn(2, 4, 5, 3)
    pads = ((0, 0), (2, 3), (3, 1), (0, 0))
    y = ndl.ops.pad_boundary(tensor(x, device, dtype), pads, mode)
    np.testing.assert_allclose(y.numpy(), np.pad(x, pads, mode=NP_MODE[mode]), **TOL[dtype])
    check_grad(
        lambda a: ndl.ops.pad_boundary(a, ((0, 0), (2, 1), (1, 2), (0, 0)), mode),
        np.random.randn(1, 3, 3, 2),
        device=device,
    )
    # grad of grad: the adjoint's gradient is the pad again
    check_grad(
        lambda a: ndl.ops.PadBoundaryAdjoint(((0, 0), (1, 2), (0, 0)), mode)(a),
        np.random.randn(1, 7, 2),
        device=device,
    )


def test_pad_boundary_errors():
    x = ndl.Tensor(np.zeros((1, 3, 3, 1)))
    with pytest.raises(ValueError, match="mode"):
        ndl.ops.pad_boundary(x, ((0, 0),) * 4, "mirror")
    with pytest.raises(ValueError, match="reflect padding"):
        ndl.ops.pad_boundary(x, ((0, 0), (3, 0), (0, 0), (0, 0)), "reflect")
    with pytest.raises(ValueError, match="circular padding"):
        ndl.ops.pad_boundary(x, ((0, 0), (0, 4), (0, 0), (0, 0)), "circular")
    with pytest.raises(ValueError, match="per axis"):
        ndl.ops.pad_boundary(x, ((1, 1),), "zeros")


# --- pooling ---------------------------------------------------------------------------------
POOL_CONFIGS = [
    ((2, 6, 6, 3), 2, None, 0),
    ((2, 7, 7, 2), 3, 2, 1),
    ((1, 5, 8, 2), (2, 3), (1, 2), (1, 1)),
    ((2, 9, 3), 3, 2, 1),
    ((1, 4, 5, 4, 2), 2, 1, 0),
]


@pytest.mark.parametrize("config", POOL_CONFIGS)
def test_max_pool(config, device):
    shape, k, s, p = config
    dtype = _dtype(device)
    x = np.random.default_rng(7).permutation(np.prod(shape)).reshape(shape) / 10.0  # no ties
    X = tensor(x, device, dtype)
    y = ndl.ops.max_pool(X, k, s, p)
    expected = max_pool_reference(x, k, s, p)
    np.testing.assert_allclose(y.numpy(), expected, **TOL[dtype])
    g = np.random.randn(*expected.shape)
    y.backward(tensor(g, device, dtype, requires_grad=False))
    np.testing.assert_allclose(X.grad.numpy(), max_pool_grad_reference(x, g, k, s, p), **TOL[dtype])


def test_max_pool_gradient_goes_to_the_first_argmax_on_ties(device):
    dtype = _dtype(device)
    X = tensor(np.ones((1, 2, 2, 1)), device, dtype)
    ndl.ops.max_pool(X, 2).backward()
    np.testing.assert_array_equal(X.grad.numpy().reshape(-1), [1, 0, 0, 0])


def test_max_pool_second_derivative_is_reported_missing(device):
    dtype = _dtype(device)
    X = tensor(np.random.randn(1, 4, 4, 1), device, dtype)
    G = tensor(np.ones((1, 2, 2, 1)), device, dtype)
    ndl.ops.max_pool(X, 2).backward(G, create_graph=True)
    with pytest.raises(NotImplementedError, match="max pooling"):
        X.grad.backward()


def test_avg_pool(device):
    dtype = _dtype(device)
    x = np.random.randn(2, 7, 6, 3)
    y = ndl.ops.avg_pool(tensor(x, device, dtype), 3, 2, 1)
    expected = conv_reference(x, np.full((3, 3, 1, 3), 1 / 9), 2, 1, 1, groups=3)
    np.testing.assert_allclose(y.numpy(), expected, **TOL[dtype])
    check_grad(lambda a: ndl.ops.avg_pool(a, 2), np.random.randn(1, 4, 4, 2), device=device)


def test_pool_errors():
    x = ndl.Tensor(np.zeros((1, 4, 4, 2)))
    with pytest.raises(ValueError, match="padding"):
        ndl.ops.max_pool(x, 2, padding=2)
    with pytest.raises(ValueError, match="kernel_size 5 exceeds"):
        ndl.ops.max_pool(x, 5)
    with pytest.raises(ValueError, match="stride"):
        ndl.ops.max_pool(x, 2, stride=0)
    with pytest.raises(ValueError, match="spatial axes"):
        ndl.ops.max_pool(ndl.Tensor(np.zeros((4, 2))), 2)
