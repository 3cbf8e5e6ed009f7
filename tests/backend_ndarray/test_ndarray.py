"""NDArray against NumPy on every enabled device, float32 and float64.

Each operation runs on compact arrays and on non-compact views (permuted, broadcast, sliced
with steps, negative steps, offsets), on size-0 and size-1 axes, and on 0-d arrays.
``device`` and ``dtype`` are the fixtures of ``tests/conftest.py``.
"""

import operator

import numpy as np
import pytest

import needle.backend_ndarray as nd
from needle.backend_ndarray import ndarray_backend_numpy

# A second device over the NumPy backend, so that device-mixing errors and to() between
# devices are tested even where only one real backend is built.
OTHER_DEVICE = nd.BackendDevice("cpu_numpy_other", ndarray_backend_numpy)


# --- helpers ---------------------------------------------------------------------------
def need(device, dtype):
    if dtype not in device.dtypes:
        pytest.skip(f"{device!r} does not support {dtype}")


def tol(dtype, scale=1.0):
    return (
        dict(rtol=1e-5 * scale, atol=1e-6 * scale)
        if dtype == "float32"
        else dict(rtol=1e-12, atol=1e-12)
    )


def check(got, expected, dtype, scale=1.0):
    """``got`` is an NDArray of ``dtype`` equal to the NumPy array ``expected`` (NaN == NaN)."""
    assert isinstance(got, nd.NDArray), type(got)
    assert got.dtype == dtype
    expected = np.asarray(expected)
    assert got.shape == expected.shape
    out = got.numpy()
    assert isinstance(out, np.ndarray) and out.dtype == dtype and out.shape == expected.shape
    np.testing.assert_allclose(out, expected.astype(dtype), equal_nan=True, **tol(dtype, scale))


def keep_dims(idxs):
    """The course's int-keeps-the-axis indexing in NumPy terms."""
    out = []
    for i in idxs if isinstance(idxs, tuple) else (idxs,):
        if isinstance(i, (int, np.integer)):
            out.append(slice(i, i + 1) if i != -1 else slice(-1, None))
        else:
            out.append(i)
    return tuple(out)


def apply(x, ops):
    """Apply view operations to an NDArray or (the same ones) to a NumPy array."""
    is_nd = isinstance(x, nd.NDArray)
    for op, arg in ops:
        if op == "permute":
            x = x.permute(arg) if is_nd else x.transpose(arg)
        elif op == "broadcast":
            x = x.broadcast_to(arg) if is_nd else np.broadcast_to(x, arg)
        else:
            x = x[arg] if is_nd else x[keep_dims(arg)]
    return x


S_ = slice
ALL = slice(None)

# name: (shape of the compact base, view operations)
LAYOUTS = {
    "compact": ((3, 4), []),
    "permuted": ((4, 3), [("permute", (1, 0))]),
    "broadcast_rows": ((1, 4), [("broadcast", (3, 4))]),
    "broadcast_cols": ((3, 1), [("broadcast", (3, 4))]),
    "broadcast_new_axis": ((4,), [("broadcast", (3, 4))]),
    "stepped": ((6, 9), [("getitem", (S_(None, None, 2), S_(1, None, 2)))]),
    "negative_steps": ((3, 9), [("getitem", (S_(None, None, -1), S_(-2, None, -2)))]),
    "offset": ((5, 6), [("getitem", (S_(1, 4), S_(2, 6)))]),
    "permuted_negative": ((8, 3), [("getitem", (S_(None, None, -2), ALL)), ("permute", (1, 0))]),
    "int_index": ((3, 2, 4), [("getitem", (ALL, -1, ALL))]),
    "size_one_axes": ((1, 4, 1), []),
    "empty": ((3, 4), [("getitem", (ALL, S_(2, 2)))]),
    "empty_leading": ((0, 4), []),
    "zero_d": ((), []),
}
NONCOMPACT = [
    "permuted",
    "broadcast_rows",
    "broadcast_cols",
    "broadcast_new_axis",
    "stepped",
    "negative_steps",
    "offset",
    "permuted_negative",
    "int_index",
    "empty",
]


def make(device, dtype, base_shape, ops=(), values=None, gen=np.random.randn):
    base_np = np.asarray(gen(*base_shape) if values is None else values).astype(dtype)
    base = nd.array(base_np, dtype=dtype, device=device)
    return apply(base, ops), apply(base_np, ops), base


def layout(name, device, dtype, gen=np.random.randn):
    shape, ops = LAYOUTS[name]
    view, view_np, _ = make(device, dtype, shape, ops, gen=gen)
    return view, view_np


def positive(*shape):
    return np.random.uniform(0.5, 2.0, size=shape)


def small_ints(*shape):
    return np.random.randint(-3, 4, size=shape).astype(np.float64)


def with_zeros(*shape):
    x = np.random.randn(*shape)
    return np.where(np.abs(x) < 0.4, 0.0, x)


