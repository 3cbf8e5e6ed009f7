"""The plain-NumPy array API used when ``NEEDLE_BACKEND=np`` (the course's early mode).

Arrays are ``numpy.ndarray`` and keep NumPy's dtypes (float64 stays float64).  The module is
NumPy itself (the course's code calls ``array_api.<numpy function>``) plus the functions the
op layer calls that NumPy lacks or spells differently; they have the names and meaning of
``needle/backend_ndarray/api.py``, so ops carry no mode checks.
"""

import numpy
from numpy import *  # noqa: F401,F403  (the op layer calls array_api.<numpy function>)

ndarray = numpy.ndarray


class Device:
    """The single device of the NumPy mode."""

    name = "cpu"

    def __repr__(self):
        return "cpu()"

    def __hash__(self):
        return hash("cpu")

    def __eq__(self, other):
        return isinstance(other, Device)

    def enabled(self):
        return True

    def randn(self, *shape, dtype="float32"):
        return numpy.random.randn(*shape).astype(dtype)

    def rand(self, *shape, dtype="float32"):
        return numpy.random.rand(*shape).astype(dtype)

    def one_hot(self, n, i, dtype="float32"):
        return numpy.eye(n, dtype=dtype)[numpy.asarray(i, dtype=numpy.int64)]

    def empty(self, shape, dtype="float32"):
        return numpy.empty(shape, dtype=dtype)

    def full(self, shape, fill_value, dtype="float32"):
        return numpy.full(shape, fill_value, dtype=dtype)


_CPU = Device()


def cpu():
    return _CPU


cpu_numpy = cpu


def cuda():
    return _DisabledDevice()


class _DisabledDevice(Device):
    name = "cuda"

    def __repr__(self):
        return "cuda()"

    def enabled(self):
        return False


def default_device():
    return _CPU


def all_devices():
    return [_CPU]


# --- the op layer's array API (same names and meaning as backend_ndarray/api.py) ------------
permute = numpy.transpose
compact = numpy.ascontiguousarray


def sum(a, axis=None, keepdims=False):  # noqa: A001  (NumPy's name, as the course's API)
    """NumPy's sum, always an array (a full reduction gives a 0-d array, not a scalar)."""
    return numpy.asarray(numpy.sum(a, axis=axis, keepdims=keepdims))


def astype(a, dtype):
    return a.astype(dtype)


def to_numpy(a):
    return a


def device_of(a):
    return _CPU


def relu(a):
    return numpy.maximum(a, 0)


def relu_grad(g, a):
    """``g`` where ``a`` > 0, else 0."""
    return g * (a > 0).astype(g.dtype)


def sigmoid(a):
    # exp(-log(1 + e^-a)): no overflow warning for large negative a.
    return numpy.exp(-numpy.logaddexp(0, -a)).astype(a.dtype)


def array_from(data, device=None, dtype=None):
    """A NumPy copy of ``data``; ``dtype=None`` keeps NumPy's dtype (there is one device)."""
    return numpy.array(data, dtype=dtype)


def check_compatible(what, a, b):
    """Inputs of one op may mix dtypes (NumPy promotes them) and there is one device."""


def basic_index(a, index):
    """``a[index]`` (one int or slice per axis), an array also when every index is an int."""
    return numpy.asarray(a[index])


def unstack(a, axis):
    """The slices of ``a`` along ``axis``, that axis removed, as views."""
    lead = (slice(None),) * axis
    return tuple(a[lead + (k,)] for k in range(a.shape[axis]))


def add_row(x, row):
    """``x (..., C) + row``, ``row`` holding C values (a layer's bias)."""
    return x + row.reshape((1,) * (x.ndim - 1) + (x.shape[-1],))


def sum_rows(x):
    """Column sums (1, C) of an (M, C) matrix."""
    return x.sum(axis=0, keepdims=True)


