"""NDArray-level wrappers of the backend's fused kernels, each with a fallback for backends
without the kernel: bias rows (``add_row``), column sums (``sum_rows``), the per-column
affine pass (``rows_affine``), the flat packing the optimizers use (``concat_flat``,
``split_flat``, ``flat_view``), and a weighted copy into a piece of a flat buffer
(``scaled_copy``).
The conv and pool kernels' wrappers are in ``conv.py``."""

import builtins
import math

from .ndarray import NDArray, compact_strides

prod = math.prod


def add_row(x, row):
    """``x (..., C) + row``, ``row`` holding C values: one ``rows_affine`` pass when ``x`` is
    packed and the backend has the kernel (a layer's bias), else the broadcasting ``+``."""
    c = x._shape[-1] if x._shape else 0
    if (
        "rows_affine" in x._device.__dict__
        and c
        and x._offset == 0
        and x._strides == compact_strides(x._shape)
        and prod(row._shape) == c
    ):
        rows = NDArray._view((prod(x._shape) // c, c), (c, 1), x._device, x._handle)
        # (rows_affine packs a bias that lies inside a larger buffer, e.g. an optimizer's)
        out = rows_affine(rows, _ones_row(x._device, x._handle.dtype, c), row)
        return NDArray._view(x._shape, x._strides, out._device, out._handle)
    return x + row.reshape((1,) * (len(x._shape) - 1) + (c,))


def _add_row(x, v):
    """x + v by the rows_affine kernel when x is packed and v repeats one row along the
    last axis (a bias added to every position): no broadcast copy of v.  None otherwise."""
    if x.ndim < 2 or x._offset or x._strides != compact_strides(x._shape) or v._strides[-1] != 1:
        return None
    if any(st != 0 for st, d in zip(v._strides[:-1], v._shape[:-1]) if d != 1):
        return None
    c = x._shape[-1]
    if c == 0 or prod(x._shape) == 0:
        return None
    return add_row(x, NDArray._view((1, c), (c, 1), v._device, v._handle, v._offset))


_CONSTANT_ROWS = {}  # (device, dtype, n, value) -> a (1, n) row filled with value


def _constant_row(device, dtype, n, value):
    """A cached read-only (1, n) row of ``value`` (at most 256 rows are kept)."""
    key = (device, dtype, n, value)
    row = _CONSTANT_ROWS.get(key)
    if row is None:
        row = device.full((1, n), value, dtype)
        if len(_CONSTANT_ROWS) < 256:
            _CONSTANT_ROWS[key] = row
    return row


def _ones_row(device, dtype, n):
    return _constant_row(device, dtype, n, 1.0)


def sum_rows(x):
    """Column sums (1, C) of a compact (M, C) matrix.

    With the backend's ``sum_rows`` kernel, one pass; otherwise ones (1, M) @ x, where a
    tall, narrow matrix is first folded to (M/r, r·C) (a free reshape, its product runs
    faster) and the r partial rows are summed after.
    """
    m, c = x._shape
    device = x._device
    if "sum_rows" in device.__dict__:  # the backend's column-sum kernel
        x = _packed(x)
        out = NDArray._fresh((1, c), device, x._handle.dtype)
        device.sum_rows(x._handle, out._handle, m)
        return out
    r = 1
    if c < 32:  # only the narrowest matrices gain enough to pay for the second step
        while m % (2 * r) == 0 and 2 * r * c <= 256 and m // (2 * r) >= 256:
            r *= 2
    if r == 1:
        return _ones_row(x.device, x.dtype, m) @ x
    partial = _ones_row(x.device, x.dtype, m // r) @ x.reshape((m // r, r * c))
    return partial.reshape((r, c)).sum(axis=0, keepdims=True)


def _packed(x, size=None):
    """``x`` itself when it is packed from the start of its buffer (of exactly ``size``
    elements when given), else a packed copy."""
    if x._offset == 0 and x._strides == compact_strides(x._shape):
        if size is None or x._handle.size == size:
            return x
    return x.copy()


def rows_affine(a, s, u, b=None, t=None):
    """``a * s + b * t + u`` for (M, C) arrays ``a``, ``b`` and (1, C) rows ``s``, ``t``,
    ``u`` (broadcast down the rows); without ``b`` the middle term is left out, and
    ``s=None`` means ones.

    With the backend's ``rows_affine`` kernel one pass and no broadcast copies; otherwise
    the same arithmetic with broadcasting operators.
    """
    m, c = a._shape
    device = a._device
    if "rows_affine" in device.__dict__:
        if s is None:
            s = _ones_row(device, a._handle.dtype, c)
        if b is None:
            b, t = a, _zeros_row(device, a._handle.dtype, c)
        out = NDArray._fresh((m, c), device, a._handle.dtype)
        device.rows_affine(
            _packed(a)._handle, _packed(b)._handle, _packed(s, c)._handle,
            _packed(t, c)._handle, _packed(u, c)._handle, out._handle,
        )  # fmt: skip
        return out
    shape = (m, c)
    out = a if s is None else a * s.broadcast_to(shape)
    if b is not None:
        out = out + b * t.broadcast_to(shape)
    return out + u.broadcast_to(shape)


def _zeros_row(device, dtype, n):
    return _constant_row(device, dtype, n, 0.0)


def concat_flat(arrays, out=None):
    """The elements of ``arrays`` (row-major each) one after another in a 1-D array.

    All arrays share one device and dtype; ``out`` (1-D, that total size) is written when
    given.  One kernel call per array.
    """
    arrays = list(arrays)
    total = builtins.sum(prod(a._shape) for a in arrays)
    if out is None:
        out = NDArray.make((total,), device=arrays[0].device, dtype=arrays[0].dtype)
    elif out.shape != (total,):
        raise ValueError(
            f"concat_flat: out has shape {out.shape}, the arrays hold {total} elements"
        )
    offset = 0
    for a in arrays:
        n = prod(a._shape)
        if a.device != out.device or a.dtype != out.dtype:
            raise ValueError(
                f"concat_flat: array {a.shape} is {a.dtype} on {a.device}, "
                f"out is {out.dtype} on {out.device}"
            )
        a = a.compact()
        out.device.ewise_setitem(a._handle, out._handle, (n,), (1,), out._offset + offset)
        offset += n
    return out


def scaled_copy(a, scale, out):
    """``scale * a`` written into ``out``'s memory in one pass; ``out`` is a row-major view
    with ``a``'s number of elements (such as a piece of a flat buffer), ``a`` any layout.
    Returns ``out``.  (Called once per gradient per training step: the checks are kept cheap.)
    """
    device = out._device
    if (a._device is not device and a._device != device) or a._handle.dtype != out._handle.dtype:
        raise ValueError(
            f"scaled_copy: a is {a.dtype} on {a.device}, out is {out.dtype} on {out.device}"
        )
    n = prod(a._shape)
    if prod(out._shape) != n or (
        out._strides != compact_strides(out._shape) and not out.is_compact_view()
    ):
        raise ValueError(
            f"scaled_copy: out {out.shape} (strides {out.strides}) is not a row-major view "
            f"of the {n} elements of a {a.shape}"
        )
    packed = a._offset == 0 and a._handle.size == n and a._strides == compact_strides(a._shape)
    device.scaled_copy((a if packed else a.compact())._handle, float(scale), out._handle,
                       out._offset)  # fmt: skip
    return out


def flat_view(arrays):
    """A 1-D view of the elements of ``arrays`` one after another when they already lie so in
    one buffer from its start (the gradients in needle.distributed's bucket), else None (then
    ``concat_flat`` copies them).  The buffer may hold more after them."""
    if not arrays:
        return None
    handle, offset = arrays[0]._handle, 0
    for a in arrays:
        if a._handle is not handle or a._offset != offset:
            return None
        if a._strides != compact_strides(a._shape):
            return None
        offset += prod(a._shape)
    return NDArray._view((offset,), (1,), arrays[0]._device, handle)


def split_flat(flat, shapes):
    """Compact arrays of ``shapes`` holding consecutive pieces of 1-D ``flat`` (copies)."""
    total = builtins.sum(prod(shape) for shape in shapes)
    if flat.ndim != 1 or flat._strides != (1,) or total != prod(flat._shape):
        raise ValueError(
            f"split_flat: shapes {shapes} do not cover a 1-D array of shape {flat.shape}"
        )
    out, offset = [], flat._offset
    for shape in shapes:
        n = prod(shape)
        piece = NDArray.make(shape, device=flat.device, dtype=flat.dtype)
        flat.device.compact(flat._handle, piece._handle, (n,), (1,), offset)
        out.append(piece)
        offset += n
    return out
