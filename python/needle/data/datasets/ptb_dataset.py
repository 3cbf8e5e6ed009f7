"""Penn Treebank word-level corpus and the batching helpers of the course."""

import os
from typing import List, Optional

import numpy as np

from ...autograd import Tensor


class Dictionary:
    """Word ↔ id maps; ids are given in order of first sight."""

    def __init__(self):
        self.word2idx = {}
        self.idx2word = []

    def add_word(self, word: str) -> int:
        """The id of ``word``, adding it when new."""
        if word not in self.word2idx:
            self.word2idx[word] = len(self.idx2word)
            self.idx2word.append(word)
        return self.word2idx[word]

    def __len__(self) -> int:
        return len(self.idx2word)


class Corpus:
    """``train`` and ``test`` id lists of ``base_dir/{train,test}.txt`` with one Dictionary.

    Each line is split on whitespace and followed by ``'<eos>'``; at most ``max_lines``
    lines of each file are read.
    """

    def __init__(self, base_dir: str, max_lines: Optional[int] = None):
        self.dictionary = Dictionary()
        self.train = self.tokenize(os.path.join(base_dir, "train.txt"), max_lines)
        self.test = self.tokenize(os.path.join(base_dir, "test.txt"), max_lines)

    def tokenize(self, path: str, max_lines: Optional[int] = None) -> List[int]:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Corpus: missing file {path!r}")
        ids = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f):
                if max_lines is not None and n >= max_lines:
                    break
                for word in line.split() + ["<eos>"]:
                    ids.append(self.dictionary.add_word(word))
        return ids


def batchify(data, batch_size: int, device=None, dtype=None) -> np.ndarray:
    """``(nbatch, batch_size)`` array: column j holds the j-th contiguous chunk of ``data``.

    The sequence is trimmed to a multiple of ``batch_size``.
    """
    data = np.asarray(data)
    nbatch = len(data) // batch_size
    if nbatch == 0:
        raise ValueError(f"batchify: {len(data)} tokens are fewer than batch_size={batch_size}")
    return data[: nbatch * batch_size].reshape(batch_size, nbatch).T.astype(dtype or data.dtype)


def get_batch(batches, i: int, bptt: int, device=None, dtype=None):
    """(data ``(L, B)``, target ``(L·B,)``) Tensors from rows i… of ``batches``.

    L = min(bptt, nbatch − 1 − i); the target is the next row of each position.
    """
    length = min(bptt, len(batches) - 1 - i)
    if length < 1:
        raise ValueError(f"get_batch: row {i} leaves no target rows in {len(batches)} rows")
    data = batches[i : i + length]
    target = batches[i + 1 : i + 1 + length].reshape(-1)
    return (
        Tensor(data, device=device, dtype=dtype, requires_grad=False),
        Tensor(target, device=device, dtype=dtype, requires_grad=False),
    )
