"""The sampler settings the bundled models are shown and measured with.

The app's Sample tab starts with these values and ``python -m training.evaluate`` measures with them by default,
so the figures in the model cards are the quality a visitor sees on first click. "As the app does" is written once,
here: :func:`app_scheduler` (the sampler, x̂_0 never clipped for latents) and :func:`app_sampling_kwargs` (the
guidance each kind of model gets); the app, the evaluation, the training's sample grids and the benchmarks call them.
"""

from __future__ import annotations

from .samplers import SAMPLERS, make_scheduler

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
DEFAULT_GUIDANCE_SCALE = 5.0  # classifier-free guidance w for the class-conditional model
MAX_GUIDANCE_SCALE = 20.0  # the largest guidance (and autoguidance) weight the app offers
# Autoguidance weight for the unconditional models that ship a guide UNet (ε̃ = ε_guide + w·(ε_main − ε_guide)),
# applied in DEFAULT_AUTOGUIDANCE_INTERVAL below, where guidance skews the digit histogram less: there w = 3 still keeps
# every digit balanced, where w = 2 was the most at every step (docs/models.md#the-sampling-defaults)
DEFAULT_AUTOGUIDANCE_SCALE = 3.0
# Autoguidance only where the noise level σ_t = √((1 − ᾱ_t)/ᾱ_t) lies in (0.28, 5.42], the interval Kynkäänniemi et
# al. 2024 (https://arxiv.org/abs/2404.07724, EDM2-XXL) found best: above it guiding mostly skews the digit histogram,
# below it changes little, and outside it the guide's pass is skipped (docs/models.md#the-sampling-defaults)
DEFAULT_AUTOGUIDANCE_INTERVAL = (0.28, 5.42)


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


def app_sampling_kwargs(
    pipe,
    guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
    autoguidance_scale: float = DEFAULT_AUTOGUIDANCE_SCALE,
    guidance_interval: tuple[float, float] | None = DEFAULT_AUTOGUIDANCE_INTERVAL,
) -> dict:
    """The guidance keywords the app samples ``pipe`` with: classifier-free guidance w for a class-conditional UNet,
    autoguidance w within ``guidance_interval`` for a pipeline that ships a guide UNet, nothing (the main UNet alone)
    for the others. The class labels are the caller's."""
    from .guidance import num_class_embeds

    if num_class_embeds(pipe.unet) is not None:
        return {"guidance_scale": guidance_scale}
    if getattr(pipe, "guide_unet", None) is not None:
        return {"autoguidance_scale": autoguidance_scale, "guidance_interval": guidance_interval}
    return {}
