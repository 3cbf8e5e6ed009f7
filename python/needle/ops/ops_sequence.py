"""Recurrent layers and embedding lookup as graph nodes.

``rnn``, ``lstm`` and ``gru`` run one recurrent layer over a whole sequence as ONE node
(cuDNN's layout of the work):

    xw  = X (T·B, I) @ W_ih + biases       one matmul for every time step at once
    for t in 0..T-1:
        hw = h_{t-1} @ W_hh                one matmul per step
        step kernel(xw[t], hw, ...)        the gate arithmetic, one fused kernel per step

The gradient is one node too (``RecurrentGrad``), back through time:

    for t in T-1..0:
        step-backward kernel               ∂ of the gate arithmetic, one kernel per step
        dh = ∂gates[t] @ W_hhᵀ             one matmul per step
    ∂X = ∂gates @ W_ihᵀ,  ∂W_ih = Xᵀ ∂gates,  ∂W_hh = H_prevᵀ ∂gates,  ∂b = Σ ∂gates
                                           four matmuls / column sums over all steps

Saved for the backward pass: the gate activations (T, B, G) and the states (T, B, H) — memory
grows linearly with T.  Second derivatives are not supported (``RecurrentGrad.gradient``
raises); ``recurrent_reference`` writes the same recurrence in elementary, twice
differentiable needle ops.

Layouts are the course's: ``W_ih (I, G)``, ``W_hh (H, G)``, biases with G values, gate blocks
LSTM i, f, g, o (G = 4H), GRU r, z, n (G = 3H, n = tanh(x_n + b_in + r·(h W_hn + b_hn))),
Elman G = H with tanh or relu.

``embedding(weight, idx)`` gathers rows of ``weight (V, D)`` at integer-valued ``idx``; its
gradient scatter-adds the output gradient into a (V, D) zero table (no one-hot matrices).
"""

import numpy

from ..autograd import Tensor, TensorOp, TensorTupleOp
from ..backend_selection import array_api
from .ops_mathematic import _zeros, relu, reshape, sigmoid, tanh
from .ops_tuple import split, stack

__all__ = [
    "Recurrent",
    "RecurrentGrad",
    "rnn",
    "lstm",
    "gru",
    "recurrent_reference",
    "EmbeddingLookup",
    "EmbeddingScatter",
    "embedding",
]

MODES = ("rnn_tanh", "rnn_relu", "lstm", "gru")
_GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


# --- array helpers (in the array API, so the same for NDArray and NumPy mode) -------------------
def _empty(shape, like):
    return array_api.empty_like(like, shape=tuple(shape))


def _packed(a):
    """A packed copy of ``a`` (kernels write some of these in place)."""
    return array_api.copy(a)


def _at(a, t):
    """Step ``t`` of a (T, ...) array, as a view."""
    return array_api.basic_index(a, (t,) + (slice(None),) * (len(a.shape) - 1))


def _transposed(a):
    """The packed transpose of a 2-D array."""
    return array_api.compact(array_api.permute(a, (1, 0)))


def _matrix(a, rows, cols):
    return array_api.compact(a).reshape((rows, cols))


def _add_row(m, row):
    return array_api.add_row(m, _matrix(row, 1, m.shape[1]))


def _column_sums(m):
    return array_api.sum_rows(m).reshape((m.shape[1],))


# --- the shape rule ------------------------------------------------------------------------------
def _check(mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh):
    """Validate the inputs of a recurrent layer; returns (T, B, I, H, G)."""
    name = "lstm" if mode == "lstm" else mode.split("_")[0]
    if len(x.shape) != 3:
        raise ValueError(f"{name}: input must be (T, B, input_size), got shape {x.shape}")
    steps, batch, inputs = x.shape
    if len(w_hh.shape) != 2 or w_hh.shape[1] != _GATES[mode] * w_hh.shape[0]:
        raise ValueError(
            f"{name}: W_hh must be (hidden, {_GATES[mode]}·hidden), got shape {w_hh.shape}"
        )
    hidden = w_hh.shape[0]
    gates = _GATES[mode] * hidden
    if tuple(w_ih.shape) != (inputs, gates):
        raise ValueError(
            f"{name}: W_ih must be (input_size={inputs}, {gates}), got shape {w_ih.shape}"
        )
    states = (("h0", h0), ("c0", c0)) if mode == "lstm" else (("h0", h0),)
    for arg, state in states:
        if tuple(state.shape) != (batch, hidden):
            raise ValueError(f"{name}: {arg} must be (B={batch}, H={hidden}), got {state.shape}")
    for arg, b in (("bias_ih", b_ih), ("bias_hh", b_hh)):
        if b is not None and int(numpy.prod(b.shape)) != gates:
            raise ValueError(f"{name}: {arg} must hold {gates} values, got shape {b.shape}")
    if steps < 1:
        raise ValueError(f"{name}: the sequence needs at least one step, got shape {x.shape}")
    return steps, batch, inputs, hidden, gates


