"""Dataset readers: NumPy arrays, MNIST (IDX), CIFAR-10 (python pickles), Penn Treebank."""

from .cifar10_dataset import CIFAR10Dataset
from .mnist_dataset import MNISTDataset, read_idx
from .ndarray_dataset import NDArrayDataset
from .ptb_dataset import Corpus, Dictionary, batchify, get_batch

__all__ = [
    "CIFAR10Dataset",
    "MNISTDataset",
    "read_idx",
    "NDArrayDataset",
    "Corpus",
    "Dictionary",
    "batchify",
    "get_batch",
]
