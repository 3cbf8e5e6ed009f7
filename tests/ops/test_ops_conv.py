"""Tests of needle.ops.ops_conv: conv forward and both gradients against a brute-force
reference on a table of configurations, gradcheck, grad of grad, transposed conv, the
kernel flip, the shape rule's errors, and PyTorch where installed."""

import itertools

import numpy as np
import pytest
from tests.checks import check_grad, grad_dtype, tensor
from tests.conv_reference import (
    TOL,
    conv_input_grad_reference,
    conv_reference,
    conv_transpose_reference,
    conv_weight_grad_reference,
    out_size,
    out_size_by_count,
    transposed_out_size,
)

import needle as ndl
from needle.backend_ndarray.ndarray_backend_numpy import CONV_GEOMETRY_FIELDS, POOL_GEOMETRY_FIELDS
from needle.ops import geometry
from needle.ops.ops_conv import conv_geometry

# (input shape, weight shape, stride, padding, dilation, groups) — what each one covers.
CONFIGS = [
    # 1-D
    ((2, 7, 3), (3, 3, 4), 1, 1, 1, 1),  # basic
    ((2, 8, 4), (3, 4, 6), 2, 0, 1, 1),  # floor drops a row (r=1)
    ((1, 10, 2), (3, 2, 2), 3, (1, 2), 2, 1),  # asymmetric pad, dilation 2, stride 3, batch 1
    ((2, 9, 6), (2, 2, 6), 1, 0, 3, 3),  # groups 3, dilation 3
    ((2, 5, 4), (5, 1, 8), 1, 0, 1, 4),  # depthwise x2, kernel equal to input
    ((3, 6, 1), (3, 1, 2), 2, 1, 1, 1),  # C_in = 1, r = 1
    ((2, 11, 2), (3, 2, 2), 3, 0, 2, 1),  # stride 3, dilation 2, r = 1
    ((2, 12, 3), (4, 3, 3), 2, (2, 1), 1, 1),  # even kernel, asymmetric
    # 2-D
    ((2, 5, 5, 3), (3, 3, 3, 4), 1, 1, 1, 1),  # basic
    ((2, 6, 6, 4), (3, 3, 4, 4), 2, 1, 1, 1),  # stride 2, r = s-1 (the course's case)
    ((2, 7, 7, 4), (3, 3, 4, 4), 2, 1, 1, 1),  # stride 2, r = 0 (floor drops a row)
    ((2, 8, 8, 2), (3, 3, 2, 3), 3, 0, 1, 1),  # stride 3, r = 2
    ((2, 9, 9, 2), (3, 3, 2, 3), 3, 0, 1, 1),  # stride 3, r = 0
    ((2, 10, 10, 2), (3, 3, 2, 3), 3, 0, 1, 1),  # stride 3, r = 1
    ((1, 7, 9, 3), (2, 4, 3, 5), (1, 2), ((0, 1), (2, 1)), 1, 1),  # non-square, asymmetric
    ((2, 9, 9, 2), (3, 3, 2, 2), 1, 2, 2, 1),  # dilation 2, "same"
    ((2, 11, 10, 2), (3, 3, 2, 2), 2, (3, 1), 3, 1),  # dilation 3, stride 2
    ((2, 6, 6, 4), (3, 3, 2, 6), 1, 1, 1, 2),  # groups 2
    ((2, 6, 5, 6), (3, 3, 2, 6), 2, 1, 1, 3),  # groups 3, strided, non-square input
    ((2, 6, 6, 4), (3, 3, 1, 4), 1, 1, 1, 4),  # depthwise
    ((2, 6, 6, 3), (3, 3, 1, 6), 2, 1, 1, 3),  # depthwise x2, strided
    ((2, 5, 5, 4), (1, 1, 4, 8), 1, 0, 1, 1),  # 1x1
    ((2, 5, 5, 6), (1, 1, 2, 6), 1, 0, 1, 3),  # pointwise group
    ((1, 5, 5, 3), (3, 3, 3, 2), 1, 1, 1, 1),  # batch 1
    ((2, 6, 6, 1), (3, 3, 1, 3), 1, 0, 1, 1),  # C_in = 1
    ((2, 4, 5, 3), (4, 5, 3, 2), 1, 0, 1, 1),  # kernel equal to input: 1x1 output
    ((2, 5, 5, 2), (3, 3, 2, 2), 1, 3, 1, 1),  # padding larger than the kernel reach
    ((2, 8, 8, 3), (7, 7, 3, 4), 4, 3, 1, 1),  # stem-like k7 s4, r = 3
    ((2, 9, 9, 3), (7, 7, 3, 4), 4, 3, 1, 1),  # stem-like, r = 0
    ((2, 5, 5, 2), (3, 3, 2, 2), 2, ((0, 0), (1, 0)), 1, 1),  # pad on one side only
    ((2, 7, 6, 2), (2, 2, 2, 3), 2, 0, 1, 1),  # even kernel, r = 1 on H
    ((2, 7, 7, 4), (3, 3, 2, 4), (2, 3), ((1, 0), (0, 2)), (2, 1), 2),  # everything mixed
    ((1, 3, 3, 2), (3, 3, 2, 2), 3, 1, 1, 1),  # stride larger than the output
    ((2, 4, 4, 2), (2, 2, 2, 2), 1, 0, 3, 1),  # dilated extent equal to input
    ((2, 6, 6, 6), (3, 3, 3, 6), 1, 1, 1, 2),  # groups 2, 3 channels per group
    ((2, 1, 6, 2), (1, 3, 2, 2), 1, ((0, 0), (0, 1)), 1, 1),  # height 1
    # 3-D
    ((2, 4, 4, 4, 2), (3, 3, 3, 2, 3), 1, 1, 1, 1),  # basic
    ((1, 5, 5, 5, 2), (3, 3, 3, 2, 2), 2, 1, 1, 1),  # strided
    ((2, 5, 4, 6, 4), (2, 3, 2, 2, 4), (1, 2, 3), ((1, 0), (0, 1), (1, 1)), 1, 2),  # mixed
    ((1, 6, 6, 6, 2), (2, 2, 2, 2, 2), 2, 0, 2, 1),  # dilated, r = 1
    ((2, 4, 4, 4, 3), (3, 3, 3, 1, 3), 1, 1, 1, 3),  # depthwise
    ((1, 5, 6, 7, 2), (1, 1, 1, 2, 4), (2, 3, 3), 0, 1, 1),  # 1x1x1 strided, floor drops
    ((2, 7, 7, 7, 1), (3, 3, 3, 1, 2), 3, 0, 1, 1),  # C_in = 1, r = 1
    ((1, 4, 4, 4, 2), (4, 4, 4, 2, 2), 1, 0, 1, 1),  # kernel equal to input
]


