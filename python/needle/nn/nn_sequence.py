"""Sequence layers: Embedding, RNNCell/RNN, LSTMCell/LSTM, GRUCell/GRU (course layouts).

Every cell holds ``W_ih (input_size, G)``, ``W_hh (hidden_size, G)`` and, with ``bias=True``,
``bias_ih``, ``bias_hh`` (G values), each drawn U(−1/√H, 1/√H) in that order (one
``np.random.rand`` each, the course's order); G = H (Elman), 4H (LSTM, gate blocks i, f, g,
o) or 3H (GRU, r, z, n, PyTorch's formula).  A cell reads these four attributes when it runs,
so they may be replaced by plain Tensors after construction (the course's tests do), and
biases may be 1-D.

The multi-layer modules keep their cells in ``rnn_cells`` / ``lstm_cells`` / ``gru_cells``
(layer 0 maps input_size → H, the others H → H) and run each layer over the whole sequence
as one graph node (``needle.ops.rnn`` / ``lstm`` / ``gru``): one matmul of the inputs of all
steps, then per step one matmul and one fused gate kernel.
"""

import math
import numbers

from .. import init, ops
from ..autograd import Tensor
from .nn_basic import Module, Parameter

__all__ = [
    "Embedding",
    "RNNCell",
    "RNN",
    "LSTMCell",
    "LSTM",
    "GRUCell",
    "GRU",
]


def _check_size(layer, **sizes):
    for arg, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{layer}: {arg} must be a positive int, got {arg}={value!r}")


def _uniform(shape, bound, device, dtype):
    return Parameter(init.rand(*shape, low=-bound, high=bound, device=device, dtype=dtype))


def _zeros(batch, hidden, like):
    return init.zeros(batch, hidden, device=like.device, dtype=like.dtype)


class _Cell(Module):
    """Parameters and argument checks shared by the three cells."""

    name = "cell"
    gates = 1

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype="float32"):
        super().__init__()
        _check_size(self.name, input_size=input_size, hidden_size=hidden_size)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bool(bias)
        width, bound = self.gates * hidden_size, 1.0 / math.sqrt(hidden_size)
        self.W_ih = _uniform((input_size, width), bound, device, dtype)
        self.W_hh = _uniform((hidden_size, width), bound, device, dtype)
        self.bias_ih = self.bias_hh = None
        if bias:
            self.bias_ih = _uniform((width,), bound, device, dtype)
            self.bias_hh = _uniform((width,), bound, device, dtype)

    def _weights(self):
        return self.W_ih, self.W_hh, self.bias_ih, self.bias_hh

    def _sequence(self, X):
        """``X (B, input_size)`` as a one-step sequence ``(1, B, input_size)``."""
        if len(X.shape) != 2 or X.shape[1] != self.input_size:
            raise ValueError(
                f"{self.name}: input must be (B, input_size={self.input_size}), got {X.shape}"
            )
        return ops.reshape(X, (1, *X.shape))

    def _state(self, h, X, what="h"):
        if h is None:
            return _zeros(X.shape[0], self.hidden_size, X)
        if not isinstance(h, Tensor):
            raise TypeError(f"{self.name}: {what} must be a Tensor, got {type(h).__name__}")
        return h

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}"
        return text if self.bias else text + ", bias=False"


class RNNCell(_Cell):
    """Elman cell: ``h' = act(X W_ih + bias_ih + h W_hh + bias_hh)``, act tanh or relu.

    Shape: ``X (B, input_size)``, ``h (B, hidden_size)`` (zeros when None) → ``(B, hidden_size)``.
    Raises ValueError for a nonlinearity other than ``"tanh"``/``"relu"`` or mismatched shapes.
    """

    name = "RNNCell"

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None,
                 dtype="float32"):  # fmt: skip
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}"
            )
        super().__init__(input_size, hidden_size, bias, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, X, h=None):
        seq = self._sequence(X)
        _, h_n = ops.rnn(seq, self._state(h, X), *self._weights(), self.nonlinearity)
        return h_n


class LSTMCell(_Cell):
    """LSTM cell (gate blocks i, f, g, o): ``c' = f·c + i·g``, ``h' = o·tanh(c')``.

    Shape: ``X (B, input_size)``, ``h = (h0, c0)`` each ``(B, hidden_size)`` (zeros when None)
    → ``(h', c')``.
    """

    name = "LSTMCell"
    gates = 4

    def forward(self, X, h=None):
        seq = self._sequence(X)
        h0, c0 = (None, None) if h is None else h
        _, h_n, c_n = ops.lstm(seq, self._state(h0, X, "h0"), self._state(c0, X, "c0"),
                               *self._weights())  # fmt: skip
        return h_n, c_n


class GRUCell(_Cell):
    """GRU cell, PyTorch's formula (gate blocks r, z, n):
    ``n = tanh(X W_in + b_in + r·(h W_hn + b_hn))``, ``h' = (1 − z)·n + z·h``.

    Shape: ``X (B, input_size)``, ``h (B, hidden_size)`` (zeros when None) → ``(B, hidden_size)``.
    """

    name = "GRUCell"
    gates = 3

    def forward(self, X, h=None):
        _, h_n = ops.gru(self._sequence(X), self._state(h, X), *self._weights())
        return h_n


