"""Tests of needle/testing.py: gradcheck passes right gradients and reports wrong ones."""

import numpy as np
import pytest

import needle as ndl
from needle.autograd import TensorOp
from needle.testing import GradcheckError, gradcheck


class _HalfSquareGrad(TensorOp):
    """x * x with a gradient that is half the true one."""

    def compute(self, a):
        return a * a

    def gradient(self, out_grad, node):
        return out_grad * node.inputs[0]


def _t(x, requires_grad=True):
    return ndl.Tensor(np.asarray(x, dtype=np.float64), dtype="float64",
                      requires_grad=requires_grad)


def test_passes_for_correct_gradients():
    x, w = _t(np.random.randn(3, 4)), _t(np.random.randn(4, 2))
    assert gradcheck(lambda x, w: ndl.tanh(x @ w), x, w) is True
    assert gradcheck(lambda x, w: ndl.tanh(x @ w), x, w, random_direction=True) is True


def test_reports_input_index_worst_element_and_values():
    x, y = _t(np.random.randn(2)), _t(np.random.randn(3, 2))
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda x, y: y * _HalfSquareGrad()(x), x, y)
    message = str(info.value)
    assert "input 0" in message and "shape (2,)" in message
    assert "worst at index" in message and "analytic" in message and "numeric" in message
    assert gradcheck(lambda x, y: y * _HalfSquareGrad()(x), x, y, raise_exception=False) is False


def test_random_direction_mode_detects_a_wrong_gradient():
    x = _t(np.random.randn(5) + 2.0)
    with pytest.raises(GradcheckError, match="directional derivative"):
        gradcheck(lambda x: _HalfSquareGrad()(x), x, random_direction=True)


def test_tuple_outputs_and_non_tensor_arguments():
    x = _t(np.random.randn(3, 2))
    assert gradcheck(lambda x, axis: ndl.split(x, axis), x, 1)
    assert gradcheck(lambda x: (ndl.exp(x), x * 2.0), x)
    with pytest.raises(GradcheckError):
        gradcheck(lambda x: (ndl.exp(x), _HalfSquareGrad()(x)), x)


def test_skips_inputs_that_need_no_gradient():
    x, c = _t(np.random.randn(3)), _t(np.random.randn(3), requires_grad=False)
    # The wrong gradient flows only to c, which is not checked.
    assert gradcheck(lambda x, c: x * _HalfSquareGrad()(c), x, c)


def test_does_not_touch_the_global_rng():
    x = _t(np.random.randn(3))
    np.random.seed(5)
    expected = np.random.rand()
    np.random.seed(5)
    gradcheck(ndl.exp, x)
    assert np.random.rand() == expected


def test_inputs_are_left_unchanged():
    values = np.random.randn(2, 3)
    x = _t(values)
    gradcheck(lambda x: ndl.logsumexp(x, 1), x)
    np.testing.assert_array_equal(x.numpy(), values)


def test_rejects_non_tensor_outputs():
    with pytest.raises(TypeError, match="must return a Tensor"):
        gradcheck(lambda x: x.numpy(), _t([1.0]))
