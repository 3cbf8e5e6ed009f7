"""Tests of needle/autograd.py: topological order, backward semantics, no_grad, tensors."""

import gc

import numpy as np
import pytest
from tests.checks import check_grad, supports, tensor

import needle as ndl
from needle import autograd, ops


def test_topo_sort_order_is_the_courses():
    a = ndl.Tensor(np.array([[0.5, 1.5]]))
    b = ndl.Tensor(np.array([[2.0, -1.0]]))
    c = 3 * a * a + 4 * b * a - a
    order = autograd.find_topo_sort([c])
    assert len(order) == 9
    expected_ops = [None, ops.MulScalar, ops.EWiseMul, None, ops.MulScalar, ops.EWiseMul,
                    ops.EWiseAdd, ops.Negate, ops.EWiseAdd]
    assert [None if n.op is None else type(n.op) for n in order] == expected_ops
    assert order[0] is a and order[3] is b and order[8] is c
    av, bv = a.numpy(), b.numpy()
    values = [av, 3 * av, 3 * av * av, bv, 4 * bv, 4 * bv * av, 3 * av * av + 4 * bv * av, -av,
              3 * av * av + 4 * bv * av - av]
    for node, value in zip(order, values):
        np.testing.assert_allclose(node.numpy(), value, rtol=1e-6)


def test_topo_sort_visits_each_node_once_for_several_roots():
    a = ndl.Tensor([1.0])
    b = a * 2
    c = b + a
    order = autograd.find_topo_sort([c, b])
    assert order == [a, b, c]


def test_node_used_twice_accumulates(device):
    x = tensor(np.array([1.0, -2.0, 3.0]), device)
    y = x * x + x  # x feeds two ops, and one of them twice
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() + 1, rtol=1e-6)


def test_backward_default_out_grad_is_ones_for_non_scalar(device):
    x = tensor(np.random.randn(2, 3), device)
    (x * 3.0).backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full((2, 3), 3.0))


def test_backward_overwrites_grad(device):
    x = tensor(np.array([1.0, 2.0]), device)
    (x * x).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy())


def test_grad_of_grad_course_case():
    x2 = ndl.Tensor([6.0])
    x3 = ndl.Tensor([0.0])
    y = x2 * x2 + x2 * x3
    y.backward()
    grad_x2, grad_x3 = x2.grad, x3.grad
    np.testing.assert_allclose(grad_x2.numpy(), [12.0])  # 2 x2 + x3
    np.testing.assert_allclose(grad_x3.numpy(), [6.0])  # x2
    grad_x2.backward()
    np.testing.assert_allclose(x2.grad.numpy(), [2.0])
    np.testing.assert_allclose(x3.grad.numpy(), [1.0])


def _gradient_of(fn, device):
    """x -> d(sum(fn(x) * ones))/dx, as a differentiable Tensor."""

    def grad(*xs):
        out = fn(*xs)
        ones = tensor(np.ones(out.shape), device, str(out.dtype), requires_grad=False)
        out.backward(ones, create_graph=True)
        return tuple(x.grad for x in xs) if len(xs) > 1 else xs[0].grad

    return grad


@pytest.mark.parametrize("name", ["tanh", "matmul", "logsumexp", "sigmoid_div"])
def test_grad_of_grad_by_gradcheck(name, device):
    fns = {
        "tanh": (lambda x: ndl.tanh(x), [np.random.randn(3, 4)]),
        "matmul": (lambda a, b: ndl.tanh(a @ b), [np.random.randn(2, 3), np.random.randn(3, 2)]),
        "logsumexp": (lambda x: ndl.logsumexp(x, axes=(1,)), [np.random.randn(3, 4)]),
        "sigmoid_div": (lambda x: ndl.sigmoid(x) / (x * x + 1.0), [np.random.randn(5)]),
    }
    fn, arrays = fns[name]
    check_grad(_gradient_of(fn, device), *arrays, device=device)


def test_grad_of_grad_detects_a_constant_gradient(device):
    # Tanh with a gradient computed outside the graph: the second derivative comes out 0.
    class DetachedTanh(ops.Tanh):
        def gradient(self, out_grad, node):
            return out_grad * (1.0 - node * node).detach()

    with pytest.raises(RuntimeError, match="input 0"):
        check_grad(_gradient_of(lambda x: DetachedTanh()(x), device), np.random.randn(4),
                   device=device)


def test_no_grad_records_nothing(device):
    x = tensor(np.random.randn(2, 2), device)
    with ndl.no_grad():
        y = ndl.exp(x) @ x
    assert y.op is None and y.inputs == [] and not y.requires_grad
    z = ndl.exp(x)
    assert z.op is not None and z.requires_grad  # recording resumes after the block


def test_no_grad_restores_state_after_an_exception():
    with pytest.raises(KeyError):
        with ndl.no_grad():
            raise KeyError("inside no_grad")
    assert autograd.is_grad_enabled()