# --- construction, properties, conversion ----------------------------------------------
@pytest.mark.parametrize("shape", [(), (1,), (5,), (2, 3), (2, 1, 3), (0,), (3, 0, 2)])
def test_array_properties(device, dtype, shape):
    need(device, dtype)
    x = np.asarray(np.random.randn(*shape))
    a = nd.array(x, dtype=dtype, device=device)
    assert a.device == device and a.dtype == dtype
    assert a.shape == shape and a.ndim == len(shape) and a.size == int(np.prod(shape))
    assert a.strides == tuple(s // x.itemsize for s in x.strides) or 0 in shape
    assert a.strides == nd.NDArray.compact_strides(shape)
    assert a.is_compact()
    check(a, x, dtype)


def test_numpy_returns_a_copy(device, dtype):
    need(device, dtype)
    a = nd.array(np.ones((2, 3)), dtype=dtype, device=device)
    out = a.numpy()
    out[0, 0] = 7.0
    check(a, np.ones((2, 3)), dtype)


def test_ndarray_from_numpy_keeps_float_dtype(device):
    a32 = nd.NDArray(np.arange(3, dtype=np.float32), device=device)
    assert a32.dtype == "float32" and a32.device == device
    a64 = nd.NDArray(np.arange(3, dtype=np.float64), device=device)
    assert a64.dtype == ("float64" if "float64" in device.dtypes else "float32")
    assert nd.NDArray([1, 2, 3], device=device).dtype == "float32"
    assert nd.NDArray(np.arange(3), device=device).dtype == "float32"
    # nd.array defaults to float32 like the course
    assert nd.array(np.arange(3, dtype=np.float64), device=device).dtype == "float32"


@pytest.mark.parametrize("name", ["compact", "negative_steps", "broadcast_cols", "zero_d"])
def test_ndarray_from_ndarray_copies(device, dtype, name):
    need(device, dtype)
    view, view_np = layout(name, device, dtype)
    copy = nd.NDArray(view)
    assert copy.device == device and copy.dtype == dtype and copy.is_compact()
    assert copy._handle is not view._handle
    check(copy, view_np, dtype)
    copy.fill(5.0)
    check(view, view_np, dtype)


@pytest.mark.parametrize("target", nd.all_devices() + [OTHER_DEVICE], ids=lambda d: d.name)
def test_ndarray_from_ndarray_to_device(device, dtype, target):
    need(device, dtype)
    need(target, dtype)
    view, view_np = layout("negative_steps", device, dtype)
    moved = nd.NDArray(view, device=target)
    assert moved.device == target and moved.dtype == dtype
    check(moved, view_np, dtype)


@pytest.mark.parametrize("target", nd.all_devices() + [OTHER_DEVICE], ids=lambda d: d.name)
@pytest.mark.parametrize("name", ["compact", "permuted_negative", "empty", "zero_d"])
def test_to_device(device, dtype, target, name):
    need(device, dtype)
    need(target, dtype)
    view, view_np = layout(name, device, dtype)
    moved = view.to(target)
    assert moved.device == target and moved.dtype == dtype
    check(moved, view_np, dtype)
    back = moved.to(device)
    assert back.device == device
    check(back, view_np, dtype)


def test_array_protocol(device, dtype):
    need(device, dtype)
    view, view_np = layout("permuted_negative", device, dtype)
    np.testing.assert_array_equal(np.asarray(view), view_np)
    assert np.array(view, dtype=np.float64).dtype == np.float64
    np.testing.assert_array_equal(np.array(view, dtype=np.float64), view_np.astype(np.float64))


def test_numpy_scalar_on_the_left_stays_ndarray(device, dtype):
    need(device, dtype)
    a, x = layout("compact", device, dtype)
    for got, expected in [
        (np.float32(2.0) * a, 2.0 * x),
        (np.float64(2.0) - a, 2.0 - x),
        (np.float32(3.0) + a, 3.0 + x),
    ]:
        assert isinstance(got, nd.NDArray) and got.device == device
        check(got, expected, dtype)


@pytest.mark.parametrize("target", ["float32", "float64"])
def test_astype(device, dtype, target):
    need(device, dtype)
    need(device, target)
    view, view_np = layout("stepped", device, dtype)
    out = view.astype(target)
    assert out.dtype == target and out.device == device
    check(out, view_np.astype(target), target)


def test_make_and_compact_strides(device, dtype):
    need(device, dtype)
    a = nd.NDArray.make((2, 3, 4), device=device, dtype=dtype)
    assert a.shape == (2, 3, 4) and a.strides == (12, 4, 1) and a.device == device
    assert a.dtype == dtype and a._handle.size == 24
    assert nd.NDArray.compact_strides((2, 3, 4)) == (12, 4, 1)
    # make over an existing handle is a view: it reads the buffer through the given layout
    base = nd.array(np.arange(12), dtype=dtype, device=device)
    v = nd.NDArray.make((3, 2), strides=(1, 4), device=device, handle=base._handle, offset=2)
    check(v, np.arange(12)[2:][np.arange(3)[:, None] + 4 * np.arange(2)[None, :]], dtype)


@pytest.mark.parametrize("value", [0.0, -1.5, 3])
def test_fill(device, dtype, value):
    need(device, dtype)
    a = nd.array(np.random.randn(3, 5), dtype=dtype, device=device)
    a.fill(value)
    check(a, np.full((3, 5), value), dtype)


# --- views: no copies -------------------------------------------------------------------
def same_buffer(view, base):
    return view._handle is base._handle and view._handle.ptr() == base._handle.ptr()


def test_views_share_the_buffer(device, dtype):
    need(device, dtype)
    x = np.arange(24.0).reshape(2, 3, 4)
    a = nd.array(x, dtype=dtype, device=device)
    views = {
        "reshape": a.reshape((6, 4)),
        "reshape_of_slice": a[1].reshape((3, 4)),
        "permute": a.permute((2, 0, 1)),
        "broadcast_to": a[:, :1, :].broadcast_to((2, 5, 4)),
        "getitem": a[1, ::-1, 1::2],
        "as_strided": a.as_strided((3, 3), (1, 1)),
        "flat": a.flat,
    }
    for name, view in views.items():
        assert same_buffer(view, a), name
    ptr = a._handle.ptr()
    a[1, 2, 3] = -5.0  # writes through; views see it
    x[1, 2, 3] = -5.0
    assert a._handle.ptr() == ptr
    check(views["reshape"], x.reshape(6, 4), dtype)
    check(views["getitem"], x[1:2, ::-1, 1::2], dtype)
    check(views["permute"], x.transpose(2, 0, 1), dtype)
    check(views["as_strided"], np.lib.stride_tricks.as_strided(x, (3, 3), (8, 8)), dtype)


def test_compact_of_compact_is_self(device, dtype):
    need(device, dtype)
    a, _ = layout("compact", device, dtype)
    assert a.is_compact() and a.compact() is a


@pytest.mark.parametrize("name", NONCOMPACT)
def test_compact_copies_views(device, dtype, name):
    need(device, dtype)
    view, view_np = layout(name, device, dtype)
    assert not view.is_compact()
    c = view.compact()
    assert c.is_compact() and c._handle is not view._handle
    assert c.strides == nd.NDArray.compact_strides(view.shape)
    check(c, view_np, dtype)
    check(view, view_np, dtype)


@pytest.mark.parametrize(
    "new_shape", [(6, 4), (24,), (-1,), (2, -1), (-1, 3, 2), (4, 1, 6), (1, 24, 1), (2, 3, 4)]
)
def test_reshape(device, dtype, new_shape):
    need(device, dtype)
    x = np.random.randn(2, 3, 4)
    a = nd.array(x, dtype=dtype, device=device)
    expected = x.reshape(new_shape)
    out = a.reshape(new_shape)
    assert same_buffer(out, a)
    assert out.strides == tuple(s // x.itemsize for s in expected.strides)
    check(out, expected, dtype)
    check(nd.reshape(a, new_shape), expected, dtype)


@pytest.mark.parametrize(
    "name", ["permuted", "negative_steps", "broadcast_cols", "offset", "empty"]
)
def test_reshape_of_views(device, dtype, name):
    need(device, dtype)
    view, view_np = layout(name, device, dtype)
    check(view.reshape((-1,)), view_np.reshape(-1), dtype)
    check(view.reshape((view.size, 1)), view_np.reshape(view.size, 1), dtype)


def test_reshape_size_zero_and_zero_d(device, dtype):
    need(device, dtype)
    a = nd.array(np.zeros((3, 0)), dtype=dtype, device=device)
    check(a.reshape((0, 5)), np.zeros((0, 5)), dtype)
    check(a.reshape((-1,)), np.zeros((0,)), dtype)
    s = nd.array(np.float64(2.5), dtype=dtype, device=device)
    check(s.reshape((1, 1)), np.full((1, 1), 2.5), dtype)
    check(s.reshape(()), np.float64(2.5), dtype)


@pytest.mark.parametrize("axes", [(0, 1, 2), (2, 0, 1), (1, 0, 2), (2, 1, 0), (-1, 0, -2)])
@pytest.mark.parametrize("name", ["compact", "negative"])
def test_permute(device, dtype, axes, name):
    need(device, dtype)
    x = np.random.randn(2, 3, 4)
    a = nd.array(x, dtype=dtype, device=device)
    if name == "negative":
        a, x = a[:, ::-1, ::-2], x[:, ::-1, ::-2]
    out = a.permute(axes)
    assert out._handle is a._handle
    expected = x.transpose(axes)
    if name == "compact":
        assert out.strides == tuple(s // x.itemsize for s in expected.strides)
    check(out, expected, dtype)


@pytest.mark.parametrize(
    "shape, new_shape",
    [
        ((3, 1), (3, 4)),
        ((1, 4), (3, 4)),
        ((4,), (2, 3, 4)),
        ((1,), (5,)),
        ((2, 1, 3), (4, 2, 5, 3)),
        ((), (2, 2)),
        ((1, 3), (0, 3)),
        ((3,), (3,)),
    ],
)
def test_broadcast_to(device, dtype, shape, new_shape):
    need(device, dtype)
    x = np.asarray(np.random.randn(*shape))
    a = nd.array(x, dtype=dtype, device=device)
    out = a.broadcast_to(new_shape)
    assert out._handle is a._handle and out.shape == new_shape
    lead = len(new_shape) - len(shape)
    for i, d in enumerate(new_shape):
        if i < lead or shape[i - lead] != d:
            assert out.strides[i] == 0
    check(out, np.broadcast_to(x, new_shape), dtype)
    check(nd.broadcast_to(a, new_shape), np.broadcast_to(x, new_shape), dtype)


def test_broadcast_of_a_view(device, dtype):
    need(device, dtype)
    a, x = layout("negative_steps", device, dtype)
    col = a[:, 1]
    check(col.broadcast_to((2, 3, 5)), np.broadcast_to(x[:, 1:2], (2, 3, 5)), dtype)


def test_as_strided(device, dtype):
    need(device, dtype)
    x = np.arange(10.0)
    a = nd.array(x, dtype=dtype, device=device)
    check(a.as_strided((4, 3), (2, 1)), np.lib.stride_tricks.as_strided(x, (4, 3), (16, 8)), dtype)
    # keeps the offset of the view it starts from
    check(a[3:].as_strided((2, 3), (3, 1)), x[3:9].reshape(2, 3), dtype)
    check(a[::-1].as_strided((2, 2), (-2, -1)), np.array([[9, 8], [7, 6]]) - 0.0, dtype)


GETITEM_CASES = [
    1,
    -1,
    (0, 2),
    (-2, -3),
    (1, S_(None)),
    (S_(1, 3), S_(None, None, 2)),
    (S_(None, None, -1), S_(None, None, -2)),
    (S_(-2, None), S_(4, 0, -3)),
    (S_(3, 3),),
    (S_(1, None), -4),
    (S_(-100, 100), S_(None, None, 3)),
    (S_(2, 0), S_(None)),
]


@pytest.mark.parametrize("idxs", GETITEM_CASES, ids=[str(i) for i in range(len(GETITEM_CASES))])
@pytest.mark.parametrize("name", ["compact", "permuted_negative", "broadcast_cols"])
def test_getitem(device, dtype, name, idxs):
    need(device, dtype)
    view, view_np = layout(name, device, dtype)
    out = view[idxs]
    assert out._handle is view._handle
    check(out, view_np[keep_dims(idxs)], dtype)


def test_getitem_3d_keeps_int_axes(device, dtype):
    need(device, dtype)
    x = np.random.randn(3, 4, 5)
    a = nd.array(x, dtype=dtype, device=device)
    assert a[1].shape == (1, 4, 5)
    assert a[1, 2].shape == (1, 1, 5)
    assert a[-1, ::-1, 2].shape == (1, 4, 1)
    check(a[-1, ::-1, 2], x[-1:, ::-1, 2:3], dtype)
    check(a[np.int64(2), :, S_(1, None, 2)], x[2:3, :, 1::2], dtype)
    check(a[1][0, 3][0, 0, 2], x[1:2, 3:4, 2:3], dtype)


def test_process_slice(device):
    # ``dim`` is the axis index, as the course's ``__getitem__`` passes it
    a = nd.array(np.zeros((5, 3)), device=device)
    assert a.process_slice(S_(None, None, None), 0) == S_(0, 5, 1)
    assert a.process_slice(S_(None, None, None), 1) == S_(0, 3, 1)
    assert a.process_slice(S_(-2, None, None), 0) == S_(3, 5, 1)
    assert a.process_slice(S_(1, 100, 2), 0) == S_(1, 5, 2)
    assert a.process_slice(S_(None, None, -1), 1) == S_(2, None, -1)


@pytest.mark.parametrize("sl", [S_(None, None, -1), S_(3, None, -2), S_(-4, -1), S_(2, 2)])
def test_process_slice_selects_what_the_slice_selects(sl, device):
    x = np.arange(5.0)
    a = nd.array(x, device=device)
    np.testing.assert_array_equal(x[a.process_slice(sl, 0)], x[sl])


# --- setitem ----------------------------------------------------------------------------
SETITEM_CASES = [
    (1, S_(None)),
    (S_(None, None, -1), S_(1, None, 2)),
    (S_(1, 3), S_(-1, 0, -2)),
    (-1, -1),
    (S_(None), S_(2, 2)),
]


@pytest.mark.parametrize("idxs", SETITEM_CASES, ids=[str(i) for i in range(len(SETITEM_CASES))])
@pytest.mark.parametrize("value_kind", ["compact", "permuted", "broadcast", "scalar"])
@pytest.mark.parametrize("target", ["compact", "offset_view"])
def test_setitem(device, dtype, idxs, value_kind, target):
    need(device, dtype)
    base_np = np.random.randn(5, 6)
    base = nd.array(base_np, dtype=dtype, device=device)
    base_np = base_np.astype(dtype)
    ptr = base._handle.ptr()
    if target == "compact":
        a, x = base, base_np
    else:  # write through a reversed, offset view of the base
        a, x = base[S_(4, 0, -1), S_(None)], base_np[4:0:-1, :]
    shape = x[keep_dims(idxs)].shape
    if value_kind == "scalar":
        value, value_np = 2.5, 2.5
    else:
        value_np = np.random.randn(*shape)
        if value_kind == "permuted":
            value = nd.array(value_np.T.copy(), dtype=dtype, device=device).permute((1, 0))
        elif value_kind == "broadcast":
            value_np = np.broadcast_to(value_np[:1], shape)
            value = nd.array(value_np[:1], dtype=dtype, device=device).broadcast_to(shape)
        else:
            value = nd.array(value_np, dtype=dtype, device=device)
    a[idxs] = value
    x[keep_dims(idxs)] = value_np
    assert base._handle.ptr() == ptr
    check(base, base_np, dtype)  # also: nothing outside the view changed
    check(a, x, dtype)


def test_setitem_through_permuted_view(device, dtype):
    need(device, dtype)
    x = np.random.randn(3, 4)
    a = nd.array(x, dtype=dtype, device=device)
    t = a.permute((1, 0))
    t[0:2, 1] = 5.0
    x.T[0:2, 1:2] = 5.0
    check(a, x, dtype)


def test_setitem_from_the_same_buffer(device, dtype):
    need(device, dtype)
    x = np.random.randn(4, 5).astype(dtype)
    a = nd.array(x, dtype=dtype, device=device)
    a[:, ::-1] = a
    expected = x[:, ::-1].copy()
    check(a, expected, dtype)
    a[1:, :] = a[:-1, :]
    expected[1:, :] = expected[:-1, :].copy()
    check(a, expected, dtype)


def test_setitem_converts_dtype(device):
    need(device, "float64")
    a = nd.array(np.zeros((2, 3)), dtype="float32", device=device)
    a[0, :] = nd.array(np.full((1, 3), 1.5), dtype="float64", device=device)
    check(a, [[1.5] * 3, [0.0] * 3], "float32")


def test_setitem_size_mismatch(device):
    a = nd.array(np.zeros((3, 4)), device=device)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(1, 4\)"):
        a[0, :] = nd.array(np.zeros((2, 3)), device=device)


def test_flat_writes_into_storage(device, dtype):
    need(device, dtype)
    x = np.random.randn(3, 4)
    a = nd.array(x, dtype=dtype, device=device)
    x = x.astype(dtype)
    ptr = a._handle.ptr()
    assert a.flat.shape == (12,)
    a.flat[5] = a.flat[5] + 1
    x.reshape(-1)[5] += 1
    flat = a.flat
    flat[-1] += 0.5  # the numerical-gradient helpers' idiom
    x.reshape(-1)[-1] += 0.5
    assert a._handle.ptr() == ptr
    check(a, x, dtype)


# --- elementwise ------------------------------------------------------------------------
BINARY = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "truediv": operator.truediv,
    "pow": operator.pow,
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}
COMPARISONS = {"eq", "ne", "lt", "le", "gt", "ge"}


def binary_inputs(op):
    """Value generators (left, right) that keep each op finite and comparisons non-trivial."""
    if op in COMPARISONS:
        return small_ints, small_ints
    if op == "pow":
        return positive, np.random.randn
    if op == "truediv":
        return np.random.randn, positive
    return np.random.randn, np.random.randn


def np_binary(op, x, y):
    out = BINARY[op](x, y)
    return np.asarray(out).astype(np.float64) if op in COMPARISONS else out


# Every non-compact layout, and compact ones of ordinary and edge shapes.
LAYOUTS_FOR_EWISE = ["compact", *NONCOMPACT, "size_one_axes", "zero_d"]


def dense_result(out, a):
    """An elementwise result owns a fresh buffer that it covers exactly: packed row-major,
    or with the strides of a dense permuted operand (its memory format is kept)."""
    if out.is_compact():
        return True
    return out._dense() and out.strides == a.strides and out._handle.size == out.size


def test_ewise_keeps_permuted_layout(device, dtype):
    # A channels-last buffer seen as NCHW: elementwise results keep that memory layout,
    # so no operand is copied and the result permuted back is compact.
    need(device, dtype)
    x_np = np.random.randn(2, 3, 4, 5).astype(dtype)
    y_np = np.random.randn(2, 3, 4, 5).astype(dtype)
    x = nd.array(x_np.transpose(0, 2, 3, 1), dtype=dtype, device=device).permute((0, 3, 1, 2))
    y = nd.array(y_np.transpose(0, 2, 3, 1), dtype=dtype, device=device).permute((0, 3, 1, 2))
    for out, expected in [
        (x + y, x_np + y_np),
        (x * 2.0, x_np * 2.0),
        (x.relu(), np.maximum(x_np, 0)),
        (x > 0, (x_np > 0).astype(dtype)),
    ]:
        assert out.strides == x.strides and not out.is_compact() and dense_result(out, x)
        assert out.permute((0, 2, 3, 1)).is_compact()
        check(out, expected, dtype)
    # Different layouts on the two sides: a packed result.
    out = x + nd.array(y_np, dtype=dtype, device=device)
    assert out.is_compact()
    check(out, x_np + y_np, dtype)


@pytest.mark.parametrize("name", LAYOUTS_FOR_EWISE)
@pytest.mark.parametrize("op", list(BINARY) + ["maximum"])
def test_ewise_binary(device, dtype, op, name):
    need(device, dtype)
    gen_a, gen_b = binary_inputs(op)
    a, x = layout(name, device, dtype, gen=gen_a)
    b_np = np.asarray(gen_b(*x.shape)).astype(dtype)
    b = nd.array(b_np, dtype=dtype, device=device)
    for left, right, lx, rx in [(a, b, x, b_np), (b, a, b_np, x)]:
        if op == "pow" and left is b:
            continue
        if op == "maximum":
            out, expected = left.maximum(right), np.maximum(lx, rx)
        else:
            out, expected = BINARY[op](left, right), np_binary(op, lx, rx)
        assert dense_result(out, left) and out.device == device
        check(out, expected, dtype)


@pytest.mark.parametrize("op", ["add", "mul", "sub", "truediv", "ge"])
def test_ewise_two_views(device, dtype, op):
    need(device, dtype)
    a, x = layout("permuted_negative", device, dtype)
    b, y = layout("stepped", device, dtype, gen=positive)
    check(BINARY[op](a, b), np_binary(op, x, y), dtype)


@pytest.mark.parametrize(
    "sa, sb",
    [((3, 1), (1, 4)), ((4,), (3, 4)), ((2, 1, 4), (3, 1)), ((), (2, 3)), ((0, 1), (1, 3))],
)
def test_ewise_broadcasting(device, dtype, sa, sb):
    need(device, dtype)
    x, y = np.asarray(np.random.randn(*sa)), np.asarray(np.random.randn(*sb))
    a = nd.array(x, dtype=dtype, device=device)
    b = nd.array(y, dtype=dtype, device=device)
    check(a + b, x + y, dtype)
    check(b * a, y * x, dtype)
    check(a.maximum(b), np.maximum(x, y), dtype)


SCALARS = [2.5, -1, 0, np.float32(1.5)]


@pytest.mark.parametrize("scalar", SCALARS, ids=["2.5", "-1", "0", "np_float32"])
@pytest.mark.parametrize("op", list(BINARY) + ["maximum"])
@pytest.mark.parametrize(
    "name", ["compact", "permuted_negative", "broadcast_cols", "empty", "zero_d"]
)
def test_scalar_binary(device, dtype, op, scalar, name):
    need(device, dtype)
    gen = small_ints if op in COMPARISONS else positive if op == "pow" else np.random.randn
    a, x = layout(name, device, dtype, gen=gen)
    s = float(scalar)
    if op == "maximum":
        check(a.maximum(scalar), np.maximum(x, s), dtype)
        check(nd.maximum(a, scalar), np.maximum(x, s), dtype)
        return
    if op == "truediv" and s == 0:
        s = scalar = 4.0
    check(BINARY[op](a, scalar), np_binary(op, x, s), dtype)
    # reflected: scalar on the left
    if op == "truediv":
        a, x = layout(name, device, dtype, gen=positive)
    if op == "pow":
        if s <= 0:
            return
        a, x = layout(name, device, dtype)
    check(BINARY[op](scalar, a), np_binary(op, s, x), dtype)


def test_integer_power(device, dtype):
    need(device, dtype)
    a, x = layout("negative_steps", device, dtype)
    check(a**2, x**2, dtype)
    check(a**3, x**3, dtype, scale=10)
    check(a**0, np.ones_like(x), dtype)


def test_comparison_results_are_zero_one(device, dtype):
    need(device, dtype)
    a = nd.array(np.array([1.0, 2.0, 3.0]), dtype=dtype, device=device)
    b = nd.array(np.array([3.0, 2.0, 1.0]), dtype=dtype, device=device)
    check(a == b, [0.0, 1.0, 0.0], dtype)
    check(a != b, [1.0, 0.0, 1.0], dtype)
    check(a < b, [1.0, 0.0, 0.0], dtype)
    check(a <= b, [1.0, 1.0, 0.0], dtype)
    check(a > b, [0.0, 0.0, 1.0], dtype)
    check(a >= b, [0.0, 1.0, 1.0], dtype)
    check(2.0 == a, [0.0, 1.0, 0.0], dtype)
    check(2.0 < a, [0.0, 0.0, 1.0], dtype)


UNARY = {
    "neg": (operator.neg, np.negative, np.random.randn),
    "log": (lambda a: a.log(), np.log, positive),
    "exp": (lambda a: a.exp(), np.exp, np.random.randn),
    "tanh": (lambda a: a.tanh(), np.tanh, np.random.randn),
    "sqrt": (lambda a: a.sqrt(), np.sqrt, positive),
    "abs": (lambda a: a.abs(), np.abs, with_zeros),
    "sign": (lambda a: a.sign(), np.sign, with_zeros),
    "sigmoid": (lambda a: a.sigmoid(), lambda x: 1 / (1 + np.exp(-x)), np.random.randn),
    "relu": (lambda a: a.relu(), lambda x: np.maximum(x, 0), with_zeros),
    "nd.log": (nd.log, np.log, positive),
    "nd.exp": (nd.exp, np.exp, np.random.randn),
    "nd.tanh": (nd.tanh, np.tanh, np.random.randn),
}


@pytest.mark.parametrize("name", LAYOUTS_FOR_EWISE)
@pytest.mark.parametrize("op", list(UNARY))
def test_unary(device, dtype, op, name):
    need(device, dtype)
    fn, np_fn, gen = UNARY[op]
    a, x = layout(name, device, dtype, gen=gen)
    out = fn(a)
    assert dense_result(out, a) and out.device == device
    check(out, np_fn(x), dtype)


def test_unary_extremes(device, dtype):
    need(device, dtype)
    x = np.array([-1000.0, -30.0, -1.0, 0.0, 1.0, 30.0, 1000.0])
    a = nd.array(x, dtype=dtype, device=device)
    with np.errstate(over="ignore"):
        check(a.sigmoid(), 1 / (1 + np.exp(-x.astype(dtype))), dtype)
        check(a.tanh(), np.tanh(x), dtype)
        check(a.exp(), np.exp(x.astype(dtype)), dtype)


def test_nan_propagates(device, dtype):
    need(device, dtype)
    x = np.array([-4.0, -1.0, 0.0, 4.0])
    a = nd.array(x, dtype=dtype, device=device)
    with np.errstate(invalid="ignore", divide="ignore"):
        check(a**0.5, x**0.5, dtype)
        check(a.sqrt(), np.sqrt(x), dtype)
        check(a.log(), np.log(x), dtype)
        check(a / 0.0, x / 0.0, dtype)
    nan = a**0.5
    with np.errstate(invalid="ignore"):
        root = np.sqrt(x)
    check(nan + 1.0, root + 1.0, dtype)
    check(nan * 0.0, root * 0.0, dtype)
    check(nan == nan, root == root, dtype)


def test_nan_propagates_through_maximum_and_max(device, dtype):
    need(device, dtype)
    x = np.array([[np.nan, 1.0, 2.0], [3.0, np.nan, -1.0], [0.0, 1.0, 2.0]])
    a = nd.array(x, dtype=dtype, device=device)
    b = nd.array(np.zeros((3, 3)), dtype=dtype, device=device)
    check(a.maximum(b), np.maximum(x, 0.0), dtype)
    check(b.maximum(a), np.maximum(0.0, x), dtype)
    check(a.maximum(0.5), np.maximum(x, 0.5), dtype)
    check(a.max(axis=1), x.max(axis=1), dtype)
    check(a.sum(axis=0), x.sum(axis=0), dtype)


def test_results_are_fresh(device, dtype):
    need(device, dtype)
    a, x = layout("compact", device, dtype)
    out = a + 0.0
    assert out._handle is not a._handle
    out.fill(9.0)
    check(a, x, dtype)


# --- large arrays: vectorized bodies, remainders and multithreaded paths of the kernels -----
@pytest.fixture
def large(device, dtype):
    """A (301, 257) array (~77k elements, odd sizes) and a reversed, stepped, permuted view."""
    need(device, dtype)
    x = np.random.randn(301, 257).astype(dtype)
    a = nd.array(x, dtype=dtype, device=device)
    return a, x, a.permute((1, 0))[::-1, ::2], x.T[::-1, ::2]


def test_large_compact_and_setitem(large, dtype):
    a, x, v, vx = large
    check(v.compact(), vx, dtype)
    check(v.reshape((-1,)), vx.reshape(-1), dtype)
    a[::-1, 1::3] = nd.array(np.ones((301, 86)), dtype=dtype, device=a.device) * 2.0
    x[::-1, 1::3] = 2.0
    check(a, x, dtype)
    a[:, 2:] = -1.0
    x[:, 2:] = -1.0
    check(a, x, dtype)


def test_large_elementwise(large, dtype):
    a, x, v, vx = large
    b, y = v * 0.5 + 1.0, vx * 0.5 + 1.0
    check(b, y, dtype)
    check(v + b, vx + y, dtype)
    check(v * b, vx * y, dtype)
    check(v / b, vx / y, dtype, scale=10)
    check(v.maximum(b), np.maximum(vx, y), dtype)
    check(v >= b, (vx >= y).astype(dtype), dtype)
    check(v.maximum(0.25), np.maximum(vx, 0.25), dtype)
    check(v.exp(), np.exp(vx), dtype)
    check(v.tanh(), np.tanh(vx), dtype)
    check(v.sigmoid(), 1 / (1 + np.exp(-vx)), dtype)
    check(v.relu(), np.maximum(vx, 0), dtype)
    check(v.abs().log(), np.log(np.abs(vx)), dtype, scale=10)
    check(v**2, vx**2, dtype)


@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1)], ids=str)
def test_large_reductions(large, dtype, axis):
    a, x, v, vx = large
    check(a.sum(axis=axis), x.sum(axis=axis), dtype, scale=100)
    check(a.max(axis=axis), x.max(axis=axis), dtype)
    check(v.sum(axis=axis), vx.sum(axis=axis), dtype, scale=100)
    check(v.max(axis=axis, keepdims=True), vx.max(axis=axis, keepdims=True), dtype)


