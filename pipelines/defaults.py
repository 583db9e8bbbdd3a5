"""The sampler settings the bundled models are shown and measured with.

The app's Sample tab starts with these values and ``python -m training.evaluate`` measures with them by default,
so the figures in the model cards are the quality a visitor sees on first click. "As the app does" is written once,
here: :func:`app_scheduler` (the sampler, x̂_0 never clipped for latents) and :func:`app_sampling_kwargs` (the
guidance each kind of model gets); the app, the evaluation, the training's sample grids and the benchmarks call them.
"""

from __future__ import annotations

from .samplers import SAMPLERS, make_scheduler

# SDE-DPM-Solver++ at 12 steps: the second-order solver of the reverse-time SDE (Lu et al. 2022,
# https://arxiv.org/abs/2211.01095), which draws fresh noise at every step like ancestral DDPM. Measured on the
# bundled models against the previous default, DDIM-25 with η = 1 (1,000 samples, same seeds, autoguidance w = 2,
# `python -m training.evaluate <folder> --sampler ... --steps ...`): latent 95.5% → 93.8% confident digits (every
# digit 7.9–11.9% both), pixel 90.1% → 91.9% (digits 7.3–12.5% → 7.2–12.2%), conditional 100% → 100%, with 12 network
# passes instead of 25. At 10 steps the digit histograms drift out of 7–13% (latent 6.0–14.1%, pixel 6.8–13.7%); at 15
# the latent makes 97.0%. Re-measured with autoguidance in its interval at w = 3: the chained pixel model at 10 steps
# 91.3%, digits 6.2–13.9%; the recipe-trained latent model at 12 / 10 / 8 steps 92.0% / 91.5% / 90.4% (digits
# 8.1–12.4%, 7.2–11.8%, 7.4–12.7%), and on 1,000 other seeds 90.5% / 89.8% / 90.2% (7.5–12.3%, 7.8–13.7%, 7.3–13.5%):
# fewer steps would save a third of the passes but leave the digits at the edge of 7–13%. Deterministic DPM-Solver++
# at 10 steps made 91.5% against 96.2% (latent, 400 samples): the fresh noise corrects the small networks' errors
# instead of carrying them to the end (Karras et al. 2022, https://arxiv.org/abs/2206.00364, §4).
DEFAULT_SAMPLER = "sde-dpmsolver++"
DEFAULT_STEPS = SAMPLERS[DEFAULT_SAMPLER].default_steps  # 12
DEFAULT_DDIM_STEPS = SAMPLERS["ddim"].default_steps  # 25: DDIM's starting steps when it is picked
# DDIM's η when DDIM is picked: η = 1 draws fresh noise at every step with the DDPM posterior's variance (ancestral
# sampling on the 25-step subsequence); it made 91% (pixel) and 83% (latent) confident digits against 84% and 80%
# for deterministic η = 0, at the same cost.
DEFAULT_DDIM_ETA = 1.0
DEFAULT_DDPM_STEPS = SAMPLERS["ddpm"].default_steps  # 100: ancestral DDPM needs more steps than DDIM
DEFAULT_GUIDANCE_SCALE = 5.0  # classifier-free guidance w for the class-conditional model
MAX_GUIDANCE_SCALE = 20.0  # the largest guidance (and autoguidance) weight the app offers
# Autoguidance weight for the unconditional models that ship a guide UNet (ε̃ = ε_guide + w·(ε_main − ε_guide)),
# applied in DEFAULT_AUTOGUIDANCE_INTERVAL below. Guided at every step, w = 2 was the largest weight that kept every
# digit within 7–13% (400 samples per weight, w = 1.5, 2, 2.5, 3). Limited to the interval, guidance skews the digit
# histogram less and w = 3 keeps it within 7–13% (`python -m training.evaluate <folder> --autoguidance_scale w`, 1,000
# samples): the previous, chained pixel model 91.9% confident at w = 2 → 92.6% at w = 3 (digits 7.3–11.8% →
# 7.0–11.9%); the 4×7×7 latent model of that time, guided by its own EMA weights at step 2,000 of 6,000, 88.6% at
# w = 2, 89.3% at 2.5, 91.9% at 3 (digits 8.0–12.7%; 90.5%, 7.5–12.3% on 1,000 other seeds). The bundled 2×7×7 latent
# model (fp32): 80.9% unguided, 85.1% at w = 2, 90.5% at w = 3 (digits 9.0–11.7%).
DEFAULT_AUTOGUIDANCE_SCALE = 3.0
# Autoguidance only where the noise level σ_t = √((1 − ᾱ_t)/ᾱ_t) lies in (0.28, 5.42], the interval Kynkäänniemi et
# al. 2024 (https://arxiv.org/abs/2404.07724, EDM2-XXL) found best: on our linear schedule the steps with
# 82 < t ≤ 579. Above it guiding mostly skews the digit histogram, below it changes little; outside it the guide's
# pass is skipped: 6 of the 12 steps of SDE-DPM-Solver++ run the guide. Pixel model, w = 2, guided at every step →
# in the interval (`python -m training.evaluate models/ddpm-pixel --guidance_interval none|0.28,5.42`, 1,000
# samples): 91.9% → 91.9% confident, digits 7.2–12.2% → 7.3–11.8%, Fréchet distance 60.2 → 58.8.
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
