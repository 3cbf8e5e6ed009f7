"""The fused backend kernels ``sum_rows`` and ``adam_step`` on every backend that has them,
against plain NumPy formulas in float64 (both dtypes, odd sizes, bad arguments)."""

import numpy as np
import pytest
from tests.backend_ndarray.raw_buffers import get, put

from needle.backend_ndarray import all_devices

DEVICES = [d for d in all_devices() if hasattr(d.mod, "sum_rows")]
COMPILED = [d for d in DEVICES if d.name != "cpu_numpy"]  # these also validate arguments


def tol(dtype):
    return dict(rtol=2e-5, atol=2e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES, ids=[d.name for d in DEVICES])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rows, cols", [(1, 1), (7, 3), (300, 16), (129, 33), (4096, 17), (0, 5)])
def test_sum_rows(device, dtype, rows, cols):
    mod = device.mod
    a = np.random.randn(rows, cols)
    extra = np.random.randn(5)  # a may be longer than rows * cols
    buf = put(mod, np.concatenate([a.reshape(-1), extra]), dtype)
    out = put(mod, np.full(cols, 12345.0), dtype)
    mod.sum_rows(buf, out, rows)
    np.testing.assert_allclose(
        get(mod, out), a.astype(dtype).astype(np.float64).sum(0), **tol(dtype)
    )


@pytest.mark.parametrize("device", COMPILED, ids=[d.name for d in COMPILED])
def test_sum_rows_rejects_bad_arguments(device):
    mod = device.mod
    with pytest.raises(ValueError):
        mod.sum_rows(put(mod, np.ones(10), "float32"), put(mod, np.ones(3), "float32"), 4)
    with pytest.raises(TypeError):
        mod.sum_rows(put(mod, np.ones(12), "float64"), put(mod, np.ones(3), "float32"), 4)


def adam_reference(p, g, m, v, hyper):
    step, b1, b2, c2, eps, wd = hyper
    g = g + wd * p
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    return p - step * m / (np.sqrt(v / c2) + eps), m, v


@pytest.mark.parametrize("device", DEVICES, ids=[d.name for d in DEVICES])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("wd", [0.0, 0.01])
@pytest.mark.parametrize("n", [1, 37, 70001])
def test_adam_step(device, dtype, wd, n):
    mod = device.mod
    p, g, m = (np.random.randn(n) for _ in range(3))
    v = np.random.rand(n)
    hyper = [0.01 / (1 - 0.9**3), 0.9, 0.999, 1 - 0.999**3, 1e-8, wd]
    bufs = [put(mod, x, dtype) for x in (p, g, m, v)]
    outs = [put(mod, np.full(n, 12345.0), dtype) for _ in range(3)]
    mod.adam_step(*bufs, hyper, *outs)
    cast = [x.astype(dtype).astype(np.float64) for x in (p, g, m, v)]
    for got, expected in zip(outs, adam_reference(*cast, hyper)):
        np.testing.assert_allclose(
            get(mod, got),
            expected,
            rtol=1e-4 if dtype == "float32" else 1e-10,
            atol=1e-5 if dtype == "float32" else 1e-12,
        )
    np.testing.assert_array_equal(get(mod, bufs[0]), p.astype(dtype))  # inputs untouched
    if device.name == "cpu_numpy":
        return
    with pytest.raises(ValueError):
        mod.adam_step(*bufs, hyper[:5], *outs)
    with pytest.raises(ValueError):
        short = put(mod, np.ones(max(n - 1, 0)), dtype)
        mod.adam_step(bufs[0], short, bufs[2], bufs[3], hyper, *outs)


@pytest.mark.parametrize("device", DEVICES, ids=[d.name for d in DEVICES])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rows, cols", [(1, 1), (5, 3), (2049, 16), (64, 130), (0, 4)])
def test_rows_affine(device, dtype, rows, cols):
    mod = device.mod
    a, b = np.random.randn(rows, cols), np.random.randn(rows, cols)
    s, t, u = (np.random.randn(cols) for _ in range(3))
    bufs = [put(mod, x, dtype) for x in (a, b, s, t, u)]
    out = put(mod, np.full(rows * cols, 12345.0), dtype)
    mod.rows_affine(*bufs, out)
    a, b, s, t, u = (x.astype(dtype).astype(np.float64) for x in (a, b, s, t, u))
    np.testing.assert_allclose(get(mod, out).reshape(rows, cols), a * s + b * t + u, **tol(dtype))