def rows_affine(a, s, u, b=None, t=None):
    """``a * s + b * t + u`` for (M, C) ``a``, ``b`` and (1, C) rows ``s``, ``t``, ``u``;
    without ``b`` the middle term is left out, and ``s=None`` means ones."""
    out = a if s is None else a * s
    if b is not None:
        out = out + b * t
    return out + u


def concat_flat(arrays, out=None):
    """The elements of ``arrays`` (row-major each) one after another in a 1-D array."""
    flat = numpy.concatenate([numpy.reshape(a, -1) for a in arrays])
    if out is None:
        return flat
    if out.shape != flat.shape:
        raise ValueError(f"concat_flat: out has shape {out.shape}, the arrays hold {flat.size}")
    out[...] = flat
    return out


def scaled_copy(a, scale, out):
    """``scale * a`` written into ``out`` (a view with ``a``'s number of elements)."""
    if out.size != numpy.size(a):
        raise ValueError(f"scaled_copy: out {out.shape} does not hold the {numpy.size(a)} of a")
    numpy.multiply(numpy.reshape(a, out.shape), out.dtype.type(scale), out=out)
    return out


def flat_view(arrays):
    """None: NumPy mode always packs by ``concat_flat`` (see the NDArray API's flat_view)."""
    return None


def split_flat(flat, shapes):
    """Arrays of ``shapes`` holding consecutive pieces of 1-D ``flat`` (copies)."""
    out, offset = [], 0
    for shape in shapes:
        n = int(numpy.prod(shape))
        out.append(flat[offset : offset + n].reshape(shape).copy())
        offset += n
    if flat.ndim != 1 or offset != flat.size:
        raise ValueError(f"split_flat: shapes {shapes} do not cover a 1-D array of {flat.shape}")
    return out


# ==== sequence models: recurrent step kernels and row gather / scatter-add ====================
# The reference of the kernels behind needle.ops.ops_sequence (the C++ and CUDA backends
# implement the same arithmetic in src/cpu/sequence.h and src/cuda/sequence.cuh; the NumPy
# device backend runs these).  Arrays: xw (T, B, G) input projections (biases folded in),
# hw (B, G) the recurrent projection h_{t-1} @ W_hh of step t, act (T, B, ·) saved
# activations, h_all / c_all (T, B, H) the states; the step functions write step t in place.
# Gate blocks: LSTM i, f, g, o (G = 4H); GRU r, z, n (G = 3H, PyTorch's formula for n).


def _seq_sigmoid(x):
    return 1.0 / (1.0 + numpy.exp(-x))


def lstm_step_forward(xw, hw, c0, act, c_all, h_all, t):
    """One LSTM step: a = xw[t] + hw; i, f, o = σ(a_i, a_f, a_o), g = tanh(a_g);
    c_t = f·c_{t-1} + i·g, h_t = o·tanh(c_t) (c_{-1} = c0).  Writes act[t] = (i, f, g, o),
    c_all[t], h_all[t]."""
    hidden = c0.shape[1]
    pre = xw[t] + hw
    gates = act[t]
    gates[:, :] = _seq_sigmoid(pre)
    gates[:, 2 * hidden : 3 * hidden] = numpy.tanh(pre[:, 2 * hidden : 3 * hidden])
    i, f = gates[:, :hidden], gates[:, hidden : 2 * hidden]
    g, o = gates[:, 2 * hidden : 3 * hidden], gates[:, 3 * hidden :]
    c_prev = c0 if t == 0 else c_all[t - 1]
    c = f * c_prev + i * g
    c_all[t][:, :] = c
    h_all[t][:, :] = o * numpy.tanh(c)


