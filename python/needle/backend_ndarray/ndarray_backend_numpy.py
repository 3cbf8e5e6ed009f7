"""The NumPy backend: the readable specification of the backend function table.

Every backend module (this one, the C++ ``ndarray_backend_cpu`` and the CUDA
``ndarray_backend_cuda``) exports exactly the names in ``TABLE`` below, with the same
argument order: inputs first, ``out`` last, sizes explicit.  Buffers are flat 1-D
arrays (``Array``); shapes, strides and offsets are counted in elements.

The compiled backends are tested against the functions here, so each one is written
for clarity, not speed.

Convolution and pooling kernels take their geometry as one flat list of ints, always
in the 3-D form (1-D and 2-D problems are 3-D problems with size-1 leading axes):

``conv geometry`` (25 ints), see ``CONV_GEOMETRY_FIELDS``:
    N, Di, Hi, Wi, Cin, KD, KH, KW, Cout, Do, Ho, Wo,
    stride (3), pad_lo (3), dilation (3), input_dilation (3), groups

    a   : (N, Di, Hi, Wi, Cin)            channels-last input
    b   : (KD, KH, KW, Cin // groups, Cout)
    out : (N, Do, Ho, Wo, Cout)

    out[n, o, co] = sum_{k, c} x[n, o * stride + k * dilation - pad_lo, g * Cg + c] * b[k, c, co]

    where g = co // (Cout // groups), Cg = Cin // groups, and x is the input with
    ``input_dilation - 1`` zeros inserted between elements (position q holds
    a[q // input_dilation] when q is a multiple of input_dilation) and zeros outside.
    ``pad_lo`` may be negative (the window starts inside the input).

``pool geometry`` (17 ints), see ``POOL_GEOMETRY_FIELDS``:
    N, Di, Hi, Wi, C, KD, KH, KW, Do, Ho, Wo, stride (3), pad_lo (3)

Fused kernels for the training step (each replaces several passes and broadcast copies):
``sum_rows`` (column sums of a row-major matrix), ``rows_affine`` (``a*s + b*t + u`` with
per-column ``s, t, u``) and ``adam_step`` (one Adam update over flat buffers).
"""

import numpy as np

__device_name__ = "cpu_numpy"
__tile_size__ = 1

DTYPES = ("float32", "float64")

CONV_GEOMETRY_FIELDS = (
    "N", "Di", "Hi", "Wi", "Cin", "KD", "KH", "KW", "Cout", "Do", "Ho", "Wo",
    "sd", "sh", "sw", "pd", "ph", "pw", "dd", "dh", "dw", "idd", "idh", "idw", "groups",
)
POOL_GEOMETRY_FIELDS = (
    "N", "Di", "Hi", "Wi", "C", "KD", "KH", "KW", "Do", "Ho", "Wo",
    "sd", "sh", "sw", "pd", "ph", "pw",
)


class Array:
    """A flat buffer of ``size`` elements of ``dtype``."""

    def __init__(self, size, dtype="float32"):
        if dtype not in DTYPES:
            raise TypeError(f"Array: unsupported dtype {dtype!r}; expected one of {DTYPES}")
        if size < 0:
            raise ValueError(f"Array: size must be non-negative, got {size}")
        self.array = np.empty(size, dtype=dtype)

    @property
    def size(self):
        return self.array.size

    @property
    def dtype(self):
        return str(self.array.dtype)

    def ptr(self):
        return self.array.ctypes.data


def _view(a, shape, strides, offset):
    itemsize = a.array.itemsize
    return np.lib.stride_tricks.as_strided(
        a.array[offset:], shape, tuple(s * itemsize for s in strides)
    )


def to_numpy(a, shape, strides, offset):
    return _view(a, shape, strides, offset).copy()


def from_numpy(a, out):
    out.array[:] = np.asarray(a, dtype=out.array.dtype).flatten()


def fill(out, val):
    out.array.fill(val)


def compact(a, out, shape, strides, offset):
    """out (compact) <- the strided view (shape, strides, offset) of a."""
    out.array[:] = _view(a, shape, strides, offset).flatten()


def ewise_setitem(a, out, shape, strides, offset):
    """The strided view (shape, strides, offset) of out <- compact a."""
    _view(out, shape, strides, offset)[:] = a.array[: int(np.prod(shape))].reshape(shape)


def scalar_setitem(size, val, out, shape, strides, offset):
    _view(out, shape, strides, offset)[:] = val


