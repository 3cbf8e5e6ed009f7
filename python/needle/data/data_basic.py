"""Dataset and DataLoader (the course's interface: NumPy in, tuples of Tensors out)."""

from typing import Iterator, List, Optional, Sequence

import numpy as np

from ..autograd import Tensor

__all__ = ["Dataset", "DataLoader"]


class Dataset:
    """A sized, indexable collection of samples.

    ``__getitem__`` returns a tuple of NumPy arrays (one per field); given an integer index
    array it should return the whole batch at once (the DataLoader asks that way).
    ``transforms`` is a list of callables applied in order to each image by
    ``apply_transforms``.
    """

    def __init__(self, transforms: Optional[List] = None):
        self.transforms = transforms

    def __getitem__(self, index) -> object:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def apply_transforms(self, x):
        if self.transforms is not None:
            for transform in self.transforms:
                x = transform(x)
        return x


def _stack_items(dataset, indices):
    """The batch of ``indices`` built item by item (datasets that take only int indices)."""
    items = [dataset[int(i)] for i in indices]
    if not isinstance(items[0], tuple):
        return np.stack(items)
    return tuple(np.stack(field) for field in zip(*items))


class DataLoader:
    """Iterates over a dataset in batches, yielding tuples of Tensors (one per field).

    Args:
        dataset: a Dataset (``dataset[index_array]`` returns a batch).
        batch_size: samples per batch; the last batch is shorter unless ``drop_last``.
        shuffle: draw a fresh ``np.random.permutation(len(dataset))`` at every ``iter()``.
        drop_last: skip the final partial batch.
        device, dtype: where the batch Tensors live (None: the defaults of ``Tensor``).
        sampler: an iterable of sample indices (with ``len``) visited instead of the
            natural or shuffled order; excludes ``shuffle``.
        batch_sampler: an iterable of index arrays, one per batch (e.g.
            ``DistributedSampler``); excludes ``batch_size``, ``shuffle``, ``sampler`` and
            ``drop_last`` (as in PyTorch).
    The yielded Tensors do not require gradients.  ``len(loader)`` is the number of batches.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: Optional[int] = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        device=None,
        dtype=None,
        sampler=None,
        batch_sampler=None,
    ):
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError(
                    "DataLoader: batch_sampler excludes batch_size, shuffle, sampler and "
                    "drop_last"
                )
        elif batch_size is None or int(batch_size) < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler excludes shuffle (the sampler sets the order)")
        self.dataset = dataset
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.device = device
        self.dtype = dtype
        self.ordering: Sequence[np.ndarray] = []
        self._next = 0

    def __len__(self) -> int:
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator:
        if self.batch_sampler is not None:
            self.ordering = [np.asarray(b, dtype=np.int64) for b in self.batch_sampler]
        else:
            if self.sampler is not None:
                order = np.fromiter(self.sampler, dtype=np.int64)
            else:
                n = len(self.dataset)
                order = np.random.permutation(n) if self.shuffle else np.arange(n)
            n, size = len(order), self.batch_size
            self.ordering = [order[i : i + size] for i in range(0, n, size)][: len(self)]
        self._next = 0
        return self

    def __next__(self):
        if self._next >= len(self.ordering):
            raise StopIteration
        indices = self.ordering[self._next]
        self._next += 1
        try:
            batch = self.dataset[indices]
        except TypeError:
            batch = _stack_items(self.dataset, indices)
        if not isinstance(batch, tuple):
            batch = (batch,)
        return tuple(self._tensor(field) for field in batch)

    def _tensor(self, field):
        return Tensor(field, device=self.device, dtype=self.dtype, requires_grad=False)
