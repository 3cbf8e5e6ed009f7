"""The sequence kernels of every backend (lstm/gru/rnn step forward and backward, the row gather
and scatter-add) against the NumPy reference table on raw buffers, at the first and the last
step, at a size that runs one thread and one that runs many; the compiled backends' argument
checks.  Outputs start filled with a sentinel, so a kernel that leaves part of step t unwritten,
or writes another step, fails."""

import numpy as np
import pytest
from tests.backend_ndarray.raw_buffers import Out, call, put

from needle.backend_ndarray import all_devices
from needle.backend_ndarray import ndarray_backend_numpy as ref

DEVICES = all_devices()
COMPILED = [d for d in DEVICES if d.name != "cpu_numpy"]
STEPS = 3


def check(device, name, dtype, args):
    got, want = call(device.mod, name, dtype, *args), call(ref, name, dtype, *args)
    tol = 2e-5 if dtype == "float32" else 1e-12
    for k, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol, err_msg=f"{name} output {k}")


def case_args(name, t, batch, hidden, rng):
    """The kernel's arguments: random inputs, earlier steps of the states filled in."""
    s, n = batch * hidden, STEPS * batch * hidden

    def r(size):
        return rng.standard_normal(size)

    def unit(size):  # gate activations in (0, 1), as the forward pass saves them
        return rng.uniform(0.05, 0.95, size)

    return {
        "lstm_step_forward": lambda: [r(4 * n), r(4 * s), r(s), Out(4 * n), Out(n, r(n)),
                                      Out(n), t, batch, hidden],
        "lstm_step_backward": lambda: [unit(4 * n), r(n), r(s), r(n), r(s), Out(s, r(s)),
                                       Out(4 * n), t, batch, hidden],
        "gru_step_forward": lambda: [r(3 * n), r(3 * s), r(3 * hidden), r(s), Out(4 * n),
                                     Out(n, r(n)), t, batch, hidden],
        "gru_step_backward": lambda: [unit(4 * n), r(s), r(n), r(n), r(s), Out(s, r(s)),
                                      Out(3 * n), Out(3 * n), t, batch, hidden],
        "rnn_step_forward": lambda: [r(n), r(s), Out(n), t, batch, hidden, False],
        "rnn_step_forward_relu": lambda: [r(n), r(s), Out(n), t, batch, hidden, True],
        "rnn_step_backward": lambda: [np.tanh(r(n)), r(n), r(s), Out(n), t, batch, hidden, False],
        "rnn_step_backward_relu": lambda: [r(n), r(n), r(s), Out(n), t, batch, hidden, True],
    }[name]()  # fmt: skip


STEP_KERNELS = [
    "lstm_step_forward", "lstm_step_backward", "gru_step_forward", "gru_step_backward",
    "rnn_step_forward", "rnn_step_forward_relu", "rnn_step_backward", "rnn_step_backward_relu",
]  # fmt: skip


@pytest.mark.parametrize("device", DEVICES, ids=lambda d: d.name)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", STEP_KERNELS)
@pytest.mark.parametrize("t, batch, hidden", [(0, 3, 5), (STEPS - 1, 3, 5), (1, 64, 64)])
def test_step_kernel_matches_reference(device, dtype, name, t, batch, hidden):
    rng = np.random.default_rng(0)
    args = case_args(name, t, batch, hidden, rng)
    check(device, name.replace("_relu", ""), dtype, args)


@pytest.mark.parametrize("device", DEVICES, ids=lambda d: d.name)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n, rows, dim", [(7, 4, 3), (600, 50, 40)])
def test_gather_and_scatter_add_rows(device, dtype, n, rows, dim):
    rng = np.random.default_rng(1)
    idx = rng.integers(0, rows, n).astype(np.float64)
    idx[: min(n, 3)] = 0  # repeated rows must add up in the scatter
    table, grad = rng.standard_normal(rows * dim), rng.standard_normal(n * dim)
    check(device, "gather_rows", dtype, [table, idx, Out(n * dim), rows, dim])
    check(device, "scatter_add_rows", dtype, [grad, idx, Out(rows * dim), rows, dim])


@pytest.mark.parametrize("device", COMPILED, ids=lambda d: d.name)
def test_bad_arguments(device):
    mod = device.mod

    def buf(n, dtype="float32"):
        return mod.Array(n, dtype)

    b, h = 2, 3
    good = [buf(2 * 4 * b * h), buf(4 * b * h), buf(b * h), buf(2 * 4 * b * h), buf(2 * b * h),
            buf(2 * b * h)]  # fmt: skip
    mod.lstm_step_forward(*good, 1, b, h)
    with pytest.raises(ValueError, match="t must be non-negative"):
        mod.lstm_step_forward(*good, -1, b, h)
    with pytest.raises(ValueError, match="xw has 48 elements, needs at least 72"):
        mod.lstm_step_forward(*good, 2, b, h)  # step 2 lies past the buffers
    with pytest.raises(ValueError, match="c0 has 5 elements"):
        mod.lstm_step_forward(good[0], good[1], buf(5), *good[3:], 0, b, h)
    with pytest.raises(TypeError):
        mod.lstm_step_forward(good[0], buf(4 * b * h, "float64"), *good[2:], 0, b, h)
    with pytest.raises(ValueError, match="act"):
        mod.gru_step_forward(buf(3 * b * h), buf(3 * b * h), buf(3 * h), buf(b * h),
                             buf(3 * b * h), buf(b * h), 0, b, h)  # fmt: skip
    with pytest.raises(ValueError, match="dh_mat"):
        mod.rnn_step_backward(buf(b * h), buf(b * h), buf(1), buf(b * h), 0, b, h, False)
    table, out = buf(4 * 3), buf(2 * 3)
    for bad in (4.0, -1.0, 1.5, float("nan")):
        idx = put(mod, np.array([0.0, bad]), "float32")
        with pytest.raises(IndexError, match="outside"):
            mod.gather_rows(table, idx, out, 4, 3)
        with pytest.raises(IndexError, match="outside"):
            mod.scatter_add_rows(out, idx, table, 4, 3)
    with pytest.raises(ValueError, match="out"):
        mod.gather_rows(table, put(mod, np.zeros(3), "float32"), out, 4, 3)