def _ids(config):
    x_shape, w_shape, s, p, d, g = config
    return f"{len(x_shape) - 2}d-x{x_shape}-w{w_shape}-s{s}-p{p}-d{d}-g{g}".replace(" ", "")


def _dtype(device):
    return grad_dtype(device)


def test_table_is_big_and_covers_floor_drops():
    assert len(CONFIGS) >= 40
    dropped = 0
    for x_shape, w_shape, s, p, d, groups in CONFIGS:
        geom = conv_geometry(x_shape, w_shape, s, p, d, groups)
        for n, k, st, dl, lo, hi in zip(
            geom.in_spatial, geom.kernel, geom.stride, geom.dilation, geom.pad_lo, geom.pad_hi
        ):
            dropped += (n + lo + hi - dl * (k - 1) - 1) % st != 0
    assert dropped >= 10


@pytest.mark.parametrize("config", CONFIGS, ids=_ids)
def test_conv_forward_and_gradients(config, device):
    x_shape, w_shape, stride, padding, dilation, groups = config
    dtype = _dtype(device)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    X, W = tensor(x, device, dtype), tensor(w, device, dtype)
    y = ndl.conv(X, W, stride=stride, padding=padding, dilation=dilation, groups=groups)
    expected = conv_reference(x, w, stride, padding, dilation, groups)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.numpy(), expected, **TOL[dtype], err_msg="forward")

    g = rng.standard_normal(expected.shape)
    y.backward(tensor(g, device, dtype, requires_grad=False))
    gx = conv_input_grad_reference(g, w, x_shape, stride, padding, dilation, groups)
    gw = conv_weight_grad_reference(x, g, w_shape, stride, padding, dilation, groups)
    assert X.grad.shape == x_shape and W.grad.shape == w_shape
    np.testing.assert_allclose(X.grad.numpy(), gx, **TOL[dtype], err_msg="input gradient")
    np.testing.assert_allclose(W.grad.numpy(), gw, **TOL[dtype], err_msg="weight gradient")


