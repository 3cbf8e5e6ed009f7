"""CUDA backend specifics: the module's table and argument checks (wherever it was built),
and, on a GPU, each kernel against the NumPy reference at sizes that span many blocks or
are not multiples of any tile, the K-split GEMM, the batch-blocked convolution, and the
memory pool."""

import numpy as np
import pytest
from tests.conv_reference import out_size

from needle.backend_ndarray import ndarray as nd
from needle.backend_ndarray import ndarray_backend_numpy as ref

cu = pytest.importorskip("needle.backend_ndarray.ndarray_backend_cuda")

needs_gpu = pytest.mark.skipif(not nd.cuda().enabled(), reason="no CUDA device")


# ---- compile-only: these run wherever the module was built, GPU or not -------------------
def test_module_exports_the_table():
    missing = [name for name in ref.TABLE if not hasattr(cu, name)]
    assert missing == []
    assert cu.__device_name__ == "cuda"
    assert isinstance(cu.__tile_size__, int)


def test_device_available_is_a_bool_and_matches_the_device():
    available = cu.device_available()
    assert isinstance(available, bool)
    assert nd.cuda().enabled() == available


def test_array_rejects_bad_dtype_and_size():
    with pytest.raises(TypeError, match="dtype"):
        cu.Array(4, "int32")
    with pytest.raises(ValueError, match="non-negative"):
        cu.Array(-1)
    empty = cu.Array(0, "float64")  # no device memory needed
    assert (empty.size, empty.dtype) == (0, "float64")


def test_host_side_checks_fire_before_any_device_work():
    a, out = cu.Array(0), cu.Array(0)
    with pytest.raises(IndexError, match="outside"):
        cu.compact(a, out, (2, 3), (3, 1), 0)
    with pytest.raises(IndexError, match="outside"):
        cu.ewise_setitem(a, out, (2,), (-1,), 0)
    with pytest.raises(ValueError, match="differ in length"):
        cu.compact(a, out, (2, 3), (1,), 0)
    with pytest.raises(TypeError, match="dtype"):
        cu.ewise_add(a, cu.Array(0, "float64"), out)
    with pytest.raises(ValueError, match="out has"):
        cu.matmul(a, a, out, 2, 0, 2)
    with pytest.raises(ValueError, match="needs at least"):
        cu.matmul(a, a, out, 0, 3, 2)  # b (3 x 2) does not fit in 0 elements
    with pytest.raises(ValueError, match="25 ints"):
        cu.conv_forward(a, a, out, [1] * 24)
    with pytest.raises(ValueError, match="groups"):
        geom = [1, 1, 1, 4, 3, 1, 1, 1, 4, 1, 1, 4] + [1] * 3 + [0] * 3 + [1] * 6 + [2]
        cu.conv_forward(a, a, out, geom)
    with pytest.raises(ValueError, match="17 ints"):
        cu.maxpool_forward(a, out, [1] * 16)
    with pytest.raises(ValueError, match="reduce_size"):
        cu.reduce_sum(a, out, 0)


# ---- helpers: run one table function on both backends and compare -----------------------
class Out:
    """An output buffer of `size` elements, optionally pre-filled (for setitem)."""

    def __init__(self, size, init=None):
        self.size, self.init = size, init


def _to_backend(mod, value, dtype):
    if isinstance(value, np.ndarray):
        arr = mod.Array(value.size, dtype)
        mod.from_numpy(value.astype(dtype), arr)
        return arr
    if isinstance(value, Out):
        arr = mod.Array(value.size, dtype)
        mod.from_numpy(np.full(value.size, np.nan) if value.init is None else value.init, arr)
        return arr
    return value


def _run(mod, name, args, dtype):
    converted = [_to_backend(mod, v, dtype) for v in args]
    getattr(mod, name)(*converted)
    return [
        mod.to_numpy(arr, (arr.size,), (1,), 0)
        for arr, v in zip(converted, args)
        if isinstance(v, Out)
    ]


def check(name, args, dtype="float32", rtol=None, atol=None):
    rtol = rtol if rtol is not None else (1e-4 if dtype == "float32" else 1e-10)
    atol = atol if atol is not None else (1e-4 if dtype == "float32" else 1e-10)
    expected = _run(ref, name, args, dtype)
    got = _run(cu, name, args, dtype)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol, err_msg=name)