class _Stack(Module):
    """The multi-layer recurrent modules: ``cells`` run one after another over the sequence."""

    name = "stack"

    def _make_cells(self, make, input_size, hidden_size, num_layers):
        _check_size(self.name, input_size=input_size, hidden_size=hidden_size,
                    num_layers=num_layers)  # fmt: skip
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        return [make(input_size if k == 0 else hidden_size) for k in range(num_layers)]

    def _check_input(self, X):
        if len(X.shape) != 3 or X.shape[2] != self.input_size:
            raise ValueError(
                f"{self.name}: input must be (T, B, input_size={self.input_size}), got {X.shape}"
            )

    def _layer_states(self, h, X, what):
        """``h (num_layers, B, H)`` as a list of per-layer ``(B, H)`` tensors (zeros if None)."""
        batch = X.shape[1]
        if h is None:
            return [_zeros(batch, self.hidden_size, X)] * self.num_layers
        if not isinstance(h, Tensor):
            raise TypeError(f"{self.name}: {what} must be a Tensor, got {type(h).__name__}")
        want = (self.num_layers, batch, self.hidden_size)
        if tuple(h.shape) != want:
            raise ValueError(f"{self.name}: {what} must be {want}, got {h.shape}")
        if self.num_layers == 1:
            return [ops.reshape(h, want[1:])]
        return list(ops.split(h, 0).tuple())


class RNN(_Stack):
    """Multi-layer Elman RNN.

    Shape: ``X (T, B, input_size)``, ``h0 (num_layers, B, hidden_size)`` (zeros when None) →
    ``(output (T, B, hidden_size)`` of the last layer, ``h_n (num_layers, B, hidden_size))``.
    """

    name = "RNN"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, nonlinearity="tanh",
                 device=None, dtype="float32"):  # fmt: skip
        super().__init__()
        self.rnn_cells = self._make_cells(
            lambda n: RNNCell(n, hidden_size, bias, nonlinearity, device, dtype),
            input_size, hidden_size, num_layers,
        )  # fmt: skip

    def forward(self, X, h0=None):
        self._check_input(X)
        out, finals = X, []
        for cell, h in zip(self.rnn_cells, self._layer_states(h0, X, "h0")):
            out, h_n = ops.rnn(out, h, *cell._weights(), cell.nonlinearity)
            finals.append(h_n)
        return out, ops.stack(finals, 0)


class LSTM(_Stack):
    """Multi-layer LSTM.

    Shape: ``X (T, B, input_size)``, ``h = (h0, c0)`` each ``(num_layers, B, hidden_size)``
    (zeros when None) → ``(output (T, B, hidden_size), (h_n, c_n))``.
    """

    name = "LSTM"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, device=None,
                 dtype="float32"):  # fmt: skip
        super().__init__()
        self.lstm_cells = self._make_cells(
            lambda n: LSTMCell(n, hidden_size, bias, device, dtype),
            input_size, hidden_size, num_layers,
        )  # fmt: skip

    def forward(self, X, h=None):
        self._check_input(X)
        h0, c0 = (None, None) if h is None else h
        hs, cs = self._layer_states(h0, X, "h0"), self._layer_states(c0, X, "c0")
        out, h_finals, c_finals = X, [], []
        for cell, h_l, c_l in zip(self.lstm_cells, hs, cs):
            out, h_n, c_n = ops.lstm(out, h_l, c_l, *cell._weights())
            h_finals.append(h_n)
            c_finals.append(c_n)
        return out, (ops.stack(h_finals, 0), ops.stack(c_finals, 0))


class GRU(_Stack):
    """Multi-layer GRU (PyTorch's formula and gate order r, z, n).

    Shape: ``X (T, B, input_size)``, ``h0 (num_layers, B, hidden_size)`` (zeros when None) →
    ``(output (T, B, hidden_size), h_n (num_layers, B, hidden_size))``.
    """

    name = "GRU"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, device=None,
                 dtype="float32"):  # fmt: skip
        super().__init__()
        self.gru_cells = self._make_cells(
            lambda n: GRUCell(n, hidden_size, bias, device, dtype),
            input_size, hidden_size, num_layers,
        )  # fmt: skip

    def forward(self, X, h0=None):
        self._check_input(X)
        out, finals = X, []
        for cell, h in zip(self.gru_cells, self._layer_states(h0, X, "h0")):
            out, h_n = ops.gru(out, h, *cell._weights())
            finals.append(h_n)
        return out, ops.stack(finals, 0)


class Embedding(Module):
    """A lookup table: ``weight (num_embeddings, embedding_dim)`` ~ N(0, 1).

    Shape: ``x (T, B)`` (any shape) of integer values in ``[0, num_embeddings)`` →
    ``(T, B, embedding_dim)``.  Gathers rows (no one-hot matrices); the gradient
    scatter-adds into the rows used.
    """

    def __init__(self, num_embeddings, embedding_dim, device=None, dtype="float32"):
        super().__init__()
        _check_size("Embedding", num_embeddings=num_embeddings, embedding_dim=embedding_dim)
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = Parameter(
            init.randn(num_embeddings, embedding_dim, device=device, dtype=dtype)
        )

    def forward(self, x):
        if not isinstance(x, Tensor):
            raise TypeError(f"Embedding: x must be a Tensor of indices, got {type(x).__name__}")
        return ops.embedding(self.weight, x)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"
