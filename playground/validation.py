"""Input checks for every endpoint: a bad value raises gr.Error naming the input and the allowed range."""

from __future__ import annotations

import math
import numbers

import gradio as gr

from pipelines import samplers

MAX_DDPM_STEPS = samplers.SAMPLERS["ddpm"].max_steps
MAX_DDIM_STEPS = samplers.SAMPLERS["ddim"].max_steps
MAX_IMAGES = 64
MAX_SEED = 2**31 - 1
MAX_UPLOAD_SIDE = 2048  # pixels, each side of an uploaded or drawn picture


def is_finite_number(value) -> bool:
    """A real number, not a bool, and finite; an int of any size counts (math.isfinite overflows on 10**400)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return isinstance(value, numbers.Integral) or math.isfinite(value)


def check_int(name: str, value, low: int, high: int) -> int:
    """An integer in [low, high]; whole floats (as sliders may send) are accepted."""
    if not is_finite_number(value) or value != int(value):
        raise gr.Error(f"{name} must be a whole number in [{low}, {high}], got {value!r:.40}.")
    if not low <= value <= high:
        raise gr.Error(f"{name} must lie in [{low}, {high}], got {int(value)!s:.40}.")
    return int(value)


def check_float(name: str, value, low: float, high: float) -> float:
    if not is_finite_number(value):
        raise gr.Error(f"{name} must be a number in [{low}, {high}], got {value!r:.40}.")
    if not low <= value <= high:  # compared as is: float() of a huge int would overflow
        raise gr.Error(f"{name} must lie in [{low}, {high}], got {value!s:.40}.")
    return float(value)


def check_choice(name: str, value, choices) -> str:
    if value not in choices:
        raise gr.Error(f"{name} must be one of {list(choices)}, got {value!r:.60}.")
    return value


def check_seed(value) -> int:
    return check_int("seed", value, 0, MAX_SEED)


def check_steps(sampler: str, steps, num_train_timesteps: int) -> int:
    """The sampler table's step limits (pipelines/samplers.py), never more than the model was trained with."""
    try:
        return samplers.check_steps(sampler, steps, num_train_timesteps)
    except ValueError as error:
        raise gr.Error(str(error)) from None


def check_num_images(value) -> int:
    return check_int("number of images", value, 1, MAX_IMAGES)
