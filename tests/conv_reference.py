"""Brute-force convolution and pooling in NumPy, written for clarity, not speed.

Layouts are needle's: input ``(N, *spatial, C_in)`` (1-3 spatial axes), weight
``(*kernel, C_in // groups, C_out)``.  Every function loops over output positions and
kernel taps explicitly; each tap is a small per-group matrix product over channels.
The gradient functions are the exact adjoints of ``conv_reference`` written as
scatter loops (the same index arithmetic, run backwards).

``out_size`` is the one output-size rule the tests use (checked against ``out_size_by_count``,
which counts window positions one by one); ``transposed_out_size`` is its inverse.  The
layer tests share the layout moves and ``compare_with_torch``.
"""

import itertools

import numpy as np
from tests.checks import tensor

TOL = {"float64": dict(rtol=1e-9, atol=1e-9), "float32": dict(rtol=2e-4, atol=2e-4)}


def to_channels_last(x):
    """NCHW -> NHWC (any number of spatial axes)."""
    return np.moveaxis(x, 1, -1)


def to_channels_first(x):
    """NHWC -> NCHW (any number of spatial axes)."""
    return np.moveaxis(x, -1, 1)


def _per_axis(value, nd):
    return (value,) * nd if isinstance(value, int) else tuple(value)


def _pairs(padding, nd):
    if isinstance(padding, int):
        return ((padding, padding),) * nd
    if nd == 1 and len(padding) == 2 and all(isinstance(p, int) for p in padding):
        return (tuple(padding),)
    return tuple((p, p) if isinstance(p, int) else tuple(p) for p in padding)


def out_size(n, k, stride=1, pad_lo=0, pad_hi=0, dilation=1, input_dilation=1):
    """Window positions along one axis: kernel ``k`` with ``dilation``, moved by ``stride``
    over ``n`` inputs with ``input_dilation - 1`` zeros between them, padded by (lo, hi)."""
    padded = (n - 1) * input_dilation + 1 + pad_lo + pad_hi
    return (padded - dilation * (k - 1) - 1) // stride + 1


def out_size_by_count(n, k, stride=1, pad_lo=0, pad_hi=0, dilation=1, input_dilation=1):
    """``out_size`` by brute force: the window starts whose last tap is still inside."""
    padded = (n - 1) * input_dilation + 1 + pad_lo + pad_hi
    return sum(1 for start in range(0, padded, stride) if start + dilation * (k - 1) < padded)