def scaled_copy(a, scale, out, offset):
    """out[offset : offset + a.size] <- scale * a (a gradient, weighted, into its piece of a
    flat buffer)."""
    if a.size and not 0 <= offset <= out.size - a.size:
        raise IndexError(
            f"scaled_copy: {a.size} elements at offset {offset} do not fit out of size {out.size}"
        )
    with np.errstate(all="ignore"):
        out.array[offset : offset + a.size] = a.array * out.array.dtype.type(scale)


def _binary(fn):
    def ewise(a, b, out):
        with np.errstate(all="ignore"):
            out.array[:] = fn(a.array[: out.size], b.array[: out.size])

    def scalar(a, val, out):
        with np.errstate(all="ignore"):
            out.array[:] = fn(a.array[: out.size], val)

    return ewise, scalar


def _unary(fn):
    def ewise(a, out):
        with np.errstate(all="ignore"):
            out.array[:] = fn(a.array[: out.size])

    return ewise


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


ewise_add, scalar_add = _binary(np.add)
ewise_sub, scalar_sub = _binary(np.subtract)
ewise_mul, scalar_mul = _binary(np.multiply)
ewise_div, scalar_div = _binary(np.divide)
ewise_power, scalar_power = _binary(np.power)
ewise_maximum, scalar_maximum = _binary(np.maximum)
ewise_eq, scalar_eq = _binary(np.equal)
ewise_ne, scalar_ne = _binary(np.not_equal)
ewise_lt, scalar_lt = _binary(np.less)
ewise_le, scalar_le = _binary(np.less_equal)
ewise_gt, scalar_gt = _binary(np.greater)
ewise_ge, scalar_ge = _binary(np.greater_equal)
ewise_relu_grad, _ = _binary(lambda g, a: np.where(a > 0, g, 0))  # ReLU's gradient at input a
_, scalar_rsub = _binary(lambda x, v: v - x)
_, scalar_rdiv = _binary(lambda x, v: v / x)
_, scalar_rpower = _binary(lambda x, v: np.power(v, x))

ewise_neg = _unary(np.negative)
ewise_log = _unary(np.log)
ewise_exp = _unary(np.exp)
ewise_tanh = _unary(np.tanh)
ewise_sqrt = _unary(np.sqrt)
ewise_abs = _unary(np.abs)
ewise_sign = _unary(np.sign)
ewise_sigmoid = _unary(_sigmoid)
ewise_relu = _unary(lambda x: np.maximum(x, 0))


def reduce_sum(a, out, reduce_size):
    """out[i] = sum of a[i * reduce_size : (i + 1) * reduce_size]."""
    out.array[:] = a.array[: out.size * reduce_size].reshape(-1, reduce_size).sum(axis=1)


def reduce_max(a, out, reduce_size):
    out.array[:] = a.array[: out.size * reduce_size].reshape(-1, reduce_size).max(axis=1)


def matmul(a, b, out, m, n, p):
    """out (m, p) <- a (m, n) @ b (n, p), all compact."""
    out.array[:] = (a.array[: m * n].reshape(m, n) @ b.array[: n * p].reshape(n, p)).reshape(-1)


def matmul_batched(a, b, out, batch, m, n, p, a_batch_stride, b_batch_stride):
    """out[i] (m, p) <- a[i] (m, n) @ b[i] (n, p) for i < batch; a stride of 0 broadcasts."""
    av = _view(a, (batch, m, n), (a_batch_stride, n, 1), 0)
    bv = _view(b, (batch, n, p), (b_batch_stride, p, 1), 0)
    out.array[:] = np.matmul(av, bv).reshape(-1)


def sum_rows(a, out, rows):
    """out[c] = sum over r < rows of a[r * C + c], C = out.size: the column sums of a
    row-major (rows, C) matrix (per-channel sums of a channels-last batch)."""
    out.array[:] = a.array[: rows * out.size].reshape(rows, out.size).sum(axis=0)


def rows_affine(a, b, s, t, u, out):
    """out[r, c] = a[r, c] * s[c] + b[r, c] * t[c] + u[c] for row-major (rows, C) matrices,
    C = s.size = t.size = u.size, rows = out.size / C."""
    c = s.size
    n = out.size
    a2, b2 = a.array[:n].reshape(-1, c), b.array[:n].reshape(-1, c)
    out.array[:] = (a2 * s.array[:c] + b2 * t.array[:c] + u.array[:c]).reshape(-1)