def test_reference_gradients_are_adjoints():
    """<conv(x, w), g> = <x, gx> = <w, gw>: the reference's scatter loops are transposes."""
    rng = np.random.default_rng(1)
    for x_shape, w_shape, s, p, d, groups in CONFIGS[::4]:
        x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
        y = conv_reference(x, w, s, p, d, groups)
        g = rng.standard_normal(y.shape)
        gx = conv_input_grad_reference(g, w, x_shape, s, p, d, groups)
        gw = conv_weight_grad_reference(x, g, w_shape, s, p, d, groups)
        np.testing.assert_allclose(np.vdot(y, g), np.vdot(x, gx), rtol=1e-10)
        np.testing.assert_allclose(np.vdot(y, g), np.vdot(w, gw), rtol=1e-10)


def test_reference_matches_a_hand_computed_case():
    x = np.arange(5.0).reshape(1, 5, 1)
    w = np.array([1.0, 10.0]).reshape(2, 1, 1)
    y = conv_reference(x, w, stride=2, padding=1)
    np.testing.assert_array_equal(y.reshape(-1), [0 * 1 + 0 * 10, 1 + 20, 3 + 40])


@pytest.mark.parametrize(
    "config",
    [
        ((1, 5, 2), (3, 2, 2), 2, 1, 1, 1),
        ((1, 4, 5, 2), (3, 2, 2, 2), (2, 1), ((1, 0), (0, 1)), (1, 2), 1),
        ((2, 4, 4, 4), (3, 3, 2, 2), 2, 1, 1, 2),
        ((1, 3, 4, 3, 2), (2, 2, 2, 1, 2), 1, (1, 0, 1), 1, 2),
    ],
    ids=_ids,
)
def test_conv_gradcheck(config, device):
    x_shape, w_shape, stride, padding, dilation, groups = config
    rng = np.random.default_rng(2)
    check_grad(
        lambda a, b: ndl.conv(a, b, stride, padding, dilation, groups),
        rng.standard_normal(x_shape),
        rng.standard_normal(w_shape),
        device=device,
    )


@pytest.mark.parametrize(
    "config",
    [
        ((2, 7, 7, 4), (3, 3, 2, 4), 2, 1, 1, 2),  # floor drops a row
        ((1, 9, 2), (3, 2, 4), 3, (0, 2), 2, 1),
        ((1, 4, 5, 4, 2), (2, 2, 2, 2, 2), (1, 2, 2), 1, 1, 1),
    ],
    ids=_ids,
)
def test_conv_grad_of_grad(config, device):
    """Second derivatives against the reference's adjoint identities.

    With L = <conv(x, w), c>: gx = dL/dx is linear in (c, w) and d<gx, v>/dw = gw(v, c),
    d<gx, v>/dc = conv(v, w); gw = dL/dw gives d<gw, u>/dx = gx(c, u), d<gw, u>/dc = conv(x, u).
    """
    x_shape, w_shape, s, p, d, groups = config
    dtype = _dtype(device)
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    y_shape = conv_reference(x, w, s, p, d, groups).shape
    c, v, u = (
        rng.standard_normal(y_shape),
        rng.standard_normal(x_shape),
        rng.standard_normal(w_shape),
    )

    X, W, C = tensor(x, device, dtype), tensor(w, device, dtype), tensor(c, device, dtype)
    ndl.conv(X, W, s, p, d, groups).backward(C, create_graph=True)
    gx, gw = X.grad, W.grad
    gx.backward(tensor(v, device, dtype, requires_grad=False))
    np.testing.assert_allclose(
        W.grad.numpy(), conv_weight_grad_reference(v, c, w_shape, s, p, d, groups), **TOL[dtype]
    )
    np.testing.assert_allclose(C.grad.numpy(), conv_reference(v, w, s, p, d, groups), **TOL[dtype])
    gw.backward(tensor(u, device, dtype, requires_grad=False))
    np.testing.assert_allclose(
        X.grad.numpy(), conv_input_grad_reference(c, u, x_shape, s, p, d, groups), **TOL[dtype]
    )
    np.testing.assert_allclose(C.grad.numpy(), conv_reference(x, u, s, p, d, groups), **TOL[dtype])


