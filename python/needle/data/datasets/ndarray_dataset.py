"""A dataset over in-memory arrays."""

import numpy as np

from ..data_basic import Dataset


class NDArrayDataset(Dataset):
    """Item ``i`` is ``tuple(a[i] for a in arrays)``; the length is the first array's.

    Raises ValueError when the arrays differ in length.
    """

    def __init__(self, *arrays):
        super().__init__()
        if not arrays:
            raise ValueError("NDArrayDataset: needs at least one array")
        self.arrays = arrays
        lengths = [len(a) for a in arrays]
        if len(set(lengths)) != 1:
            raise ValueError(f"NDArrayDataset: arrays differ in length: {lengths}")

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, i) -> tuple:
        if isinstance(i, (list, range)):
            i = np.asarray(i)
        return tuple(a[i] for a in self.arrays)