def _unpack(mode, has_bias, values):
    """(x, h0, c0, w_ih, w_hh, b_ih, b_hh) from the op's inputs (c0, biases may be None)."""
    values = list(values)
    x, h0 = values[:2]
    c0 = values.pop(2) if mode == "lstm" else None
    w_ih, w_hh = values[2:4]
    b_ih, b_hh = values[4:6] if has_bias else (None, None)
    return x, h0, c0, w_ih, w_hh, b_ih, b_hh


# --- the ops -------------------------------------------------------------------------------------
class Recurrent(TensorTupleOp):
    """One recurrent layer over a sequence, as one node (see the module docstring).

    Inputs ``x (T, B, I)``, ``h0 (B, H)``, ``c0 (B, H)`` (LSTM only), ``W_ih (I, G)``,
    ``W_hh (H, G)`` and, when ``has_bias``, ``bias_ih``, ``bias_hh`` (G values each).
    Output the tuple ``(out (T, B, H), h_n (B, H))``, plus ``c_n (B, H)`` for the LSTM.
    """

    def __init__(self, mode: str, has_bias: bool):
        if mode not in MODES:
            raise ValueError(f"Recurrent: mode must be one of {MODES}, got {mode!r}")
        self.mode, self.has_bias = mode, has_bias
        self._saved = None

    def compute(self, *values):
        x, h0, c0, w_ih, w_hh, b_ih, b_hh = _unpack(self.mode, self.has_bias, values)
        steps, batch, inputs = x.shape
        hidden, gates = w_hh.shape
        xw = _matrix(x, steps * batch, inputs) @ w_ih
        if self.has_bias:  # the GRU keeps bias_hh apart: its n block is scaled by r
            xw = _add_row(xw, b_ih)
            if self.mode != "gru":
                xw = _add_row(xw, b_hh)
        xw = xw.reshape((steps, batch, gates))
        h_all = _empty((steps, batch, hidden), x)
        act = c_all = None
        if self.mode == "lstm":
            act, c_all = _empty((steps, batch, gates), x), _empty((steps, batch, hidden), x)
        elif self.mode == "gru":
            act = _empty((steps, batch, 4 * hidden), x)
            bhh = _zeros((1, gates), x) if b_hh is None else _matrix(b_hh, 1, gates)
        h = h0
        for t in range(steps):
            hw = h @ w_hh
            if self.mode == "lstm":
                array_api.lstm_step_forward(xw, hw, c0, act, c_all, h_all, t)
            elif self.mode == "gru":
                array_api.gru_step_forward(xw, hw, bhh, h0, act, h_all, t)
            else:
                array_api.rnn_step_forward(xw, hw, h_all, t, self.mode == "rnn_relu")
            h = _at(h_all, t)
        self._saved = (act, c_all, h_all)
        h_n = _packed(_at(h_all, steps - 1))
        if self.mode == "lstm":
            return h_all, h_n, _packed(_at(c_all, steps - 1))
        return h_all, h_n

    def gradient(self, out_grad, node):
        needs = tuple(inp.requires_grad for inp in node.inputs)
        grads = RecurrentGrad(self, needs)(*out_grad.tuple(), *node.inputs)
        return tuple(grads[k] if need else None for k, need in enumerate(needs))


