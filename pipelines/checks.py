"""Argument checks shared by the pipelines: each bad value becomes a ValueError that names the argument."""

from __future__ import annotations

import math
import numbers


def is_positive_int(value) -> bool:
    """An integer ≥ 1 (Python or numpy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def finite_float(value) -> float | None:
    """``value`` as a float if it is a finite real number (not a bool), else None; ints of any size are safe."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond float's range
        return None
    return number if math.isfinite(number) else None


def check_number(name: str, value, low: float, high: float | None = None) -> float:
    """A finite number in [low, high] (no upper bound for ``high=None``) as a float, else a ValueError naming it."""
    number = finite_float(value)
    upper = "∞)" if high is None else f"{high:g}]"
    if number is None or number < low or (high is not None and number > high):
        raise ValueError(f"{name} must be a finite number in [{low:g}, {upper}, got {value!s:.40}.")
    return number
