"""A segmentation data set drawn from a seed: filled shapes on noisy backgrounds.

``make_shapes(n, size=32, seed=0)`` returns images ``(n, 1, size, size)`` float32 in [0, 1] and
per-pixel class masks ``(n, size, size)`` int64: 0 background, 1 disc, 2 square, 3 triangle.
Each image has a background of random brightness with a linear gradient, one to three shapes
of random size, place and brightness (a later shape covers an earlier one, and its class wins
in the mask), and Gaussian noise over everything.  The same ``(n, size, seed)`` always gives
the same arrays (one ``numpy.random.RandomState(seed)`` draws everything, image by image), so
no data has to be shipped or downloaded.

Telling the shapes apart takes a look at their outline, not at one pixel: discs, squares and
triangles have the same brightness distribution, so a classifier must combine a neighbourhood
(a receptive field about the size of a shape).
"""

import importlib
import os
import sys

if not __package__:  # `import shapes` with apps/ on sys.path, as the course's tests do
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if __name__ != "__main__":  # one module object for both names (see apps/__init__.py)
        sys.modules[__name__] = importlib.import_module("apps." + __name__)

import numpy as np

CLASSES = ("background", "disc", "square", "triangle")


def _disc(yy, xx, cy, cx, r):
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def _square(yy, xx, cy, cx, r):
    half = 0.85 * r  # about the area of the disc of radius r
    return (np.abs(yy - cy) <= half) & (np.abs(xx - cx) <= half)


def _triangle(yy, xx, cy, cx, r):
    """An upright or upside-down isosceles triangle inscribed in the circle of radius ``r``."""
    top, base = cy - r, cy + 0.8 * r
    inside = (yy >= top) & (yy <= base)
    half_width = (yy - top) / (base - top) * 1.2 * r  # widens from the apex to the base
    return inside & (np.abs(xx - cx) <= half_width)


_DRAW = (_disc, _square, _triangle)


def _one_image(rng, size):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    level = rng.uniform(0.1, 0.5)
    gy, gx = rng.uniform(-0.15, 0.15, size=2)
    image = level + (gy * (yy - size / 2) + gx * (xx - size / 2)) / size
    mask = np.zeros((size, size), dtype=np.int64)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randint(len(_DRAW))
        r = rng.uniform(0.12, 0.25) * size
        cy, cx = rng.uniform(r, size - r, size=2)
        flip = kind == 2 and rng.rand() < 0.5  # triangles point up or down
        region = _DRAW[kind](2 * cy - yy if flip else yy, xx, cy, cx, r)
        image[region] = rng.uniform(0.55, 0.95)
        mask[region] = kind + 1
    image = image + rng.normal(0.0, 0.08, size=(size, size))
    return np.clip(image, 0.0, 1.0).astype(np.float32), mask


def make_shapes(n: int, size: int = 32, seed: int = 0):
    """``(images (n, 1, size, size) float32, masks (n, size, size) int64)`` from ``seed``.

    Raises:
        ValueError: ``n < 0`` or ``size < 8`` (too small to draw a shape).
    """
    if n < 0:
        raise ValueError(f"make_shapes: n must be >= 0, got {n}")
    if size < 8:
        raise ValueError(f"make_shapes: size must be >= 8, got {size}")
    rng = np.random.RandomState(seed)
    images = np.empty((n, 1, size, size), dtype=np.float32)
    masks = np.empty((n, size, size), dtype=np.int64)
    for i in range(n):
        images[i, 0], masks[i] = _one_image(rng, size)
    return images, masks