def test_large_max_propagates_nan(large, dtype):
    a, x, _, _ = large
    for i, j in [(0, 3), (150, 200), (300, 256)]:  # inside the vector loop and in the tail
        a[i, j] = float("nan")
        x[i, j] = np.nan
    check(a.max(), x.max(), dtype)
    check(a.max(axis=1), x.max(axis=1), dtype)
    check(a.max(axis=0), x.max(axis=0), dtype)
    check(a.maximum(0.0), np.maximum(x, 0.0), dtype)


# --- reductions -------------------------------------------------------------------------
REDUCE_LAYOUTS = {
    "compact": ((2, 3, 4), []),
    "permuted": ((4, 2, 3), [("permute", (1, 2, 0))]),
    "negative": (
        (2, 6, 4),
        [("getitem", (S_(None, None, -1), S_(None, None, 2), S_(None, None, -1)))],
    ),
    "broadcast": ((2, 1, 4), [("broadcast", (2, 3, 4))]),
}
AXES = [None, 0, 1, -1, (0, 2), (-1, -3), (0, 1, 2), (1,), ()]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=[str(a) for a in AXES])
@pytest.mark.parametrize("name", list(REDUCE_LAYOUTS))
@pytest.mark.parametrize("op", ["sum", "max"])
def test_reduce(device, dtype, op, name, axis, keepdims):
    need(device, dtype)
    shape, ops = REDUCE_LAYOUTS[name]
    a, x, _ = make(device, dtype, shape, ops)
    out = getattr(a, op)(axis=axis, keepdims=keepdims)
    expected = getattr(np, op)(x, axis=axis, keepdims=keepdims)
    assert out.device == device
    check(out, expected, dtype)
    if op == "sum":
        check(nd.sum(a, axis=axis, keepdims=keepdims), expected, dtype)


