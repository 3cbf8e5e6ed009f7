"""Xavier and Kaiming initialisers with the course's formulas and RNG calls."""

import math

from .init_basic import rand, randn


def xavier_uniform(fan_in, fan_out, gain=1.0, shape=None, **kwargs):
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return rand(*(shape or (fan_in, fan_out)), low=-a, high=a, **kwargs)


def xavier_normal(fan_in, fan_out, gain=1.0, shape=None, **kwargs):
    """N(0, std²) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return randn(*(shape or (fan_in, fan_out)), std=std, **kwargs)


def _gain(nonlinearity):
    if nonlinearity != "relu":
        raise ValueError(
            f"kaiming init: only nonlinearity='relu' is supported, got {nonlinearity!r}"
        )
    return math.sqrt(2.0)


def kaiming_uniform(fan_in, fan_out, shape=None, nonlinearity="relu", **kwargs):
    """U(-b, b) with b = gain * sqrt(3 / fan_in) (gain sqrt(2) for ReLU).

    ``shape`` overrides the output shape (conv weights are drawn as (K..., C_in, C_out)).
    """
    bound = _gain(nonlinearity) * math.sqrt(3.0 / fan_in)
    return rand(*(shape or (fan_in, fan_out)), low=-bound, high=bound, **kwargs)


def kaiming_normal(fan_in, fan_out, shape=None, nonlinearity="relu", **kwargs):
    """N(0, std²) with std = gain / sqrt(fan_in)."""
    std = _gain(nonlinearity) / math.sqrt(fan_in)
    return randn(*(shape or (fan_in, fan_out)), std=std, **kwargs)