def adam_step(param, grad, m, v, hyper, param_out, m_out, v_out):
    """One Adam update of n = param_out.size elements, hyper = (step_size, beta1, beta2,
    correction2, eps, weight_decay):

        g = grad + weight_decay * param                  (g = grad when weight_decay == 0)
        m_out = beta1 * m + (1 - beta1) * g;   v_out = beta2 * v + (1 - beta2) * g * g
        param_out = param - step_size * m_out / (sqrt(v_out / correction2) + eps)
    """
    step, b1, b2, c2, eps, wd = (float(h) for h in hyper)
    n = param_out.size
    dtype = param_out.array.dtype
    p, g = param.array[:n], grad.array[:n]
    if wd != 0:
        g = g + p * dtype.type(wd)
    m_new = m.array[:n] * dtype.type(b1) + g * dtype.type(1 - b1)
    v_new = v.array[:n] * dtype.type(b2) + g * g * dtype.type(1 - b2)
    m_out.array[:] = m_new
    v_out.array[:] = v_new
    denom = np.sqrt(v_new / dtype.type(c2)) + dtype.type(eps)
    param_out.array[:] = p - m_new * dtype.type(step) / denom


def _conv_fields(geom):
    if len(geom) != len(CONV_GEOMETRY_FIELDS):
        raise ValueError(f"conv geometry needs {len(CONV_GEOMETRY_FIELDS)} ints, got {len(geom)}")
    return dict(zip(CONV_GEOMETRY_FIELDS, (int(v) for v in geom)))


