"""The one training loop that the CLI (``apps.train``) and the course helpers share.

``run_epoch`` makes one pass over an iterable of ``(images, labels)`` batches: with an optimizer
it trains (``model.train()``, forward, loss, ``backward()``, ``step``), without
one it evaluates (``model.eval()`` under ``needle.no_grad()``).  It returns the mean loss and the
accuracy over all samples.  Batches may be NumPy arrays or Tensors (the course's ``DataLoader``
yields Tensors); they are moved to ``device`` here.
"""

import importlib
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

if not __package__:  # `import engine` with apps/ on sys.path, as the course's tests do
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if __name__ != "__main__":  # one module object for both names (see apps/__init__.py)
        sys.modules[__name__] = importlib.import_module("apps." + __name__)

import numpy as np

import needle as ndl
from apps.schedules import SCHEDULES, scheduled_lr  # noqa: F401  (re-exported)

try:  # tqdm is optional: without it there is no per-batch bar, only the per-epoch line
    from tqdm.auto import tqdm as _tqdm
except ImportError:  # pragma: no cover - depends on the environment
    _tqdm = None



class NonFiniteLoss(ArithmeticError):
    """A training batch's loss was nan or inf (before its gradient was applied)."""

    def __init__(self, step: int, value: float):
        super().__init__(f"loss {value} at step {step + 1}")
        self.step = step
        self.value = value


@dataclass
class EpochResult:
    """Mean loss and accuracy over the samples of one pass, with its timing."""

    loss: float
    accuracy: float
    samples: int
    seconds: float
    skipped: int = 0  # training batches left out because their loss was not finite

    @property
    def images_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else float("nan")


def to_tensor(batch, device=None, dtype="float32"):
    """A constant (no-grad) Tensor of ``batch`` on ``device``; labels go float (NDArray dtypes)."""
    if isinstance(batch, ndl.Tensor):
        if device is None or batch.device == device:
            return batch.detach()
        batch = batch.numpy()
    return ndl.Tensor(
        np.asarray(batch, dtype=dtype), device=device, dtype=dtype, requires_grad=False
    )


def _labels_numpy(y):
    return (y.numpy() if isinstance(y, ndl.Tensor) else np.asarray(y)).astype(np.int64).ravel()