def lstm_step_backward(act, c_all, c0, d_out, dh_mat, dc, dgates, t):
    """Gradient of step t: dh = d_out[t] + dh_mat (dh_mat: what h_t feeds later steps and
    h_n); ``dc`` holds ∂c_t from later steps on entry and ∂c_{t-1} on exit.  Writes
    dgates[t] = ∂(xw[t] + hw), the pre-activation gradient of the four gates."""
    hidden = c0.shape[1]
    gates = act[t]
    i, f = gates[:, :hidden], gates[:, hidden : 2 * hidden]
    g, o = gates[:, 2 * hidden : 3 * hidden], gates[:, 3 * hidden :]
    c_prev = c0 if t == 0 else c_all[t - 1]
    tanh_c = numpy.tanh(c_all[t])
    dh = d_out[t] + dh_mat
    dct = dc + dh * o * (1 - tanh_c * tanh_c)
    out = dgates[t]
    out[:, :hidden] = dct * g * i * (1 - i)
    out[:, hidden : 2 * hidden] = dct * c_prev * f * (1 - f)
    out[:, 2 * hidden : 3 * hidden] = dct * i * (1 - g * g)
    out[:, 3 * hidden :] = dh * tanh_c * o * (1 - o)
    dc[:, :] = dct * f


def rnn_step_forward(xw, hw, h_all, t, relu):
    """One Elman step: h_t = act(xw[t] + hw), act = relu if ``relu`` else tanh."""
    pre = xw[t] + hw
    h_all[t][:, :] = numpy.maximum(pre, 0) if relu else numpy.tanh(pre)


def rnn_step_backward(h_all, d_out, dh_mat, dgates, t, relu):
    """dgates[t] = (d_out[t] + dh_mat) · act'(h_t) (act' from the output: 1 − h² or h > 0)."""
    h = h_all[t]
    dh = d_out[t] + dh_mat
    deriv = (h > 0) if relu else 1 - h * h
    if isinstance(deriv, numpy.ndarray):
        deriv = deriv.astype(h.dtype)
    dgates[t][:, :] = dh * deriv


def gru_step_forward(xw, hw, bhh, h0, act, h_all, t):
    """One GRU step (PyTorch's formula): with b = hw + bhh,
    r = σ(x_r + b_r), z = σ(x_z + b_z), n = tanh(x_n + r·b_n), h_t = (1 − z)·n + z·h_{t-1}.
    Writes act[t] = (r, z, n, b_n) (4H) and h_all[t]."""
    hidden = h0.shape[1]
    x, b = xw[t], hw + bhh
    saved = act[t]
    saved[:, : 2 * hidden] = _seq_sigmoid(x[:, : 2 * hidden] + b[:, : 2 * hidden])
    r, z = saved[:, :hidden], saved[:, hidden : 2 * hidden]
    b_n = b[:, 2 * hidden :]
    n = numpy.tanh(x[:, 2 * hidden :] + r * b_n)
    saved[:, 2 * hidden : 3 * hidden] = n
    saved[:, 3 * hidden :] = b_n
    h_prev = h0 if t == 0 else h_all[t - 1]
    h_all[t][:, :] = n + z * (h_prev - n)


def gru_step_backward(act, h0, h_all, d_out, dh_mat, dh_carry, dgx, dgh, t):
    """Gradient of step t: dh = d_out[t] + dh_mat + dh_carry (dh_mat = dgh[t+1] @ W_hhᵀ,
    dh_carry = the direct path z·dh of step t+1; on exit dh_carry holds this step's).
    Writes dgx[t] = ∂xw[t] and dgh[t] = ∂(hw + bhh); they differ in the n block (× r)."""
    hidden = h0.shape[1]
    saved = act[t]
    r, z = saved[:, :hidden], saved[:, hidden : 2 * hidden]
    n, b_n = saved[:, 2 * hidden : 3 * hidden], saved[:, 3 * hidden :]
    h_prev = h0 if t == 0 else h_all[t - 1]
    dh = d_out[t] + dh_mat + dh_carry
    dn = dh * (1 - z) * (1 - n * n)
    dr = dn * b_n * r * (1 - r)
    dz = dh * (h_prev - n) * z * (1 - z)
    gx, gh = dgx[t], dgh[t]
    gx[:, :hidden] = dr
    gx[:, hidden : 2 * hidden] = dz
    gx[:, 2 * hidden :] = dn
    gh[:, :hidden] = dr
    gh[:, hidden : 2 * hidden] = dz
    gh[:, 2 * hidden :] = dn * r
    dh_carry[:, :] = dh * z