def test_conv_grad_of_grad_gradcheck(device):
    """gradcheck of the first-order gradients as functions of (cotangent, other operand)."""
    rng = np.random.default_rng(4)
    dtype = _dtype(device)
    x0, w0 = rng.standard_normal((1, 5, 5, 2)), rng.standard_normal((3, 3, 2, 2))
    c = rng.standard_normal((1, 3, 3, 2))

    def input_grad(c, w):
        x = tensor(x0, device, dtype)
        ndl.conv(x, w, stride=2, padding=1).backward(c, create_graph=True)
        return x.grad

    def weight_grad(x, c):
        w = tensor(w0, device, dtype)
        ndl.conv(x, w, stride=2, padding=1).backward(c, create_graph=True)
        return w.grad

    check_grad(input_grad, c, w0, device=device)
    check_grad(weight_grad, x0, c, device=device)


def test_no_input_gradient_for_constant_input(device):
    """The image batch needs no gradient: Conv.gradient returns None for it."""
    dtype = _dtype(device)
    x = tensor(np.ones((1, 4, 4, 2)), device, dtype, requires_grad=False)
    w = tensor(np.ones((3, 3, 2, 2)), device, dtype)
    y = ndl.conv(x, w)
    grads = y.op.gradient_as_tuple(tensor(np.ones(y.shape), device, dtype), y)
    assert grads[0] is None and grads[1].shape == (3, 3, 2, 2)


def test_conv_defaults_follow_the_course(device):
    """ops.conv pads 1 by default; the Conv op class pads 0."""
    dtype = _dtype(device)
    x = tensor(np.random.randn(1, 5, 5, 2), device, dtype)
    w = tensor(np.random.randn(3, 3, 2, 1), device, dtype)
    assert ndl.conv(x, w).shape == (1, 5, 5, 1)
    assert ndl.ops.Conv()(x, w).shape == (1, 3, 3, 1)
    assert ndl.ops.Conv(stride=2, padding=1)(x, w).shape == (1, 3, 3, 1)


def test_conv_op_compute_on_arrays(device):
    """The op class works on backend arrays directly (course-style ``Conv(...).compute``)."""
    dtype = _dtype(device)
    x, w = np.random.randn(2, 6, 5, 4), np.random.randn(3, 3, 2, 6)
    X, W = tensor(x, device, dtype), tensor(w, device, dtype)
    out = ndl.ops.Conv(stride=2, padding=1, groups=2).compute(
        X.realize_cached_data(), W.realize_cached_data()
    )
    np.testing.assert_allclose(np.asarray(out), conv_reference(x, w, 2, 1, 1, 2), **TOL[dtype])


def test_channels_last(device):
    dtype = _dtype(device)
    for shape in [(2, 3, 5), (2, 3, 4, 5), (1, 2, 3, 4, 2)]:
        x = np.random.randn(*shape)
        y = ndl.ops.channels_last(tensor(x, device, dtype))
        np.testing.assert_array_equal(y.numpy(), np.moveaxis(x, 1, -1).astype(dtype))
    check_grad(ndl.ops.channels_last, np.random.randn(2, 3, 2, 4), device=device)


def test_flip_swap_kernel_is_an_involution(device):
    dtype = _dtype(device)
    w = np.random.randn(2, 3, 2, 6)  # groups 3: Cg = 2, C_out = 6
    W = tensor(w, device, dtype)
    once = ndl.ops.flip_swap_kernel(W, groups=3)
    assert once.shape == (2, 3, 2, 6)
    expected = w[::-1, ::-1].reshape(2, 3, 2, 3, 2).transpose(0, 1, 4, 3, 2).reshape(2, 3, 2, 6)
    np.testing.assert_array_equal(once.numpy(), expected)
    np.testing.assert_array_equal(ndl.ops.flip_swap_kernel(once, groups=3).numpy(), w)
    check_grad(
        lambda b: ndl.ops.flip_swap_kernel(b, groups=2), np.random.randn(2, 1, 3, 4), device=device
    )


