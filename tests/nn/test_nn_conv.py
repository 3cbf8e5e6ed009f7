"""Tests of needle.nn.nn_conv: conv layers (padding modes, "same", groups, 1-D/3-D),
transposed conv, course-compatible initialisation, repr, errors, the geometry each layer
reports, and PyTorch's layers where installed."""

import math

import numpy as np
import pytest
from tests.checks import check_grad, grad_dtype, tensor
from tests.conv_reference import (
    TOL,
    compare_with_torch,
    conv_reference,
    conv_transpose_reference,
    out_size,
    transposed_out_size,
)
from tests.conv_reference import to_channels_first as _cf
from tests.conv_reference import to_channels_last as _cl

import needle as ndl
import needle.nn as nn

NP_MODE = {"zeros": "constant", "circular": "wrap", "reflect": "reflect", "replicate": "edge"}


def _layer_reference(layer, x, pads, mode="zeros"):
    """What a conv layer computes, from the reference: pad, conv, bias, back to NCHW."""
    xl = np.pad(_cl(x), ((0, 0), *pads, (0, 0)), mode=NP_MODE[mode])
    w = layer.weight.numpy().astype(np.float64)
    y = conv_reference(xl, w, layer.stride, 0, layer.dilation, layer.groups)
    if layer.bias is not None:
        y = y + layer.bias.numpy()
    return _cf(y)


@pytest.mark.parametrize("mode", ["zeros", "circular", "reflect", "replicate"])
def test_conv_padding_modes(mode, device):
    dtype = grad_dtype(device)
    layer = nn.Conv(
        4, 6, 3, stride=2, padding=(1, 2), groups=2, padding_mode=mode, device=device, dtype=dtype
    )
    x = np.random.randn(2, 4, 7, 6)
    y = layer(tensor(x, device, dtype))
    expected = _layer_reference(layer, x, ((1, 1), (2, 2)), mode)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.numpy(), expected, **TOL[dtype])
    check_grad(lambda a: layer(a), np.random.randn(1, 4, 5, 5), device=device)


