"""Tests of needle/ops/ops_mathematic.py: every op's forward vs NumPy and gradients by gradcheck."""

import numpy as np
import pytest
from tests.checks import check_forward, check_grad, check_op, supports, tensor

import needle as ndl


def randn(*shape):
    return np.asarray(np.random.randn(*shape))


def positive(*shape):
    return np.asarray(np.random.rand(*shape) + 0.5)


def away_from_zero(*shape):
    # Kinks (relu at 0, ties of maximum) must be farther than eps from every input.
    x = np.random.randn(*shape)
    return x + 0.1 * np.sign(x)


# name: (needle fn, numpy reference, input factory)
UNARY = {
    "negate": (ndl.negate, np.negative, lambda: randn(3, 4)),
    "log": (ndl.log, np.log, lambda: positive(3, 4)),
    "exp": (ndl.exp, np.exp, lambda: randn(3, 4)),
    "relu": (ndl.relu, lambda a: np.maximum(a, 0), lambda: away_from_zero(3, 4)),
    "tanh": (ndl.tanh, np.tanh, lambda: randn(3, 4)),
    "sigmoid": (ndl.sigmoid, lambda a: 1 / (1 + np.exp(-a)), lambda: randn(3, 4)),
    "sqrt": (ndl.sqrt, np.sqrt, lambda: positive(3, 4)),
    "neg_operator": (lambda a: -a, np.negative, lambda: randn(2, 3)),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary(name, device):
    fn, ref, make = UNARY[name]
    check_op(fn, ref, make(), device=device)


def test_unary_on_3d(device):
    check_op(lambda a: ndl.tanh(ndl.exp(a)), lambda a: np.tanh(np.exp(a)), randn(2, 3, 2),
             device=device)


BINARY = {
    "add": (ndl.add, np.add, randn, randn),
    "multiply": (ndl.multiply, np.multiply, randn, randn),
    "divide": (ndl.divide, np.divide, randn, positive),
    "power": (ndl.power, np.power, positive, randn),
    "maximum": (ndl.maximum, np.maximum, randn, randn),
    "sub_operator": (lambda a, b: a - b, np.subtract, randn, randn),
}
SHAPES = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((), (2, 3))]


@pytest.mark.parametrize("shapes", SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary(name, shapes, device):
    fn, ref, make_a, make_b = BINARY[name]
    a, b = make_a(*shapes[0]), make_b(*shapes[1])
    check_op(fn, ref, a, b, device=device)


def test_binary_gradient_to_one_input_only(device):
    a, b = randn(3, 4), positive(1, 4)
    check_grad(ndl.divide, a, b, device=device, requires_grad=[False, True])
    check_grad(ndl.power, positive(3, 4), b, device=device, requires_grad=[True, False])


def test_maximum_ties_split_the_gradient(device):
    a = tensor(np.ones((2, 3)), device)
    b = tensor(np.ones((2, 3)), device)
    ndl.maximum(a, b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), 0.5)
    np.testing.assert_allclose(b.grad.numpy(), 0.5)


SCALARS = [
    ("add_scalar", lambda a: ndl.add_scalar(a, scalar=1.5), lambda a: a + 1.5),
    ("add_operator", lambda a: a + 2, lambda a: a + 2),
    ("radd_operator", lambda a: 2 + a, lambda a: a + 2),
    ("sub_scalar", lambda a: a - 3, lambda a: a - 3),
    ("rsub_scalar", lambda a: 3 - a, lambda a: 3 - a),
    ("mul_scalar", lambda a: ndl.mul_scalar(a, scalar=-2.5), lambda a: a * -2.5),
    ("rmul_operator", lambda a: 3 * a, lambda a: a * 3),
    ("divide_scalar", lambda a: ndl.divide_scalar(a, scalar=4.0), lambda a: a / 4.0),
    ("divide_scalar_1_elem_array", lambda a: ndl.divide_scalar(a, scalar=np.array([2.5])),
     lambda a: a / 2.5),
    ("truediv_operator", lambda a: a / 5, lambda a: a / 5),
    ("rtruediv_operator", lambda a: 2 / a, lambda a: 2 / a),
    ("power_0", lambda a: ndl.power_scalar(a, scalar=0), lambda a: a**0),
    ("power_1", lambda a: ndl.power_scalar(a, scalar=1), lambda a: a**1),
    ("power_2", lambda a: ndl.power_scalar(a, scalar=2), lambda a: a**2),
    ("power_3_numpy_int", lambda a: ndl.power_scalar(a, scalar=np.int64(3)), lambda a: a**3),
    ("power_neg1", lambda a: ndl.power_scalar(a, scalar=-1), lambda a: a**-1.0),
    ("power_half", lambda a: a**0.5, lambda a: a**0.5),
]


@pytest.mark.parametrize("name,fn,ref", SCALARS, ids=[s[0] for s in SCALARS])
def test_scalar_ops(name, fn, ref, device):
    check_op(fn, ref, positive(3, 4), device=device)


