"""Property-based tests (hypothesis): random geometries and shapes against brute-force and NumPy
references.  Every call either gives the reference's answer or raises ValueError / TypeError /
IndexError naming what is wrong; nothing else (no other exception type, no crash).

Each test draws a modest number of examples so that the file stays a few seconds long; the
seeds are derandomized, so a failure reproduces.
"""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conv_reference import (
    conv_input_grad_reference,
    conv_reference,
    conv_transpose_reference,
    conv_weight_grad_reference,
    max_pool_grad_reference,
    max_pool_reference,
)

import needle as ndl
from needle.backend_ndarray import ndarray as nd

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
USER_ERRORS = (ValueError, TypeError, IndexError)
DEVICES = [d for d in (ndl.cpu(), ndl.cpu_numpy()) if d.enabled()] if ndl.BACKEND == "nd" else []

pytestmark = pytest.mark.skipif(ndl.BACKEND != "nd", reason="NDArray devices only")


def tensor(x, device, requires_grad=True):
    return ndl.Tensor(np.asarray(x), device=device, dtype="float64", requires_grad=requires_grad)


@st.composite
def conv_cases(draw, allow_invalid=False):
    """(x shape, w shape, stride, per-side padding, dilation, groups) of a 1/2/3-D conv."""
    nd_ = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 3))
    cin = groups * draw(st.integers(1, 2))
    cout = groups * draw(st.integers(1, 2))
    batch = draw(st.integers(0 if allow_invalid else 1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd_))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd_))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd_))
    pads = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(nd_))
    low = 1 if allow_invalid else 0
    sizes = []
    for k, d, (lo, hi) in zip(kernel, dilation, pads):
        extent = d * (k - 1) + 1
        sizes.append(draw(st.integers(max(low, extent - lo - hi, 1), extent + 4)))
    if allow_invalid and draw(st.booleans()):  # a kernel larger than the padded input
        sizes[0] = 1
        kernel = (3 + pads[0][0] + pads[0][1],) + kernel[1:]
    x_shape = (batch, *sizes, cin)
    w_shape = (*kernel, cin // groups, cout)
    return x_shape, w_shape, stride, pads, dilation, groups


@SETTINGS
@given(case=conv_cases(), seed=st.integers(0, 2**16))
def test_conv_forward_and_gradients_match_the_reference(case, seed):
    x_shape, w_shape, stride, pads, dilation, groups = case
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    expected = conv_reference(x, w, stride, pads, dilation, groups)
    g = rng.standard_normal(expected.shape)
    for device in DEVICES:
        X, W = tensor(x, device), tensor(w, device)
        y = ndl.conv(X, W, stride, pads, dilation, groups)
        np.testing.assert_allclose(y.numpy(), expected, rtol=1e-9, atol=1e-9)
        y.backward(tensor(g, device, requires_grad=False))
        np.testing.assert_allclose(
            X.grad.numpy(),
            conv_input_grad_reference(g, w, x_shape, stride, pads, dilation, groups),
            rtol=1e-9, atol=1e-9,
        )  # fmt: skip
        np.testing.assert_allclose(
            W.grad.numpy(),
            conv_weight_grad_reference(x, g, w_shape, stride, pads, dilation, groups),
            rtol=1e-9, atol=1e-9,
        )  # fmt: skip


@SETTINGS
@given(case=conv_cases(allow_invalid=True), seed=st.integers(0, 2**16))
def test_conv_gives_the_answer_or_a_user_error(case, seed):
    x_shape, w_shape, stride, pads, dilation, groups = case
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    padded = [s + lo + hi for s, (lo, hi) in zip(x_shape[1:-1], pads)]
    fits = all(d * (k - 1) + 1 <= p for k, d, p in zip(w_shape[:-2], dilation, padded))
    for device in DEVICES:
        try:
            y = ndl.conv(tensor(x, device), tensor(w, device), stride, pads, dilation, groups)
        except USER_ERRORS as exc:
            assert not fits and "conv" in str(exc)
            continue
        assert fits
        if x_shape[0]:
            np.testing.assert_allclose(
                y.numpy(), conv_reference(x, w, stride, pads, dilation, groups), atol=1e-9
            )
        else:
            assert y.shape[0] == 0


@SETTINGS
@given(
    nd_=st.integers(1, 3),
    data=st.data(),
)
def test_conv_transpose_matches_the_reference(nd_, data):
    groups = data.draw(st.integers(1, 2))
    cin, cout = groups * data.draw(st.integers(1, 2)), groups * data.draw(st.integers(1, 2))
    kernel = tuple(data.draw(st.integers(1, 3)) for _ in range(nd_))
    stride = tuple(data.draw(st.integers(1, 3)) for _ in range(nd_))
    dilation = tuple(data.draw(st.integers(1, 2)) for _ in range(nd_))
    padding = tuple(data.draw(st.integers(0, d * (k - 1))) for k, d in zip(kernel, dilation))
    extra = tuple(data.draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    sizes = tuple(data.draw(st.integers(1, 4)) for _ in range(nd_))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = rng.standard_normal((2, *sizes, cin))
    w = rng.standard_normal((*kernel, cout // groups, cin))
    out = [
        (n - 1) * s - 2 * p + d * (k - 1) + e + 1
        for n, s, p, d, k, e in zip(sizes, stride, padding, dilation, kernel, extra)
    ]
    for device in DEVICES:
        try:
            y = ndl.ops.conv_transpose(
                tensor(x, device), tensor(w, device), stride, padding, extra, dilation, groups
            )
        except USER_ERRORS:
            assert min(out) < 1
            continue
        expected = conv_transpose_reference(x, w, stride, padding, extra, dilation, groups)
        np.testing.assert_allclose(y.numpy(), expected, rtol=1e-9, atol=1e-9)


@SETTINGS
@given(nd_=st.integers(1, 3), data=st.data())
def test_max_pool_matches_the_reference(nd_, data):
    kernel = data.draw(st.integers(1, 3))
    stride = data.draw(st.integers(1, 3))
    padding = data.draw(st.integers(0, kernel // 2))
    sizes = tuple(data.draw(st.integers(max(1, kernel - 2 * padding), 6)) for _ in range(nd_))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = rng.permutation(math.prod(sizes) * 2 * 3).reshape(2, *sizes, 3).astype(np.float64)
    expected = max_pool_reference(x, kernel, stride, padding)
    g = rng.standard_normal(expected.shape)
    for device in DEVICES:
        X = tensor(x, device)
        y = ndl.ops.max_pool(X, kernel, stride, padding)
        np.testing.assert_array_equal(y.numpy(), expected)
        y.backward(tensor(g, device, requires_grad=False))
        np.testing.assert_allclose(
            X.grad.numpy(), max_pool_grad_reference(x, g, kernel, stride, padding), atol=1e-12
        )


# --- views, broadcasting and reductions of NDArray against NumPy -----------------------------
shapes = st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple)


@st.composite
def slices(draw, shape):
    """One index per axis: an int in range or a slice with any start/stop/step (not 0).

    (An int keeps its axis with length 1 in NDArray indexing, as in the course.)"""
    index = []
    for n in shape:
        if n and draw(st.booleans()):
            index.append(draw(st.integers(-n, n - 1)))
        else:
            bound = st.one_of(st.none(), st.integers(-n - 2, n + 2))
            step = draw(st.one_of(st.none(), st.integers(-3, 3).filter(bool)))
            index.append(slice(draw(bound), draw(bound), step))
    return tuple(index)


@SETTINGS
@given(shape=shapes, data=st.data())
def test_slicing_and_permuting_views_match_numpy(shape, data):
    a = np.arange(math.prod(shape), dtype=np.float32).reshape(shape)
    index = data.draw(slices(shape))
    axes = data.draw(st.permutations(range(len(shape)))) if shape else ()
    for device in DEVICES:
        x = nd.array(a, device=device)
        view = x[index]
        expected = a[
            tuple(
                slice(i % n, i % n + 1) if isinstance(i, int) else i for i, n in zip(index, shape)
            )
        ]
        np.testing.assert_array_equal(view.numpy(), expected)
        np.testing.assert_array_equal(x.permute(tuple(axes)).numpy(), a.transpose(axes))
        flat = view.compact().reshape((view.size,))
        np.testing.assert_array_equal(flat.numpy(), expected.reshape(-1))


@SETTINGS
@given(shape=shapes, data=st.data())
def test_broadcasting_and_reductions_match_numpy(shape, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    a = rng.standard_normal(shape).astype(np.float32)
    # b: the same rank, some axes of length 1, or fewer leading axes
    drop = data.draw(st.integers(0, len(shape)))
    b_shape = tuple(1 if data.draw(st.booleans()) else n for n in shape[drop:])
    b = rng.standard_normal(b_shape).astype(np.float32)
    axes = (
        tuple(sorted(data.draw(st.sets(st.integers(0, max(len(shape) - 1, 0)))))) if shape else ()
    )
    for device in DEVICES:
        x, y = nd.array(a, device=device), nd.array(b, device=device)
        np.testing.assert_allclose((x + y).numpy(), a + b, rtol=1e-6)
        np.testing.assert_allclose((x * y).numpy(), a * b, rtol=1e-6)
        if axes and all(shape[i] for i in axes):
            np.testing.assert_allclose(
                x.sum(axis=axes, keepdims=True).numpy(), a.sum(axis=axes, keepdims=True),
                rtol=1e-5, atol=1e-5,
            )  # fmt: skip
            np.testing.assert_allclose(x.max(axis=axes).numpy(), a.max(axis=axes))


@SETTINGS
@given(shape=shapes, new=shapes)
def test_reshape_and_broadcast_give_the_answer_or_a_user_error(shape, new):
    a = np.arange(math.prod(shape), dtype=np.float32).reshape(shape)
    for device in DEVICES:
        x = nd.array(a, device=device)
        try:
            got = x.reshape(new).numpy()
        except USER_ERRORS:
            assert math.prod(new) != a.size
        else:
            np.testing.assert_array_equal(got, a.reshape(new))
        try:
            got = x.broadcast_to(new).numpy()
        except USER_ERRORS:
            with pytest.raises(ValueError):
                np.broadcast_to(a, new)
        else:
            np.testing.assert_array_equal(got, np.broadcast_to(a, new))


@SETTINGS
@given(data=st.data())
def test_conv_matches_pytorch(data):
    torch = pytest.importorskip("torch")
    groups = data.draw(st.integers(1, 3))
    cin, cout = groups * data.draw(st.integers(1, 3)), groups * data.draw(st.integers(1, 3))
    kernel = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    stride = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    dilation = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)))
    padding = (data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2)))
    sizes = [
        data.draw(st.integers(max(1, d * (k - 1) + 1 - 2 * p), 7))
        for k, d, p in zip(kernel, dilation, padding)
    ]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = rng.standard_normal((2, *sizes, cin))
    w = rng.standard_normal((*kernel, cin // groups, cout))
    xt = torch.tensor(np.moveaxis(x, -1, 1), requires_grad=True)
    wt = torch.tensor(np.transpose(w, (3, 2, 0, 1)).copy(), requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, None, stride, padding, dilation, groups)
    g = rng.standard_normal(yt.shape)
    yt.backward(torch.tensor(g))
    for device in DEVICES:
        X, W = tensor(x, device), tensor(w, device)
        y = ndl.conv(X, W, stride, padding, dilation, groups)
        np.testing.assert_allclose(y.numpy(), np.moveaxis(yt.detach().numpy(), 1, -1), atol=1e-9)
        y.backward(tensor(np.moveaxis(g, 1, -1), device, requires_grad=False))
        np.testing.assert_allclose(X.grad.numpy(), np.moveaxis(xt.grad.numpy(), 1, -1), atol=1e-9)
        np.testing.assert_allclose(
            W.grad.numpy(), np.transpose(wt.grad.numpy(), (2, 3, 1, 0)), atol=1e-9
        )


# --- the C++ bindings called directly with random arguments -----------------------------------
FUZZ = r"""
import sys
import numpy as np
sys.path.insert(0, "python")
import needle as ndl
mod = ndl.cpu().mod
rng = np.random.default_rng(int(sys.argv[1]))
ok = errors = 0
def arr(n):
    return mod.Array(int(n), "float32")
def ints(k, lo, hi):
    return [int(v) for v in rng.integers(lo, hi, k)]
for _ in range(3000):
    which = rng.integers(0, 6)
    try:
        if which == 0:    # a strided view of a buffer
            nd_ = int(rng.integers(0, 4))
            mod.compact(arr(rng.integers(0, 40)), arr(rng.integers(0, 40)), ints(nd_, -2, 6),
                        ints(nd_, -9, 9), int(rng.integers(-5, 40)))
        elif which == 1:
            nd_ = int(rng.integers(0, 4))
            mod.ewise_setitem(arr(rng.integers(0, 40)), arr(rng.integers(0, 40)),
                              ints(nd_, -2, 6), ints(nd_, -9, 9), int(rng.integers(-5, 40)))
        elif which == 2:  # an elementwise kernel on buffers of any sizes
            mod.ewise_add(arr(rng.integers(0, 20)), arr(rng.integers(0, 20)),
                          arr(rng.integers(0, 20)))
        elif which == 3:  # a matmul whose sizes need not fit the buffers
            m, n, p = ints(3, -2, 6)
            mod.matmul(arr(rng.integers(0, 30)), arr(rng.integers(0, 30)),
                       arr(rng.integers(0, 30)), m, n, p)
        elif which == 4:  # a conv geometry of random ints
            mod.conv_forward(arr(rng.integers(0, 200)), arr(rng.integers(0, 200)),
                             arr(rng.integers(0, 200)), ints(int(rng.integers(20, 27)), -2, 5))
        else:
            mod.reduce_sum(arr(rng.integers(0, 30)), arr(rng.integers(0, 30)),
                           int(rng.integers(-2, 8)))
        ok += 1
    except (ValueError, IndexError, TypeError):
        errors += 1
print(ok, errors)
"""


@pytest.mark.skipif(not ndl.cpu().enabled(), reason="the C++ backend is not built")
@pytest.mark.parametrize("seed", [1, 2])
def test_cpp_bindings_survive_random_arguments(seed):
    # In a subprocess, so that a crash is seen as one: every call returns or raises a user error.
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [sys.executable, "-c", FUZZ, str(seed)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    ok, errors = map(int, result.stdout.split())
    assert ok > 0 and errors > 0  # both outcomes were exercised