class RecurrentGrad(TensorTupleOp):
    """The gradient of a ``Recurrent`` node: back-propagation through time as one node.

    Inputs: the output gradients (``∂out, ∂h_n`` and, for the LSTM, ``∂c_n``) followed by the
    forward node's inputs; output one gradient per forward input (entries that ``needs``
    marks False hold a placeholder and are never read).
    """

    def __init__(self, forward: Recurrent, needs):
        self.forward, self.needs = forward, needs

    def _outputs(self):
        return 3 if self.forward.mode == "lstm" else 2

    def compute(self, *values):
        mode, k = self.forward.mode, self._outputs()
        d_out, d_hn = values[0], values[1]
        d_cn = values[2] if mode == "lstm" else None
        x, h0, c0, w_ih, w_hh, b_ih, b_hh = _unpack(mode, self.forward.has_bias, values[k:])
        act, c_all, h_all = self.forward._saved
        steps, batch, hidden = h_all.shape
        gates = w_hh.shape[1]
        d_out = _packed(d_out)
        w_hh_t = _transposed(w_hh)
        dgx = _empty((steps, batch, gates), x)
        dgh = _empty((steps, batch, gates), x) if mode == "gru" else dgx
        dh_mat = _packed(d_hn)
        carry = _packed(d_cn) if mode == "lstm" else _zeros((batch, hidden), x)
        for t in reversed(range(steps)):
            if mode == "lstm":
                array_api.lstm_step_backward(act, c_all, c0, d_out, dh_mat, carry, dgx, t)
            elif mode == "gru":
                array_api.gru_step_backward(act, h0, h_all, d_out, dh_mat, carry, dgx, dgh, t)
            else:
                array_api.rnn_step_backward(h_all, d_out, dh_mat, dgx, t, mode == "rnn_relu")
            dh_mat = _at(dgh, t) @ w_hh_t
        return self._parameter_grads(values[k:], dgx, dgh, dh_mat, carry)

    def _parameter_grads(self, inputs, dgx, dgh, dh0, carry):
        """The gradient of every forward input from the per-step gate gradients."""
        mode = self.forward.mode
        x, h0, c0, w_ih, w_hh, b_ih, b_hh = _unpack(mode, self.forward.has_bias, inputs)
        h_all = self.forward._saved[2]
        steps, batch, inputs_size = x.shape
        hidden, gates = w_hh.shape
        rows = steps * batch
        gx, gh = dgx.reshape((rows, gates)), dgh.reshape((rows, gates))
        placeholder = dgx
        need = dict(zip(("x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh"), _unpack(
            mode, self.forward.has_bias, self.needs)))  # fmt: skip
        d_x = placeholder
        if need["x"]:
            d_x = (gx @ _transposed(w_ih)).reshape((steps, batch, inputs_size))
        d_h0 = dh0 + carry if mode == "gru" else dh0
        d_w_ih = _transposed(_matrix(x, rows, inputs_size)) @ gx if need["w_ih"] else placeholder
        d_w_hh = placeholder
        if need["w_hh"]:
            h_prev = _empty((steps, batch, hidden), x)
            _at(h_prev, 0)[:, :] = h0
            if steps > 1:
                h_prev[1:, :, :] = h_all[: steps - 1, :, :]
            d_w_hh = _transposed(h_prev.reshape((rows, hidden))) @ gh
        out = [d_x, d_h0] + ([carry] if mode == "lstm" else []) + [d_w_ih, d_w_hh]
        if self.forward.has_bias:
            d_b_ih = _column_sums(gx).reshape(tuple(b_ih.shape)) if need["b_ih"] else placeholder
            d_b_hh = _column_sums(gh).reshape(tuple(b_hh.shape)) if need["b_hh"] else placeholder
            out += [d_b_ih, d_b_hh]
        return tuple(out)

    def gradient(self, out_grad, node):
        raise NotImplementedError(
            "second derivatives through a recurrent layer are not supported; differentiate "
            "needle.ops.recurrent_reference (the same recurrence in elementary ops) instead"
        )


def recurrent_reference(mode, x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None):
    """The recurrence written in elementary needle ops, one step at a time: the formula that
    ``Recurrent`` computes with fused kernels (second derivatives and tests use it).
    Returns ``(out, h_n)`` or, for the LSTM, ``(out, h_n, c_n)``."""
    batch = x.shape[1]
    hidden, gates = w_hh.shape

    def block(a, k):
        return a[:, k * hidden : (k + 1) * hidden]

    def bias(b):
        return None if b is None else reshape(b, (1, gates)).broadcast_to((batch, gates))

    bi, bh = bias(b_ih), bias(b_hh)
    h, c, outs = h0, c0, []
    for xt in split(x, 0).tuple():
        a_x = xt @ w_ih if bi is None else xt @ w_ih + bi
        a_h = h @ w_hh if bh is None else h @ w_hh + bh
        if mode == "lstm":
            a = a_x + a_h
            i, f = sigmoid(block(a, 0)), sigmoid(block(a, 1))
            g, o = tanh(block(a, 2)), sigmoid(block(a, 3))
            c = f * c + i * g
            h = o * tanh(c)
        elif mode == "gru":
            r = sigmoid(block(a_x, 0) + block(a_h, 0))
            z = sigmoid(block(a_x, 1) + block(a_h, 1))
            n = tanh(block(a_x, 2) + r * block(a_h, 2))
            h = n + z * (h - n)
        else:
            a = a_x + a_h
            h = relu(a) if mode == "rnn_relu" else tanh(a)
        outs.append(h)
    out = stack(outs, 0)
    return (out, h, c) if mode == "lstm" else (out, h)