# ---- kernels vs the NumPy reference (GPU only) --------------------------------------------
BINARY = [n for n in ref.TABLE if n.startswith("ewise_") and n not in ("ewise_setitem",)]
SCALAR = [n for n in ref.TABLE if n.startswith("scalar_") and n != "scalar_setitem"]
UNARY = [
    "ewise_neg",
    "ewise_log",
    "ewise_exp",
    "ewise_tanh",
    "ewise_sqrt",
    "ewise_abs",
    "ewise_sign",
    "ewise_sigmoid",
    "ewise_relu",
]


@needs_gpu
@pytest.mark.parametrize("size", [1, 1000, 3_000_001])
def test_elementwise_across_many_blocks(size, dtype):
    a = np.random.randn(size)
    b = np.random.randn(size)
    b[::7] = a[::7]  # equal entries for the comparisons
    pos = np.abs(a) + 0.1
    for name in BINARY:
        if name in UNARY:
            check(name, [pos if name in ("ewise_log", "ewise_sqrt") else a, Out(size)], dtype)
        elif name == "ewise_power":
            check(name, [pos, b, Out(size)], dtype)
        else:
            check(name, [a, b, Out(size)], dtype)
    for name in SCALAR:
        base = pos if "power" in name or name == "scalar_rdiv" else a
        check(name, [base, 1.5, Out(size)], dtype)
    check("scalar_power", [a, 2.0, Out(size)], dtype)  # negative base, integer exponent


@needs_gpu
def test_fill_and_nan_propagation():
    check("fill", [Out(5000), 2.5])
    x = np.random.randn(4, 300)
    x[1, 17] = np.nan
    check("reduce_max", [x.ravel(), Out(4), 300])
    check("ewise_maximum", [x.ravel(), np.zeros(x.size), Out(x.size)])
    check("ewise_relu", [x.ravel(), Out(x.size)])


@needs_gpu
@pytest.mark.parametrize(
    "rows,size", [(1000, 1), (777, 5), (1000, 31), (300, 1025), (3, 200_001), (1, 3_000_000)]
)
def test_reductions_every_kernel(rows, size, dtype):
    a = np.random.randn(rows * size)
    tol = 1e-5 if dtype == "float32" else 1e-12
    check("reduce_sum", [a, Out(rows), size], dtype, rtol=tol, atol=tol * np.sqrt(size))
    check("reduce_max", [a, Out(rows), size], dtype)


@needs_gpu
@pytest.mark.parametrize(
    "shape,strides,offset",
    [
        ((5, 7, 3), (21, 3, 1), 0),
        ((3, 7), (1, 3), 0),  # transposed
        ((4, 5), (-5, 1), 15),  # negative stride
        ((2, 3, 4), (0, 4, 1), 2),  # broadcast
        ((1, 1, 9), (9, 9, -1), 8),
        ((300, 1000), (2000, 2), 1),  # many blocks
        ((2,) * 14, tuple(3 ** (13 - i) for i in range(14)), 0),  # 14 non-mergeable axes
        ((0, 3), (3, 1), 0),
    ],
)
def test_strided_copies(shape, strides, offset, dtype):
    n = int(np.prod(shape))
    extent = offset + sum((d - 1) * max(s, 0) for d, s in zip(shape, strides)) + 1
    base = np.random.randn(max(extent, 1))
    check("compact", [base, Out(n), shape, strides, offset], dtype)
    if 0 not in strides:
        src = np.random.randn(n)
        check(
            "ewise_setitem",
            [src, Out(base.size, base.astype(dtype)), shape, strides, offset],
            dtype,
        )
        check(
            "scalar_setitem",
            [n, -3.0, Out(base.size, base.astype(dtype)), shape, strides, offset],
            dtype,
        )


@needs_gpu
def test_to_numpy_of_a_view():
    x = np.random.randn(6, 5).astype("float32")
    arr = cu.Array(x.size)
    cu.from_numpy(x, arr)
    got = cu.to_numpy(arr, (5, 3), (1, 10), 2)
    want = np.lib.stride_tricks.as_strided(x.ravel()[2:], (5, 3), (4, 40))
    np.testing.assert_array_equal(got, want)
    assert cu.to_numpy(arr, (), (), 7).shape == ()


