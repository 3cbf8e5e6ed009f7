"""The recurrent-layer ops (forward against the step-by-step formula in elementary ops,
float64 gradchecks of every input) and the embedding gather / scatter-add."""

import numpy as np
import pytest
from tests.checks import check_grad, grad_dtype, tensor

import needle as ndl
from needle import ops

T, B, I, H = 3, 2, 3, 2
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


def _inputs(mode, bias, rng):
    g = GATES[mode] * H
    arrays = [rng.standard_normal((T, B, I)), rng.standard_normal((B, H))]
    if mode == "lstm":
        arrays.append(rng.standard_normal((B, H)))
    arrays += [rng.standard_normal((I, g)) * 0.7, rng.standard_normal((H, g)) * 0.7]
    if bias:
        arrays += [rng.standard_normal(g), rng.standard_normal(g)]
    return arrays


def _fused(mode, bias):
    def fn(x, h0, *rest):
        c0, rest = (rest[0], rest[1:]) if mode == "lstm" else (None, rest)
        w_ih, w_hh, *b = rest
        b = b if bias else [None, None]
        if mode == "lstm":
            return ops.lstm(x, h0, c0, w_ih, w_hh, *b)
        if mode == "gru":
            return ops.gru(x, h0, w_ih, w_hh, *b)
        return ops.rnn(x, h0, w_ih, w_hh, *b, nonlinearity=mode[4:])

    return fn


def _reference(mode, bias):
    def fn(x, h0, *rest):
        c0, rest = (rest[0], rest[1:]) if mode == "lstm" else (None, rest)
        w_ih, w_hh, *b = rest
        return ops.recurrent_reference(mode, x, h0, c0, w_ih, w_hh, *(b if bias else []))

    return fn


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("mode", list(GATES))
def test_recurrent_forward_and_gradcheck(mode, bias, device):
    rng = np.random.default_rng(0)
    arrays = _inputs(mode, bias, rng)
    dtype = grad_dtype(device)
    args = [tensor(a, device, dtype) for a in arrays]
    for got, want in zip(_fused(mode, bias)(*args), _reference(mode, bias)(*args)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)
    check_grad(_fused(mode, bias), *arrays, device=device)


def test_recurrent_second_derivative_refused(device):
    rng = np.random.default_rng(1)
    x, h0, w_ih, w_hh = (tensor(a, device) for a in _inputs("gru", False, rng))
    out, _ = ops.gru(x, h0, w_ih, w_hh)
    (g,) = ndl.autograd.grad((out * out).sum(), [w_hh])
    with pytest.raises(NotImplementedError, match="second derivatives"):
        g.sum().backward()


def test_embedding_gradcheck(device):
    rng = np.random.default_rng(2)
    weight = rng.standard_normal((5, 3))
    idx = ndl.Tensor(np.array([[0, 4], [4, 2]]), device=device, requires_grad=False)
    out = ops.embedding(tensor(weight, device, "float64"), idx)
    np.testing.assert_allclose(out.numpy(), weight[[[0, 4], [4, 2]]])
    check_grad(lambda w: ops.embedding(w, idx), weight, device=device)


@pytest.mark.parametrize("call, message", [
    (lambda d: ops.lstm(*d[:3], d[3], d[3], None, None), "W_hh"),
    (lambda d: ops.rnn(d[0], d[1], d[4], d[5], nonlinearity="gelu"), "nonlinearity"),
    (lambda d: ops.gru(d[0][0], d[1], d[4], d[5]), "T, B, input_size"),
    (lambda d: ops.rnn(d[0], d[2][:1], d[4], d[5]), "h0"),
    (lambda d: ops.rnn(d[0], d[1], d[4], d[5], d[6], None), "bias_ih and bias_hh"),
])  # fmt: skip
def test_recurrent_bad_arguments(call, message, device):
    def t(shape):
        return ndl.Tensor(np.zeros(shape), device=device)

    data = [t((T, B, I)), t((B, H)), t((B, H)), t((I, 5)), t((I, H)), t((H, H)), t((H,))]
    with pytest.raises(ValueError, match=message):
        call(data)