@pytest.mark.parametrize("kernel, dilation", [(3, 1), (4, 1), (2, 3), (5, 2)])
def test_conv_same_padding_keeps_the_size(kernel, dilation, device):
    dtype = grad_dtype(device)
    layer = nn.Conv(2, 3, kernel, padding="same", dilation=dilation, device=device, dtype=dtype)
    x = np.random.randn(2, 2, 7, 8)
    y = layer(tensor(x, device, dtype))
    assert y.shape == (2, 3, 7, 8)
    total = dilation * (kernel - 1)
    pads = ((total // 2, total - total // 2),) * 2
    np.testing.assert_allclose(y.numpy(), _layer_reference(layer, x, pads), **TOL[dtype])


def test_conv_valid_and_default_padding(device):
    dtype = grad_dtype(device)
    x = tensor(np.random.randn(1, 3, 8, 8), device, dtype)
    assert nn.Conv(3, 2, 3, padding="valid", device=device, dtype=dtype)(x).shape == (1, 2, 6, 6)
    assert nn.Conv(3, 2, 3, device=device, dtype=dtype)(x).shape == (1, 2, 8, 8)  # k // 2
    assert nn.Conv(3, 2, 4, device=device, dtype=dtype)(x).shape == (1, 2, 9, 9)  # the course's
    assert nn.Conv(3, 2, 3, stride=2, device=device, dtype=dtype)(x).shape == (1, 2, 4, 4)
    assert nn.Conv(3, 2, 3, dilation=2, device=device, dtype=dtype)(x).shape == (1, 2, 8, 8)


@pytest.mark.parametrize(
    "cls, x_shape, kwargs",
    [
        (nn.Conv1d, (2, 4, 9), dict(kernel_size=3, stride=2, groups=2)),
        (nn.Conv1d, (2, 3, 7), dict(kernel_size=4, padding="same", padding_mode="reflect")),
        (nn.Conv3d, (1, 2, 4, 5, 4), dict(kernel_size=(2, 3, 3), stride=(1, 2, 1), padding=1)),
        (nn.Conv3d, (1, 4, 3, 4, 4), dict(kernel_size=3, groups=4, padding_mode="circular")),
    ],
)
def test_conv1d_conv3d(cls, x_shape, kwargs, device):
    dtype = grad_dtype(device)
    cout = 4
    layer = cls(x_shape[1], cout, device=device, dtype=dtype, **kwargs)
    x = np.random.randn(*x_shape)
    y = layer(tensor(x, device, dtype))
    expected = _layer_reference(layer, x, layer.padding, kwargs.get("padding_mode", "zeros"))
    np.testing.assert_allclose(y.numpy(), expected, **TOL[dtype])
    check_grad(lambda a: layer(a), x, device=device, random_direction=True)


def test_conv_layer_parameter_gradients(device):
    dtype = grad_dtype(device)
    layer = nn.Conv(2, 4, 3, stride=2, groups=2, device=device, dtype=dtype)
    x = np.random.randn(2, 2, 5, 5)

    def f(w, b):
        layer.weight, layer.bias = w, b
        return layer(tensor(x, device, dtype, requires_grad=False))

    check_grad(f, layer.weight.numpy(), layer.bias.numpy(), device=device)


def test_conv_matches_course_initialisation():
    """Seed, then weight kaiming_uniform of shape (k, k, Cin, Cout), then one rand for the bias."""
    np.random.seed(0)
    layer = nn.Conv(3, 8, 5, dtype="float64")
    np.random.seed(0)
    fan_in = 3 * 25
    bound = math.sqrt(6 / fan_in)
    w = np.random.rand(5, 5, 3, 8) * 2 * bound - bound
    b = np.random.rand(8) * 2 / math.sqrt(fan_in) - 1 / math.sqrt(fan_in)
    np.testing.assert_allclose(layer.weight.numpy(), w, rtol=1e-12)
    np.testing.assert_allclose(layer.bias.numpy(), b, rtol=1e-12)
    assert layer.bias.shape == (8,)
    assert [p.shape for p in layer.parameters()] == [(5, 5, 3, 8), (8,)]
    assert nn.Conv2d is nn.Conv


def test_grouped_conv_initialisation_uses_the_group_fan_in():
    np.random.seed(1)
    layer = nn.Conv(8, 4, 3, groups=4, dtype="float64")
    np.random.seed(1)
    bound = math.sqrt(6 / (2 * 9))
    np.testing.assert_allclose(
        layer.weight.numpy(), np.random.rand(3, 3, 2, 4) * 2 * bound - bound, rtol=1e-12
    )


def test_conv_without_bias(device):
    layer = nn.Conv(2, 3, 3, bias=False, device=device)
    assert layer.bias is None and len(layer.parameters()) == 1
    assert layer(ndl.Tensor(np.random.randn(1, 2, 4, 4), device=device)).shape == (1, 3, 4, 4)


def test_conv_repr_shows_non_default_arguments_only():
    assert repr(nn.Conv(3, 16, 3)) == "Conv(3, 16, kernel_size=3)"
    assert (
        repr(nn.Conv(4, 8, (3, 5), stride=2, padding=1, groups=2, bias=False))
        == "Conv(4, 8, kernel_size=(3, 5), stride=2, padding=1, groups=2, bias=False)"
    )
    assert repr(nn.Conv1d(2, 2, 3, padding_mode="reflect")) == (
        "Conv1d(2, 2, kernel_size=3, padding_mode='reflect')"
    )
    assert repr(nn.ConvTranspose2d(4, 2, 3, stride=2, output_padding=1)) == (
        "ConvTranspose2d(4, 2, kernel_size=3, stride=2, output_padding=1)"
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(in_channels=6, out_channels=4, kernel_size=3, groups=4), "divisible by groups"),
        (dict(in_channels=4, out_channels=4, kernel_size=3, padding_mode="mirror"), "padding_mode"),
        (dict(in_channels=4, out_channels=4, kernel_size=3, padding="full"), "padding"),
        (dict(in_channels=4, out_channels=4, kernel_size=3, stride=2, padding="same"), "stride 1"),
        (dict(in_channels=4, out_channels=4, kernel_size=(3, 3, 3)), "kernel_size"),
    ],
)
def test_conv_layer_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nn.Conv(**kwargs)