def test_backward_records_no_graph_by_default(device):
    x = tensor(np.random.randn(3), device)
    y = ndl.tanh(x).sum()
    y.backward()
    assert x.grad.op is None and not x.grad.requires_grad
    np.testing.assert_allclose(x.grad.numpy(), 1 - np.tanh(x.numpy()) ** 2, rtol=1e-5)
    y.backward(create_graph=True)
    assert x.grad.op is not None and x.grad.requires_grad  # grad of grad, as asked


def test_grad_of_a_graph_less_gradient_redoes_the_pass_with_a_graph(device):
    # The course's idiom: y.backward(); x.grad.backward() differentiates the gradient.
    x = tensor(np.random.randn(4), device)
    y = (ndl.tanh(x) * x).sum()
    y.backward()
    g = x.grad
    assert g.op is None
    g.backward()
    t = np.tanh(x.numpy().astype(np.float64))
    # d/dx sum(tanh(x) + x (1 - tanh(x)^2)) = 2 (1 - t^2) - 2 x t (1 - t^2)
    expected = 2 * (1 - t**2) - 2 * x.numpy() * t * (1 - t**2)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_grad_of_a_gradient_whose_output_is_gone_says_what_to_do(device):
    x = tensor(np.random.randn(3), device)
    ndl.tanh(x).sum().backward()
    with pytest.raises(RuntimeError, match="create_graph=True"):
        x.grad.backward()


def test_autograd_grad_sets_no_grad_field_and_stops_at_inputs(device):
    x = tensor(np.random.randn(3), device)
    h = ndl.exp(x)
    y = (h * h).sum()
    (gh,) = ndl.grad(y, [h])
    np.testing.assert_allclose(gh.numpy(), 2 * np.exp(x.numpy()), rtol=1e-5)
    assert getattr(x, "grad", None) is None and getattr(h, "grad", None) is None
    assert gh.requires_grad  # recorded as a graph outside no_grad
    assert ndl.grad(y, [tensor(np.ones(3), device)]) == [None]


def test_post_accumulate_grad_hook_sees_the_summed_gradient(device):
    x = tensor(np.array([1.0, -2.0, 3.0]), device)
    w = tensor(np.array([0.5, 0.5, 0.5]), device)
    seen = []

    def first(t):
        seen.append(("first", t is x, t.grad.numpy().copy()))

    def doubles(t):
        seen.append(("second", t is x, t.grad.numpy().copy()))
        t.grad = t.grad * 2.0  # a hook may replace the gradient

    hx = x.register_post_accumulate_grad_hook(first)
    x.register_post_accumulate_grad_hook(doubles)
    ((x * x + x) * w).sum().backward()  # x feeds two ops: one call, after the sum
    want = 0.5 * (2 * x.numpy() + 1)
    assert [(name, same) for name, same, _ in seen] == [("first", True), ("second", True)]
    for _, _, grad in seen:
        np.testing.assert_allclose(grad, want, rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), 2 * want, rtol=1e-6)

    seen.clear()
    hx.remove()
    hx.remove()  # a second remove does nothing
    (x * w).sum().backward()
    assert [name for name, _, _ in seen] == ["second"]
    ndl.grad((x * w).sum(), [x])  # sets no .grad: runs no hook
    assert [name for name, _, _ in seen] == ["second"]


def test_post_accumulate_grad_hook_only_on_leaves_that_need_a_gradient(device):
    x = tensor(np.ones(2), device)
    with pytest.raises(RuntimeError, match="leaf"):
        (x * 2.0).register_post_accumulate_grad_hook(lambda t: None)
    with pytest.raises(RuntimeError, match="requires_grad=False"):
        tensor(np.ones(2), device, requires_grad=False).register_post_accumulate_grad_hook(
            lambda t: None
        )


def test_requires_grad_propagation(device):
    a = tensor(np.ones(2), device, requires_grad=True)
    b = tensor(np.ones(2), device, requires_grad=False)
    assert (a + b).requires_grad
    c = b * b
    assert not c.requires_grad and c.op is None  # nothing upstream needs a gradient
    (a * b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), b.numpy())


def test_detach_and_data(device):
    x = tensor(np.random.randn(2, 3), device)
    y = x * 2.0
    d = y.detach()
    assert d.op is None and not d.requires_grad
    assert d.realize_cached_data() is y.realize_cached_data()  # shares storage
    data = x.data
    assert data.op is None and not data.requires_grad
    x.data = tensor(np.zeros((3,)), device)  # the shape may change through .data
    assert x.shape == (3,)
    other = "float64" if supports(device, "float64") else None
    if other is not None and ndl.BACKEND == "nd":
        with pytest.raises(TypeError, match="dtype"):
            x.data = tensor(np.zeros(3), device, other)


def test_tensor_counter_counts_live_values():
    gc.collect()
    before = autograd.TENSOR_COUNTER
    x = ndl.Tensor(np.ones(3))
    y = x + 1.0
    assert autograd.TENSOR_COUNTER == before + 2
    del x, y
    gc.collect()
    assert autograd.TENSOR_COUNTER == before


