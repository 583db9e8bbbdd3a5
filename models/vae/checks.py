"""Argument checks shared by every layer: each bad value becomes a ValueError that names the argument.

The pipelines, the training, the live labs and the app's inputs all check numbers here (the app maps the
ValueError to a gr.Error), so an argument is refused with the same words wherever it comes from.
"""

from __future__ import annotations

import math
import numbers

MAX_SEED = 2**31 - 1  # the largest seed any input takes: the largest signed 32-bit int


def is_int(value) -> bool:
    """An integer (Python or numpy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_positive_int(value) -> bool:
    """An integer ≥ 1 (Python or numpy), not a bool."""
    return is_int(value) and value >= 1


def finite_float(value) -> float | None:
    """``value`` as a float if it is a finite real number (not a bool), else None; ints of any size are safe."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond float's range
        return None
    return number if math.isfinite(number) else None


def _bound(number: float) -> str:
    """A bound as the message shows it: an int exactly (2147483647), a float briefly (0.1, 1e-06, 20)."""
    return str(number) if isinstance(number, numbers.Integral) else f"{number:g}"


def check_number(name: str, value, low: float, high: float | None = None, integer: bool = False) -> float | int:
    """``value`` as a float in [low, high] (no upper bound for ``high=None``), or as an int if ``integer`` (whole
    floats count, as sliders send them); else a ValueError naming ``name`` and the allowed range."""
    bounds = f"[{_bound(low)}, {'∞)' if high is None else _bound(high) + ']'}"
    number = finite_float(value)  # None for a non-number, a bool, NaN/∞, or an int beyond float's range
    if number is None or (integer and not number.is_integer()):
        kind = "a whole number" if integer else "a finite number"
        raise ValueError(f"{name} must be {kind} in {bounds}, got {value!r:.40}.")
    if value < low or (high is not None and value > high):  # compared as given: exact for ints of any size
        raise ValueError(f"{name} must lie in {bounds}, got {int(value) if integer else value!s:.40}.")
    return int(value) if integer else number


def check_seed(value) -> int:
    """A random seed: a whole number in [0, MAX_SEED]."""
    return check_number("seed", value, 0, MAX_SEED, integer=True)