def test_scalar_ops_build_the_course_graph():
    a, b = ndl.Tensor([1.0]), ndl.Tensor([2.0])
    diff = a - b
    assert isinstance(diff.op, ndl.ops.EWiseAdd) and isinstance(diff.inputs[1].op, ndl.ops.Negate)
    assert isinstance((a - 3).op, ndl.ops.AddScalar) and (a - 3).op.scalar == -3
    assert isinstance((3 * a).op, ndl.ops.MulScalar)
    assert isinstance((a / 5).op, ndl.ops.DivScalar)
    assert isinstance((a**b).op, ndl.ops.EWisePow)
    assert isinstance((a**2).op, ndl.ops.PowerScalar)


TRANSPOSES = [((3, 4), None), ((2, 3, 4), None), ((2, 3, 4), (0, 2)), ((2, 3, 4), (1, 0)),
              ((2, 3, 4, 5), (-1, -3))]


@pytest.mark.parametrize("shape,axes", TRANSPOSES, ids=str)
def test_transpose_swaps_two_axes(shape, axes, device):
    i, j = (-2, -1) if axes is None else axes
    check_op(lambda a: ndl.transpose(a, axes), lambda a: np.swapaxes(a, i, j), randn(*shape),
             device=device)


def test_transpose_method_default(device):
    check_op(lambda a: a.transpose(), lambda a: np.swapaxes(a, -1, -2), randn(2, 3, 4),
             device=device)


@pytest.mark.parametrize("axes", [(0, 1, 2), (2, 0, 1), (1, 2, 0), (-1, 0, 1)], ids=str)
def test_permute(axes, device):
    check_op(lambda a: ndl.permute(a, axes), lambda a: np.transpose(a, axes), randn(2, 3, 4),
             device=device)


RESHAPES = [((3, 4), (4, 3)), ((3, 4), (12,)), ((2, 3, 4), (6, -1)), ((6,), (1, 2, 1, 3)),
            ((1,), ())]


@pytest.mark.parametrize("shape,new", RESHAPES, ids=str)
def test_reshape(shape, new, device):
    check_op(lambda a: ndl.reshape(a, new), lambda a: np.reshape(a, new), randn(*shape),
             device=device)


def test_reshape_of_transposed_view(device):
    fn = lambda a: ndl.reshape(ndl.transpose(a), (12,))  # noqa: E731
    check_op(fn, lambda a: np.swapaxes(a, 0, 1).reshape(12), randn(3, 4), device=device)


BROADCASTS = [((3, 1), (3, 4)), ((1, 4), (3, 4)), ((4,), (2, 3, 4)), ((), (2, 3)),
              ((3, 1, 2), (2, 3, 4, 2)), ((2, 3), (2, 3))]


@pytest.mark.parametrize("shape,new", BROADCASTS, ids=str)
def test_broadcast_to(shape, new, device):
    check_op(lambda a: ndl.broadcast_to(a, new), lambda a: np.broadcast_to(a, new),
             randn(*shape), device=device)


SUMS = [((3, 4), None), ((3, 4), 0), ((3, 4), 1), ((2, 3, 4), (0, 2)), ((2, 3, 4), -1),
        ((2, 3, 4), (2, 0, 1)), ((5,), None), ((2, 3), ())]


@pytest.mark.parametrize("shape,axes", SUMS, ids=str)
def test_summation(shape, axes, device):
    check_op(lambda a: ndl.summation(a, axes=axes), lambda a: np.sum(a, axis=axes),
             randn(*shape), device=device)


@pytest.mark.parametrize("axes", [None, 1, (0, 2)], ids=str)
def test_summation_keepdims_and_mean(axes, device):
    x = randn(2, 3, 4)
    check_op(lambda a: ndl.summation(a, axes, keepdims=True),
             lambda a: np.sum(a, axis=axes, keepdims=True), x, device=device)
    check_op(lambda a: a.sum(axes, keepdims=True),
             lambda a: np.sum(a, axis=axes, keepdims=True), x, device=device)
    check_op(lambda a: ndl.mean(a, axes), lambda a: np.mean(a, axis=axes), x, device=device)


MATMULS = [((3, 4), (4, 5)), ((1, 4), (4, 1)), ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)),
           ((2, 3, 4), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((3, 2, 3), (1, 3, 2))]


@pytest.mark.parametrize("shape_a,shape_b", MATMULS, ids=str)
def test_matmul(shape_a, shape_b, device):
    check_op(ndl.matmul, np.matmul, randn(*shape_a), randn(*shape_b), device=device,
             rtol=1e-5, atol=1e-5)
    check_op(lambda a, b: a @ b, np.matmul, randn(*shape_a), randn(*shape_b), device=device,
             grad=False)


def test_matmul_gradient_to_one_input_only(device):
    check_grad(ndl.matmul, randn(2, 3, 4), randn(4, 5), device=device,
               requires_grad=[False, True])
    check_grad(ndl.matmul, randn(3, 4), randn(2, 4, 5), device=device,
               requires_grad=[True, False])


