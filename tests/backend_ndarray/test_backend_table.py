"""The backend contract: every enabled backend exports the whole function table of
``ndarray_backend_numpy`` and computes what the NumPy reference computes.

Each kernel is called on raw buffers with random inputs (both dtypes) and compared with the
reference module called on the same inputs.  Outputs start filled with a sentinel, so a kernel
that leaves part of its output unwritten fails.  Compiled backends must also reject bad
arguments with ValueError / IndexError / TypeError (never crash or write out of bounds).
"""

import inspect
import math

import numpy as np
import pytest
from tests.backend_ndarray.raw_buffers import Out, call, get, put
from tests.conv_reference import out_size

from needle.backend_ndarray import all_devices
from needle.backend_ndarray import ndarray_backend_numpy as ref

DEVICES = all_devices()
COMPILED = [d for d in DEVICES if d.name != "cpu_numpy"]
DTYPES = ("float32", "float64")


def dev_id(d):
    return d.name


def tol(dtype, scale=1.0):
    return dict(
        rtol=2e-5 if dtype == "float32" else 1e-12,
        atol=(2e-5 if dtype == "float32" else 1e-12) * scale,
    )


def check(device, name, dtype, *args, scale=1.0):
    got = call(device.mod, name, dtype, *args)
    want = call(ref, name, dtype, *args)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, equal_nan=True, err_msg=name, **tol(dtype, scale))


def special_randn(n, rng):
    """Normal samples with NaN, +-inf, 0, -0 and exact ties mixed in."""
    x = rng.standard_normal(n)
    if n >= 16:
        x[rng.choice(n, 8, replace=False)] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, 1.0, -2.0]
    return x


# ---- the table ---------------------------------------------------------------------------------


def _arity(fn):
    """Number of positional parameters of a Python or pybind11 function."""
    try:
        return len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        first = (fn.__doc__ or "").split("\n")[0]
        inner = first[first.index("(") + 1 : first.rindex(")")]
        depth, count = 0, 1 if inner.strip() else 0
        for ch in inner:
            depth += ch in "[(" and 1 or ch in "])" and -1 or 0
            count += ch == "," and depth == 0
        return count


@pytest.mark.parametrize("device", DEVICES, ids=dev_id)
def test_exports_whole_table(device):
    missing = [n for n in ref.TABLE if not hasattr(device.mod, n)]
    assert not missing, f"{device.name} lacks {missing}"
    for name in ref.TABLE:
        if name == "Array":
            continue
        assert _arity(getattr(device.mod, name)) == _arity(getattr(ref, name)), name


@pytest.mark.parametrize("device", COMPILED, ids=dev_id)
def test_array_type(device, dtype):
    a = device.Array(10, dtype)
    assert a.size == 10 and a.dtype == dtype and a.ptr() % 64 == 0
    assert device.Array(0, dtype).size == 0
    assert device.Array(4).dtype == "float32"


# ---- elementwise -------------------------------------------------------------------------------

BINARY = ["add", "sub", "mul", "div", "power", "maximum", "eq", "ne", "lt", "le", "gt", "ge"]
SCALAR = BINARY + ["rsub", "rdiv", "rpower"]
BINARY = BINARY + ["relu_grad"]  # (no scalar form)
UNARY = ["neg", "log", "exp", "tanh", "sqrt", "abs", "sign", "sigmoid", "relu"]


