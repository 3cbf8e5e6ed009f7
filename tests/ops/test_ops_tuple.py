"""Tests of needle/ops/ops_tuple.py: make_tuple, tuple_get_item, stack, split."""

import numpy as np
import pytest
from tests.checks import check_grad, check_op, tensor

import needle as ndl


@pytest.mark.parametrize("n,shape,axis", [(3, (2, 4), 0), (2, (2, 4), 1), (4, (2, 3), 2),
                                          (2, (3,), -1), (1, (2, 2), 0)], ids=str)
def test_stack(n, shape, axis, device):
    arrays = [np.random.randn(*shape) for _ in range(n)]
    check_op(lambda *xs: ndl.stack(list(xs), axis), lambda *xs: np.stack(xs, axis), *arrays,
             device=device)


def test_stack_exact_layout(device):
    # Values differ per input and position, so a transposed or shifted layout cannot pass.
    a = tensor(np.arange(6.0).reshape(2, 3), device)
    b = tensor(np.arange(6.0, 12.0).reshape(2, 3), device)
    out = ndl.stack([a, b], axis=1).numpy()
    np.testing.assert_array_equal(out[:, 0], a.numpy())
    np.testing.assert_array_equal(out[:, 1], b.numpy())
    assert out.shape == (2, 2, 3)


@pytest.mark.parametrize("shape,axis", [((3, 4), 0), ((3, 4), 1), ((2, 3, 4), 2),
                                        ((2, 3, 4), -2)], ids=str)
def test_split(shape, axis, device):
    def ref(a):
        return [np.take(a, k, axis=axis) for k in range(a.shape[axis])]

    check_op(lambda a: ndl.split(a, axis), ref, np.random.randn(*shape), device=device)


def test_split_parts_used_in_further_ops(device):
    def fn(a):
        parts = ndl.split(a, 1)
        return parts[0] * parts[2] + ndl.exp(parts[1])

    check_op(fn, lambda a: a[:, 0] * a[:, 2] + np.exp(a[:, 1]), np.random.randn(2, 3),
             device=device)


def test_stack_of_split_and_back(device):
    def fn(a):
        return ndl.stack(ndl.split(a, 0), 1)

    check_op(fn, lambda a: np.swapaxes(a, 0, 1), np.random.randn(3, 4), device=device)


def test_make_tuple_and_get_item_fold(device):
    a, b = tensor(np.random.randn(2), device), tensor(np.random.randn(3), device)
    tt = ndl.make_tuple(a, b)
    assert isinstance(tt, ndl.TensorTuple) and len(tt) == 2
    assert tt[0] is a and tt[1] is b  # folded: no TupleGetItem node
    not_folded = ndl.ops.TupleGetItem(1)(tt, fold_const=False)
    assert isinstance(not_folded.op, ndl.ops.TupleGetItem)
    np.testing.assert_array_equal(not_folded.numpy(), b.numpy())


def test_tuple_get_item_gradient(device):
    def fn(a, b):
        tt = ndl.make_tuple(a, b)
        return ndl.ops.TupleGetItem(1)(tt, fold_const=False) * 2.0

    check_grad(fn, np.random.randn(2), np.random.randn(3), device=device)
    a, b = tensor(np.random.randn(2), device), tensor(np.random.randn(3), device)
    fn(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.zeros(2))
    np.testing.assert_array_equal(b.grad.numpy(), np.full(3, 2.0))


def test_tensor_tuple_add_and_detach(device):
    a, b = tensor(np.ones(2), device), tensor(np.full(3, 2.0), device)
    tt = ndl.make_tuple(a, b) + ndl.make_tuple(b[:2], b)
    np.testing.assert_array_equal(tt[0].numpy(), [3.0, 3.0])
    np.testing.assert_array_equal(tt[1].numpy(), [4.0, 4.0, 4.0])
    assert not tt.detach().requires_grad


def test_fused_add_scalars(device):
    check_op(lambda a: ndl.fused_add_scalars(a, 1.0, -2.0), lambda a: (a + 1.0, a - 2.0),
             np.random.randn(2, 3), device=device)


def test_gradient_as_tuple_of_stack_is_a_tuple_tuple(device):
    a, b = tensor(np.random.randn(2), device), tensor(np.random.randn(2), device)
    out = ndl.stack([a, b], 0)
    grads = out.op.gradient_as_tuple(tensor(np.ones((2, 2)), device), out)
    assert len(grads) == 1 and isinstance(grads[0], ndl.TensorTuple)
    assert [g.shape for g in grads[0].tuple()] == [(2,), (2,)]


def test_bad_input_raises(device):
    a, b = tensor(np.random.randn(2, 3), device), tensor(np.random.randn(3, 2), device)
    with pytest.raises(ValueError, match="stack: tensor 1 has shape"):
        ndl.stack([a, b], 0)
    with pytest.raises(ValueError, match="stack: axis 3"):
        ndl.stack([a, a], 3)
    with pytest.raises(ValueError, match="split: axis 2"):
        ndl.split(a, 2)
    with pytest.raises(IndexError, match="tuple_get_item: index 2"):
        ndl.ops.TupleGetItem(2)(ndl.split(a, 0), fold_const=False)


def test_tensor_tuple_iterates_and_unpacks(device):
    parts = ndl.split(tensor(np.arange(6.0).reshape(3, 2), device), 0)
    first, second, third = parts  # iteration stops at the IndexError of index 3
    np.testing.assert_array_equal(third.numpy(), [4.0, 5.0])
    assert [p.shape for p in parts] == [(2,), (2,), (2,)]