def _recurrent(mode, x, h0, c0, w_ih, w_hh, bias_ih, bias_hh):
    if (bias_ih is None) != (bias_hh is None):
        raise ValueError(f"{mode}: give both bias_ih and bias_hh, or neither")
    _check(mode, x, h0, c0, w_ih, w_hh, bias_ih, bias_hh)
    has_bias = bias_ih is not None
    inputs = [x, h0] + ([c0] if mode == "lstm" else []) + [w_ih, w_hh]
    inputs += [bias_ih, bias_hh] if has_bias else []
    return Recurrent(mode, has_bias)(*inputs).tuple()


def rnn(x, h0, w_ih, w_hh, bias_ih=None, bias_hh=None, nonlinearity="tanh"):
    """One Elman layer: ``h_t = act(x_t W_ih + b_ih + h_{t-1} W_hh + b_hh)``.

    Shape: ``x (T, B, I)``, ``h0 (B, H)``, ``W_ih (I, H)``, ``W_hh (H, H)``, biases H values.
    Returns ``(out (T, B, H), h_n (B, H))``.  Raises ValueError on mismatched shapes or a
    nonlinearity other than ``"tanh"``/``"relu"``.
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"rnn: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    return _recurrent(f"rnn_{nonlinearity}", x, h0, None, w_ih, w_hh, bias_ih, bias_hh)


def lstm(x, h0, c0, w_ih, w_hh, bias_ih=None, bias_hh=None):
    """One LSTM layer (gate blocks i, f, g, o): ``c_t = f·c_{t-1} + i·g``, ``h_t = o·tanh(c_t)``.

    Shape: ``x (T, B, I)``, ``h0, c0 (B, H)``, ``W_ih (I, 4H)``, ``W_hh (H, 4H)``, biases 4H
    values.  Returns ``(out (T, B, H), h_n (B, H), c_n (B, H))``.
    """
    return _recurrent("lstm", x, h0, c0, w_ih, w_hh, bias_ih, bias_hh)


def gru(x, h0, w_ih, w_hh, bias_ih=None, bias_hh=None):
    """One GRU layer, PyTorch's formula (gate blocks r, z, n):
    ``n = tanh(x W_in + b_in + r·(h W_hn + b_hn))``, ``h_t = (1 − z)·n + z·h_{t-1}``.

    Shape: ``x (T, B, I)``, ``h0 (B, H)``, ``W_ih (I, 3H)``, ``W_hh (H, 3H)``, biases 3H values.
    Returns ``(out (T, B, H), h_n (B, H))``.
    """
    return _recurrent("gru", x, h0, None, w_ih, w_hh, bias_ih, bias_hh)


class EmbeddingLookup(TensorOp):
    """Rows of ``weight (V, D)`` at ``idx`` (integer values, any shape): ``(*idx.shape, D)``.

    Gradient: ∂weight = the output gradient scatter-added into the rows ``idx`` names
    (``EmbeddingScatter``); ``idx`` gets none.
    """

    def compute(self, weight, idx):
        return array_api.gather_rows(weight, idx)

    def gradient(self, out_grad, node):
        weight, idx = node.inputs
        rows, dim = weight.shape
        flat = reshape(out_grad, (int(numpy.prod(idx.shape)), dim))
        return EmbeddingScatter(rows)(flat, idx), None


class EmbeddingScatter(TensorOp):
    """``(rows, D)`` zeros with row k of ``g (N, D)`` added to row ``idx.flat[k]``.

    Linear in ``g``; its gradient is the gather ``EmbeddingLookup`` at the same indices.
    """

    def __init__(self, rows: int):
        self.rows = rows

    def compute(self, g, idx):
        return array_api.scatter_add_rows(g, idx, self.rows)

    def gradient(self, out_grad, node):
        g, idx = node.inputs
        return reshape(EmbeddingLookup()(out_grad, idx), g.shape), None


def embedding(weight, idx):
    """Look up rows of ``weight (V, D)`` at the integer values of ``idx`` → ``(*idx.shape, D)``.

    Raises ValueError when ``weight`` is not 2-D; an index outside ``[0, V)`` raises
    IndexError when the lookup runs.
    """
    if len(weight.shape) != 2:
        raise ValueError(f"embedding: weight must be (num_embeddings, dim), got {weight.shape}")
    if not isinstance(idx, Tensor):
        raise TypeError(f"embedding: idx must be a Tensor, got {type(idx).__name__}")
    if idx.dtype != weight.dtype or idx.device != weight.device:  # graph inputs share both
        idx = Tensor(idx.numpy(), device=weight.device, dtype=weight.dtype, requires_grad=False)
    return EmbeddingLookup()(weight, idx)