def test_tensor_counter_does_not_grow_with_detached_updates():
    w = ndl.Tensor(np.ones(4))
    gc.collect()
    start = autograd.TENSOR_COUNTER
    for _ in range(20):
        loss = (w * w).sum()
        loss.backward()
        w.data = w.data - w.grad.data * 0.1
    del loss
    gc.collect()
    assert autograd.TENSOR_COUNTER - start < 10


def test_gradient_as_tuple_always_returns_a_tuple():
    x = ndl.Tensor(np.ones(2))
    y = ndl.exp(x)
    assert isinstance(y.op.gradient_as_tuple(ndl.Tensor(np.ones(2)), y), tuple)
    z = x + x
    grads = z.op.gradient_as_tuple(ndl.Tensor(np.ones(2)), z)
    assert isinstance(grads, tuple) and len(grads) == 2


class _WrongShapeGradient(ops.Summation):
    def gradient(self, out_grad, node):
        return out_grad  # not broadcast back to the input's shape


class _WrongArityGradient(ops.EWiseMul):
    def gradient(self, out_grad, node):
        return out_grad


def test_engine_checks_gradient_shapes_and_arity(device):
    x = tensor(np.ones((3, 2)), device)
    with pytest.raises(RuntimeError, match=r"_WrongShapeGradient.gradient returned \(2,\) "
                                           r"for input 0 of shape \(3, 2\)"):
        _WrongShapeGradient(0)(x).sum().backward()
    with pytest.raises(RuntimeError, match="returned 1 gradients for 2 inputs"):
        _WrongArityGradient()(x, x).sum().backward()


def test_mixing_devices_or_dtypes_raises():
    if ndl.BACKEND != "nd":
        pytest.skip("NumPy mode has one device and NumPy's type promotion")
    devices = ndl.all_devices()
    a = tensor(np.ones(2), devices[0], "float32")
    if supports(devices[0], "float64"):
        with pytest.raises(ValueError, match="different dtypes"):
            a + tensor(np.ones(2), devices[0], "float64")
    if len(devices) < 2:
        pytest.skip("one device enabled")
    with pytest.raises(ValueError, match="different devices"):
        a * tensor(np.ones(2), devices[1], "float32")


def test_tensor_constructor_variants(device):
    base = tensor(np.arange(3.0), device)
    same = ndl.Tensor(base)
    assert same.realize_cached_data() is base.realize_cached_data()
    from_list = ndl.Tensor([1.0, 2.0], device=device)
    # The NDArray mode stores lists as float32; NumPy mode keeps NumPy's float64.
    expected = "float32" if ndl.BACKEND == "nd" else "float64"
    assert from_list.shape == (2,) and str(from_list.dtype) == expected
    assert ndl.Tensor(np.float64(3.0), device=device).shape == ()


def test_tensor_counter_unchanged_by_an_op_that_raises():
    a = ndl.Tensor(np.ones((2, 3)), requires_grad=False)
    b = ndl.Tensor(np.ones((4, 5)), requires_grad=False)
    gc.collect()
    before = autograd.TENSOR_COUNTER
    with pytest.raises(ValueError):
        a @ b
    gc.collect()
    assert autograd.TENSOR_COUNTER == before


def test_autograd_grad_is_differentiable(device):
    # |dL/dw|^2 through needle.grad, checked against central differences.
    x = np.random.randn(3, 2)

    def squared_gradient_norm(w):
        loss = ndl.tanh(tensor(x, device, str(w.dtype), requires_grad=False) @ w).sum()
        (gw,) = ndl.grad(loss, [w])
        return (gw * gw).sum()

    check_grad(squared_gradient_norm, np.random.randn(2, 4), device=device)


def test_a_callers_out_grad_stays_a_plain_tensor(device):
    x = tensor(np.random.randn(3), device)
    g = tensor(np.ones(3), device, requires_grad=False)
    ndl.exp(x).backward(g)
    g.backward()  # an ordinary constant: only its own .grad is set
    np.testing.assert_allclose(g.grad.numpy(), np.ones(3))
    np.testing.assert_allclose(x.grad.numpy(), np.exp(x.numpy()), rtol=1e-5)


def test_an_interrupt_during_tensor_work_is_never_lost():
    # Ctrl-C at a random moment of a loop that makes and frees tensors must surface as
    # KeyboardInterrupt every time: nothing that runs when a tensor is freed may swallow it.
    import signal
    import time

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    rng = np.random.default_rng(0)
    a = ndl.Tensor(np.ones((4, 4)))
    lost = 0
    try:
        for _ in range(300):
            try:
                # (set inside the try: on a loaded machine a 10 us timer can fire first)
                signal.setitimer(signal.ITIMER_REAL, rng.uniform(1e-5, 1e-3))
                start = time.perf_counter()
                while time.perf_counter() - start < 0.5:  # far longer than the timer
                    (a * a + a).sum()
                lost += 1
            except KeyboardInterrupt:
                pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert lost == 0