def run_epoch(
    model,
    batches: Iterable,
    loss_fn,
    opt=None,
    *,
    device=None,
    dtype="float32",
    on_step: Optional[Callable[[int], None]] = None,
    progress: bool = False,
    desc: str = "",
    total: Optional[int] = None,
    nonfinite: str = "raise",
) -> EpochResult:
    """One pass over ``batches``: train when ``opt`` is given, else evaluate.

    Args:
        model: a ``needle.nn.Module`` mapping images to logits ``(B, classes)``.
        batches: iterable of ``(X, y)`` (NumPy arrays or Tensors).
        loss_fn: a loss module instance, e.g. ``nn.SoftmaxLoss()``, returning the batch mean.
        opt: a ``needle.optim.Optimizer``, or ``None`` to evaluate.
        on_step: called with the batch index before each optimizer step (learning-rate schedule).
        progress: show a tqdm bar (loss, accuracy, images/s) when tqdm is installed.
        total: number of batches, for the bar.
        nonfinite: what a training batch whose loss is nan or inf does: ``"raise"``
            ``NonFiniteLoss`` (before its step), ``"skip"`` it (no step, not counted), or
            ``"keep"`` training as if it were finite (the course's loops).

    Returns:
        ``EpochResult`` with the sample-weighted mean loss and the accuracy in [0, 1].
    Raises:
        NonFiniteLoss: with ``nonfinite="raise"``, when a training batch's loss is not finite
        (the parameters are left as the previous step made them).
    """
    if nonfinite not in ("raise", "skip", "keep"):
        raise ValueError(f"run_epoch: nonfinite must be raise, skip or keep, got {nonfinite!r}")
    training = opt is not None
    # A collective optimizer (needle.distributed.DistributedOptimizer) steps with the other
    # ranks at every batch, also when this rank has nothing to add (an empty share of the
    # last global batch, a skipped non-finite batch): its step() averages their gradients.
    collective = training and getattr(opt, "collective", False)
    model.train(training)
    bar = None
    if progress and _tqdm is not None:
        bar = _tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, unit="batch")
    loss_sum, correct, seen, skipped = 0.0, 0, 0, 0
    start = time.perf_counter()
    try:
        for i, (xb, yb) in enumerate(batches):
            if xb.shape[0] == 0:  # an empty share of a distributed batch
                if collective:
                    if on_step is not None:
                        on_step(i)
                    opt.reset_grad()
                    opt.step()
                continue
            X, y = to_tensor(xb, device, dtype), to_tensor(yb, device, dtype)
            if training:
                if on_step is not None:
                    on_step(i)
                opt.reset_grad()
                logits = model(X)
                loss = loss_fn(logits, y)
                value = float(loss.numpy())
                if not math.isfinite(value) and nonfinite != "keep":
                    if nonfinite == "raise":
                        raise NonFiniteLoss(i, value)
                    skipped += 1
                    if collective:  # contributes no gradient; the others' still arrive
                        opt.reset_grad()
                        opt.step()
                    continue
                loss.backward()
                opt.step()
            else:
                with ndl.no_grad():
                    logits = model(X)
                    loss = loss_fn(logits, y)
                value = float(loss.numpy())
            n = X.shape[0]
            loss_sum += value * n
            correct += int((logits.numpy().argmax(axis=1) == _labels_numpy(yb)).sum())
            seen += n
            if bar is not None:
                elapsed = time.perf_counter() - start
                bar.set_postfix(
                    loss=f"{loss_sum / seen:.4f}",
                    acc=f"{correct / seen:.4f}",
                    img_s=f"{seen / max(elapsed, 1e-9):.0f}",
                    refresh=False,
                )
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    if seen == 0:
        return EpochResult(float("nan"), float("nan"), 0, seconds, skipped)
    return EpochResult(loss_sum / seen, correct / seen, seen, seconds, skipped)


def minibatches(X, y, batch_size, shuffle=False, rng=None, augment=None):
    """Yield ``(X[idx], y[idx])`` NumPy batches; ``rng`` (a ``RandomState``) draws the order.

    ``augment(X_batch, rng)``, when given, transforms each image batch (e.g. ``flip_crop``)
    with draws from the same ``rng`` after the order's, so a seeded run is reproducible.
    """
    rng = rng if rng is not None else np.random
    n = len(X)
    order = rng.permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        xb = X[idx]
        yield (xb if augment is None else augment(xb, rng)), y[idx]


def flip_crop(X, rng, padding=4):
    """Random horizontal flips (p = 0.5) and random crops of ``(N, C, H, W)`` images.

    Each image is flipped left-right with probability 0.5, then zero-padded by ``padding`` on
    every side and cropped back to ``H × W`` at a random offset (the usual CIFAR-10
    augmentation, as ``RandomFlipHorizontal`` and ``RandomCrop`` do per image, here for a whole
    batch at once).  Draws: ``N`` uniforms for the flips, then ``2N`` offsets.
    """
    n, c, h, w = X.shape
    flip = rng.random_sample(n) < 0.5
    offsets = rng.randint(0, 2 * padding + 1, size=(2, n))
    padded = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=X.dtype)
    padded[:, :, padding : padding + h, padding : padding + w] = X
    out = np.empty_like(X)
    for i, (r, col) in enumerate(offsets.T):  # one slice copy per image: cheaper than a gather
        image = padded[i, :, r : r + h]
        out[i] = (image[:, :, ::-1] if flip[i] else image)[:, :, col : col + w]
    return out


def num_batches(n, batch_size):
    return (n + batch_size - 1) // batch_size
