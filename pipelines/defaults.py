"""How the bundled models are sampled: each model's own stored settings, and this project's choice for a model that
stores none yet.

A model stores how it samples best (its scheduler is the sampler; steps and guidance in model_index.json, see
``pipelines/sampling_settings.py``): ``pipe()`` samples so, and :func:`recommended_sampling` reads it for the app,
the evaluation, the training's sample grids and the benchmarks. A model fresh from training stores nothing: the
constants below are then what it is measured with, and ``python -m training.evaluate`` stores the settings it measured
into the folder, so that a model card's figures are what ``pipe()`` and a visitor's first click give.
:func:`app_scheduler` builds the scheduler of a sampler a visitor picks (x̂_0 never clipped for latents).
"""

from __future__ import annotations

from .samplers import SAMPLERS, make_scheduler
from .sampling_settings import GUIDANCE_KEYS

# SDE-DPM-Solver++ (Lu et al. 2022, https://arxiv.org/abs/2211.01095): its fresh noise at every step corrects the small
# networks' errors instead of carrying them to the end (Karras et al. 2022, https://arxiv.org/abs/2206.00364, §4), and
# 12 steps are the fewest that keep the digits balanced (docs/models.md#the-sampling-defaults)
DEFAULT_SAMPLER = "sde-dpmsolver++"
DEFAULT_STEPS = SAMPLERS[DEFAULT_SAMPLER].default_steps  # 12
DEFAULT_DDIM_STEPS = SAMPLERS["ddim"].default_steps  # 25: DDIM's starting steps when it is picked
# DDIM's η when DDIM is picked: η = 1 draws fresh noise at every step with the DDPM posterior's variance (ancestral
# sampling on the subsequence), more confident digits than η = 0 at the same cost (docs/models.md#the-sampling-defaults)
DEFAULT_DDIM_ETA = 1.0
DEFAULT_DDPM_STEPS = SAMPLERS["ddpm"].default_steps  # 100: ancestral DDPM needs more steps than DDIM
# Classifier-free guidance w for a class-conditional model, applied in DEFAULT_GUIDANCE_INTERVAL: w = 1.5 there kept the
# fast recipe's model at 98.5% as asked with a Fréchet distance of 82, where w = 5 at every step (the default before)
# made 99.9% near-copies at 353 (docs/models.md#the-sampling-defaults)
DEFAULT_GUIDANCE_SCALE = 1.5
MAX_GUIDANCE_SCALE = 20.0  # the largest guidance (and autoguidance) weight the app offers
# Autoguidance weight for the unconditional models that ship a guide UNet (ε̃ = ε_guide + w·(ε_main − ε_guide)),
# applied in DEFAULT_GUIDANCE_INTERVAL below, where guidance skews the digit histogram less: there w = 3 still keeps
# every digit balanced, where w = 2 was the most at every step (docs/models.md#the-sampling-defaults)
DEFAULT_AUTOGUIDANCE_SCALE = 3.0
# Either guidance only where the noise level σ_t = √((1 − ᾱ_t)/ᾱ_t) lies in (0.28, 5.42], the interval Kynkäänniemi et
# al. 2024 (https://arxiv.org/abs/2404.07724, EDM2-XXL) found best: above it guiding mostly skews the digit histogram
# (or copies one digit), below it changes little, and outside it the extra pass is skipped
# (docs/models.md#the-sampling-defaults)
DEFAULT_GUIDANCE_INTERVAL = (0.28, 5.42)
RECOMMENDED = "model"  # a guidance_interval argument meaning: the model's recommended interval


def clips_x0(latent: bool) -> bool:
    """Whether sampling clips x̂_0 to [−1, 1]: for pixels, whose range that is; never for latents, which (scaled to
    unit variance) often lie outside it, so clipping ruins the samples (seen on the bundled models), as in latent
    diffusion."""
    return not latent


def app_scheduler(pipe, sampler: str = DEFAULT_SAMPLER, **overrides):
    """A fresh scheduler of ``sampler`` from ``pipe``'s trained scheduler config, as the app samples ``pipe``: x̂_0
    never clipped for a latent pipeline (:func:`clips_x0`); ``overrides`` on top."""
    from .pipeline_latent_ddpm import LatentDDPMPipeline  # imported here: the app's page reads this module

    if not clips_x0(latent=isinstance(pipe, LatentDDPMPipeline)):
        overrides = {"clip_sample": False, **overrides}
    return make_scheduler(pipe.scheduler.config, sampler, **overrides)


def project_guidance(pipe) -> dict:
    """This project's guidance for ``pipe``'s kind, for a model that stores none: classifier-free guidance w for a
    class-conditional UNet, autoguidance w for a pipeline with a guide UNet, each within the interval; none otherwise."""
    from .guidance import num_class_embeds

    if num_class_embeds(pipe.unet) is not None:
        return {"guidance_scale": DEFAULT_GUIDANCE_SCALE, "guidance_interval": DEFAULT_GUIDANCE_INTERVAL}
    if getattr(pipe, "guide_unet", None) is not None:
        return {"autoguidance_scale": DEFAULT_AUTOGUIDANCE_SCALE, "guidance_interval": DEFAULT_GUIDANCE_INTERVAL}
    return {}


def recommended_sampling(pipe) -> dict:
    """How ``pipe`` samples best: ``{"sampler", "num_inference_steps", its guidance keywords}``. The model's own
    settings where it stores them (its scheduler is the sampler, pipelines/sampling_settings.py), else this
    project's defaults for its kind (a model fresh from training)."""
    from .samplers import sampler_of

    stored, sampler = getattr(pipe, "sampling_settings", {}), sampler_of(pipe.scheduler.config)
    if stored and sampler is not None:
        interval = stored.get("guidance_interval")
        return {"sampler": sampler, **stored, **({"guidance_interval": tuple(interval)} if interval else {})}
    return {"sampler": DEFAULT_SAMPLER, "num_inference_steps": DEFAULT_STEPS, **project_guidance(pipe)}


def app_sampling_kwargs(
    pipe,
    guidance_scale: float | None = None,
    autoguidance_scale: float | None = None,
    guidance_interval: tuple[float, float] | None | str = RECOMMENDED,
) -> dict:
    """The guidance keywords the app samples ``pipe`` with: the model's recommended kind of guidance
    (:func:`recommended_sampling`), each weight as given or else recommended, the interval as given (None: every step)
    or else (:data:`RECOMMENDED`) recommended; nothing (the main UNet alone) for a model without guidance. The class labels are the caller's."""
    recommended = recommended_sampling(pipe)
    kwargs = {key: recommended[key] for key in GUIDANCE_KEYS if key in recommended}
    given = {"guidance_scale": guidance_scale, "autoguidance_scale": autoguidance_scale}
    guided = bool(kwargs)  # an interval applies to whichever guidance the model has, stored with it or not
    kwargs.update({k: v for k, v in given.items() if k in kwargs and v is not None})
    if guided and guidance_interval != RECOMMENDED:
        kwargs["guidance_interval"] = guidance_interval  # None: every step
    return kwargs