@needs_gpu
@pytest.mark.parametrize(
    "m,n,p",
    [
        (1, 1, 1),
        (7, 33, 5),
        (33, 257, 129),
        (129, 1, 200),
        (257, 300, 513),
        (3, 0, 4),
        (5, 20000, 6),
        (1000, 70, 1),
        (4100, 37, 60),
        (300, 50, 20),
        (70, 3000, 130),
    ],
)
def test_matmul_sizes_not_multiples_of_any_tile(m, n, p, dtype):
    a, b = np.random.randn(m * n), np.random.randn(n * p)
    tol = 1e-3 if dtype == "float32" else 1e-9
    check("matmul", [a, b, Out(m * p), m, n, p], dtype, rtol=tol, atol=tol * np.sqrt(n + 1))


@needs_gpu
@pytest.mark.parametrize("a_stride,b_stride", [(1, 1), (0, 1), (1, 0)])
def test_matmul_batched_with_broadcast(a_stride, b_stride, dtype):
    batch, m, n, p = 5, 17, 40, 9
    a = np.random.randn(max(batch * a_stride, 1) * m * n)
    b = np.random.randn(max(batch * b_stride, 1) * n * p)
    check(
        "matmul_batched",
        [a, b, Out(batch * m * p), batch, m, n, p, a_stride * m * n, b_stride * n * p],
        dtype,
        rtol=1e-4,
        atol=1e-4,
    )


