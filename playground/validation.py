"""Input checks for every endpoint: a bad value raises gr.Error naming the input and the allowed range."""

from __future__ import annotations

import gradio as gr

from pipelines import checks, samplers

MAX_DDPM_STEPS = samplers.SAMPLERS["ddpm"].max_steps
MAX_IMAGES = 64
MAX_UPLOAD_SIDE = 2048  # pixels, each side of an uploaded or drawn picture


def _shown(check, *args, **kwargs):
    """``check(*args, **kwargs)``, the pipelines' check; its ValueError becomes a gr.Error with the same words."""
    try:
        return check(*args, **kwargs)
    except ValueError as error:
        raise gr.Error(str(error)) from None


def check_int(name: str, value, low: int, high: int) -> int:
    """An integer in [low, high]; whole floats (as sliders may send) are accepted."""
    return _shown(checks.check_number, name, value, low, high, integer=True)


def check_float(name: str, value, low: float, high: float) -> float:
    return _shown(checks.check_number, name, value, low, high)


def check_choice(name: str, value, choices) -> str:
    if value not in choices:
        raise gr.Error(f"{name} must be one of {list(choices)}, got {value!r:.60}.")
    return value


def check_seed(value) -> int:
    return _shown(checks.check_seed, value)


def check_steps(sampler: str, steps, num_train_timesteps: int) -> int:
    """The sampler table's step limits (pipelines/samplers.py), never more than the model was trained with."""
    return _shown(samplers.check_steps, sampler, steps, num_train_timesteps)


def check_num_images(value) -> int:
    return check_int("number of images", value, 1, MAX_IMAGES)
