"""Learning-rate schedules as pure functions of the step (no needle import: PyTorch benchmark
scripts load this file by its path to follow the same curve)."""

import importlib
import math
import os
import sys

if not __package__:  # `import schedules` with apps/ on sys.path, as the course's tests do
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if __name__ != "__main__":  # one module object for both names (see apps/__init__.py)
        sys.modules[__name__] = importlib.import_module("apps." + __name__)

SCHEDULES = ("none", "step", "cosine", "onecycle")


def scheduled_lr(kind, base_lr, step, total_steps):
    """Learning rate at global ``step`` (0-based) of ``total_steps`` for a schedule ``kind``.

    - ``none``: constant ``base_lr``.
    - ``step``: ``base_lr``, times 0.1 from 50 % of training and 0.01 from 75 %.
    - ``cosine``: ``base_lr * (1 + cos(pi * t)) / 2`` with ``t = step / total_steps``.
    - ``onecycle``: linear warm-up from ``base_lr / 25`` to ``base_lr`` over the first 30 %,
      then cosine annealing down to ``base_lr / 1e4`` (PyTorch's ``OneCycleLR`` shape).

    A pure function of the step, so a resumed run follows the same curve.
    """
    if kind not in SCHEDULES:
        raise ValueError(f"unknown schedule {kind!r}; choose one of: {', '.join(SCHEDULES)}")
    t = min(max(step / max(total_steps, 1), 0.0), 1.0)
    if kind == "none":
        return base_lr
    if kind == "step":
        return base_lr * (0.01 if t >= 0.75 else 0.1 if t >= 0.5 else 1.0)
    if kind == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * t))
    warm = 0.3
    start, end = base_lr / 25.0, base_lr / 1e4
    if t < warm:
        return start + (base_lr - start) * t / warm
    u = (t - warm) / (1.0 - warm)
    return end + (base_lr - end) * 0.5 * (1.0 + math.cos(math.pi * u))