@needs_gpu
def test_matmul_tiled_layout():
    t = cu.__tile_size__
    m, n, p = 2 * t, 3 * t, t
    a, b = np.random.randn(m, n), np.random.randn(n, p)

    def tiled(x):
        r, c = x.shape
        return x.reshape(r // t, t, c // t, t).transpose(0, 2, 1, 3).ravel()

    arrs = [cu.Array(x.size) for x in (tiled(a), tiled(b))]
    for arr, x in zip(arrs, (tiled(a), tiled(b))):
        cu.from_numpy(x, arr)
    out = cu.Array(m * p)
    cu.matmul_tiled(arrs[0], arrs[1], out, m, n, p)
    got = cu.to_numpy(out, (m * p,), (1,), 0)
    np.testing.assert_allclose(got, tiled(a @ b), rtol=1e-4, atol=1e-4)


def conv_geometry(n, spatial, cin, kernel, cout, stride=1, pad=0, dil=1, idil=1, groups=1):
    """The 25-int geometry for a 3-D-form conv; 1-D/2-D problems have leading size-1 axes."""
    rank = len(spatial)
    spatial = (1,) * (3 - len(spatial)) + tuple(spatial)
    kernel = (1,) * (3 - len(kernel)) + tuple(kernel)

    def per_axis(v, fill):
        v = (v,) * rank if isinstance(v, int) else tuple(v)
        return (fill,) * (3 - len(v)) + v

    stride, pad, dil, idil = (
        per_axis(stride, 1),
        per_axis(pad, 0),
        per_axis(dil, 1),
        per_axis(idil, 1),
    )
    outs = [
        out_size(spatial[i], kernel[i], stride[i], pad[i], pad[i], dil[i], idil[i])
        for i in range(3)
    ]
    return [n, *spatial, cin, *kernel, cout, *outs, *stride, *pad, *dil, *idil, groups]


CONVS = [
    dict(n=2, spatial=(9, 9), cin=3, kernel=(3, 3), cout=4, pad=1),
    dict(n=3, spatial=(10, 7), cin=4, kernel=(3, 2), cout=6, stride=(2, 3), pad=(1, 0)),
    dict(n=2, spatial=(12, 12), cin=6, kernel=(3, 3), cout=6, dil=2, groups=3, pad=2),
    dict(n=2, spatial=(8, 8), cin=8, kernel=(3, 3), cout=16, groups=8, pad=1),  # depthwise x2
    dict(n=2, spatial=(6, 6), cin=5, kernel=(3, 3), cout=3, idil=2, pad=2),  # transposed-conv form
    dict(n=2, spatial=(9, 9), cin=4, kernel=(2, 2), cout=5, pad=-1),  # negative pad
    dict(n=4, spatial=(7, 7), cin=16, kernel=(1, 1), cout=24, groups=4),  # pointwise, grouped
    dict(n=2, spatial=(5, 6, 7), cin=3, kernel=(2, 3, 3), cout=4, stride=2, pad=1),  # 3-D
    dict(n=3, spatial=(17,), cin=2, kernel=(5,), cout=3, stride=3, pad=2),  # 1-D
    dict(n=64, spatial=(16, 16), cin=8, kernel=(3, 3), cout=8, pad=1),  # long K: split-K
    dict(n=2, spatial=(7, 6), cin=40, kernel=(3, 3), cout=70, pad=1, groups=2),  # wide channels
    dict(n=3, spatial=(80, 80), cin=24, kernel=(3, 3), cout=48, stride=2, pad=1),  # N64 tile
]


@needs_gpu
@pytest.mark.parametrize("cfg", CONVS, ids=[str(i) for i in range(len(CONVS))])
def test_conv_forward_and_weight_gradient(cfg, dtype):
    geom = conv_geometry(**cfg)
    f = dict(zip(ref.CONV_GEOMETRY_FIELDS, geom))
    x = np.random.randn(f["N"] * f["Di"] * f["Hi"] * f["Wi"] * f["Cin"])
    w = np.random.randn(f["KD"] * f["KH"] * f["KW"] * f["Cin"] // f["groups"] * f["Cout"])
    out_size = f["N"] * f["Do"] * f["Ho"] * f["Wo"] * f["Cout"]
    gy = np.random.randn(out_size)
    tol = 2e-3 if dtype == "float32" else 1e-9
    check("conv_forward", [x, w, Out(out_size), geom], dtype, rtol=tol, atol=tol)
    check("conv_backward_weight", [x, gy, Out(w.size), geom], dtype, rtol=tol, atol=tol * 10)


@needs_gpu
@pytest.mark.parametrize("limit", [1, 3 * 8 * 8 * 9 * 4 * 4])  # 1 sample, 3 samples per block
def test_conv_blocks_over_the_batch(limit):
    geom = conv_geometry(7, (8, 8), 4, (3, 3), 5, pad=1, stride=1)
    x = np.random.randn(7 * 8 * 8 * 4)
    w = np.random.randn(9 * 4 * 5)
    gy = np.random.randn(7 * 8 * 8 * 5)
    old = cu.conv_workspace_bytes(limit)
    try:
        check("conv_forward", [x, w, Out(gy.size), geom])
        check("conv_backward_weight", [x, gy, Out(w.size), geom], atol=1e-3)
    finally:
        cu.conv_workspace_bytes(old)


def pool_geometry(n, spatial, c, kernel, stride, pad):
    spatial = (1,) * (3 - len(spatial)) + tuple(spatial)
    kernel = (1,) * (3 - len(kernel)) + tuple(kernel)
    stride = (1,) * (3 - len(stride)) + tuple(stride)
    pad = (0,) * (3 - len(pad)) + tuple(pad)
    outs = [out_size(s, k, st, p, p) for s, p, k, st in zip(spatial, pad, kernel, stride)]
    return [n, *spatial, c, *kernel, *outs, *stride, *pad]


@needs_gpu
@pytest.mark.parametrize(
    "n,spatial,c,kernel,stride,pad",
    [
        (2, (8, 8), 3, (2, 2), (2, 2), (0, 0)),
        (2, (9, 7), 4, (3, 3), (2, 2), (1, 1)),  # overlapping windows, padding
        (1, (5, 6, 7), 2, (2, 3, 2), (1, 2, 2), (1, 1, 0)),
    ],
)
def test_maxpool(n, spatial, c, kernel, stride, pad, dtype):
    geom = pool_geometry(n, spatial, c, kernel, stride, pad)
    f = dict(zip(ref.POOL_GEOMETRY_FIELDS, geom))
    in_size = f["N"] * f["Di"] * f["Hi"] * f["Wi"] * f["C"]
    out_size = f["N"] * f["Do"] * f["Ho"] * f["Wo"] * f["C"]
    x = np.round(np.random.randn(in_size), 1)  # ties: the first arg-max must win
    check("maxpool_forward", [x, Out(out_size), geom], dtype)
    check("maxpool_backward", [x, np.random.randn(out_size), Out(in_size), geom], dtype)


@needs_gpu
def test_pool_reuses_freed_buffers():
    cu.synchronize()
    a = cu.Array(12345)
    ptr = a.ptr()
    del a
    assert cu.pool_cached_bytes() >= 12345 * 4
    b = cu.Array(12345)
    assert b.ptr() == ptr
    cu.pool_release()
    assert cu.pool_cached_bytes() == 0


@needs_gpu
def test_ndarray_on_cuda_round_trip():
    x = np.random.randn(33, 65).astype("float32")
    a = nd.NDArray(x, device=nd.cuda())
    y = ((a @ a.permute((1, 0))) + 1.0).sum(axis=1)
    nd.cuda().synchronize()
    np.testing.assert_allclose(y.numpy(), (x @ x.T + 1.0).sum(axis=1), rtol=1e-4, atol=1e-3)
