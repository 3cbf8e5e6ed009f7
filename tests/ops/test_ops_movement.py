"""Tests of needle/ops/ops_movement.py: flip, dilate, undilate, pad and get_item."""

import numpy as np
import pytest
from tests.checks import check_grad, check_op, tensor

import needle as ndl


def randn(*shape):
    return np.asarray(np.random.randn(*shape))


@pytest.mark.parametrize("axes", [(0,), (1,), (0, 1), (2, 0), -1, None], ids=str)
def test_flip(axes, device):
    check_op(lambda a: ndl.flip(a, axes), lambda a: np.flip(a, axes), randn(2, 3, 4),
             device=device)


def test_flip_exact_values(device):
    out = ndl.flip(tensor(np.arange(6.0).reshape(2, 3), device), (1,))
    np.testing.assert_array_equal(out.numpy(), [[2, 1, 0], [5, 4, 3]])


def _np_dilate(a, axes, dilation):
    shape = list(a.shape)
    index = [slice(None)] * a.ndim
    for axis in axes:
        if axis < a.ndim:
            shape[axis] *= dilation + 1
            index[axis] = slice(None, None, dilation + 1)
    out = np.zeros(shape)
    out[tuple(index)] = a
    return out


DILATES = [((2, 3), (0,), 1), ((2, 3), (1,), 2), ((2, 3, 2), (0, 2), 1), ((2, 3), (0, 1), 0),
           ((2, 3), (1, 3), 1)]


@pytest.mark.parametrize("shape,axes,dilation", DILATES, ids=str)
def test_dilate(shape, axes, dilation, device):
    check_op(lambda a: ndl.dilate(a, axes, dilation), lambda a: _np_dilate(a, axes, dilation),
             randn(*shape), device=device)


def test_dilate_appends_zeros_after_the_last_element(device):
    out = ndl.dilate(tensor(np.array([[1.0, 2.0]]), device), (1,), 2)
    np.testing.assert_array_equal(out.numpy(), [[1, 0, 0, 2, 0, 0]])


UNDILATES = [((4, 3), (0,), 1), ((2, 6), (1,), 2), ((4, 3, 4), (0, 2), 1), ((5, 3), (0,), 1),
             ((2, 3), (0, 1), 0), ((4, 2), (0, 5), 1)]


@pytest.mark.parametrize("shape,axes,dilation", UNDILATES, ids=str)
def test_undilate(shape, axes, dilation, device):
    def ref(a):
        index = [slice(None)] * a.ndim
        for axis in axes:
            if axis < a.ndim:
                index[axis] = slice(None, None, dilation + 1)
        return a[tuple(index)]

    check_op(lambda a: ndl.undilate(a, axes, dilation), ref, randn(*shape), device=device)


def test_undilate_inverts_dilate(device):
    x = tensor(randn(3, 2, 4), device)
    out = ndl.undilate(ndl.dilate(x, (0, 2), 2), (0, 2), 2)
    np.testing.assert_array_equal(out.numpy(), x.numpy())


PADS = [((2, 3), ((1, 0), (0, 2))), ((2, 3, 2), ((0, 0), (1, 1), (2, 0))), ((3,), ((0, 0),))]


@pytest.mark.parametrize("shape,axes", PADS, ids=str)
def test_pad(shape, axes, device):
    check_op(lambda a: ndl.pad(a, axes), lambda a: np.pad(a, axes), randn(*shape),
             device=device)


INDICES = [
    (1,), (-1,), (slice(1, 3),), (slice(None, None, -1),), (slice(None, None, 2), 1),
    (1, slice(0, 3, 2), -2), (Ellipsis, 0), (slice(None), Ellipsis, slice(1, None)),
    (0, 1, 2), (slice(2, 0, -1), slice(None), slice(None, None, -2)), (np.int64(1), 2),
]


@pytest.mark.parametrize("index", INDICES, ids=str)
def test_get_item(index, device):
    check_op(lambda a: a[index], lambda a: a[index], randn(3, 4, 5), device=device)


def test_get_item_grad_of_grad(device):
    # The gradient of get_item is a scatter into zeros; differentiate that once more.
    def fn(a):
        x = tensor(np.ones((3, 4)), device, str(a.dtype), requires_grad=True)
        (x[1:, ::-2] * a).sum().backward(create_graph=True)
        return ndl.exp(x.grad)  # x.grad = a scattered into zeros

    check_grad(fn, randn(2, 2), device=device)


def test_bad_index_raises(device):
    a = tensor(randn(2, 3), device)
    with pytest.raises(IndexError, match="out of range"):
        a[2]
    with pytest.raises(IndexError, match="too many"):
        a[0, 0, 0]
    with pytest.raises(TypeError, match="get_item"):
        a[np.array([0, 1])]


def test_invalid_arguments_raise(device):
    a = tensor(randn(2, 3), device)
    with pytest.raises(ValueError, match="flip"):
        ndl.flip(a, (3,))
    with pytest.raises(ValueError, match="pad"):
        ndl.pad(a, ((1, 1),))
    with pytest.raises(ValueError, match="pad"):
        ndl.pad(a, ((1, -1), (0, 0)))
    with pytest.raises(ValueError, match="dilation"):
        ndl.dilate(a, (0,), -1)