def test_reduce_defaults(device, dtype):
    need(device, dtype)
    a, x = layout("stepped", device, dtype)
    assert a.sum().shape == () and a.max().shape == ()
    check(a.sum(), x.sum(), dtype)
    check(a.max(), x.max(), dtype)
    check(a.sum(1, True), x.sum(1, keepdims=True), dtype)


def test_reduce_size_one_and_zero_d(device, dtype):
    need(device, dtype)
    a, x = layout("size_one_axes", device, dtype)
    check(a.sum(axis=(0, 2)), x.sum(axis=(0, 2)), dtype)
    check(a.max(axis=0, keepdims=True), x.max(axis=0, keepdims=True), dtype)
    s, y = layout("zero_d", device, dtype)
    check(s.sum(), y.sum(), dtype)
    check(s.max(), y.max(), dtype)


def test_reduce_long_axis(device, dtype):
    need(device, dtype)
    x = np.random.randn(3, 2000)
    a = nd.array(x, dtype=dtype, device=device)
    check(a.sum(axis=1), x.astype(dtype).sum(axis=1), dtype, scale=20)
    check(a.max(axis=1), x.max(axis=1), dtype)
    check(a.permute((1, 0)).sum(axis=0), x.astype(dtype).sum(axis=1), dtype, scale=20)


