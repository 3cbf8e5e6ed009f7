"""CIFAR-10 from the standard ``cifar-10-batches-py`` pickles."""

import os
import pickle
from typing import List, Optional

import numpy as np

from .byte_image_dataset import ByteImageDataset

_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_FILES = ("test_batch",)
_IMAGE_BYTES = 3 * 32 * 32


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and NumPy arrays only (a data file must not run code)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("copyreg", "_reconstructor"),
        ("builtins", "object"),
        ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module.startswith("numpy.core"):
            module = "numpy._core" + module[len("numpy.core") :]
        return super().find_class(module, name)


def load_cifar10_batch(path: str):
    """(images (N, 3072) uint8, labels (N,) int64) of one pickled CIFAR-10 batch."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"CIFAR10: missing file {path!r} (expected the cifar-10-batches-py pickles)"
        )
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise ValueError(
            f"CIFAR10: {path!r} is not a CIFAR-10 python batch (a pickled dict with b'data' "
            f"(N, 3072) uint8 and b'labels'): {type(e).__name__}: {e}"
        ) from None
    if data.ndim != 2 or data.shape[1] != _IMAGE_BYTES or labels.shape != (len(data),):
        raise ValueError(
            f"CIFAR10: {path!r} has data of shape {data.shape} and {labels.size} labels, "
            f"expected (N, {_IMAGE_BYTES}) and N labels"
        )
    return data, labels


class CIFAR10Dataset(ByteImageDataset):
    """CIFAR-10: item = (image ``(3, 32, 32)`` float32 in [0, 1], label int).

    Args:
        base_folder: the ``cifar-10-batches-py`` folder.
        train: the five ``data_batch_*`` files (True) or ``test_batch`` (False).
        p: kept for the course's signature (unused).
        transforms: applied to each image as ``H×W×C`` (the image is transposed to HWC and
            back), so RandomCrop/RandomFlipHorizontal act on the spatial axes.
    An index array gives ``(B, 3, 32, 32)`` and labels ``(B,)``; without transforms a batch is
    one vectorized slice.  Pixels are kept as bytes and scaled (÷255) when indexed.
    """

    def __init__(
        self,
        base_folder: str,
        train: bool,
        p: Optional[float] = 0.5,
        transforms: Optional[List] = None,
    ):
        super().__init__(transforms)
        self.p = p
        files = _TRAIN_FILES if train else _TEST_FILES
        batches = [load_cifar10_batch(os.path.join(base_folder, name)) for name in files]
        self._images = np.concatenate([b[0] for b in batches]).reshape(-1, 3, 32, 32)
        self.y = np.concatenate([b[1] for b in batches])

    def _transform(self, chw):
        """The transforms act on the image as ``H×W×C``."""
        hwc = self.apply_transforms(chw.transpose(1, 2, 0))
        return np.ascontiguousarray(hwc.transpose(2, 0, 1))
