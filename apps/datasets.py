"""Data for the training apps: the embedded MNIST subset, MNIST idx folders, CIFAR-10 pickles.

Everything is loaded into NumPy arrays once (these data sets fit in memory many times over):
images as float32 ``(N, C, H, W)`` in [0, 1], labels as int64 ``(N,)``.
"""

import importlib
import os
import sys
from dataclasses import dataclass

if not __package__:  # `import datasets` with apps/ on sys.path, as the course's tests do
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if __name__ != "__main__":  # one module object for both names (see apps/__init__.py)
        sys.modules[__name__] = importlib.import_module("apps." + __name__)

import numpy as np

from needle.data.datasets.cifar10_dataset import load_cifar10_batch
from needle.data.datasets.mnist_dataset import read_idx as _read_idx

EMBEDDED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


class DataError(Exception):
    """A data set that cannot be found or read (the CLI prints it as one line)."""


@dataclass
class Split:
    """Images ``(N, C, H, W)`` float32 in [0, 1] and labels ``(N,)`` int64."""

    X: np.ndarray
    y: np.ndarray

    def __len__(self):
        return len(self.y)

    def head(self, n):
        return Split(self.X[:n], self.y[:n]) if n is not None else self


@dataclass
class DataSet:
    name: str
    train: Split
    test: Split
    num_classes: int = 10

    @property
    def image_shape(self):
        return tuple(self.train.X.shape[1:])


def read_idx(path):
    """An IDX file (gzipped or plain) as a NumPy array, read by ``needle.data``; a file that
    cannot be read raises a one-line DataError."""
    try:
        return _read_idx(path)
    except (OSError, ValueError) as exc:
        raise DataError(str(exc)) from None


def _find(folder, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return path
    raise DataError(f"MNIST file {stem}[.gz] not found in {folder}")


def load_mnist(folder):
    """MNIST (or Fashion-MNIST) from a folder of the four standard idx[.gz] files."""
    if not os.path.isdir(folder):
        raise DataError(f"data folder not found: {folder}")
    splits = {}
    for split, (images, labels) in MNIST_FILES.items():
        X = read_idx(_find(folder, images)).astype(np.float32) / 255.0
        y = read_idx(_find(folder, labels)).astype(np.int64)
        if X.ndim != 3 or len(X) != len(y):
            raise DataError(f"{folder}: {split} images {X.shape} do not match labels {y.shape}")
        splits[split] = Split(X[:, None, :, :], y)
    return DataSet(f"mnist:{folder}", splits["train"], splits["test"])


def load_cifar10(folder):
    """CIFAR-10 from a ``cifar-10-batches-py`` folder (``data_batch_1..5``, ``test_batch``)."""
    if not os.path.isdir(folder):
        raise DataError(f"data folder not found: {folder}")

    def read(names):
        batches = []
        for name in names:
            try:
                batches.append(load_cifar10_batch(os.path.join(folder, name)))
            except (OSError, ValueError) as exc:
                raise DataError(str(exc)) from None
        pixels = np.concatenate([data for data, _ in batches]).reshape(-1, 3, 32, 32)
        X = np.empty(pixels.shape, dtype=np.float32)  # ÷255 in one pass, no float64 temporary
        np.divide(pixels, np.float32(255.0), out=X, dtype=np.float32)
        return Split(X, np.concatenate([labels for _, labels in batches]))

    train = read([f"data_batch_{i}" for i in range(1, 6)])
    return DataSet(f"cifar10:{folder}", train, read(["test_batch"]))


def load_embedded():
    """The 5,000/1,000 MNIST subset shipped in ``apps/data`` (see its README)."""
    data = load_mnist(EMBEDDED_DIR)
    data.name = "embedded MNIST subset (5,000 train / 1,000 test)"
    return data


def load_data(spec):
    """``None``/``"embedded"`` -> the embedded subset; ``"mnist:PATH"``; ``"cifar10:PATH"``."""
    if spec in (None, "", "embedded"):
        return load_embedded()
    kind, sep, path = spec.partition(":")
    if not sep or not path:
        raise DataError(f"--data must be 'embedded', 'mnist:PATH' or 'cifar10:PATH', got {spec!r}")
    path = os.path.expanduser(path)
    if kind == "mnist":
        return load_mnist(path)
    if kind == "cifar10":
        return load_cifar10(path)
    raise DataError(f"unknown data kind {kind!r} in --data {spec!r} (use mnist: or cifar10:)")


def adapt_images(X, shape):
    """Make ``(N, C, H, W)`` images fit a model's ``(C', H', W')``.

    One channel is repeated to three; smaller images are zero-padded symmetrically (MNIST's
    28x28 becomes 32x32 for ResNet9), larger ones center-cropped.
    """
    c, h, w = shape
    if X.shape[1] != c:
        if X.shape[1] != 1:
            raise DataError(f"cannot feed {X.shape[1]}-channel images to a {c}-channel model")
        X = np.repeat(X, c, axis=1)
    out = []
    for size, axis in ((h, 2), (w, 3)):
        have = X.shape[axis]
        lo = (size - have) // 2 if size >= have else (have - size) // 2
        out.append((axis, size, have, lo))
    for axis, size, have, lo in out:
        if size > have:
            pad = [(0, 0)] * 4
            pad[axis] = (lo, size - have - lo)
            X = np.pad(X, pad)
        elif size < have:
            X = X.take(np.arange(lo, lo + size), axis=axis)
    return np.ascontiguousarray(X, dtype=np.float32)