def test_reduce_over_empty_axes(device, dtype):
    need(device, dtype)
    a = nd.array(np.zeros((3, 0, 2)), dtype=dtype, device=device)
    check(a.sum(axis=1), np.zeros((3, 2)), dtype)
    check(a.sum(), np.float64(0.0), dtype)
    check(a.max(axis=2), np.zeros((3, 0)), dtype)
    with pytest.raises(ValueError, match=r"max.*\(3, 0, 2\)"):
        a.max(axis=1)


@pytest.mark.parametrize("axis", [3, -4, (0, 3)])
def test_reduce_bad_axis(device, axis):
    a = nd.array(np.zeros((2, 3, 4)), device=device)
    with pytest.raises(ValueError, match="axis"):
        a.sum(axis=axis)
    with pytest.raises(ValueError, match="axis"):
        a.max(axis=axis)


def test_reduce_repeated_axis(device):
    a = nd.array(np.zeros((2, 3)), device=device)
    with pytest.raises(ValueError, match="repeated axis"):
        a.sum(axis=(1, -1))


# --- matmul -----------------------------------------------------------------------------
MATMUL_SIZES = [
    (1, 1, 1),
    (1, 7, 33),
    (7, 1, 33),
    (33, 7, 1),
    (7, 33, 7),
    (33, 33, 33),
    (8, 16, 24),
    (64, 64, 64),
    (257, 7, 33),
    (7, 257, 33),
    (33, 7, 257),
    (257, 257, 257),
    (0, 3, 4),
    (3, 0, 4),
    (3, 4, 0),
]