def test_composite_expression(device):
    def fn(x, w, b):
        return ndl.logsumexp(ndl.tanh(x @ w + ndl.broadcast_to(b, (4, 3))), axes=1)

    def ref(x, w, b):
        z = np.tanh(x @ w + b)
        return np.log(np.exp(z).sum(axis=1))

    check_op(fn, ref, randn(4, 5), randn(5, 3), randn(1, 3), device=device)


# --- bad input ---------------------------------------------------------------------------
def test_shape_mismatch_raises(device):
    a, b = tensor(randn(2, 3), device), tensor(randn(3, 2), device)
    with pytest.raises(ValueError, match="broadcast"):
        ndl.add(a, b)
    with pytest.raises(ValueError):
        ndl.matmul(a, tensor(randn(2, 3), device))
    with pytest.raises(ValueError):
        ndl.reshape(a, (4, 2))
    with pytest.raises(ValueError):
        ndl.broadcast_to(a, (3, 3))


def test_invalid_axes_raise(device):
    a = tensor(randn(2, 3), device)
    with pytest.raises(ValueError, match="summation: axis 2"):
        ndl.summation(a, axes=2)
    with pytest.raises(ValueError, match="repeated"):
        ndl.summation(a, axes=(0, -2))
    with pytest.raises(ValueError, match="transpose"):
        ndl.transpose(a, (0, 2))
    with pytest.raises(ValueError, match="transpose"):
        ndl.transpose(a, (0, 1, 2))
    with pytest.raises(ValueError, match="permute"):
        ndl.permute(a, (0, 0))


def test_bad_scalar_raises(device):
    a = tensor(randn(2, 3), device)
    with pytest.raises(TypeError, match="scalar"):
        ndl.add_scalar(a, "x")


def test_mixing_devices_and_dtypes_raises():
    if ndl.BACKEND != "nd":
        pytest.skip("NumPy mode has a single device and follows NumPy's type promotion")
    devices = ndl.all_devices()
    a = tensor(randn(2, 3), devices[0], "float32")
    if supports(devices[0], "float64"):
        with pytest.raises(ValueError, match="dtype"):
            ndl.add(a, tensor(randn(2, 3), devices[0], "float64"))
    if len(devices) < 2:
        pytest.skip("only one device enabled")
    with pytest.raises(ValueError, match="device"):
        ndl.multiply(a, tensor(randn(2, 3), devices[1], "float32"))


def test_forward_helper_catches_a_wrong_op(device):
    # The shared helper must fail on a wrong forward and on a wrong gradient.
    with pytest.raises(AssertionError):
        check_forward(ndl.exp, np.expm1, randn(2, 2), device=device)

    class Square(ndl.autograd.TensorOp):
        def compute(self, a):
            return a * a

        def gradient(self, out_grad, node):
            return out_grad * node.inputs[0]  # missing the factor 2

    with pytest.raises(RuntimeError, match="input 0"):
        check_grad(lambda a: Square()(a), randn(2, 2), device=device)


@pytest.mark.parametrize("a_shape, bias_shape", [((5, 3), (3,)), ((5, 3), (1, 3)),
                                                 ((2, 4, 3, 6), (6,))], ids=str)
def test_bias_add(a_shape, bias_shape, device):
    check_op(ndl.ops.bias_add, lambda a, b: a + b.reshape(-1), randn(*a_shape), randn(*bias_shape),
             device=device)


def test_bias_add_rejects_a_bias_of_another_length(device):
    with pytest.raises(ValueError, match="bias_add"):
        ndl.ops.bias_add(tensor(randn(4, 3), device), tensor(randn(4), device))


def test_bias_add_with_a_bias_inside_a_larger_buffer(device):
    # An optimizer's flat copy hands parameters back as views at an offset.
    big, a = randn(9), randn(4, 3)
    bias = tensor(big, device)[2:5]
    out = ndl.ops.bias_add(tensor(a, device), bias)
    np.testing.assert_allclose(out.numpy(), a + big[2:5], rtol=1e-6, atol=1e-6)


def test_relu_grad_op(device):
    # g · 1[a > 0] in one kernel pass; its gradient in g is the same mask (none in a).
    a = away_from_zero(4, 5)
    a[0, :2] = [0.0, np.nan]  # at 0 and for NaN the gradient is 0
    check_forward(lambda g: ndl.ops.ReLUGrad()(g, tensor(a, device, str(g.dtype), False)),
                  lambda g: np.where(a > 0, g, 0.0), randn(4, 5), device=device)
    b = away_from_zero(4, 5)
    check_grad(lambda g: ndl.ops.ReLUGrad()(g, tensor(b, device, str(g.dtype), False)),
               randn(4, 5), device=device)


def test_relu_gradient_is_one_relu_grad_node(device):
    x = tensor(away_from_zero(3, 4), device)
    ndl.relu(x).backward(tensor(randn(3, 4), device, requires_grad=False), create_graph=True)
    assert isinstance(x.grad.op, ndl.ops.ReLUGrad)