def test_conv_layer_rejects_wrong_input():
    layer = nn.Conv(3, 4, 3)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3, H, W\)"):
        layer(ndl.Tensor(np.zeros((1, 4, 5, 5))))
    with pytest.raises(ValueError, match="expected input"):
        layer(ndl.Tensor(np.zeros((1, 3, 5))))


# --- transposed convolution ------------------------------------------------------------------
@pytest.mark.parametrize(
    "x_shape, cout, k, kwargs, out_hw",
    [
        ((2, 4, 3, 3), 2, 3, dict(stride=2, padding=1, output_padding=1), (6, 6)),
        ((1, 3, 4, 5), 6, (2, 3), dict(stride=(2, 1), padding=(0, 1)), (8, 5)),
        ((2, 4, 3, 4), 4, 3, dict(stride=3, groups=2, dilation=2), (11, 14)),
        ((1, 2, 2, 2), 2, 3, dict(dilation=2, output_padding=1, stride=1), (7, 7)),
        ((1, 2, 5, 5), 3, 3, dict(padding=1), (5, 5)),
    ],
)
def test_conv_transpose2d(x_shape, cout, k, kwargs, out_hw, device):
    dtype = grad_dtype(device)
    layer = nn.ConvTranspose2d(x_shape[1], cout, k, device=device, dtype=dtype, **kwargs)
    assert layer.weight.shape == (*layer.kernel_size, cout // layer.groups, x_shape[1])
    x = np.random.randn(*x_shape)
    y = layer(tensor(x, device, dtype))
    assert y.shape == (x_shape[0], cout, *out_hw)
    expected = conv_transpose_reference(
        _cl(x), layer.weight.numpy().astype(np.float64), layer.stride, layer.padding,
        layer.output_padding, layer.dilation, layer.groups,
    ) + layer.bias.numpy()  # fmt: skip
    np.testing.assert_allclose(y.numpy(), _cf(expected), **TOL[dtype])

    def f(a, w):
        layer.weight = w
        return layer(a)

    check_grad(f, x, layer.weight.numpy(), device=device, random_direction=True)


def test_conv_transpose_inverts_the_conv_output_size(device):
    for h in range(5, 9):
        conv = nn.Conv(2, 3, 3, stride=2, padding=1, device=device)
        x = ndl.Tensor(np.random.randn(1, 2, h, h), device=device)
        y = conv(x)
        extra = (h + 2 - 3) % 2
        up = nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=extra, device=device)
        assert up(y).shape == x.shape