@pytest.mark.parametrize("m, n, p", MATMUL_SIZES, ids=["x".join(map(str, s)) for s in MATMUL_SIZES])
def test_matmul(device, dtype, m, n, p):
    need(device, dtype)
    x, y = np.random.randn(m, n), np.random.randn(n, p)
    a = nd.array(x, dtype=dtype, device=device)
    b = nd.array(y, dtype=dtype, device=device)
    out = a @ b
    assert out.shape == (m, p) and out.is_compact() and out.device == device
    check(out, x.astype(dtype) @ y.astype(dtype), dtype, scale=max(1, n) ** 0.5 * 10)


@pytest.mark.parametrize("m, n, p", [(7, 33, 5), (64, 32, 48), (1, 9, 1)])
def test_matmul_of_views(device, dtype, m, n, p):
    need(device, dtype)
    x, y = np.random.randn(n, 2 * m), np.random.randn(p, n)
    a = nd.array(x, dtype=dtype, device=device).permute((1, 0))[::-2, :]
    b = nd.array(y, dtype=dtype, device=device).permute((1, 0))
    check(a @ b, x.T[::-2, :] @ y.T, dtype, scale=30)
    col = nd.array(np.random.randn(n, 1), dtype=dtype, device=device)
    check(
        a @ col.broadcast_to((n, 3)),
        x.T[::-2, :] @ np.broadcast_to(col.numpy(), (n, 3)),
        dtype,
        scale=30,
    )


BATCHED = [
    ((2, 3, 4, 5), (2, 3, 5, 6)),
    ((3, 4, 5), (5, 6)),
    ((4, 5), (3, 5, 6)),
    ((2, 1, 4, 5), (1, 3, 5, 6)),
    ((1, 4, 5), (3, 5, 2)),
    ((3, 1, 7), (3, 7, 1)),
    ((0, 2, 3), (3, 4)),
    ((5, 33, 7), (5, 7, 9)),
]


@pytest.mark.parametrize("sa, sb", BATCHED, ids=[f"{a}@{b}" for a, b in BATCHED])
def test_matmul_batched(device, dtype, sa, sb):
    need(device, dtype)
    x, y = np.random.randn(*sa), np.random.randn(*sb)
    a = nd.array(x, dtype=dtype, device=device)
    b = nd.array(y, dtype=dtype, device=device)
    check(a @ b, np.matmul(x, y), dtype, scale=10)


def test_matmul_batched_views(device, dtype):
    need(device, dtype)
    x, y = np.random.randn(5, 2, 3), np.random.randn(3, 4)
    a = nd.array(x, dtype=dtype, device=device).permute((1, 0, 2))[:, ::-2, :]
    b = nd.array(y, dtype=dtype, device=device).broadcast_to((2, 3, 4))
    check(a @ b, np.matmul(x.transpose(1, 0, 2)[:, ::-2, :], y), dtype, scale=10)


# --- flip, pad --------------------------------------------------------------------------
FLIP_AXES = [(0,), (1,), (2,), (0, 2), (0, 1, 2), (-1,), 1, -2, None, ()]


@pytest.mark.parametrize("axes", FLIP_AXES, ids=[str(a) for a in FLIP_AXES])
@pytest.mark.parametrize("name", ["compact", "negative", "broadcast"])
def test_flip(device, dtype, axes, name):
    need(device, dtype)
    shape, ops = REDUCE_LAYOUTS[name]
    a, x, _ = make(device, dtype, shape, ops)
    out = a.flip(axes)
    assert out.is_compact() and out._handle is not a._handle
    check(out, np.flip(x, axes), dtype)
    if axes is not None:
        check(nd.flip(a, axes), np.flip(x, axes), dtype)


def test_flip_empty(device, dtype):
    need(device, dtype)
    a = nd.array(np.zeros((2, 0, 3)), dtype=dtype, device=device)
    check(a.flip((1, 2)), np.zeros((2, 0, 3)), dtype)


PADS = [((0, 0), (0, 0)), ((1, 2), (0, 0)), ((0, 0), (3, 1)), ((2, 2), (2, 2)), ((0, 1), (1, 0))]


@pytest.mark.parametrize("axes", PADS, ids=[str(p) for p in PADS])
@pytest.mark.parametrize("name", ["compact", "negative_steps", "broadcast_cols", "empty"])
def test_pad(device, dtype, axes, name):
    need(device, dtype)
    a, x = layout(name, device, dtype)
    out = a.pad(axes)
    assert out.is_compact() and out._handle is not a._handle
    check(out, np.pad(x, axes), dtype)
    check(a, x, dtype)


def test_pad_4d(device, dtype):
    need(device, dtype)
    x = np.random.randn(2, 3, 3, 2)
    a = nd.array(x, dtype=dtype, device=device)
    axes = ((0, 0), (2, 2), (1, 2), (0, 0))
    check(a.pad(axes), np.pad(x, axes), dtype)


