"""needle.nn.summary: numbers against hand computation (plain, strided, dilated, grouped,
transposed, pools), read from the geometry each layer reports."""

import numpy as np
import pytest

import needle as ndl
import needle.nn as nn

DEVICE = ndl.cpu() if ndl.cpu().enabled() else ndl.cpu_numpy()


def leaf_rows(s):
    return [r for r in s.rows if r.leaf]


def test_plain_conv_then_maxpool():
    # Conv 3->8, k3, pad 1 on 10x10: params 3*3*3*8 + 8 = 224;
    # MACs = outputs (8*10*10) * taps (3*3*3) = 21,600; RF 3, jump 1.
    # MaxPool k2 s2: 5x5 out, RF 3 + (2-1)*1 = 4, jump 2, no MACs.
    model = nn.Sequential(nn.Conv(3, 8, 3, device=DEVICE), nn.MaxPool2d(2))
    s = nn.summary(model, (1, 3, 10, 10), device=DEVICE, print_fn=None)
    conv, pool = leaf_rows(s)
    assert (conv.output_shape, conv.params, conv.macs) == ((1, 8, 10, 10), 224, 21_600)
    assert (conv.receptive_field, conv.jump) == ((3, 3), (1, 1))
    assert (pool.output_shape, pool.params, pool.macs) == ((1, 8, 5, 5), 0, 0)
    assert (pool.receptive_field, pool.jump) == ((4, 4), (2, 2))
    assert (s.total_params, s.total_macs) == (224, 21_600)


def test_strided_then_dilated_conv():
    # Conv 1->4 k3 s2 pad 1 on 16x16 -> 8x8: RF 3, jump 2.
    # Conv 4->4 k3 dilation 2 pad 2 -> 8x8: effective kernel 5, RF 3 + (5-1)*2 = 11, jump 2;
    # params 3*3*4*4 + 4 = 148; MACs = 4*8*8 * 4*9 = 9,216.
    model = nn.Sequential(
        nn.Conv(1, 4, 3, stride=2, device=DEVICE),
        nn.Conv(4, 4, 3, padding=2, dilation=2, device=DEVICE),
    )
    s = nn.summary(model, (1, 1, 16, 16), device=DEVICE, print_fn=None)
    first, dilated = leaf_rows(s)
    assert (first.output_shape, first.receptive_field, first.jump) == ((1, 4, 8, 8), (3, 3), (2, 2))
    assert first.macs == 4 * 64 * 9
    assert (dilated.output_shape, dilated.params, dilated.macs) == ((1, 4, 8, 8), 148, 9_216)
    assert (dilated.receptive_field, dilated.jump) == ((11, 11), (2, 2))
    assert "d2" in dilated.config and "s2" in first.config


def test_grouped_and_depthwise_conv():
    # Conv 8->16 k3 groups 4 on a batch of 2 at 6x6: each output channel sees 8/4 = 2 inputs:
    # params 3*3*2*16 + 16 = 304; MACs = 2 * 16*6*6 * 2*9 = 20,736.
    # Depthwise 16->16 k3 groups 16, no bias: params 3*3*1*16 = 144; MACs = 2*16*36*9 = 10,368.
    model = nn.Sequential(
        nn.Conv(8, 16, 3, groups=4, device=DEVICE),
        nn.Conv(16, 16, 3, groups=16, bias=False, device=DEVICE),
    )
    s = nn.summary(model, (2, 8, 6, 6), device=DEVICE, print_fn=None)
    grouped, depthwise = leaf_rows(s)
    assert (grouped.params, grouped.macs) == (304, 20_736)
    assert (depthwise.params, depthwise.macs) == (144, 10_368)
    assert (depthwise.receptive_field, depthwise.jump) == ((5, 5), (1, 1))
    assert "g4" in grouped.config and "g16" in depthwise.config


def test_receptive_field_passes_through_residual_and_linear_macs():
    # Residual(two k3 convs) -> RF 5; the next k3 conv -> RF 7.  Linear 4*8*8 -> 10: MACs 2,560.
    model = nn.Sequential(
        nn.Residual(
            nn.Sequential(
                nn.Conv(4, 4, 3, device=DEVICE), nn.ReLU(), nn.Conv(4, 4, 3, device=DEVICE)
            )
        ),
        nn.Conv(4, 4, 3, device=DEVICE),
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 10, device=DEVICE),
    )
    s = nn.summary(model, (1, 4, 8, 8), device=DEVICE, print_fn=None)
    convs = [r for r in leaf_rows(s) if r.kind == "Conv"]
    assert [r.receptive_field[0] for r in convs] == [3, 5, 7]
    linear = s.rows[-1]
    assert (linear.kind, linear.output_shape, linear.macs, linear.params) == (
        "Linear",
        (1, 10),
        2_560,
        2_570,
    )