def test_conv_transpose_errors():
    with pytest.raises(ValueError, match="output_padding"):
        nn.ConvTranspose2d(2, 2, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.ConvTranspose2d(3, 2, 3, groups=2)


# --- the geometry each layer reports ------------------------------------------------------
@pytest.mark.parametrize(
    "layer, x_shape",
    [
        (nn.Conv(4, 6, 3, stride=2, groups=2), (2, 4, 9, 8)),
        (nn.Conv(2, 3, (2, 3), padding="same", dilation=2, padding_mode="reflect"), (1, 2, 7, 6)),
        (nn.Conv1d(3, 6, 5, padding=(1, 2), groups=3), (2, 3, 11)),
        (nn.Conv3d(2, 4, (1, 2, 3), stride=(1, 2, 2)), (1, 2, 3, 6, 7)),
    ],
)
def test_conv_layers_report_their_geometry(layer, x_shape):
    geom = layer.geometry(x_shape)
    assert not geom.adjoint and geom.weight_shape == layer.weight.shape
    assert geom.in_shape == (x_shape[0], *x_shape[2:], x_shape[1])
    assert geom.out_spatial == tuple(
        out_size(n, k, s, lo, hi, d)
        for n, k, s, (lo, hi), d in zip(
            x_shape[2:], layer.kernel_size, layer.stride, layer.padding, layer.dilation
        )
    )
    y = layer(ndl.Tensor(np.zeros(x_shape)))
    assert y.shape == (x_shape[0], layer.out_channels, *geom.out_spatial)
    taps = math.prod(layer.kernel_size) * layer.in_channels // layer.groups
    assert geom.flops == 2 * math.prod(y.shape) * taps
    with pytest.raises(ValueError, match="expected input"):
        layer.geometry((x_shape[0], x_shape[1] + 1, *x_shape[2:]))


def test_conv_transpose_layer_reports_the_adjoint_of_its_conv():
    layer = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2)
    x_shape = (2, 4, 5, 4)
    geom = layer.geometry(x_shape)
    out = tuple(transposed_out_size(n, 3, 2, 1, 1, 1) for n in x_shape[2:])
    assert geom.adjoint and geom.out_shape == (2, *out, 6)
    assert layer(ndl.Tensor(np.zeros(x_shape))).shape == (2, 6, *out)
    conv = geom.transposed  # the conv from the output back to the input
    assert (conv.kernel, conv.stride, conv.pad_lo) == ((3, 3), (2, 2), (1, 1))
    assert conv.out_spatial == x_shape[2:] and not conv.adjoint
    # multiply-adds: every input value times its taps and group's output channels
    assert geom.flops == conv.flops == 2 * math.prod(x_shape) * 9 * (6 // 2)


# --- PyTorch -----------------------------------------------------------------------------------
def test_layers_against_torch(device):
    torch = pytest.importorskip("torch")
    dtype = grad_dtype(device)
    x = np.random.randn(2, 4, 9, 8)

    def compare(ours, theirs, weight=None, bias=None):
        compare_with_torch(ours, theirs, x, device, dtype, weight, bias)

    for kwargs, tkwargs in [
        (dict(), dict(padding=1)),
        (
            dict(stride=2, groups=2, dilation=2, padding_mode="reflect"),
            dict(stride=2, groups=2, dilation=2, padding=2, padding_mode="reflect"),
        ),
        (
            dict(padding="same", padding_mode="circular", kernel_size=4),
            dict(padding="same", padding_mode="circular", kernel_size=4),
        ),
        (
            dict(stride=(2, 1), padding=(0, 1), padding_mode="replicate"),
            dict(stride=(2, 1), padding=(0, 1), padding_mode="replicate"),
        ),
    ]:
        k = kwargs.pop("kernel_size", 3)
        tkwargs.pop("kernel_size", None)
        ours = nn.Conv(4, 6, k, device=device, dtype=dtype, **kwargs)
        theirs = torch.nn.Conv2d(4, 6, k, **tkwargs)
        w = np.moveaxis(np.moveaxis(ours.weight.numpy(), -1, 0), -1, 1)  # -> (Cout, Cg, kh, kw)
        compare(ours, theirs, w, ours.bias.numpy())

    ours = nn.ConvTranspose2d(
        4,
        6,
        3,
        stride=2,
        padding=1,
        output_padding=1,
        groups=2,
        dilation=2,
        device=device,
        dtype=dtype,
    )
    theirs = torch.nn.ConvTranspose2d(
        4, 6, 3, stride=2, padding=1, output_padding=1, groups=2, dilation=2
    )
    w = np.transpose(ours.weight.numpy(), (3, 2, 0, 1))  # -> (C_in, C_out // groups, kh, kw)
    compare(ours, theirs, w, ours.bias.numpy())