# --- repr, module functions, devices ----------------------------------------------------
def test_repr_and_str(device, dtype):
    need(device, dtype)
    a, x = layout("negative_steps", device, dtype)
    assert str(a) == str(x)
    r = repr(a)
    assert r.startswith("NDArray(") and f"device={device!r}" in r
    assert repr(x.round(3))[:6] in r


def test_module_functions(device, dtype):
    need(device, dtype)
    a, x = layout("permuted", device, dtype)
    b, y = layout("compact", device, dtype)
    check(nd.maximum(a, b), np.maximum(x, y), dtype)
    check(nd.broadcast_to(a[:, 0], (2, 3, 1)), np.broadcast_to(x[:, :1], (2, 3, 1)), dtype)
    check(nd.reshape(b, (2, 6)), y.reshape(2, 6), dtype)
    check(nd.sum(a), x.sum(), dtype)
    check(nd.sum(a, 1), x.sum(1), dtype)
    check(nd.sum(a, axis=0, keepdims=True), x.sum(0, keepdims=True), dtype)
    check(nd.flip(a, (0,)), x[::-1], dtype)
    e = nd.empty((2, 3), dtype=dtype, device=device)
    assert e.shape == (2, 3) and e.dtype == dtype and e.device == device and e.is_compact()
    check(nd.full((2, 3), 1.25, dtype=dtype, device=device), np.full((2, 3), 1.25), dtype)
    check(nd.full((0, 3), 1.25, dtype=dtype, device=device), np.zeros((0, 3)), dtype)


def test_module_defaults():
    assert nd.default_device() in nd.all_devices()
    assert nd.array([1.0, 2.0]).device == nd.default_device()
    e = nd.empty((2,))
    assert e.dtype == "float32" and e.device == nd.default_device()
    f = nd.full((2,), 3.0)
    assert f.dtype == "float32"
    check(f, [3.0, 3.0], "float32")


def test_device_factories(device, dtype):
    need(device, dtype)
    r = device.rand(3, 4, dtype=dtype)
    assert r.shape == (3, 4) and r.device == device and r.dtype == dtype
    assert 0.0 <= r.numpy().min() and r.numpy().max() < 1.0
    n = device.randn(500, dtype=dtype)
    assert n.shape == (500,) and n.device == device and n.dtype == dtype
    assert abs(float(n.numpy().mean())) < 0.3 and 0.7 < float(n.numpy().std()) < 1.3
    h = device.one_hot(4, nd.array([2, 0, 3], device=device).numpy().astype(int), dtype=dtype)
    check(h, np.eye(4)[[2, 0, 3]], dtype)
    assert h.device == device
    check(device.one_hot(3, 1, dtype=dtype), [0.0, 1.0, 0.0], dtype)
    e = device.empty((2, 5), dtype=dtype)
    assert e.shape == (2, 5) and e.device == device and e.dtype == dtype
    check(device.full((2, 2), -3.0, dtype=dtype), np.full((2, 2), -3.0), dtype)


def test_devices():
    for dev in nd.all_devices():
        assert dev.enabled() is True
    for factory, name in [(nd.cpu, "cpu"), (nd.cuda, "cuda"), (nd.cpu_numpy, "cpu_numpy")]:
        dev = factory()
        assert isinstance(dev.enabled(), bool)
        assert repr(dev) == f"{name}()"
        assert dev == factory() and hash(dev) == hash(factory())
        assert (dev in nd.all_devices()) == dev.enabled()
    assert nd.cpu() != nd.cpu_numpy() and nd.cpu() != nd.cuda()
    assert nd.cpu_numpy() == nd.BackendDevice("cpu_numpy", None)  # equality is by name
    assert nd.cpu_numpy() != OTHER_DEVICE
    assert nd.cpu_numpy() != "cpu_numpy"


def test_disabled_device_is_clear():
    disabled = [d for d in (nd.cpu(), nd.cuda()) if not d.enabled()]
    if not disabled:
        pytest.skip("every device is enabled")
    with pytest.raises(AttributeError, match="not available"):
        disabled[0].Array(3)


# --- bad input --------------------------------------------------------------------------
def test_reshape_errors(device):
    a = nd.array(np.zeros((2, 3)), device=device)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 2\)"):
        a.reshape((4, 2))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, -1\)"):
        a.reshape((4, -1))
    with pytest.raises(ValueError, match="only one axis may be -1"):
        a.reshape((-1, -1))
    with pytest.raises(ValueError, match=r"\(-2, -3\)"):
        a.reshape((-2, -3))


@pytest.mark.parametrize(
    "shape, new_shape", [((3,), (4,)), ((2, 3), (3, 3)), ((2, 3), (3,)), ((2, 1), (2, 3, 5))]
)
def test_broadcast_errors(device, shape, new_shape):
    a = nd.array(np.zeros(shape), device=device)
    with pytest.raises(
        ValueError, match=rf"cannot broadcast shape {re_shape(shape)} to {re_shape(new_shape)}"
    ):
        a.broadcast_to(new_shape)


def re_shape(shape):
    return str(tuple(shape)).replace("(", r"\(").replace(")", r"\)")


def test_ewise_shape_errors(device):
    a = nd.array(np.zeros((2, 3)), device=device)
    b = nd.array(np.zeros((3, 2)), device=device)
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(3, 2\) do not broadcast"):
        a + b
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(3, 2\)"):
        a.maximum(b)


def test_matmul_errors(device):
    a = nd.array(np.zeros((2, 3)), device=device)
    with pytest.raises(ValueError, match=r"inner dimensions.*\(2, 3\) @ \(4, 5\)"):
        a @ nd.array(np.zeros((4, 5)), device=device)
    with pytest.raises(ValueError, match=r"inner dimensions.*\(2, 2, 3\) @ \(2, 2, 3\)"):
        nd.array(np.zeros((2, 2, 3)), device=device) @ nd.array(np.zeros((2, 2, 3)), device=device)
    with pytest.raises(ValueError, match=r">= 2 axes.*\(2, 3\) @ \(3,\)"):
        a @ nd.array(np.zeros(3), device=device)
    with pytest.raises(ValueError, match=r">= 2 axes.*\(3,\) @ \(2, 3\)"):
        nd.array(np.zeros(3), device=device) @ a
    with pytest.raises(ValueError, match=r"\(2,\) and \(3,\) do not broadcast"):
        nd.array(np.zeros((2, 2, 3)), device=device) @ nd.array(np.zeros((3, 3, 4)), device=device)


@pytest.mark.parametrize(
    "idxs, msg",
    [
        ((2, 0), "index 2 is out of bounds for axis 0 with size 2"),
        ((0, -4), "index -4 is out of bounds for axis 1 with size 3"),
        ((0, 0, 0), r"too many indices \(3\) for array of shape \(2, 3\)"),
    ],
)
def test_index_errors(device, idxs, msg):
    a = nd.array(np.zeros((2, 3)), device=device)
    with pytest.raises(IndexError, match=msg):
        a[idxs]
    with pytest.raises(IndexError, match=msg):
        a[idxs] = 1.0


def test_index_type_errors(device):
    a = nd.array(np.zeros((2, 3)), device=device)
    with pytest.raises(TypeError, match="int or slice"):
        a[0.5]
    with pytest.raises(TypeError, match="int or slice"):
        a[[0, 1]]


@pytest.mark.parametrize("bad", ["int8", "complex64", "float16", "int64", "bogus"])
def test_unknown_dtype(device, bad):
    with pytest.raises(TypeError, match=rf"dtype '{bad}'"):
        nd.array(np.zeros(3), dtype=bad, device=device)
    with pytest.raises(TypeError, match=bad):
        nd.empty((2,), dtype=bad, device=device)
    with pytest.raises(TypeError, match=bad):
        nd.full((2,), 1.0, dtype=bad, device=device)
    with pytest.raises(TypeError, match=bad):
        device.full((2,), 1.0, dtype=bad)
    with pytest.raises(TypeError, match=bad):
        nd.array(np.zeros(3), device=device).astype(bad)