@pytest.mark.parametrize("device", COMPILED, ids=[d.name for d in COMPILED])
def test_rows_affine_rejects_bad_arguments(device):
    mod = device.mod
    six, three, two = (put(mod, np.ones(n), "float32") for n in (6, 3, 2))
    with pytest.raises(ValueError):  # s, t, u of different sizes
        mod.rows_affine(six, six, three, two, three, put(mod, np.ones(6), "float32"))
    with pytest.raises(ValueError):  # C does not divide out
        mod.rows_affine(
            six,
            six,
            put(mod, np.ones(4), "float32"),
            put(mod, np.ones(4), "float32"),
            put(mod, np.ones(4), "float32"),
            put(mod, np.ones(6), "float32"),
        )
    with pytest.raises(ValueError):  # a too short for out
        mod.rows_affine(two, six, two, two, two, put(mod, np.ones(6), "float32"))
    with pytest.raises(TypeError):
        mod.rows_affine(six, six, three, three, three, put(mod, np.ones(6), "float64"))


def test_ndarray_rows_affine_and_sum_rows():
    # The NDArray helpers on every device (kernel or broadcasting fallback) agree with NumPy.
    import needle.backend_ndarray as nd

    for device in all_devices():
        a_np, b_np = np.random.randn(40, 6), np.random.randn(40, 6)
        s_np, t_np, u_np = (np.random.randn(1, 6) for _ in range(3))
        a, b, s, t, u = (
            nd.array(x, dtype="float64", device=device) for x in (a_np, b_np, s_np, t_np, u_np)
        )
        out = nd.ndarray.rows_affine(a, s, u, b=b, t=t)
        np.testing.assert_allclose(out.numpy(), a_np * s_np + b_np * t_np + u_np, rtol=1e-12)
        out = nd.ndarray.rows_affine(a, s, u)
        np.testing.assert_allclose(out.numpy(), a_np * s_np + u_np, rtol=1e-12)
        np.testing.assert_allclose(
            nd.ndarray.sum_rows(a).numpy(), a_np.sum(0, keepdims=True), rtol=1e-12
        )


def test_adding_a_broadcast_row():
    # A packed array plus a row repeated along the last axis (a bias) may run as one
    # rows_affine pass: same values as NumPy, either operand order, rows read at an offset.
    import needle.backend_ndarray as nd

    for device in all_devices():
        x_np = np.random.randn(2, 3, 4, 5)
        base_np = np.random.randn(3, 5)
        x = nd.array(x_np, dtype="float64", device=device)
        base = nd.array(base_np, dtype="float64", device=device)
        row = base[1, :]  # (1, 5) at offset 5
        for out in (x + row.broadcast_to(x.shape), row.broadcast_to(x.shape) + x):
            assert out.shape == x.shape
            np.testing.assert_array_equal(out.numpy(), x_np + base_np[1])
        empty = nd.array(np.zeros((0, 5)), dtype="float64", device=device)
        assert (empty + row.broadcast_to((0, 5))).shape == (0, 5)


def test_length_one_axes_do_not_force_copies():
    import needle.backend_ndarray as nd

    for device in all_devices():
        x_np = np.random.randn(4, 3)
        x = (
            nd.array(x_np, device=device, dtype="float64")
            .reshape((4, 1, 1, 3))
            .permute((0, 3, 1, 2))
        )
        y = nd.array(x_np, device=device, dtype="float64").reshape((4, 3, 1, 1))
        assert x.strides != y.strides and x.shape == y.shape
        out = x * y  # the same memory layout: no packing copies
        np.testing.assert_array_equal(out.numpy(), (x_np * x_np).reshape(4, 3, 1, 1))
        c = x.compact()
        assert c._handle is x._handle and c.is_compact()
