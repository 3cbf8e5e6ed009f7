"""NDArray-level wrappers of the recurrent step kernels and the row gather / scatter-add.

Each function takes NDArrays, checks their shapes, and runs the device's kernel
(``device.lstm_step_forward`` ...: every backend exports them, see the TABLE of
``ndarray_backend_numpy``; ``needle.backend_numpy`` holds the reference arithmetic).  The step
functions write step ``t`` of their output arrays in place; the arrays that a kernel writes
must be packed from the start of their buffer (the op layer allocates them).
"""

from .fused import _packed
from .ndarray import NDArray, _compact_strides

__all__ = [
    "lstm_step_forward", "lstm_step_backward", "rnn_step_forward", "rnn_step_backward",
    "gru_step_forward", "gru_step_backward", "gather_rows", "scatter_add_rows",
]  # fmt: skip


def _buf(a):
    """The handle of ``a`` packed from the start of its buffer (a copy when it is not)."""
    return _packed(a)._handle


def _out(a, what):
    if a._offset or a._strides != _compact_strides(a._shape):
        raise ValueError(f"{what}: output arrays must be packed, got strides {a._strides}")
    return a._handle


def _step(name, states, t, inputs, outputs, *extra):
    """Run kernel ``name`` for step ``t`` of the (T, B, H) array ``states``: the kernels take
    their input buffers, then their output buffers, then t, B, H and any ``extra``."""
    steps, batch, hidden = states.shape
    if not 0 <= t < steps:
        raise ValueError(f"{name}: step t={t} outside [0, {steps})")
    getattr(states._device, name)(
        *[_buf(a) for a in inputs], *[_out(a, name) for a in outputs], t, batch, hidden, *extra
    )


def lstm_step_forward(xw, hw, c0, act, c_all, h_all, t):
    """LSTM step ``t`` (see ``needle.backend_numpy.lstm_step_forward``)."""
    _step("lstm_step_forward", h_all, t, (xw, hw, c0), (act, c_all, h_all))


def lstm_step_backward(act, c_all, c0, d_out, dh_mat, dc, dgates, t):
    """Gradient of LSTM step ``t``; ``dc`` is read and written (∂c_t in, ∂c_{t-1} out)."""
    _step("lstm_step_backward", c_all, t, (act, c_all, c0, d_out, dh_mat), (dc, dgates))


def rnn_step_forward(xw, hw, h_all, t, relu):
    """Elman step ``t``: h_t = relu or tanh of xw[t] + hw."""
    _step("rnn_step_forward", h_all, t, (xw, hw), (h_all,), bool(relu))


def rnn_step_backward(h_all, d_out, dh_mat, dgates, t, relu):
    """Gradient of Elman step ``t`` into dgates[t]."""
    _step("rnn_step_backward", h_all, t, (h_all, d_out, dh_mat), (dgates,), bool(relu))


def gru_step_forward(xw, hw, bhh, h0, act, h_all, t):
    """GRU step ``t`` (PyTorch's formula; ``bhh`` is the (1, 3H) hidden bias)."""
    _step("gru_step_forward", h_all, t, (xw, hw, bhh, h0), (act, h_all))


def gru_step_backward(act, h0, h_all, d_out, dh_mat, dh_carry, dgx, dgh, t):
    """Gradient of GRU step ``t``; ``dh_carry`` is read and written."""
    _step("gru_step_backward", h_all, t, (act, h0, h_all, d_out, dh_mat), (dh_carry, dgx, dgh))


def _index_buffer(idx, like):
    """The indices as a packed buffer of ``like``'s dtype on ``like``'s device."""
    if idx._device != like._device or idx._handle.dtype != like._handle.dtype:
        idx = NDArray(idx.numpy().astype(like.dtype), device=like._device)
    return _packed(idx, idx.size)._handle  # kernels take N from the buffer's size


def gather_rows(table, idx):
    """Rows of ``table (V, D)`` at the N indices of ``idx`` (any shape): ``(*idx.shape, D)``."""
    rows, dim = table.shape
    n = idx.size
    out = NDArray._fresh((n, dim), table._device, table._handle.dtype)
    table._device.gather_rows(_buf(table), _index_buffer(idx, table), out._handle, rows, dim)
    return out.reshape((*idx.shape, dim))


def scatter_add_rows(grad, idx, rows):
    """``(rows, D)`` zeros with row k of ``grad`` (N, D) added to row ``idx[k]``."""
    n, dim = grad.shape
    out = NDArray._fresh((rows, dim), grad._device, grad._handle.dtype)
    grad._device.scatter_add_rows(_buf(grad), _index_buffer(idx, grad), out._handle, rows, dim)
    return out
