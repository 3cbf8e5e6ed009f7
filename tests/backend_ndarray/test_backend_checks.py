"""The host-side argument checks the compiled backends share (src/common): each one fires,
with the same message on every backend, before any kernel runs (the buffers are empty)."""

import pytest

from needle.backend_ndarray import all_devices

# the compiled backends that can run here (a CUDA module built on a machine without a GPU
# cannot even allocate its buffers)
MODULES = [d.mod for d in all_devices() if d.name != "cpu_numpy"]

EACH = pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.__device_name__)

# a valid 25-int conv geometry: x (1, 1, 1, 4, 4), w (1, 1, 1, 4, 4), out (1, 1, 1, 4, 4)
CONV = [1, 1, 1, 4, 4, 1, 1, 1, 4, 1, 1, 4] + [1] * 3 + [0] * 3 + [1] * 7


def conv_with(**fields):
    names = "N Di Hi Wi Cin KD KH KW Cout Do Ho Wo sd sh sw pd ph pw dd dh dw idd idh idw groups"
    geom = list(CONV)
    for key, value in fields.items():
        geom[names.split().index(key)] = value
    return geom


@EACH
@pytest.mark.parametrize(
    "geom, message",
    [
        (CONV[:24], "conv_forward: conv geometry needs 25 ints, got 24"),
        (conv_with(groups=3), "conv_forward: groups=3 must divide Cin=4 and Cout=4"),
        (conv_with(Cout=6, groups=4), "groups=4 must divide Cin=4 and Cout=6"),
        (conv_with(KH=0), r"KH=0 out of range \[1, 2\^31\]"),
        (conv_with(sw=0), r"sw=0 out of range \[1, 2\^31\]"),
        (conv_with(Wo=-1), r"Wo=-1 out of range \[0, 2\^31\]"),
        (conv_with(pd=-(2**32)), "pd=-4294967296 out of range"),
    ],
)
def test_conv_geometry_checks(mod, geom, message):
    a = mod.Array(0)
    with pytest.raises(ValueError, match=message):
        mod.conv_forward(a, a, mod.Array(0), geom)


@EACH
def test_conv_buffer_sizes_are_checked(mod):
    a, w = mod.Array(15), mod.Array(16)
    with pytest.raises(ValueError, match=r"conv_forward: a.* has 15 elements, needs at least 16"):
        mod.conv_forward(a, w, mod.Array(16), CONV)


@EACH
def test_pool_geometry_checks(mod):
    a = mod.Array(0)
    with pytest.raises(ValueError, match="maxpool_forward: pool geometry needs 17 ints, got 16"):
        mod.maxpool_forward(a, mod.Array(0), [1] * 16)
    geom = [1, 1, 1, 4, 2, 1, 1, 2, 1, 1, 2, 1, 1, 0, 0, 0, 0]  # stride sw = 0
    with pytest.raises(ValueError, match=r"sw=0 out of range \[1, 2\^31\]"):
        mod.maxpool_forward(a, mod.Array(0), geom)


@EACH
def test_view_size_and_argument_checks(mod):
    a, out = mod.Array(4), mod.Array(6)
    with pytest.raises(IndexError, match=r"compact: view shape \(2, 3\).*\[0, 5\], outside a"):
        mod.compact(a, out, (2, 3), (3, 1), 0)
    with pytest.raises(ValueError, match="differ in length"):
        mod.compact(a, out, (2, 3), (1,), 0)
    with pytest.raises(ValueError, match="reduce_size must be >= 1, got 0"):
        mod.reduce_sum(a, mod.Array(0), 0)
    with pytest.raises(ValueError, match="rows_affine: s, t, u need the same size"):
        mod.rows_affine(a, a, mod.Array(2), mod.Array(3), mod.Array(2), mod.Array(4))
    with pytest.raises(ValueError, match="adam_step: hyper needs 6 values"):
        mod.adam_step(a, a, a, a, [1.0] * 5, a, a, a)
    with pytest.raises(ValueError, match="batch must be non-negative, got -1"):
        mod.matmul_batched(a, a, mod.Array(0), -1, 1, 1, 1, 0, 0)