def transposed_out_size(n, k, stride=1, padding=0, dilation=1, output_padding=0):
    """Outputs of a transposed conv along one axis: the largest input size of the conv it
    transposes that gives ``n`` outputs (``out_size`` inverted), plus ``output_padding``."""
    return (n - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1


def conv_args(x_shape, w_shape, stride=1, padding=0, dilation=1):
    """Normalised (stride, pads, dilation, output spatial size)."""
    nd = len(x_shape) - 2
    stride, dilation = _per_axis(stride, nd), _per_axis(dilation, nd)
    pads = _pairs(padding, nd)
    out = tuple(
        out_size(n, k, s, lo, hi, d)
        for n, k, s, d, (lo, hi) in zip(x_shape[1:-1], w_shape[:-2], stride, dilation, pads)
    )
    return stride, pads, dilation, out


def _taps(out, kernel, stride, dilation):
    """Every (output position, kernel tap, padded input position) triple."""
    for o in itertools.product(*map(range, out)):
        for k in itertools.product(*map(range, kernel)):
            yield o, k, tuple(oi * s + ki * d for oi, ki, s, d in zip(o, k, stride, dilation))


def conv_reference(x, w, stride=1, padding=0, dilation=1, groups=1):
    """y[n, o, co] = sum_{k, c} xpad[n, o*stride + k*dilation, g*Cg + c] * w[k, c, co]."""
    stride, pads, dilation, out = conv_args(x.shape, w.shape, stride, padding, dilation)
    n, cin, cout = x.shape[0], x.shape[-1], w.shape[-1]
    cg, co = cin // groups, cout // groups
    xp = np.pad(x, ((0, 0), *pads, (0, 0)))
    y = np.zeros((n, *out, cout), dtype=np.float64)
    for o, k, i in _taps(out, w.shape[:-2], stride, dilation):
        patch = xp[(slice(None), *i)].reshape(n, groups, cg)
        wk = w[k].reshape(cg, groups, co)
        y[(slice(None), *o)] += np.einsum("ngc,cgk->ngk", patch, wk).reshape(n, cout)
    return y


def conv_input_grad_reference(g, w, x_shape, stride=1, padding=0, dilation=1, groups=1):
    """The adjoint of ``conv_reference`` in x: scatter each output's gradient to its taps."""
    stride, pads, dilation, out = conv_args(x_shape, w.shape, stride, padding, dilation)
    n, cin, cout = x_shape[0], x_shape[-1], w.shape[-1]
    cg, co = cin // groups, cout // groups
    padded = [s + lo + hi for s, (lo, hi) in zip(x_shape[1:-1], pads)]
    gxp = np.zeros((n, *padded, cin), dtype=np.float64)
    for o, k, i in _taps(out, w.shape[:-2], stride, dilation):
        go = g[(slice(None), *o)].reshape(n, groups, co)
        wk = w[k].reshape(cg, groups, co)
        gxp[(slice(None), *i)] += np.einsum("ngk,cgk->ngc", go, wk).reshape(n, cin)
    crop = tuple(slice(lo, lo + s) for s, (lo, _) in zip(x_shape[1:-1], pads))
    return gxp[(slice(None), *crop)]


def conv_weight_grad_reference(x, g, w_shape, stride=1, padding=0, dilation=1, groups=1):
    """The adjoint of ``conv_reference`` in w: sum over batch and outputs of patch ⊗ g."""
    stride, pads, dilation, out = conv_args(x.shape, w_shape, stride, padding, dilation)
    n, cin, cout = x.shape[0], x.shape[-1], w_shape[-1]
    cg, co = cin // groups, cout // groups
    xp = np.pad(x, ((0, 0), *pads, (0, 0)))
    gw = np.zeros(w_shape, dtype=np.float64)
    for o, k, i in _taps(out, w_shape[:-2], stride, dilation):
        patch = xp[(slice(None), *i)].reshape(n, groups, cg)
        go = g[(slice(None), *o)].reshape(n, groups, co)
        gw[k] += np.einsum("ngc,ngk->cgk", patch, go).reshape(cg, cout)
    return gw


def conv_transpose_reference(x, w, stride=1, padding=0, output_padding=0, dilation=1, groups=1):
    """PyTorch's conv_transpose in needle's layouts: w is ``(*kernel, C_out // groups, C_in)``.

    It is the input gradient of the conv (weight w) whose output is x, for an input of size
    ``(in - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1``.
    """
    nd = x.ndim - 2
    stride, dil = _per_axis(stride, nd), _per_axis(dilation, nd)
    pad, extra = _per_axis(padding, nd), _per_axis(output_padding, nd)
    out = tuple(
        transposed_out_size(n, k, s, p, d, e)
        for n, s, p, d, k, e in zip(x.shape[1:-1], stride, pad, dil, w.shape[:-2], extra)
    )
    # The scatter: input position i, tap k lands on padded output position i*s + k*d.
    n, cin = x.shape[0], x.shape[-1]
    cout = w.shape[-2] * groups
    cg, co = cout // groups, cin // groups
    padded = [o + 2 * p + s for o, p, s in zip(out, pad, stride)]  # room for every tap
    yp = np.zeros((n, *padded, cout), dtype=np.float64)
    for i, k, q in _taps(x.shape[1:-1], w.shape[:-2], stride, dil):
        xi = x[(slice(None), *i)].reshape(n, groups, co)
        wk = w[k].reshape(cg, groups, co)
        yp[(slice(None), *q)] += np.einsum("ngk,cgk->ngc", xi, wk).reshape(n, cout)
    crop = tuple(slice(p, p + o) for p, o in zip(pad, out))
    return yp[(slice(None), *crop)]


def max_pool_reference(x, kernel, stride=None, padding=0):
    """(values, input gradient of sum(values * g)) for max pooling, -inf padding, first arg-max."""
    nd = x.ndim - 2
    kernel = _per_axis(kernel, nd)
    stride = kernel if stride is None else _per_axis(stride, nd)
    pad = _per_axis(padding, nd)
    xp = np.pad(x, ((0, 0), *[(p, p) for p in pad], (0, 0)), constant_values=-np.inf)
    out = tuple(out_size(s, k, st, p, p) for s, p, k, st in zip(x.shape[1:-1], pad, kernel, stride))
    y = np.full((x.shape[0], *out, x.shape[-1]), -np.inf)
    for o in itertools.product(*map(range, out)):
        for k in itertools.product(*map(range, kernel)):
            i = tuple(oi * s + ki for oi, ki, s in zip(o, k, stride))
            y[(slice(None), *o)] = np.maximum(y[(slice(None), *o)], xp[(slice(None), *i)])
    return y


def max_pool_grad_reference(x, g, kernel, stride=None, padding=0):
    """Input gradient of max pooling: each window's gradient goes to its first arg-max."""
    nd = x.ndim - 2
    kernel = _per_axis(kernel, nd)
    stride = kernel if stride is None else _per_axis(stride, nd)
    pad = _per_axis(padding, nd)
    xp = np.pad(x, ((0, 0), *[(p, p) for p in pad], (0, 0)), constant_values=-np.inf)
    gxp = np.zeros(xp.shape)
    for idx in itertools.product(*map(range, g.shape)):
        n, o, c = idx[0], idx[1:-1], idx[-1]
        window = [
            xp[(n, *tuple(oi * s + ki for oi, ki, s in zip(o, k, stride)), c)]
            for k in itertools.product(*map(range, kernel))
        ]
        k = list(itertools.product(*map(range, kernel)))[int(np.argmax(window))]
        gxp[(n, *tuple(oi * s + ki for oi, ki, s in zip(o, k, stride)), c)] += g[idx]
    crop = tuple(slice(p, p + s) for p, s in zip(pad, x.shape[1:-1]))
    return gxp[(slice(None), *crop)]


def compare_with_torch(ours, theirs, x, device, dtype, weight=None, bias=None):
    """A needle layer and a PyTorch layer (given ``weight`` and ``bias`` in PyTorch's layout)
    agree on ``x`` forward and in the input gradient of a random cotangent."""
    import torch

    tdtype = torch.float64 if dtype == "float64" else torch.float32
    theirs = theirs.to(tdtype)
    if weight is not None:
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(weight))
            theirs.bias.copy_(torch.tensor(bias))
    xt = torch.tensor(x, dtype=tdtype, requires_grad=True)
    yt = theirs(xt)
    X = tensor(x, device, dtype)
    y = ours(X)
    g = np.random.randn(*yt.shape)
    yt.backward(torch.tensor(g, dtype=tdtype))
    y.backward(tensor(g, device, dtype, requires_grad=False))
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), **TOL[dtype])
    np.testing.assert_allclose(X.grad.numpy(), xt.grad.numpy(), **TOL[dtype])