# --- transposed convolution ------------------------------------------------------------------
TRANSPOSE_CONFIGS = [
    # (input shape, weight shape (*K, C_out // groups, C_in), stride, padding, output_padding,
    #  dilation, groups)
    ((2, 4, 4, 3), (3, 3, 2, 3), 2, 1, 1, 1, 1),
    ((2, 3, 5, 4), (3, 2, 3, 4), (2, 3), (1, 0), (0, 2), 1, 1),
    ((1, 4, 4, 4), (3, 3, 1, 4), 2, 0, 0, 2, 2),
    ((1, 3, 3, 2), (2, 2, 2, 2), 3, 0, 2, 1, 1),
    ((2, 3, 3, 2), (3, 3, 1, 2), 1, 1, 1, 2, 2),  # output_padding < dilation, not < stride
    ((2, 5, 2), (4, 3, 2), 2, 1, 1, 1, 1),
    ((1, 2, 3, 2, 2), (2, 2, 2, 3, 2), 2, 0, 1, 1, 1),
]


@pytest.mark.parametrize("config", TRANSPOSE_CONFIGS)
def test_conv_transpose(config, device):
    x_shape, w_shape, s, p, op, d, groups = config
    dtype = _dtype(device)
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    X, W = tensor(x, device, dtype), tensor(w, device, dtype)
    y = ndl.ops.conv_transpose(X, W, s, p, op, d, groups)
    expected = conv_transpose_reference(x, w, s, p, op, d, groups)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.numpy(), expected, **TOL[dtype])
    check_grad(
        lambda a, b: ndl.ops.conv_transpose(a, b, s, p, op, d, groups),
        x,
        w,
        device=device,
        random_direction=True,
    )


def test_conv_transpose_is_the_adjoint_of_conv(device):
    """<conv(x, w), y> = <x, conv_transpose(y, w)> for the matching sizes."""
    dtype = _dtype(device)
    rng = np.random.default_rng(6)
    x, w = rng.standard_normal((2, 7, 6, 4)), rng.standard_normal((3, 3, 2, 6))
    X, W = tensor(x, device, dtype), tensor(w, device, dtype)
    y = ndl.conv(X, W, stride=2, padding=1, groups=2)
    r = rng.standard_normal(y.shape)
    back = ndl.ops.conv_transpose(
        tensor(r, device, dtype), W, 2, 1, output_padding=(0, 1), groups=2
    )
    assert back.shape == x.shape
    np.testing.assert_allclose(np.vdot(y.numpy(), r), np.vdot(x, back.numpy()), rtol=1e-6)


# --- the shape rule ----------------------------------------------------------------------------
def _x(shape):
    return ndl.Tensor(np.zeros(shape), dtype="float32")