def _seq_rows(idx, rows, what):
    """Row numbers (stored as floats) as int64; IndexError outside [0, rows)."""
    index = numpy.asarray(idx).astype(numpy.int64)
    if index.size and (index.min() < 0 or index.max() >= rows):
        raise IndexError(f"{what}: index outside [0, {rows}): {index.min()}..{index.max()}")
    return index


def gather_rows(table, idx):
    """Rows ``table[idx]`` of a (V, D) table, shape ``(*idx.shape, D)``."""
    return table[_seq_rows(idx, table.shape[0], "gather_rows")]


def scatter_add_rows(grad, idx, rows):
    """(rows, D) zeros with grad[k] (N, D) added to row idx.flat[k] (repeats accumulate)."""
    out = numpy.zeros((rows, grad.shape[1]), dtype=grad.dtype)
    numpy.add.at(out, _seq_rows(idx, rows, "scatter_add_rows").reshape(-1), grad)
    return out


# --- convolution and pooling (the conv and pool ops; see backend_ndarray/conv.py) ------------
# The NumPy backend's reference kernels (ndarray_backend_numpy) run on flat views of the
# arrays; NumPy mode mixes dtypes as NumPy does, so the inputs meet in their common dtype.
from .backend_ndarray import ndarray_backend_numpy as _reference  # noqa: E402


class _Flat:
    """A NumPy array seen as a backend ``Array`` (``.array`` is the flat buffer)."""

    def __init__(self, x):
        self.array = x.reshape(-1)
        self.size = self.array.size


def _reference_kernel(name, inputs, out_shape, geometry):
    dtype = numpy.result_type(*inputs)
    out = numpy.zeros(out_shape, dtype=dtype)
    if out.size and all(x.size for x in inputs):
        flats = [_Flat(numpy.ascontiguousarray(x, dtype=dtype)) for x in inputs]
        getattr(_reference, name)(*flats, _Flat(out), list(geometry.backend))
    return out


def conv_forward(a, b, geometry):
    """The conv of ``a`` (N, *spatial, C_in) with weight ``b``: ``geometry.out_shape``."""
    return _reference_kernel("conv_forward", (a, b), geometry.out_shape, geometry)


def conv_backward_weight(a, grad, geometry):
    """The weight gradient of the conv of ``a`` given ``grad`` (its output's gradient)."""
    return _reference_kernel("conv_backward_weight", (a, grad), geometry.weight_shape, geometry)


def maxpool_forward(a, geometry):
    """The max over each pooling window of ``a``: ``geometry.out_shape``."""
    return _reference_kernel("maxpool_forward", (a,), geometry.out_shape, geometry)


def maxpool_backward(a, grad, geometry):
    """``grad`` routed to the first arg-max of each window of ``a``: ``a``'s shape."""
    return _reference_kernel("maxpool_backward", (a, grad), a.shape, geometry)


def flip_swap_kernel(b, groups):
    """``(*K, Cg, G*Co) -> (*K, Co, G*Cg)``: ``out[K-1-k, j, g*Cg + c] = b[k, c, g*Co + j]``."""
    *kernel, cg, cout = b.shape
    nd, co = len(kernel), cout // groups
    x = numpy.ascontiguousarray(b).reshape((*kernel, cg, groups, co))
    x = x[(slice(None, None, -1),) * nd].transpose((*range(nd), nd + 2, nd + 1, nd))
    return numpy.ascontiguousarray(x).reshape((*kernel, co, groups * cg))