def test_mixing_devices(device):
    a = nd.array(np.zeros((2, 3)), device=device)
    b = nd.array(np.zeros((2, 3)), device=OTHER_DEVICE)
    msg = rf"different devices.*{re_shape((2, 3))}"
    for fn in [
        operator.add,
        operator.mul,
        operator.sub,
        operator.truediv,
        operator.eq,
        operator.ge,
        nd.maximum,
    ]:
        with pytest.raises(ValueError, match=msg):
            fn(a, b)
    with pytest.raises(ValueError, match="matmul: arrays on different devices"):
        a @ b.reshape((3, 2))
    with pytest.raises(ValueError, match="setitem: arrays on different devices"):
        a[0, :] = b[0, :]


def test_mixing_dtypes(device):
    need(device, "float64")
    a = nd.array(np.zeros((2, 3)), dtype="float32", device=device)
    b = nd.array(np.zeros((2, 3)), dtype="float64", device=device)
    with pytest.raises(TypeError, match=r"dtype mismatch float32 \(2, 3\) vs float64 \(2, 3\)"):
        a + b
    with pytest.raises(TypeError, match="dtype mismatch"):
        a.maximum(b)
    with pytest.raises(TypeError, match="matmul: dtype mismatch float32 vs float64"):
        a @ b.reshape((3, 2))


@pytest.mark.parametrize("axes", [((0, 0), (-1, 0)), ((0, 0),), ((0, 0), (0, 0), (0, 0))])
def test_pad_errors(device, axes):
    a = nd.array(np.zeros((2, 3)), device=device)
    with pytest.raises(ValueError, match=r"pad: .*\(2, 3\)"):
        a.pad(axes)


@pytest.mark.parametrize("axes", [(0, 0, 1), (0, 1), (0, 1, 3), (1, 2, 3)])
def test_permute_errors(device, axes):
    a = nd.array(np.zeros((2, 3, 4)), device=device)
    with pytest.raises(ValueError, match=rf"permute: .* not a permutation .*{re_shape((2, 3, 4))}"):
        a.permute(axes)


def test_flip_and_as_strided_errors(device):
    a = nd.array(np.zeros((2, 3)), device=device)
    with pytest.raises(ValueError, match=r"flip: axis 2 out of range for shape \(2, 3\)"):
        a.flip((2,))
    with pytest.raises(ValueError, match=r"as_strided: shape \(2, 3\) and strides \(1,\)"):
        a.as_strided((2, 3), (1,))


@pytest.mark.parametrize(
    "start, shape, strides, reach",
    [
        (ALL, (10,), (1,), r"\[0, 9\]"),
        (S_(None, None, -1), (3,), (-2,), r"\[-1, 3\]"),
        (S_(3, None), (2,), (1,), r"\[3, 4\]"),
        (ALL, (2, 2), (3, 1), r"\[0, 4\]"),
    ],
)
def test_as_strided_out_of_bounds(device, start, shape, strides, reach):
    a = nd.array(np.arange(4.0), device=device)[start]
    with pytest.raises(
        IndexError, match=rf"as_strided: view shape {re_shape(shape)}.*{reach} of a buffer of 4"
    ):
        a.as_strided(shape, strides)
    # empty views never touch the buffer
    assert a.as_strided((0, 5), (100, 100)).shape == (0, 5)


def test_concat_and_split_flat(device, dtype):
    need(device, dtype)
    shapes = [(2, 3), (4,), (1, 1, 2)]
    arrays_np = [np.random.randn(*s).astype(dtype) for s in shapes]
    arrays = [nd.array(a, dtype=dtype, device=device) for a in arrays_np]
    arrays[0] = nd.array(arrays_np[0].T.copy(), dtype=dtype, device=device).permute((1, 0))
    flat = nd.ndarray.concat_flat(arrays)
    expected = np.concatenate([a.ravel() for a in arrays_np])
    check(flat, expected, dtype)
    split = nd.ndarray.split_flat(flat, shapes)
    for piece, a in zip(split, arrays_np):
        assert piece.is_compact() and piece.shape == a.shape
        check(piece, a, dtype)
    with pytest.raises(ValueError, match="split_flat"):
        nd.ndarray.split_flat(flat, [(2, 2)])


def test_flat_view_only_of_arrays_lying_one_after_another(device, dtype):
    need(device, dtype)
    flat = nd.array(np.arange(12, dtype=dtype), dtype=dtype, device=device)
    pieces = [flat[0:6].reshape((2, 3)), flat[6:8], flat[8:10].reshape((1, 2))]
    view = nd.flat_view(pieces)
    assert view.shape == (10,)
    check(view, np.arange(10, dtype=dtype), dtype)
    assert nd.flat_view(pieces[1:]) is None  # not from the buffer's start
    assert nd.flat_view([pieces[0], pieces[2]]) is None  # a gap
    assert nd.flat_view([flat[0:6].reshape((2, 3)).permute((1, 0)), pieces[1]]) is None
    other = nd.array(np.arange(2, dtype=dtype), dtype=dtype, device=device)
    assert nd.flat_view([pieces[0], other]) is None  # another buffer
    assert nd.flat_view([]) is None


def test_scaled_copy_into_a_piece_of_a_flat_buffer(device, dtype):
    need(device, dtype)
    flat_np = np.random.randn(20).astype(dtype)
    flat = nd.array(flat_np, dtype=dtype, device=device)
    src_np = np.random.randn(3, 2).astype(dtype)
    src = nd.array(src_np.T.copy(), dtype=dtype, device=device).permute((1, 0))  # not packed
    piece = flat[4:10].reshape((3, 2))
    assert nd.scaled_copy(src, -0.5, piece) is piece
    expected = flat_np.copy()
    expected[4:10] = -0.5 * src_np.ravel()
    check(flat, expected, dtype)
    with pytest.raises(ValueError, match="row-major"):
        nd.scaled_copy(src, 1.0, flat[4:10].reshape((2, 3)).permute((1, 0)))
    with pytest.raises(ValueError, match="row-major"):
        nd.scaled_copy(src, 1.0, flat[4:9])
    other = "float64" if dtype == "float32" else "float32"
    if other in device.dtypes:
        with pytest.raises(ValueError, match="scaled_copy"):
            nd.scaled_copy(nd.array(src_np, dtype=other, device=device), 1.0, piece)


@pytest.mark.parametrize("op", [operator.add, operator.mul, operator.sub])
def test_binary_reads_the_offset_of_a_view_with_the_same_strides(device, dtype, op):
    # b = base[1:3] has a's shape and strides but starts 3 elements in: the packed fast path
    # must not take it for a's layout.
    need(device, dtype)
    base_np = np.arange(12, dtype=dtype).reshape(4, 3)
    a_np = np.random.randn(2, 3).astype(dtype)
    base, a = nd.array(base_np, device=device), nd.array(a_np, device=device)
    b = base[1:3]
    assert b.strides == a.strides and b.shape == a.shape
    np.testing.assert_allclose(op(a, b).numpy(), op(a_np, base_np[1:3]), rtol=1e-6)
    np.testing.assert_allclose(op(b, a).numpy(), op(base_np[1:3], a_np), rtol=1e-6)
