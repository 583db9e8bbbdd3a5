"""Which of the T training steps a sampler visits: shared by the DDPM and DDIM schedulers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from .checks import check_number

TimestepSpacing = Literal["linspace", "leading", "trailing"]
TIMESTEP_SPACINGS = ("linspace", "leading", "trailing")


def spaced_timesteps(
    num_inference_steps: int | None, num_train_timesteps: int, spacing: TimestepSpacing, steps_offset: int = 0
) -> np.ndarray:
    """``num_inference_steps`` descending timesteps out of 0..T−1.

    The three spacings of Lin et al. 2023 (https://arxiv.org/abs/2305.08891, Table 2): ``linspace`` spans
    0..T−1 evenly, ``leading`` takes multiples of ⌊T/n⌋ from 0, ``trailing`` steps back from T−1.
    """
    T = num_train_timesteps  # the model was trained on that many steps only
    n = check_number("num_inference_steps", num_inference_steps, 1, T, integer=True)
    if spacing == "linspace":
        return np.linspace(0, T - 1, n).round()[::-1].copy().astype(np.int64)
    if spacing == "leading":
        ratio = T // n
        return (np.arange(0, n) * ratio).round()[::-1].copy().astype(np.int64) + steps_offset
    if spacing == "trailing":
        ratio = T / n
        return np.round(np.arange(T, 0, -ratio)).astype(np.int64) - 1
    raise ValueError(f"timestep_spacing must be one of {TIMESTEP_SPACINGS}, got {spacing!r}.")


def validate_custom_timesteps(timesteps: Sequence[int], num_train_timesteps: int) -> np.ndarray:
    """Check user-given timesteps: strictly descending, within 0..T−1."""
    steps = np.asarray(list(timesteps), dtype=np.int64)
    if steps.ndim != 1 or len(steps) == 0:
        raise ValueError("timesteps must be a non-empty list of integers.")
    if np.any(steps[1:] >= steps[:-1]):
        raise ValueError(f"timesteps must be in strictly descending order, got {steps.tolist()}.")
    if steps[0] >= num_train_timesteps or steps[-1] < 0:
        raise ValueError(f"timesteps must lie in [0, num_train_timesteps={num_train_timesteps}), got {steps.tolist()}.")
    return steps
