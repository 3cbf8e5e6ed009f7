"""MNIST from IDX files (plain or gzipped), read with one vectorized call."""

import gzip
from typing import List, Optional

import numpy as np

from .byte_image_dataset import ByteImageDataset

_GZIP_MAGIC = b"\x1f\x8b"
# IDX type codes -> big-endian NumPy dtypes.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(filename: str) -> bytes:
    try:
        with open(filename, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"MNIST: no such file {filename!r}") from None
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise ValueError(f"MNIST: {filename!r} is a damaged gzip file ({e})") from None
    return raw


def read_idx(filename: str, ndim: Optional[int] = None) -> np.ndarray:
    """The array stored in an IDX file (``.gz`` or plain, detected by content).

    Header: two zero bytes, a type code, the number of dimensions d, then d big-endian
    uint32 sizes.  Raises ValueError naming the file when the header is malformed, the rank
    is not ``ndim``, or the data is shorter or longer than the sizes say.
    """
    raw = _read_bytes(filename)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(
            f"MNIST: {filename!r} is not an IDX file (expected magic bytes 00 00 <type> <ndim>, "
            f"got {raw[:4].hex(' ') or 'an empty file'})"
        )
    dtype, d = np.dtype(_IDX_TYPES[raw[2]]), raw[3]
    if ndim is not None and d != ndim:
        raise ValueError(f"MNIST: {filename!r} holds a {d}-d array, expected {ndim}-d")
    header = 4 + 4 * d
    if len(raw) < header:
        raise ValueError(f"MNIST: {filename!r} is truncated inside its header")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=d, offset=4))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(
            f"MNIST: {filename!r} has {len(raw)} bytes, expected {expected} for shape {shape}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


class MNISTDataset(ByteImageDataset):
    """MNIST digits: item = (image ``(28, 28, 1)`` float32 in [0, 1], label uint8).

    An index array gives a batch ``(B, 28, 28, 1)`` (transforms applied per image) and
    labels ``(B,)``.  Pixels are kept as bytes and scaled (÷255) when indexed.
    The constructor draws no random numbers.
    """

    def __init__(self, image_filename: str, label_filename: str, transforms: Optional[List] = None):
        super().__init__(transforms)
        images = read_idx(image_filename, ndim=3)
        labels = read_idx(label_filename, ndim=1)
        if len(images) != len(labels):
            raise ValueError(
                f"MNIST: {image_filename!r} has {len(images)} images but {label_filename!r} "
                f"has {len(labels)} labels"
            )
        self._images = images[..., None]  # (N, H, W, 1) uint8
        self.y = labels.astype(np.uint8)
