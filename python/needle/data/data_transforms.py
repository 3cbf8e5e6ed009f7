"""Image transforms on ``H×W×C`` NumPy arrays (the course's semantics and RNG draws)."""

import numpy as np

__all__ = ["Transform", "RandomFlipHorizontal", "RandomCrop", "Normalize"]


class Transform:
    """A callable ``img -> img`` on one ``H×W×C`` NumPy image."""

    def __call__(self, x):
        raise NotImplementedError


def _check_image(img, what):
    if np.ndim(img) != 3:
        raise ValueError(f"{what}: expected an H×W×C image, got shape {np.shape(img)}")


class RandomFlipHorizontal(Transform):
    """Flip the W axis (axis 1) with probability ``p``; draws one ``np.random.rand()``."""

    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, img):
        _check_image(img, "RandomFlipHorizontal")
        flip = np.random.rand() < self.p
        return img[:, ::-1, :] if flip else img

    def __repr__(self):
        return f"RandomFlipHorizontal(p={self.p})"


class RandomCrop(Transform):
    """Zero-pad H and W by ``padding`` and cut an ``H×W`` window at a random shift.

    Draws one ``np.random.randint(-padding, padding + 1, size=2)`` = (shift_x, shift_y);
    the window's top-left corner is ``(padding + shift_x, padding + shift_y)`` of the padded
    image (shift_x moves along H, shift_y along W).
    """

    def __init__(self, padding=3):
        if padding < 0:
            raise ValueError(f"RandomCrop: padding must be >= 0, got {padding}")
        self.padding = padding

    def __call__(self, img):
        _check_image(img, "RandomCrop")
        shift_x, shift_y = np.random.randint(low=-self.padding, high=self.padding + 1, size=2)
        p = self.padding
        h, w = img.shape[0], img.shape[1]
        padded = np.pad(img, ((p, p), (p, p), (0, 0)))
        return padded[p + shift_x : p + shift_x + h, p + shift_y : p + shift_y + w, :]

    def __repr__(self):
        return f"RandomCrop(padding={self.padding})"


class Normalize(Transform):
    """(img − mean) / std per channel (the last axis); no randomness."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        if np.any(self.std == 0):
            raise ValueError(f"Normalize: std must be non-zero, got {std}")

    def __call__(self, img):
        _check_image(img, "Normalize")
        if self.mean.size not in (1, img.shape[-1]) or self.std.size not in (1, img.shape[-1]):
            raise ValueError(
                f"Normalize: mean {self.mean.shape} / std {self.std.shape} do not match "
                f"{img.shape[-1]} channels"
            )
        return ((img - self.mean) / self.std).astype(img.dtype, copy=False)

    def __repr__(self):
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"
