"""How a model samples best, stored with it: steps and guidance in the pipeline's config (model_index.json's
``"sampling"``), the sampler as the pipeline's scheduler itself.

diffusers keeps a pipeline's own settings in model_index.json beside its components (as Stable Diffusion keeps
``requires_safety_checker``) and passes them back to ``__init__`` on loading; a repo ships the scheduler it samples
with (Stable Diffusion's is PNDM, not the DDPM it was trained with). So ``pipe()`` with nothing else (the class labels
of a class-conditional model aside) samples as the model's evaluation did, and any argument given or scheduler swapped
in overrides just that. The settings a model is saved with are its evaluation's (``python -m training.evaluate``).
"""

from __future__ import annotations

from collections.abc import Mapping

from .checks import check_number
from .guidance import validate_guidance_interval, validate_guidance_scale

SAMPLING_CONFIG = "sampling"  # the key in model_index.json
# the call's fallbacks where a model stores nothing: diffusers' DDPMPipeline's 1000 steps, no guidance
FALLBACKS = {"num_inference_steps": 1000, "guidance_scale": 1.0, "autoguidance_scale": 1.0, "guidance_interval": None}
GUIDANCE_KEYS = ("guidance_scale", "autoguidance_scale", "guidance_interval")


def check_sampling_settings(settings: Mapping | None) -> dict | None:
    """Stored settings as a plain dict (the interval as a list, as JSON holds it), else a ValueError naming the key."""
    if settings is None:
        return None
    if not isinstance(settings, Mapping):
        raise ValueError(f"sampling settings must be a mapping of {list(FALLBACKS)}, got {settings!r:.60}.")
    unknown = set(settings) - set(FALLBACKS)
    if unknown:
        raise ValueError(f"sampling settings take only {list(FALLBACKS)}, got {sorted(unknown)}.")
    checked = dict(settings)
    if "num_inference_steps" in checked:
        checked["num_inference_steps"] = check_number(
            "num_inference_steps", checked["num_inference_steps"], 1, integer=True
        )
    for name in ("guidance_scale", "autoguidance_scale"):
        if name in checked:
            checked[name] = validate_guidance_scale(checked[name], name)
    if "guidance_interval" in checked:
        interval = validate_guidance_interval(checked["guidance_interval"])
        checked["guidance_interval"] = None if interval is None else list(interval)
    return checked


def call_settings(stored: Mapping | None, **given) -> dict:
    """The call's ``num_inference_steps`` and guidance: each given (not None) as given; the guidance as stored only
    where no guidance argument is given (they act together: a weight without its interval is another setting);
    otherwise :data:`FALLBACKS`."""
    stored = stored or {}
    settings = {}
    steps = given.get("num_inference_steps")
    settings["num_inference_steps"] = steps if steps is not None else stored.get("num_inference_steps", 1000)
    source = stored if all(given.get(key) is None for key in GUIDANCE_KEYS) else given
    for key in GUIDANCE_KEYS:
        value = source.get(key)
        settings[key] = FALLBACKS[key] if value is None else value
    return settings