def _dilated_padded(x, spatial_in, kernel, out, stride, pad_lo, dil, in_dil):
    """Zero-fill so that window element (o, k) of axis i sits at o*stride + k*dil (no offset)."""
    n, c = x.shape[0], x.shape[-1]
    extents = [(o - 1) * s + (k - 1) * d + 1 for o, k, s, d in zip(out, kernel, stride, dil)]
    buf = np.zeros((n, *extents, c), dtype=x.dtype)
    src = [slice(None)]
    dst = [slice(None)]
    for size, ext, p, idl in zip(spatial_in, extents, pad_lo, in_dil):
        # input element j sits at padded position j * idl + p; keep those inside [0, ext)
        first = max(0, (-p + idl - 1) // idl)
        last = min(size - 1, (ext - 1 - p) // idl)
        if last < first:
            return buf
        src.append(slice(first, last + 1))
        dst.append(slice(first * idl + p, last * idl + p + 1, idl))
    buf[tuple(dst)] = x[tuple(src)]
    return buf


def _windows(g, x):
    """im2col as a strided view: (N, Do, Ho, Wo, KD, KH, KW, Cin)."""
    xp = _dilated_padded(
        x,
        (g["Di"], g["Hi"], g["Wi"]),
        (g["KD"], g["KH"], g["KW"]),
        (g["Do"], g["Ho"], g["Wo"]),
        (g["sd"], g["sh"], g["sw"]),
        (g["pd"], g["ph"], g["pw"]),
        (g["dd"], g["dh"], g["dw"]),
        (g["idd"], g["idh"], g["idw"]),
    )
    sn, sd, sh, sw, sc = xp.strides
    return np.lib.stride_tricks.as_strided(
        xp,
        (g["N"], g["Do"], g["Ho"], g["Wo"], g["KD"], g["KH"], g["KW"], g["Cin"]),
        (sn, g["sd"] * sd, g["sh"] * sh, g["sw"] * sw)
        + (g["dd"] * sd, g["dh"] * sh, g["dw"] * sw, sc),
    )


def _grouped_windows(g, a):
    """im2col of the input buffer ``a`` split by group: (N, Do, Ho, Wo, KD, KH, KW, G, Cin/G)."""
    G, cin = g["groups"], g["Cin"]
    x = a.array[: g["N"] * g["Di"] * g["Hi"] * g["Wi"] * cin]
    x = x.reshape(g["N"], g["Di"], g["Hi"], g["Wi"], cin)
    cols = _windows(g, x)
    return cols.reshape(*cols.shape[:-1], G, cin // G)


def conv_forward(a, b, out, geom):
    """out <- conv(a, b) for the conv geometry (see the module docstring)."""
    g = _conv_fields(geom)
    G, cin, cout = g["groups"], g["Cin"], g["Cout"]
    cols = _grouped_windows(g, a)
    w = b.array[: g["KD"] * g["KH"] * g["KW"] * (cin // G) * cout]
    w = w.reshape(g["KD"], g["KH"], g["KW"], cin // G, G, cout // G)
    y = np.einsum("nopqdhwgc,dhwcgk->nopqgk", cols, w)
    out.array[:] = y.reshape(-1)


def conv_backward_weight(a, grad, out, geom):
    """out (KD, KH, KW, Cin // groups, Cout) <- X^T @ grad per group (X = im2col of a)."""
    g = _conv_fields(geom)
    G, cout = g["groups"], g["Cout"]
    cols = _grouped_windows(g, a)
    gy = grad.array[: g["N"] * g["Do"] * g["Ho"] * g["Wo"] * cout]
    gy = gy.reshape(g["N"], g["Do"], g["Ho"], g["Wo"], G, cout // G)
    dw = np.einsum("nopqdhwgc,nopqgk->dhwcgk", cols, gy)
    out.array[:] = dw.reshape(-1)


def _pool_fields(geom):
    if len(geom) != len(POOL_GEOMETRY_FIELDS):
        raise ValueError(f"pool geometry needs {len(POOL_GEOMETRY_FIELDS)} ints, got {len(geom)}")
    return dict(zip(POOL_GEOMETRY_FIELDS, (int(v) for v in geom)))


def _pool_windows(g, a):
    """-inf padded input and its windows (N, Do, Ho, Wo, C, KD*KH*KW) as a copy."""
    x = a.array[: g["N"] * g["Di"] * g["Hi"] * g["Wi"] * g["C"]]
    x = x.reshape(g["N"], g["Di"], g["Hi"], g["Wi"], g["C"])
    pads = (g["pd"], g["ph"], g["pw"])
    kernel = (g["KD"], g["KH"], g["KW"])
    stride = (g["sd"], g["sh"], g["sw"])
    outs = (g["Do"], g["Ho"], g["Wo"])
    sizes = x.shape[1:4]
    # pad after so the last window fits; -inf never wins a max
    hi = [max(0, (o - 1) * s + k - p - n)
          for o, s, k, p, n in zip(outs, stride, kernel, pads, sizes)]
    xp = np.pad(x, ((0, 0), *zip(pads, hi), (0, 0)), constant_values=-np.inf)
    sn, sd, sh, sw, sc = xp.strides
    win = np.lib.stride_tricks.as_strided(
        xp,
        (g["N"], *outs, g["C"], *kernel),
        (sn, stride[0] * sd, stride[1] * sh, stride[2] * sw, sc, sd, sh, sw),
    )
    return xp, win.reshape(*win.shape[:5], -1)


def maxpool_forward(a, out, geom):
    """out (N, Do, Ho, Wo, C) <- max over each window; padding never wins."""
    g = _pool_fields(geom)
    _, win = _pool_windows(g, a)
    out.array[:] = win.max(axis=-1).reshape(-1)


def maxpool_backward(a, grad, out, geom):
    """out (input shape) <- grad routed to the first arg-max of each window."""
    g = _pool_fields(geom)
    xp, win = _pool_windows(g, a)
    kh, kw = g["KH"], g["KW"]
    arg = win.argmax(axis=-1)
    n, od, oh, ow, c = np.indices(arg.shape)
    pd = od * g["sd"] + arg // (kh * kw) - g["pd"]
    ph = oh * g["sh"] + (arg // kw) % kh - g["ph"]
    pw = ow * g["sw"] + arg % kw - g["pw"]
    dx = np.zeros((g["N"], g["Di"], g["Hi"], g["Wi"], g["C"]), dtype=out.array.dtype)
    gy = grad.array[: arg.size].reshape(arg.shape)
    np.add.at(dx, (n, pd, ph, pw, c), gy)
    out.array[:] = dx.reshape(-1)


TABLE = (
    "Array", "to_numpy", "from_numpy", "fill", "compact", "ewise_setitem", "scalar_setitem",
    "scaled_copy",
    "ewise_add", "scalar_add", "ewise_sub", "scalar_sub", "scalar_rsub",
    "ewise_mul", "scalar_mul", "ewise_div", "scalar_div", "scalar_rdiv",
    "ewise_power", "scalar_power", "scalar_rpower", "ewise_maximum", "scalar_maximum",
    "ewise_eq", "scalar_eq", "ewise_ne", "scalar_ne", "ewise_lt", "scalar_lt",
    "ewise_le", "scalar_le", "ewise_gt", "scalar_gt", "ewise_ge", "scalar_ge", "ewise_relu_grad",
    "ewise_neg", "ewise_log", "ewise_exp", "ewise_tanh", "ewise_sqrt", "ewise_abs",
    "ewise_sign", "ewise_sigmoid", "ewise_relu",
    "reduce_sum", "reduce_max", "matmul", "matmul_batched",
    "conv_forward", "conv_backward_weight", "maxpool_forward", "maxpool_backward",
    "sum_rows", "rows_affine", "adam_step",
)


# ==== sequence models: recurrent step kernels, row gather / scatter-add =======================
# Part of TABLE (every backend exports them: src/cpu/sequence.h, src/cuda/sequence.cuh).
# Buffers are flat; (T, B, G) arrays are row-major, hold at least steps 0..t, and step t of
# each is read or written in place.  The arithmetic is needle.backend_numpy's (the NumPy mode
# runs the same functions).
from .. import backend_numpy as _seq  # noqa: E402

SEQUENCE_TABLE = (
    "lstm_step_forward", "lstm_step_backward", "rnn_step_forward", "rnn_step_backward",
    "gru_step_forward", "gru_step_backward", "gather_rows", "scatter_add_rows",
)
TABLE = TABLE + SEQUENCE_TABLE


def _steps(buf, batch, width):
    return buf.array.reshape(-1, batch, width)


def _rows(buf, batch, width):
    return buf.array[: batch * width].reshape(batch, width)


def lstm_step_forward(xw, hw, c0, act, c_all, h_all, t, batch, hidden):
    g = 4 * hidden
    _seq.lstm_step_forward(
        _steps(xw, batch, g), _rows(hw, batch, g), _rows(c0, batch, hidden),
        _steps(act, batch, g), _steps(c_all, batch, hidden), _steps(h_all, batch, hidden), t,
    )  # fmt: skip


def lstm_step_backward(act, c_all, c0, d_out, dh_mat, dc, dgates, t, batch, hidden):
    g = 4 * hidden
    _seq.lstm_step_backward(
        _steps(act, batch, g), _steps(c_all, batch, hidden), _rows(c0, batch, hidden),
        _steps(d_out, batch, hidden), _rows(dh_mat, batch, hidden), _rows(dc, batch, hidden),
        _steps(dgates, batch, g), t,
    )  # fmt: skip


def rnn_step_forward(xw, hw, h_all, t, batch, hidden, relu):
    _seq.rnn_step_forward(
        _steps(xw, batch, hidden), _rows(hw, batch, hidden), _steps(h_all, batch, hidden), t,
        bool(relu),
    )  # fmt: skip


def rnn_step_backward(h_all, d_out, dh_mat, dgates, t, batch, hidden, relu):
    _seq.rnn_step_backward(
        _steps(h_all, batch, hidden), _steps(d_out, batch, hidden), _rows(dh_mat, batch, hidden),
        _steps(dgates, batch, hidden), t, bool(relu),
    )  # fmt: skip


def gru_step_forward(xw, hw, bhh, h0, act, h_all, t, batch, hidden):
    g = 3 * hidden
    _seq.gru_step_forward(
        _steps(xw, batch, g), _rows(hw, batch, g), _rows(bhh, 1, g), _rows(h0, batch, hidden),
        _steps(act, batch, 4 * hidden), _steps(h_all, batch, hidden), t,
    )  # fmt: skip


def gru_step_backward(act, h0, h_all, d_out, dh_mat, dh_carry, dgx, dgh, t, batch, hidden):
    g = 3 * hidden
    _seq.gru_step_backward(
        _steps(act, batch, 4 * hidden), _rows(h0, batch, hidden), _steps(h_all, batch, hidden),
        _steps(d_out, batch, hidden), _rows(dh_mat, batch, hidden),
        _rows(dh_carry, batch, hidden), _steps(dgx, batch, g), _steps(dgh, batch, g), t,
    )  # fmt: skip


def gather_rows(table, idx, out, rows, dim):
    """out (N, dim) <- rows of table (rows, dim) at idx (N,); IndexError outside [0, rows)."""
    n = idx.size
    got = _seq.gather_rows(table.array[: rows * dim].reshape(rows, dim), idx.array)
    out.array[: n * dim] = got.ravel()


def scatter_add_rows(grad, idx, out, rows, dim):
    """out (rows, dim) <- zeros with grad[k] added to row idx[k]."""
    n = idx.size
    total = _seq.scatter_add_rows(grad.array[: n * dim].reshape(n, dim), idx.array, rows)
    out.array[: rows * dim] = total.ravel()
