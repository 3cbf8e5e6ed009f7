"""The C++ CPU backend's float16 functions (src/cpu/half.h), used by needle.distributed's fp16
compression: conversions and sums must give NumPy's float16 bits exactly (round to nearest
even, overflow to infinity, subnormals, NaN), in the vector body and in the scalar tail."""

import numpy as np
import pytest

cpu = pytest.importorskip("needle.backend_ndarray.ndarray_backend_cpu")

SPECIAL = [65504.0, 65519.99, 65520.0, 65536.0, 1e9, 2.0**-14, 2.0**-24, 2.0**-25,
           3 * 2.0**-26, 2.0**-26, 1e-8, 1e-40, 0.0, -0.0, np.inf, -np.inf, np.nan,
           1.0 + 2.0**-11, 1.0 + 3 * 2.0**-11, -2049.0, 2051.0]  # fmt: skip


def halves(x):
    with np.errstate(all="ignore"):
        return x.astype(np.float16)


def same_bits(got_bits, want):
    """Equal bits, any NaN matching any NaN."""
    got = got_bits.view(np.float16)
    return np.all((got_bits == want.view(np.uint16)) | (np.isnan(got) & np.isnan(want)))


def sample(n, rng):
    """Any float32 bits, the special values, exact ties and values of every magnitude."""
    x = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)
    ties = (rng.integers(-2048, 2048, n // 4) * 2 + 1) * 2.0 ** rng.integers(-25, 5, n // 4)
    scaled = rng.standard_normal(n // 4) * 10.0 ** rng.integers(-9, 6, n // 4)
    return np.concatenate([np.float32(SPECIAL), ties.astype(np.float32) * np.float32(2**-11),
                           scaled.astype(np.float32), x])  # fmt: skip


@pytest.mark.parametrize("n", [1, 8, 1003, 100_000])
def test_float_to_half_matches_numpy(n):
    x = sample(n, np.random.default_rng(n))
    got = np.zeros(x.size, np.uint16)
    cpu.half_from_float(x, got)  # the vector body and its tail
    assert same_bits(got, halves(x))


def test_float_to_half_scalar_path_matches_numpy():
    x = sample(20_000, np.random.default_rng(1))
    got = np.zeros(7, np.uint16)
    for start in range(0, x.size - 7, 7):  # 7 elements: below one vector, the scalar code only
        cpu.half_from_float(x[start : start + 7], got)
        assert same_bits(got, halves(x[start : start + 7])), x[start : start + 7]


def test_half_to_float_every_half():
    bits = np.arange(2**16, dtype=np.uint16)
    for n in (2**16, 7):  # the vector body, then the scalar tail alone
        got = np.zeros(n, np.float32)
        cpu.half_to_float(bits[-n:], got)
        np.testing.assert_array_equal(got, bits[-n:].view(np.float16).astype(np.float32))


@pytest.mark.parametrize("n", [5, 1003])
def test_half_add_is_the_rounded_sum(n):
    rng = np.random.default_rng(n)
    a = halves(rng.standard_normal(n) * 10.0 ** rng.integers(-6, 4, n))
    b = halves(rng.standard_normal(n) * 10.0 ** rng.integers(-6, 4, n))
    a[:4] = [60000.0, np.inf, np.nan, 2048.0]
    b[:4] = [60000.0, -np.inf, 1.0, 1.0]  # 2049 is a tie: rounds to the even 2048
    out = b.copy()
    cpu.half_add(a.view(np.uint16), out.view(np.uint16))
    with np.errstate(all="ignore"):
        want = halves(a.astype(np.float64) + b.astype(np.float64))  # the exact sum, rounded once
    assert same_bits(out.view(np.uint16), want)


def test_bad_arguments():
    x, bits = np.zeros(4, np.float32), np.zeros(4, np.uint16)
    with pytest.raises(ValueError, match="dst has 5 elements, expected 4"):
        cpu.half_from_float(x, np.zeros(5, np.uint16))
    with pytest.raises(TypeError):
        cpu.half_from_float(x.astype(np.float64), bits)  # no silent conversion copies
    with pytest.raises(TypeError):
        cpu.half_to_float(bits, np.zeros(8, np.float32)[::2])  # not contiguous
    read_only = np.zeros(4, np.uint16)
    read_only.flags.writeable = False
    with pytest.raises(ValueError):
        cpu.half_add(bits, read_only)