def test_resnet9_totals_and_table():
    from apps.models import ResNet9

    model = ResNet9(device=DEVICE)
    state = np.random.get_state()
    model.train()
    s = nn.summary(model, (1, 3, 32, 32), device=DEVICE, print_fn=None)
    assert s.total_params == 431_946
    # Per image, by hand: 8*8*16*(3*49) + 4*4*32*(16*9) + 2 * 4*4*32*(32*9) + 2*2*64*(32*9)
    # + 128*(64*9) + 2 * 128*(128*9) + 128*128 + 128*10 = 979,200 multiply-accumulates.
    assert s.total_macs == 979_200
    convs = [r for r in leaf_rows(s) if r.kind == "Conv"]
    assert [r.receptive_field[0] for r in convs] == [7, 15, 31, 47, 63, 95, 159, 223]
    assert [r.jump[0] for r in convs] == [4, 8, 8, 8, 16, 32, 32, 32]
    assert s.output_shape == (1, 10)
    text = str(s)
    assert "431,946" in text and "979,200" in text
    # The summary leaves no trace: training flags, forward methods and the global RNG.
    assert all(m.training for m in model.modules())
    assert all("forward" not in vars(m) for m in model.modules())
    after = np.random.get_state()
    assert np.array_equal(state[1], after[1]) and state[2] == after[2]


def test_summary_prints_and_rejects_bad_arguments():
    printed = []
    nn.summary(nn.Linear(3, 2, device=DEVICE), (4, 3), device=DEVICE, print_fn=printed.append)
    assert len(printed) == 1 and "Total params: 8" in printed[0]
    with pytest.raises(TypeError, match="Module"):
        nn.summary(lambda x: x, (1, 3))
    with pytest.raises(ValueError, match="input_shape"):
        nn.summary(nn.Linear(3, 2, device=DEVICE), (0, 3))


def test_transposed_conv_and_pools():
    # Conv 3->8 k3 s2 on 16x16 -> 8x8 (RF 3, jump 2).  ConvTranspose 8->4 k4 s2 p1 -> 16x16:
    # each of the 2*8*8*8 input values is spread over 4*4 taps of 4 outputs: 65,536 MACs,
    # params 4*4*4*8 + 4 = 516, jump 2/2 = 1, RF 3 + 3*1 = 6.  AvgPool k2 s2: RF 7, jump 2.
    # AdaptiveAvgPool2d(1) on 8x8 acts as k8 s8: RF 7 + 7*2 = 21, jump 16.
    model = nn.Sequential(
        nn.Conv(3, 8, 3, stride=2, device=DEVICE),
        nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1, device=DEVICE),
        nn.AvgPool2d(2),
        nn.AdaptiveAvgPool2d(1),
    )
    s = nn.summary(model, (2, 3, 16, 16), device=DEVICE, print_fn=None)
    conv, convt, avg, adaptive = leaf_rows(s)
    assert (convt.output_shape, convt.params, convt.macs) == ((2, 4, 16, 16), 516, 65_536)
    assert [r.receptive_field[0] for r in (conv, convt, avg, adaptive)] == [3, 6, 7, 21]
    assert [r.jump[0] for r in (conv, convt, avg, adaptive)] == [2, 1, 2, 16]
    assert s.output_shape == (2, 4, 1, 1)


def test_layers_are_read_from_their_geometry_not_their_class_names():
    # The layers of test_transposed_conv_and_pools under names that say nothing of their kind.
    class Up(nn.ConvTranspose2d):
        pass

    class Squeeze(nn.AdaptiveAvgPool2d):
        pass

    model = nn.Sequential(
        nn.Conv(3, 8, 3, stride=2, device=DEVICE),
        Up(8, 4, 4, stride=2, padding=1, device=DEVICE),
        nn.AvgPool2d(2),
        Squeeze(1),
    )
    s = nn.summary(model, (2, 3, 16, 16), device=DEVICE, print_fn=None)
    conv, up, avg, squeeze = leaf_rows(s)
    assert (up.kind, up.macs, up.config) == ("Up", 65_536, "k4 s2 p1")
    assert [r.receptive_field[0] for r in (conv, up, avg, squeeze)] == [3, 6, 7, 21]
    assert [r.jump[0] for r in (conv, up, avg, squeeze)] == [2, 1, 2, 16]
    assert squeeze.config == "k8 s8"
