"""The common part of the image datasets that keep their pixels as bytes (MNIST, CIFAR-10)."""

import numpy as np

from ..data_basic import Dataset


class ByteImageDataset(Dataset):
    """Images held as uint8 in ``self._images`` (N, ...) with labels ``self.y`` (N,).

    Indexing scales the pixels to float32 in [0, 1] (÷255); with transforms, each image of
    the item or batch goes through ``_transform`` (by default ``apply_transforms``).  An
    index array gives the whole batch; without transforms it is one vectorized slice.
    Subclasses set ``_images`` and ``y`` in ``__init__``.
    """

    @property
    def X(self) -> np.ndarray:
        """All images as float32 in [0, 1], shape ``(N,) + image shape``."""
        return self._images.astype(np.float32) / np.float32(255)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index):
        images = self._images[index].astype(np.float32) / np.float32(255)
        if self.transforms:
            if images.ndim == 3:
                images = self._transform(images)
            else:
                images = np.stack([self._transform(img) for img in images])
        return images, self.y[index]

    def _transform(self, image):
        return self.apply_transforms(image)
