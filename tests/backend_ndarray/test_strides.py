"""The pure stride helpers of the NDArray: compact_strides, slice_view, broadcast_strides.

NumPy is the oracle: its byte strides divided by the item size, and the byte distance of a
view's first element from its base, are exactly our element strides and offset.
"""

import numpy as np
import pytest

from needle.backend_ndarray.ndarray import (
    broadcast_strides,
    compact_strides,
    slice_view,
    view_extent,
)


def np_layout(view, base):
    """(shape, element strides, element offset) of a NumPy view of ``base``."""
    item = base.itemsize
    offset = (view.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // item
    return view.shape, tuple(s // item for s in view.strides), offset


def as_keep_dims(idxs):
    """The course's convention in NumPy terms: int i -> slice(i, i + 1) (negative i too)."""
    out = []
    for i in idxs if isinstance(idxs, tuple) else (idxs,):
        if isinstance(i, int):
            out.append(slice(i, i + 1) if i != -1 else slice(-1, None))
        else:
            out.append(i)
    return tuple(out)


@pytest.mark.parametrize(
    "shape, expected",
    [
        ((), ()),
        ((5,), (1,)),
        ((2, 3), (3, 1)),
        ((2, 3, 4), (12, 4, 1)),
        ((4, 1, 3), (3, 3, 1)),
        ((1, 1), (1, 1)),
        ((3, 0, 2), (0, 2, 1)),
        ((0,), (1,)),
    ],
)
def test_compact_strides(shape, expected):
    assert compact_strides(shape) == expected
    if 0 not in shape:
        x = np.empty(shape, dtype=np.float32)
        assert compact_strides(shape) == tuple(s // 4 for s in x.strides)


SLICE_CASES = [
    ((5,), 2),
    ((5,), -1),
    ((5,), -5),
    ((5,), slice(1, 4)),
    ((5,), slice(None, None, 2)),
    ((5,), slice(None, None, -1)),
    ((5,), slice(4, 0, -2)),
    ((5,), slice(-2, None)),
    ((5,), slice(-1, -4, -1)),
    ((5,), slice(-10, 10)),
    ((4, 6), (1, slice(None, None, 3))),
    ((4, 6), (slice(None, None, -1), slice(5, 0, -2))),
    ((4, 6), (-1,)),
    ((4, 6), (slice(1, 3),)),
    ((3, 4, 5), (slice(None), 2, slice(1, None, 2))),
    ((3, 4, 5), (-2, slice(None, None, -3), -1)),
    ((3, 1, 5), (slice(None), 0, slice(None, None, -1))),
    ((2, 3), (slice(None), slice(None))),
]


@pytest.mark.parametrize("shape, idxs", SLICE_CASES, ids=[str(c) for c in range(len(SLICE_CASES))])
def test_slice_view_matches_numpy(shape, idxs):
    base = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    got = slice_view(shape, compact_strides(shape), 0, idxs)
    assert got == np_layout(base[as_keep_dims(idxs)], base)


@pytest.mark.parametrize("shape, idxs", SLICE_CASES[-8:], ids=[str(c) for c in range(8)])
def test_slice_view_of_a_view_matches_numpy(shape, idxs):
    # start from a reversed, strided view with a non-zero offset
    big_shape = tuple(2 * d for d in shape)
    big = np.arange(int(np.prod(big_shape)), dtype=np.float64).reshape(big_shape)
    first = tuple(slice(None, None, -2) for _ in shape)
    view = big[first]
    _, strides, offset = np_layout(view, big)
    got = slice_view(view.shape, strides, offset, idxs)
    assert got == np_layout(view[as_keep_dims(idxs)], big)


def test_slice_view_int_keeps_axis():
    assert slice_view((4, 6), (6, 1), 0, 2) == ((1, 6), (6, 1), 12)
    assert slice_view((4, 6), (6, 1), 0, (2, -1)) == ((1, 1), (6, 1), 17)
    assert slice_view((4, 6), (6, 1), 3, (0, 0)) == ((1, 1), (6, 1), 3)


def test_slice_view_negative_step_offset():
    # reversing a (5,) array starts at its last element and walks backwards
    assert slice_view((5,), (1,), 0, slice(None, None, -1)) == ((5,), (-1,), 4)
    # the same on a view that already has stride 2 and offset 1
    assert slice_view((5,), (2,), 1, slice(None, None, -2)) == ((3,), (-4,), 9)


@pytest.mark.parametrize(
    "shape, idxs",
    [((5,), slice(3, 3)), ((5,), slice(4, 1)), ((5,), slice(1, 4, -1)), ((3, 0), (1, slice(None)))],
)
def test_slice_view_empty(shape, idxs):
    got_shape, _, offset = slice_view(shape, compact_strides(shape), 7, idxs)
    expected = np.empty(shape)[as_keep_dims(idxs)].shape
    assert got_shape == expected and 0 in got_shape
    # an empty axis never moves the offset past the buffer
    if isinstance(idxs, slice):
        assert offset == 7


def test_slice_view_size_zero_axis_with_int():
    # shape (0, 4): the int on axis 1 still moves the (unused) offset; the view is empty
    shape, strides, _ = slice_view((0, 4), (4, 1), 0, (slice(None), 2))
    assert shape == (0, 1) and strides == (4, 1)


@pytest.mark.parametrize("idx", [5, -6, 100])
def test_slice_view_out_of_range(idx):
    with pytest.raises(IndexError, match=rf"index {idx} is out of bounds for axis 1 with size 5"):
        slice_view((2, 5), (5, 1), 0, (0, idx))


def test_slice_view_too_many_indices():
    with pytest.raises(IndexError, match=r"too many indices \(3\) for array of shape \(2, 5\)"):
        slice_view((2, 5), (5, 1), 0, (0, 1, 2))


@pytest.mark.parametrize("idx", [1.5, None, [0, 1], "a"])
def test_slice_view_bad_index_type(idx):
    with pytest.raises(TypeError, match="int or slice"):
        slice_view((2, 5), (5, 1), 0, (0, idx))


def test_slice_view_zero_step():
    with pytest.raises(ValueError, match="step"):
        slice_view((5,), (1,), 0, slice(None, None, 0))


def test_slice_view_numpy_integer_index():
    assert slice_view((4,), (1,), 0, np.int64(-1)) == ((1,), (1,), 3)


@pytest.mark.parametrize(
    "shape, new_shape",
    [
        ((3,), (3,)),
        ((1,), (4,)),
        ((3,), (2, 3)),
        ((2, 1), (2, 5)),
        ((1, 3), (4, 3)),
        ((1, 1), (2, 3)),
        ((2, 1, 3), (4, 2, 6, 3)),
        ((), (2, 3)),
        ((1,), (0,)),
        ((0, 1), (0, 4)),
        ((1, 0), (3, 0)),
    ],
)
def test_broadcast_strides_matches_numpy(shape, new_shape):
    base = np.empty(shape, dtype=np.float32)
    expected = tuple(s // 4 for s in np.broadcast_to(base, new_shape).strides)
    got = broadcast_strides(shape, compact_strides(shape), new_shape)
    # NumPy may keep any stride on size-0/size-1 axes; only the rest are pinned
    pinned = [i for i, d in enumerate(new_shape) if d > 1 and 0 not in new_shape]
    assert len(got) == len(new_shape)
    assert [got[i] for i in pinned] == [expected[i] for i in pinned]


def test_broadcast_strides_of_a_view():
    # a permuted, reversed (3, 1) view: the size-1 axis and the new leading axis get stride 0
    assert broadcast_strides((3, 1), (-2, 7), (5, 3, 4)) == (0, -2, 0)
    # axes that already match keep whatever stride they had (also 0 from a prior broadcast)
    assert broadcast_strides((3, 4), (0, 1), (3, 4)) == (0, 1)


@pytest.mark.parametrize(
    "shape, new_shape",
    [((3,), (4,)), ((2, 3), (3, 3)), ((2, 3), (3,)), ((2,), (2, 3)), ((0,), (2,))],
)
def test_broadcast_strides_incompatible(shape, new_shape):
    with pytest.raises(ValueError, match=rf"cannot broadcast shape \({shape[0]},"):
        broadcast_strides(shape, compact_strides(shape), new_shape)


@pytest.mark.parametrize(
    "shape, strides, offset, expected",
    [
        ((), (), 5, (5, 5)),
        ((4,), (1,), 0, (0, 3)),
        ((4,), (-1,), 3, (0, 3)),
        ((2, 3), (3, 1), 2, (2, 7)),
        ((2, 3), (-3, 2), 10, (7, 14)),
        ((3, 4), (0, 1), 1, (1, 4)),
        ((1, 5), (-100, -1), 4, (0, 4)),
    ],
)
def test_view_extent(shape, strides, offset, expected):
    assert view_extent(shape, strides, offset) == expected


@pytest.mark.parametrize("shape, idxs", SLICE_CASES, ids=[str(c) for c in range(len(SLICE_CASES))])
def test_slice_view_extent_matches_numpy(shape, idxs):
    base = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    view = base[as_keep_dims(idxs)]
    got = view_extent(*slice_view(shape, compact_strides(shape), 0, idxs))
    assert got == (int(view.min()), int(view.max()))
