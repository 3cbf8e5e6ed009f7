"""Samplers: the order in which a DataLoader visits a dataset, and how ranks share it.

``DistributedSampler`` is a batch sampler (``DataLoader(ds, batch_sampler=...)``, as in
PyTorch): it yields, for every step, this rank's share of the global batch that a single
process with the same ``batch_size`` and the same permutation would take at that step.
"""

from typing import Iterator, List, Optional, Tuple

import numpy as np

__all__ = ["DistributedSampler", "share_bounds"]


def share_bounds(batch_len: int, num_replicas: int, rank: int) -> Tuple[int, int]:
    """``(lo, hi)``: rank ``rank``'s contiguous slice of a batch of ``batch_len`` samples.

    The first ``batch_len % num_replicas`` ranks take one sample more than the others
    (``np.array_split``'s rule), so shares differ by at most one and a batch shorter than
    ``num_replicas`` leaves the last ranks an empty share.
    """
    base, extra = divmod(batch_len, num_replicas)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


class DistributedSampler:
    """This rank's share of every global batch of one epoch (a batch sampler).

    Each epoch draws ONE permutation of ``range(len)`` — the same on every rank — and cuts it
    into global batches of ``batch_size`` (the global batch size).  Rank ``r`` of ``N`` yields
    the ``r``-th contiguous slice of each global batch (``share_bounds``), so the ranks' step-s
    batches, concatenated in rank order, are exactly the single-process step-s batch.

    The last partial batch (``len % batch_size`` samples) is split the same way: shares then
    differ by one sample, and when it holds fewer samples than there are ranks, some ranks
    get an EMPTY share (a zero-length index array).  Every rank still yields it, so all ranks
    take the same number of steps (a collective gradient average needs every rank at every
    step); ``DistributedOptimizer`` weights each rank by its share, so the averaged gradient
    is still the one of the whole batch.  With ``drop_last`` the partial batch is left out.

    Args:
        data_source: a dataset (anything with ``len()``) or the number of samples.
        batch_size: the GLOBAL batch size (all ranks together), >= 1.
        num_replicas, rank: default ``needle.distributed.size()`` / ``rank()`` (1 / 0 when
            MPI is not initialized).
        shuffle: permute each epoch (else the natural order).
        seed: the permutation of epoch e comes from ``RandomState(seed + e)`` (PyTorch's rule;
            call ``set_epoch(e)`` before each epoch) ...
        rng: ... unless a ``RandomState`` is given: then each ``iter()`` draws the permutation
            from it (every rank must seed it alike).
        drop_last: leave out the final partial global batch.
    """

    def __init__(
        self,
        data_source,
        batch_size: int,
        num_replicas: Optional[int] = None,
        rank: Optional[int] = None,
        shuffle: bool = True,
        seed: int = 0,
        rng: Optional[np.random.RandomState] = None,
        drop_last: bool = False,
    ):
        n = data_source if isinstance(data_source, (int, np.integer)) else len(data_source)
        if n < 0:
            raise ValueError(f"DistributedSampler: data_source length must be >= 0, got {n}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(f"DistributedSampler: batch_size must be an int, got {batch_size!r}")
        if batch_size < 1:
            raise ValueError(f"DistributedSampler: batch_size must be >= 1, got {batch_size}")
        if num_replicas is None or rank is None:
            from .. import distributed

            num_replicas = distributed.size() if num_replicas is None else num_replicas
            rank = distributed.rank() if rank is None else rank
        if num_replicas < 1:
            raise ValueError(
                f"DistributedSampler: num_replicas must be >= 1, got {num_replicas}"
            )
        if not 0 <= rank < num_replicas:
            raise ValueError(
                f"DistributedSampler: rank must be in [0, {num_replicas - 1}], got {rank}"
            )
        self.num_samples = int(n)
        self.batch_size = int(batch_size)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.shuffle = shuffle
        self.seed = seed
        self.rng = rng
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select epoch ``epoch``'s permutation (``RandomState(seed + epoch)``)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Steps per epoch (the same on every rank)."""
        full, rest = divmod(self.num_samples, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def order(self) -> np.ndarray:
        """This epoch's permutation of the sample indices (draws from ``rng`` when given)."""
        if not self.shuffle:
            return np.arange(self.num_samples)
        rng = self.rng if self.rng is not None else np.random.RandomState(self.seed + self.epoch)
        return rng.permutation(self.num_samples)

    def global_batches(self) -> List[np.ndarray]:
        """The epoch's global batches (all ranks' indices); one ``order()`` draw."""
        order = self.order()
        return [order[i * self.batch_size : (i + 1) * self.batch_size] for i in range(len(self))]

    def bounds(self, batch_len: int) -> Tuple[int, int]:
        """This rank's ``(lo, hi)`` slice of a global batch of ``batch_len`` samples."""
        return share_bounds(batch_len, self.num_replicas, self.rank)

    def __iter__(self) -> Iterator[np.ndarray]:
        for batch in self.global_batches():
            lo, hi = self.bounds(len(batch))
            yield batch[lo:hi]