@pytest.mark.parametrize(
    "x_shape, w_shape, kwargs, match",
    [
        (
            (2, 5, 5, 8),
            (3, 3, 2, 6),
            dict(groups=3),
            r"groups=3 must divide C_in=8 \(input shape \(2, 5, 5, 8\)\)",
        ),
        ((2, 5, 5, 8), (3, 3, 4, 6), dict(groups=4), "groups=4 must divide C_out=6"),
        (
            (2, 5, 5, 8),
            (3, 3, 8, 6),
            dict(groups=2),
            "weight in-channels 8 must equal C_in // groups",
        ),
        ((2, 5, 5, 8), (3, 3, 8, 6), dict(groups=0), "groups must be a positive int"),
        ((2, 5, 5, 3), (3, 3, 3, 2), dict(stride=0), "stride must be >= 1"),
        ((2, 5, 5, 3), (3, 3, 3, 2), dict(dilation=(1, 0)), "dilation must be >= 1"),
        (
            (2, 5, 5, 3),
            (3, 3, 3, 2),
            dict(stride=(1, 2, 3)),
            "stride must be an int or a tuple of 2",
        ),
        ((2, 5, 5, 3), (3, 3, 3, 2), dict(padding=-1), "padding must be non-negative"),
        ((2, 5, 5, 3), (3, 3, 3, 2), dict(padding=((1, -1), 0)), "padding must be non-negative"),
        ((2, 5, 5, 3), (3, 3, 3, 2), dict(padding=(1, 2, 3)), "padding must be"),
        (
            (2, 6, 6, 3),
            (4, 4, 3, 2),
            dict(padding=0, dilation=2),
            r"kernel extent 7 \(kernel 4, dilation 2\) exceeds padded input 6 on spatial axis 0",
        ),
        ((2, 5, 3), (3, 3, 3, 2), dict(), "weight must be"),
        ((5, 3), (3, 3, 2), dict(), "1, 2 or 3 spatial axes"),
        ((1, 2, 2, 2, 2, 2, 3), (1, 1, 1, 1, 1, 3, 2), dict(), "1, 2 or 3 spatial axes"),
    ],
)
def test_conv_bad_arguments(x_shape, w_shape, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ndl.conv(_x(x_shape), _x(w_shape), **kwargs)


def test_conv_bad_operands(device):
    x = ndl.Tensor(np.zeros((1, 4, 4, 2)), device=device, dtype="float32")
    w64 = ndl.Tensor(np.zeros((3, 3, 2, 2)), device=device, dtype="float64")
    if ndl.BACKEND == "nd":  # NumPy mode mixes dtypes as NumPy does
        with pytest.raises(ValueError, match="dtypes"):
            ndl.conv(x, w64)
    with pytest.raises(TypeError, match="Tensors"):
        ndl.conv(x, np.zeros((3, 3, 2, 2)))
    others = [d for d in ndl.all_devices() if d != device]
    if others:
        w_other = ndl.Tensor(np.zeros((3, 3, 2, 2)), device=others[0], dtype="float32")
        with pytest.raises(ValueError, match="devices"):
            ndl.conv(x, w_other)


def test_conv_geometry_is_pure_and_complete():
    geom = conv_geometry((2, 7, 7, 4), (3, 3, 2, 6), stride=2, padding=((1, 0), 1), groups=2)
    assert geom.out_shape == (2, 3, 4, 6)
    assert geom.weight_shape == (3, 3, 2, 6)
    assert len(geom.backend) == 25
    assert geom.backend == (
        2,
        1,
        7,
        7,
        4,
        1,
        3,
        3,
        6,
        1,
        3,
        4,
        1,
        2,
        2,
        0,
        1,
        1,
        1,
        1,
        1,
        1,
        1,
        1,
        2,
    )
    t = geom.transposed
    assert t.out_shape == (2, 7, 7, 4) and t.weight_shape == (3, 3, 3, 4)
    assert t.stride == (1, 1) and t.input_dilation == (2, 2) and t.pad_lo == (1, 1)
    assert t.transposed.pad_lo == geom.pad_lo


def test_out_size_reference_counts_the_windows():
    """The tests' output-size rule against brute force, and the library's against both."""
    for n in range(1, 9):
        for k in range(1, 5):
            for s, lo, hi, d, idl in itertools.product((1, 2, 3), (0, 2), (0, 1), (1, 2), (1, 2)):
                if d * (k - 1) + 1 > (n - 1) * idl + 1 + lo + hi:
                    continue
                expected = out_size_by_count(n, k, s, lo, hi, d, idl)
                assert out_size(n, k, s, lo, hi, d, idl) == expected
                if idl == 1:
                    assert geometry.out_size(n, k, s, lo, hi, d) == expected
                if lo == hi and idl == 1:  # the transposed conv gives back an input size
                    size = transposed_out_size(
                        expected, k, s, lo, d, (n + 2 * lo - d * (k - 1) - 1) % s
                    )
                    assert (
                        size
                        == n
                        == geometry.transposed_out_size(
                            expected, k, s, lo, d, (n + 2 * lo - d * (k - 1) - 1) % s
                        )
                    )


def test_packed_geometry_follows_the_backend_field_lists():
    geom = conv_geometry((2, 9, 4), (3, 2, 6), stride=2, padding=(2, 1), dilation=3, groups=2)
    named = dict(zip(CONV_GEOMETRY_FIELDS, geom.backend))
    assert (named["N"], named["Cin"], named["Cout"], named["groups"]) == (2, 4, 6, 2)
    assert (named["Di"], named["Hi"], named["Wi"]) == (1, 1, 9)
    assert (named["KW"], named["Wo"], named["sw"], named["pw"], named["dw"]) == (3, 3, 2, 2, 3)
    assert (named["KD"], named["pd"], named["idw"]) == (1, 0, 1)
    assert named["Wo"] == out_size(9, 3, 2, 2, 1, 3)
    named = dict(zip(CONV_GEOMETRY_FIELDS, geom.transposed.backend))
    assert (named["sw"], named["idw"], named["Cin"], named["Wo"]) == (1, 2, 6, 9)
    pool = ndl.ops.pool_geometry((1, 5, 7, 3), (2, 3), (1, 2), (1, 1))
    named = dict(zip(POOL_GEOMETRY_FIELDS, pool.backend))
    assert (named["Hi"], named["Wi"], named["KH"], named["KW"], named["C"]) == (5, 7, 2, 3, 3)
    assert (named["Ho"], named["Wo"], named["sw"], named["pd"], named["pw"]) == (6, 4, 2, 0, 1)


@pytest.mark.parametrize(
    "x_shape, w_shape, kwargs, match",
    [
        ((1, 3, 3, 2), (3, 3, 2, 2), dict(stride=2, output_padding=2), "output_padding"),
        ((1, 3, 3, 3), (3, 3, 1, 3), dict(groups=2), "groups=2 must divide C_in=3"),
        ((1, 3, 3, 2), (3, 3, 1, 2), dict(padding=-1), "padding must be non-negative"),
        ((1, 3, 3, 2), (3, 3, 1, 4), dict(), "weight's last axis 4 must equal C_in=2"),
        ((1, 3, 3, 2), (3, 3, 2), dict(), "1-3 spatial axes"),
    ],
)
def test_conv_transpose_bad_arguments(x_shape, w_shape, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ndl.ops.conv_transpose(_x(x_shape), _x(w_shape), **kwargs)


def test_transposed_geometry_counts_the_flops_of_its_conv():
    geom = geometry.conv_transpose_geometry((2, 4, 4, 8), (4, 4, 2, 8), 2, 1, groups=2)
    assert geom.adjoint and geom.out_shape == (2, 8, 8, 4)
    # each of the 2*4*4*8 inputs meets 4*4 taps and C_out / groups = 2 output channels
    assert geom.flops == geom.transposed.flops == 2 * (2 * 4 * 4 * 8) * 16 * 2
    assert geom.transposed.transposed.adjoint


# --- PyTorch -----------------------------------------------------------------------------------
def test_against_torch(device):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    dtype = _dtype(device)
    rng = np.random.default_rng(8)
    cases = [
        (F.conv1d, (2, 9, 4), (3, 2, 6), 2, 1, 2, 2),
        (F.conv2d, (2, 8, 7, 6), (3, 2, 2, 9), (2, 1), (1, 2), (1, 2), 3),
        (F.conv3d, (1, 5, 6, 4, 4), (2, 3, 2, 4, 2), 1, (1, 0, 1), 1, 1),
    ]
    for fn, x_shape, w_shape, s, p, d, groups in cases:
        x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
        xt = torch.tensor(np.moveaxis(x, -1, 1), requires_grad=True)
        wt = torch.tensor(np.moveaxis(np.moveaxis(w, -1, 0), -1, 1), requires_grad=True)
        yt = fn(xt, wt, stride=s, padding=p, dilation=d, groups=groups)
        g = rng.standard_normal(yt.shape)
        yt.backward(torch.tensor(g))
        X, W = tensor(x, device, dtype), tensor(w, device, dtype)
        y = ndl.conv(X, W, s, p, d, groups)
        y.backward(tensor(np.moveaxis(g, 1, -1), device, dtype, requires_grad=False))
        np.testing.assert_allclose(np.moveaxis(y.numpy(), -1, 1), yt.detach().numpy(), **TOL[dtype])
        np.testing.assert_allclose(
            np.moveaxis(X.grad.numpy(), -1, 1), xt.grad.numpy(), **TOL[dtype]
        )
        w_grad = np.moveaxis(np.moveaxis(W.grad.numpy(), -1, 0), -1, 1)
        np.testing.assert_allclose(w_grad, wt.grad.numpy(), **TOL[dtype])