@pytest.mark.parametrize("device", DEVICES, ids=dev_id)
@pytest.mark.parametrize("n", [1, 37, 1000, 70001])
def test_ewise_binary(device, dtype, n):
    rng = np.random.default_rng(n)
    a, b = special_randn(n, rng), special_randn(n, rng)
    b[: n // 4] = a[: n // 4]  # equal pairs for the comparisons
    for op in BINARY:
        x = np.where(np.isinf(a), 7.0, a) if op == "power" else a
        check(device, "ewise_" + op, dtype, x, b, Out(n))


@pytest.mark.parametrize("device", DEVICES, ids=dev_id)
@pytest.mark.parametrize("val", [0.5, 2.0, -1.5, 1.0, 0.0, 3.0])
def test_scalar_ops(device, dtype, val):
    rng = np.random.default_rng(1)
    a = special_randn(5000, rng)  # negative ** 0.5 is NaN on every backend
    for op in SCALAR:
        # pow(-inf, 0.5) is inf in C but NaN in NumPy's float32 loop: leave infinities out
        x = np.where(np.isinf(a), 7.0, a) if "power" in op else a
        check(device, "scalar_" + op, dtype, x, val, Out(a.size))


@pytest.mark.parametrize("device", DEVICES, ids=dev_id)
@pytest.mark.parametrize("n", [3, 1000, 70001])
def test_unary(device, dtype, n):
    a = special_randn(n, np.random.default_rng(2)) * 3
    for op in UNARY:
        check(device, "ewise_" + op, dtype, a, Out(n))


@pytest.mark.parametrize("device", DEVICES, ids=dev_id)
def test_fill_and_numpy_roundtrip(device, dtype):
    buf = device.Array(1000, dtype)
    device.fill(buf, 2.5)
    np.testing.assert_array_equal(get(device.mod, buf), np.full(1000, 2.5))
    x = np.random.default_rng(3).standard_normal((4, 5, 6))
    buf = put(device.mod, x, dtype)
    got = device.to_numpy(buf, (6, 4, 5), (1, 30, 6), 0)
    np.testing.assert_array_equal(got, x.astype(dtype).transpose(2, 0, 1))
    assert got.dtype == np.dtype(dtype)


# ---- strided copies ----------------------------------------------------------------------------


def random_view(rng, allow_broadcast):
    """(base size, shape, strides, offset) of a random NumPy view of a 1-D base."""
    ndim = int(rng.integers(1, 5))
    base_shape = tuple(int(s) for s in rng.integers(1, 6, ndim))
    base = np.arange(math.prod(base_shape), dtype=np.float64).reshape(base_shape)
    idx = []
    for d in base_shape:
        start, stop = sorted(int(v) for v in rng.integers(0, d + 1, 2))
        step = int(rng.choice([1, 2, 3, -1, -2]))
        idx.append(
            slice(start, stop, step)
            if step > 0
            else slice(stop - 1 if stop else None, start - 1 if start else None, step)
        )
    view = base[tuple(idx)].transpose(rng.permutation(ndim))
    if allow_broadcast and rng.random() < 0.5:
        view = np.broadcast_to(view[:, None], (view.shape[0], 3, *view.shape[1:]))
    item = base.itemsize
    offset = (view.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // item
    strides = tuple(s // item for s in view.strides)
    return base.size, view.shape, strides, offset


def view_cases(allow_broadcast):
    rng = np.random.default_rng(4)
    cases = [random_view(rng, allow_broadcast) for _ in range(40)]
    cases += [(120000, (300, 400), (1, 300), 0), (120000, (400, 300), (-300, -1), 119999)]
    cases += [(2400, (2, 30, 40), (1200, 1, 30), 0), (2400, (3, 9, 20), (1, 3, 27 * 3), 2)]
    # transposes with a short last axis (NCHW -> NHWC of 3-channel images; a 64 x 5 matrix)
    cases += [(540, (2, 9, 10, 3), (270, 10, 1, 90), 0), (330, (64, 5), (1, 64), 2)]
    cases += [(600, (2, 9, 10, 3), (270, 10, 1, 90), 5)]
    cases += [(10, (0, 3), (5, 1), 0), (1, (1, 1), (0, 0), 0)]
    if allow_broadcast:  # (the reference's setitem cannot take a 0-d view)
        cases.append((10, (), (), 7))
    return cases


@pytest.mark.parametrize("device", DEVICES, ids=dev_id)
def test_compact(device, dtype):
    rng = np.random.default_rng(5)
    for size, shape, strides, offset in view_cases(True):
        a = rng.standard_normal(size + 3)
        check(device, "compact", dtype, a, Out(math.prod(shape)), shape, strides, offset)


@pytest.mark.parametrize("device", DEVICES, ids=dev_id)
def test_setitem(device, dtype):
    rng = np.random.default_rng(6)
    for size, shape, strides, offset in view_cases(False):
        n = math.prod(shape)
        a, out = rng.standard_normal(n), rng.standard_normal(size + 2)
        check(device, "ewise_setitem", dtype, a, Out(out.size, out), shape, strides, offset)
        check(device, "scalar_setitem", dtype, n, -3.5, Out(out.size, out), shape, strides, offset)


@pytest.mark.parametrize("device", DEVICES, ids=dev_id)
@pytest.mark.parametrize("n,offset,size", [(1, 0, 1), (37, 5, 50), (70001, 3, 70010), (0, 9, 9)])
def test_scaled_copy(device, dtype, n, offset, size):
    rng = np.random.default_rng(n)
    a, out = special_randn(n, rng), rng.standard_normal(size)
    for scale in (0.25, -3.0, 1.0, 0.0):
        check(device, "scaled_copy", dtype, a, scale, Out(size, out), offset)
    got = call(device.mod, "scaled_copy", dtype, a, 0.5, Out(size, out), offset)[0]
    np.testing.assert_array_equal(got[:offset], out[:offset].astype(dtype))  # untouched
    np.testing.assert_array_equal(got[offset + n :], out[offset + n :].astype(dtype))


# ---- reductions --------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES, ids=dev_id)
@pytest.mark.parametrize(
    "groups,r", [(1, 1), (3, 1), (1, 100003), (1000, 7), (50, 333), (2, 40000)]
)
def test_reduce(device, dtype, groups, r):
    rng = np.random.default_rng(groups + r)
    a = rng.standard_normal(groups * r)
    check(device, "reduce_sum", dtype, a, Out(groups), r, scale=10 * math.sqrt(r))
    check(device, "reduce_max", dtype, a, Out(groups), r)
    a[r // 2] = np.nan  # NaN propagates through max and sum
    check(device, "reduce_max", dtype, a, Out(groups), r)
    check(device, "reduce_sum", dtype, a, Out(groups), r, scale=10 * math.sqrt(r))


# ---- matmul ------------------------------------------------------------------------------------

MATMUL_SIZES = [
    (1, 1, 1),
    (1, 7, 33),
    (7, 33, 1),
    (7, 7, 7),
    (33, 33, 33),
    (33, 257, 7),
    (257, 33, 257),
    (257, 257, 257),
    (300, 147, 16),
    (300, 147, 1),
    (100, 600, 40),
    (5, 3000, 3),
    (3, 5, 3100),
    (13, 0, 5),
]


@pytest.mark.parametrize("device", DEVICES, ids=dev_id)
@pytest.mark.parametrize("m,n,p", MATMUL_SIZES)
def test_matmul(device, dtype, m, n, p):
    rng = np.random.default_rng(m * n + p)
    a, b = rng.standard_normal(m * n), rng.standard_normal(n * p)
    check(device, "matmul", dtype, a, b, Out(m * p), m, n, p, scale=10 * math.sqrt(n))


@pytest.mark.parametrize("device", DEVICES, ids=dev_id)
@pytest.mark.parametrize("sa,sb", [(1, 1), (0, 1), (1, 0)])
def test_matmul_batched(device, dtype, sa, sb):
    rng = np.random.default_rng(7)
    batch, m, n, p = 3, 19, 35, 21
    a, b = rng.standard_normal(batch * m * n), rng.standard_normal(batch * n * p)
    check(
        device,
        "matmul_batched",
        dtype,
        a,
        b,
        Out(batch * m * p),
        batch,
        m,
        n,
        p,
        sa * m * n,
        sb * n * p,
        scale=10,
    )


def test_matmul_tiled_course_layout():
    """hw3's check: tiled (m/T, n/T, T, T) inputs, tiled output, un-tiled product."""
    cpu = [d for d in COMPILED if d.name == "cpu"]
    if not cpu:
        pytest.skip("cpu backend not built")
    mod = cpu[0].mod
    T = mod.__tile_size__
    rng = np.random.default_rng(8)
    for m, n, p in [(1, 1, 1), (2, 2, 3), (1, 2, 1), (3, 3, 3)]:
        a, b = rng.standard_normal((m * T, n * T)), rng.standard_normal((n * T, p * T))
        tile = lambda x, r, c: x.reshape(r, T, c, T).transpose(0, 2, 1, 3)  # noqa: E731
        (out,) = call(
            mod,
            "matmul_tiled",
            "float32",
            tile(a, m, n),
            tile(b, n, p),
            Out(m * p * T * T),
            m * T,
            n * T,
            p * T,
        )
        got = out.reshape(m, p, T, T).transpose(0, 2, 1, 3).reshape(m * T, p * T)
        np.testing.assert_allclose(got, a @ b, rtol=1e-4, atol=1e-4)


GEMM_CASES = [(50, 40, 30), (1, 70, 300), (261, 19, 300), (40, 300, 513)]


@pytest.mark.parametrize("reference", [False, True])
@pytest.mark.parametrize("M,N,K", GEMM_CASES)
def test_strided_gemm(dtype, reference, M, N, K):
    """The GEMM's general-strided interface (transposed operands, accumulate) used by conv."""
    mods = [d.mod for d in COMPILED if hasattr(d.mod, "_gemm")]
    if not mods:
        pytest.skip("no backend exposes _gemm")
    rng = np.random.default_rng(M + N + K)
    A, B, C0 = rng.standard_normal((M, K)), rng.standard_normal((K, N)), rng.standard_normal((M, N))
    for mod in mods:
        for ta, tb, tc, acc in [(0, 0, 0, 0), (1, 0, 0, 1), (0, 1, 1, 0), (1, 1, 1, 1)]:
            a = put(mod, A.T if ta else A, dtype)
            b = put(mod, B.T if tb else B, dtype)
            c = put(mod, C0.T if tc else C0, dtype)
            rs = lambda t, rows, cols: (1, rows) if t else (cols, 1)  # noqa: E731
            mod._gemm(
                a, b, c, M, N, K, *rs(ta, M, K), *rs(tb, K, N), *rs(tc, M, N), bool(acc), reference
            )
            got = get(mod, c).reshape((N, M) if tc else (M, N))
            got = got.T if tc else got
            np.testing.assert_allclose(got, A @ B + (C0 if acc else 0), **tol(dtype, 10 * K))


# ---- convolution -------------------------------------------------------------------------------


def conv_out(size, k, s, p_lo, p_hi, d, idl):
    return out_size(size, k, s, p_lo, p_hi, d, idl)


def make_conv_geom(rng, ndim, groups, cg, coutg, **force):
    spatial_in, kernel, stride, pad, dil, idl, spatial_out = [], [], [], [], [], [], []
    for axis in range(3):
        if axis < 3 - ndim:
            vals = dict(i=1, k=1, s=1, p=0, d=1, idl=1)
        else:
            vals = dict(
                i=int(rng.integers(3, 8)),
                k=int(rng.integers(1, 4)),
                s=int(rng.integers(1, 4)),
                p=int(rng.integers(-1, 3)),
                d=int(rng.integers(1, 4)),
                idl=int(rng.choice([1, 1, 2, 3])),
            )
            vals.update(force)
        for _ in range(50):  # grow the input until the window fits
            o = conv_out(vals["i"], vals["k"], vals["s"], vals["p"], 1, vals["d"], vals["idl"])
            if o >= 1:
                break
            vals["i"] += 1
        spatial_in.append(vals["i"])
        kernel.append(vals["k"])
        stride.append(vals["s"])
        pad.append(vals["p"])
        dil.append(vals["d"])
        idl.append(vals["idl"])
        spatial_out.append(o)
    n = int(rng.integers(1, 4))
    return [
        n,
        *spatial_in,
        groups * cg,
        *kernel,
        groups * coutg,
        *spatial_out,
        *stride,
        *pad,
        *dil,
        *idl,
        groups,
    ]


def conv_cases():
    rng = np.random.default_rng(9)
    # (ndim, groups, Cin // groups, Cout // groups, forced axis values)
    specs = [
        (1, 1, 3, 4, {}),
        (2, 1, 2, 5, {}),
        (3, 1, 2, 3, {}),
        (2, 2, 3, 2, {}),
        (2, 3, 2, 2, {}),
        (1, 4, 1, 1, {}),
        (2, 6, 1, 1, {}),
        (2, 4, 1, 3, {}),
        (3, 3, 1, 2, {}),
        (2, 1, 5, 7, dict(k=1)),
        (2, 2, 3, 4, dict(k=1, s=2)),
        (2, 1, 3, 3, dict(p=-1)),
        (2, 1, 3, 3, dict(p=0)),
        (2, 1, 2, 2, dict(idl=2, p=2)),
        (1, 1, 4, 4, dict(d=3, s=3)),
        (2, 2, 2, 3, dict(idl=3, d=2)),
        (2, 5, 1, 2, dict(p=-1)),
        (1, 8, 1, 1, dict(s=2)),
        (3, 1, 1, 1, dict(k=1)),
        (2, 1, 3, 17, {}),
        (2, 96, 1, 1, {}),  # depthwise, one full 64-channel block plus a remainder
        # grouped with C_out / groups of one or two SIMD vectors (the direct grouped kernel)
        (2, 2, 3, 16, {}),
        (2, 3, 2, 32, dict(p=-1)),
        (1, 4, 4, 8, {}),
        (3, 2, 2, 16, {}),
        (2, 2, 5, 8, dict(s=2, idl=2)),
        (2, 2, 9, 16, {}),  # register blocks of input channels: one full block and a remainder
        (1, 2, 8, 8, {}),
        # groups == 1 with C_out of one or two SIMD vectors (direct kernels), odd C_in
        (2, 1, 3, 16, dict(k=3, s=3)),
        (2, 1, 5, 32, dict(p=-1)),
        (3, 1, 3, 8, {}),
        (1, 1, 7, 16, dict(s=2)),
        (3, 1, 2, 16, dict(d=2)),
        (2, 1, 3, 32, dict(d=2, p=2)),
        (2, 1, 1, 16, dict(k=3, p=-1, s=2)),
        # input dilation (the input gradient of a strided conv), several channel widths
        (2, 1, 4, 3, dict(idl=2, k=3, p=2)),
        (2, 1, 6, 16, dict(idl=2, k=3, p=1, s=1)),
        (2, 2, 3, 5, dict(idl=3, k=3, p=2, s=1)),
        (1, 1, 5, 24, dict(idl=2, d=2, p=0)),
        (3, 3, 2, 4, dict(idl=2, p=1)),
        # depthwise without multiplier: full and partial channel blocks, interior and edges
        (2, 40, 1, 1, dict(idl=2, p=1)),
        (2, 70, 1, 1, dict(d=2, k=3, p=2)),
        (1, 33, 1, 1, dict(k=3, p=1, s=2)),
        (3, 20, 1, 1, dict(k=3, p=1)),
        (2, 40, 1, 1, dict(k=3, p=1, s=2)),
        (2, 64, 1, 1, dict(k=3, p=0, d=2)),
        # wider lines: register blocks of 4 interior pixels, then 3, 2 or 1 left over
        (2, 40, 1, 1, dict(i=13, k=3, p=1, s=1, d=1, idl=1)),
        (2, 48, 1, 1, dict(i=12, k=5, p=2, s=2, d=1, idl=1)),
        (2, 36, 1, 1, dict(i=14, k=3, p=2, s=1, d=2, idl=1)),
        (1, 16, 1, 1, dict(i=9, k=3, p=1, s=1, d=1, idl=1)),
    ]
    cases = [make_conv_geom(rng, *spec[:4], **spec[4]) for spec in specs]
    # larger: K*Cg and rows exceed the GEMM's KC / MC blocks
    cases.append([2, 1, 20, 20, 40, 1, 3, 3, 24, 1, 20, 20, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    cases.append([3, 1, 12, 12, 64, 1, 3, 3, 64, 1, 12, 12, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 64])
    cases.append([2, 1, 11, 11, 40, 1, 3, 3, 64, 1, 11, 11, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    # C_out per group 80 on an image of 81 output pixels: with AVX2 the direct kernels in
    # five slices of two float vectors (ten of two double vectors); with AVX-512 im2col + GEMM
    cases.append([1, 1, 9, 9, 5, 1, 3, 3, 80, 1, 9, 9, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    cases.append([2, 1, 9, 9, 6, 1, 3, 3, 160, 1, 9, 9, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2])
    # past the 2^20 multiply-adds that start the threads: depthwise lines, direct slices
    cases.append([2, 1, 40, 40, 80, 1, 3, 3, 80, 1, 40, 40, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 80])
    cases.append([3, 1, 12, 12, 16, 1, 3, 3, 80, 1, 12, 12, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    # input dilation 2 with K * C_out past the GEMM's blocks (strided input gradient)
    cases.append([2, 1, 6, 6, 24, 1, 3, 3, 40, 1, 12, 12, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 2, 2, 1])
    return cases


def conv_sizes(g):
    f = dict(zip(ref.CONV_GEOMETRY_FIELDS, g))
    x = f["N"] * f["Di"] * f["Hi"] * f["Wi"] * f["Cin"]
    w = f["KD"] * f["KH"] * f["KW"] * (f["Cin"] // f["groups"]) * f["Cout"]
    y = f["N"] * f["Do"] * f["Ho"] * f["Wo"] * f["Cout"]
    return x, w, y


@pytest.mark.parametrize("device", DEVICES, ids=dev_id)
@pytest.mark.parametrize("geom", conv_cases(), ids=lambda g: "-".join(map(str, g)))
def test_conv_kernels(device, dtype, geom):
    rng = np.random.default_rng(sum(geom))
    nx, nw, ny = conv_sizes(geom)
    x, w, gy = rng.standard_normal(nx), rng.standard_normal(nw), rng.standard_normal(ny)
    check(device, "conv_forward", dtype, x, w, Out(ny), geom, scale=50)
    check(device, "conv_backward_weight", dtype, x, gy, Out(nw), geom, scale=200)


# ---- pooling -----------------------------------------------------------------------------------

POOL_CASES = [
    # N, Di, Hi, Wi, C, KD, KH, KW, Do, Ho, Wo, sd, sh, sw, pd, ph, pw
    [2, 1, 6, 6, 3, 1, 2, 2, 1, 3, 3, 1, 2, 2, 0, 0, 0],
    [2, 1, 7, 5, 4, 1, 3, 3, 1, 4, 3, 1, 2, 2, 0, 1, 1],
    [1, 1, 5, 5, 2, 1, 3, 3, 1, 3, 3, 1, 1, 1, 0, 0, 0],  # overlapping windows
    [1, 1, 1, 9, 5, 1, 1, 4, 1, 1, 3, 1, 1, 3, 0, 0, 1],  # 1-D, padded
    [2, 4, 4, 4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0],  # 3-D
]


@pytest.mark.parametrize("device", DEVICES, ids=dev_id)
@pytest.mark.parametrize("geom", POOL_CASES, ids=lambda g: "-".join(map(str, g)))
@pytest.mark.parametrize("ties", [False, True])
def test_maxpool(device, dtype, geom, ties):
    rng = np.random.default_rng(sum(geom) + ties)
    f = dict(zip(ref.POOL_GEOMETRY_FIELDS, geom))
    nx = f["N"] * f["Di"] * f["Hi"] * f["Wi"] * f["C"]
    ny = f["N"] * f["Do"] * f["Ho"] * f["Wo"] * f["C"]
    x = rng.integers(-2, 3, nx).astype(float) if ties else rng.standard_normal(nx)
    check(device, "maxpool_forward", dtype, x, Out(ny), geom)
    check(device, "maxpool_backward", dtype, x, rng.standard_normal(ny), Out(nx), geom)


# ---- bad input (compiled backends) ---------------------------------------------------------------

BAD = pytest.mark.parametrize("device", COMPILED, ids=dev_id)


@BAD
def test_bad_array(device):
    with pytest.raises(ValueError):
        device.Array(-1)
    with pytest.raises(TypeError):
        device.Array(3, "int32")


@BAD
def test_bad_sizes_and_dtypes(device):
    mod = device.mod
    a, b, out = mod.Array(10), mod.Array(10), mod.Array(11)
    with pytest.raises(ValueError, match="10"):
        mod.ewise_add(a, b, out)
    with pytest.raises(ValueError):
        mod.scalar_mul(a, 2.0, out)
    with pytest.raises(ValueError):
        mod.ewise_exp(a, out)
    with pytest.raises(TypeError):
        mod.ewise_add(a, mod.Array(10, "float64"), mod.Array(10))
    with pytest.raises(TypeError):
        mod.matmul(mod.Array(4), mod.Array(4, "float64"), mod.Array(4), 2, 2, 2)
    with pytest.raises(ValueError):
        mod.reduce_sum(a, mod.Array(3), 4)
    with pytest.raises(ValueError):
        mod.reduce_max(a, mod.Array(3), 0)
    with pytest.raises(ValueError):
        mod.from_numpy(np.zeros(5, dtype=np.float32), a)


@BAD
def test_bad_views(device):
    mod = device.mod
    a, out = mod.Array(12), mod.Array(12)
    with pytest.raises(IndexError):
        mod.compact(a, out, (3, 4), (4, 1), 1)  # reaches element 12
    with pytest.raises(IndexError):
        mod.compact(a, out, (3, 4), (-4, 1), 0)  # reaches element -8
    with pytest.raises(IndexError):
        mod.ewise_setitem(a, out, (2, 2), (1, 20), 0)
    with pytest.raises(IndexError):
        mod.scalar_setitem(4, 1.0, out, (4,), (1,), -1)
    with pytest.raises(IndexError):
        mod.to_numpy(a, (13,), (1,), 0)
    with pytest.raises(IndexError):
        mod.scaled_copy(a, 2.0, out, 1)  # 12 elements from offset 1 reach element 12
    with pytest.raises(IndexError):
        mod.scaled_copy(mod.Array(3), 2.0, out, -1)
    with pytest.raises(TypeError):
        mod.scaled_copy(mod.Array(3, "float64"), 2.0, out, 0)
    with pytest.raises(ValueError):
        mod.compact(a, out, (3, -4), (4, 1), 0)
    with pytest.raises(ValueError):
        mod.compact(a, out, (3, 4), (4,), 0)
    with pytest.raises(ValueError):
        mod.compact(a, mod.Array(11), (3, 4), (4, 1), 0)
    with pytest.raises(ValueError):
        mod.scalar_setitem(5, 1.0, out, (4,), (1,), 0)


@BAD
def test_bad_matmul(device):
    mod = device.mod
    with pytest.raises(ValueError):
        mod.matmul(mod.Array(6), mod.Array(12), mod.Array(8), 2, 4, 4)  # a needs 8
    with pytest.raises(ValueError):
        mod.matmul(mod.Array(8), mod.Array(16), mod.Array(7), 2, 4, 4)  # out needs 8
    with pytest.raises(ValueError):
        mod.matmul(mod.Array(8), mod.Array(16), mod.Array(8), -2, 4, 4)
    with pytest.raises(ValueError):
        mod.matmul_batched(mod.Array(8), mod.Array(16), mod.Array(16), 2, 2, 4, 4, 8, 0)
    with pytest.raises(ValueError):
        mod.matmul_batched(mod.Array(16), mod.Array(16), mod.Array(16), 2, 2, 4, 4, 8, -1)


GOOD_CONV = [1, 1, 5, 5, 2, 1, 3, 3, 4, 1, 3, 3, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1]


@BAD
@pytest.mark.parametrize(
    "field,value", [(24, 3), (12, 0), (18, 0), (21, 0), (6, 0), (0, -1), (10, -2), (24, 0)]
)
def test_bad_conv_geometry(device, field, value):
    mod = device.mod
    geom = list(GOOD_CONV)
    geom[field] = value
    x, w, y = mod.Array(50), mod.Array(72), mod.Array(36)
    with pytest.raises(ValueError):
        mod.conv_forward(x, w, y, geom)
    with pytest.raises(ValueError):
        mod.conv_backward_weight(x, y, w, geom)


@BAD
def test_bad_conv_buffers(device):
    mod = device.mod
    x, w, y = mod.Array(50), mod.Array(72), mod.Array(36)
    mod.conv_forward(x, w, y, GOOD_CONV)  # the sizes are right
    with pytest.raises(ValueError):
        mod.conv_forward(mod.Array(49), w, y, GOOD_CONV)
    with pytest.raises(ValueError):
        mod.conv_forward(x, mod.Array(71), y, GOOD_CONV)
    with pytest.raises(ValueError):
        mod.conv_forward(x, w, mod.Array(35), GOOD_CONV)
    with pytest.raises(ValueError):
        mod.conv_backward_weight(x, mod.Array(35), w, GOOD_CONV)
    with pytest.raises(ValueError):
        mod.conv_forward(x, w, y, GOOD_CONV[:-1])
    with pytest.raises(TypeError):
        mod.conv_forward(x, mod.Array(72, "float64"), y, GOOD_CONV)


GOOD_POOL = [1, 1, 4, 4, 2, 1, 2, 2, 1, 2, 2, 1, 2, 2, 0, 0, 0]


@BAD
def test_bad_pool(device):
    mod = device.mod
    x, y = mod.Array(32), mod.Array(8)
    mod.maxpool_forward(x, y, GOOD_POOL)
    with pytest.raises(ValueError):
        mod.maxpool_forward(mod.Array(31), y, GOOD_POOL)
    with pytest.raises(ValueError):
        mod.maxpool_forward(x, mod.Array(7), GOOD_POOL)
    with pytest.raises(ValueError):
        mod.maxpool_backward(x, y, mod.Array(31), GOOD_POOL)
    for field, value in [(11, 0), (5, 0), (14, -1), (0, -1)]:
        geom = list(GOOD_POOL)
        geom[field] = value
        with pytest.raises(ValueError):
            mod.maxpool_forward(x, y, geom)
    with pytest.raises(ValueError):
        mod.maxpool_forward(x, y, GOOD_POOL + [1])
