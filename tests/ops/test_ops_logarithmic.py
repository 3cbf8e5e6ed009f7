"""Tests of needle/ops/ops_logarithmic.py: logsumexp, logsoftmax, softmax cross-entropy."""

import numpy as np
import pytest
from tests.checks import check_grad, check_op, tensor

import needle as ndl


def np_logsumexp(a, axes=None):
    m = np.max(a, axis=axes, keepdims=True)
    return np.log(np.sum(np.exp(a - m), axis=axes)) + np.squeeze(m, axis=axes)


def np_logsoftmax(a, axis=-1):
    m = np.max(a, axis=axis, keepdims=True)
    return a - m - np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True))


LSE = [((3, 4), None), ((3, 4), 1), ((3, 4), 0), ((2, 3, 4), (0, 2)), ((2, 3, 4), -1),
       ((5,), None), ((5,), 0), ((2, 3, 4), (0, 1, 2))]


@pytest.mark.parametrize("shape,axes", LSE, ids=str)
def test_logsumexp(shape, axes, device):
    x = np.random.randn(*shape) * 3
    check_op(lambda a: ndl.logsumexp(a, axes=axes), lambda a: np_logsumexp(a, axes), x,
             device=device)


@pytest.mark.parametrize("axes", [None, 0, (0, 2)], ids=str)
def test_logsumexp_keepdims(axes, device):
    def ref(a):
        return np.log(np.exp(a).sum(axis=axes, keepdims=True))

    check_op(lambda a: ndl.logsumexp(a, axes, keepdims=True), ref, np.random.randn(2, 3, 4),
             device=device)


def test_logsumexp_matches_naive_formula(device):
    x = np.random.randn(3, 4)
    check_op(lambda a: ndl.logsumexp(a, (1,)), lambda a: np.log(np.exp(a).sum(axis=1)), x,
             device=device)


def test_logsumexp_is_stable(device):
    x = np.array([[1e10, -1e10, 0.0], [5e3, 5e3, 5e3]])
    out = ndl.logsumexp(tensor(x, device), axes=1)
    np.testing.assert_allclose(out.numpy(), [1e10, 5e3 + np.log(3)], rtol=1e-6)
    x = tensor(x, device)
    ndl.logsumexp(x, axes=1).sum().backward()
    grad = x.grad.numpy()
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-3)


@pytest.mark.parametrize("shape,axis", [((3, 5), -1), ((3, 5), 1), ((2, 3, 4), 1)], ids=str)
def test_logsoftmax(shape, axis, device):
    x = np.random.randn(*shape) * 3
    check_op(lambda a: ndl.logsoftmax(a, axis), lambda a: np_logsoftmax(a, axis), x,
             device=device)


def test_logsoftmax_default_is_axis_1_of_2d(device):
    x = np.random.randn(4, 3)
    check_op(ndl.logsoftmax, lambda a: np_logsoftmax(a, 1), x, device=device)


def test_logsoftmax_is_stable(device):
    x = tensor(np.array([[1e10, -1e10], [0.0, 1.0]]), device)
    out = ndl.logsoftmax(x).numpy()
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[0], [0.0, -2e10], rtol=1e-6)


def test_logsumexp_grad_of_grad(device):
    # The gradient is softmax * g, itself built from ops: check its own gradient.
    def grad_of_lse(x):
        out = ndl.logsumexp(x, axes=1)
        ones = ndl.Tensor(np.ones(out.shape), device=device, dtype=str(x.dtype))
        out.backward(ones, create_graph=True)
        return x.grad

    check_grad(grad_of_lse, np.random.randn(3, 4), device=device)


def test_bad_axes_raise(device):
    a = tensor(np.random.randn(2, 3), device)
    with pytest.raises(ValueError, match="logsumexp: axis 2"):
        ndl.logsumexp(a, axes=2)
    with pytest.raises(ValueError, match="logsoftmax"):
        ndl.logsoftmax(a, 3)


def np_softmax_cross_entropy(z, y_one_hot):
    return np.mean(np_logsumexp(z, 1) - (z * y_one_hot).sum(axis=1))


def one_hot(labels, k):
    return np.eye(k)[labels]


def test_softmax_cross_entropy_forward_and_gradient(device):
    z = np.random.randn(6, 5) * 3
    y = one_hot(np.random.randint(0, 5, 6), 5)
    check_op(lambda a: ndl.ops.softmax_cross_entropy(a, tensor(y, device, str(a.dtype))),
             lambda a: np_softmax_cross_entropy(a, y), z, device=device)
    check_grad(lambda a: ndl.ops.softmax_cross_entropy(a, tensor(y, device, str(a.dtype))), z,
               device=device)


def test_softmax_cross_entropy_is_stable(device):
    z = np.array([[1e4, -1e4, 0.0], [0.0, 0.0, 0.0]])
    loss = ndl.ops.softmax_cross_entropy(tensor(z, device), tensor(one_hot([1, 2], 3), device))
    np.testing.assert_allclose(loss.numpy(), (2e4 + np.log(3)) / 2, rtol=1e-5)


def test_softmax_cross_entropy_grad_of_grad(device):
    y = one_hot(np.random.randint(0, 4, 3), 4)

    def logits_grad(z):
        loss = ndl.ops.softmax_cross_entropy(z * z, tensor(y, device, str(z.dtype)))
        (loss * 3.0).backward(create_graph=True)
        return z.grad

    check_grad(logits_grad, np.random.randn(3, 4), device=device)


def test_softmax_loss_layer_is_one_node(device):
    logits = tensor(np.random.randn(4, 3), device)
    labels = np.array([0, 2, 1, 2])
    loss = ndl.nn.SoftmaxLoss()(logits, tensor(labels, device, requires_grad=False))
    assert isinstance(loss.op, ndl.ops.SoftmaxCrossEntropy)
    np.testing.assert_allclose(loss.numpy(), np_softmax_cross_entropy(logits.numpy(),
                               one_hot(labels, 3)), rtol=1e-5)
