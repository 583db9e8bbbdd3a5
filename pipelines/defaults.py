"""The sampler settings the bundled models are shown and measured with.

The app's Sample tab starts with these values and ``python -m training.evaluate`` measures with them by default,
so the figures in the model cards are the quality a visitor sees on first click.
"""

from .samplers import SAMPLERS

# SDE-DPM-Solver++ at 12 steps: the second-order solver of the reverse-time SDE (Lu et al. 2022,
# https://arxiv.org/abs/2211.01095), which draws fresh noise at every step like ancestral DDPM. Measured on the bundled
# models against the previous default, DDIM-25 with η = 1 (1,000 samples, same seeds, autoguidance w = 2,
# `python -m training.evaluate <folder> --sampler ... --steps ...`): latent 95.5% → 93.8% confident digits (every
# digit 7.9–11.9% both), pixel 90.1% → 91.9% (digits 7.3–12.5% → 7.2–12.2%), conditional 100% → 100%, with
# 12 network passes instead of 25. At 10 steps the digit histograms drift out of 7–13% (latent 6.0–14.1%, pixel
# 6.8–13.7%); at 15 the latent makes 97.0%. Deterministic DPM-Solver++ at 10 steps made 91.5% against 96.2% (latent,
# 400 samples): the fresh noise corrects the small networks' errors instead of carrying them to the end (Karras et
# al. 2022, https://arxiv.org/abs/2206.00364, §4).
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
# Autoguidance weight for the unconditional models that ship a guide UNet (ε̃ = ε_guide + w·(ε_main − ε_guide)).
# Chosen on 400 samples per weight (w = 1.5, 2, 2.5, 3): w = 2 gave the most confident digits while keeping every
# digit within 7–13%; larger w sharpens further but starves some digits. Measured with `python -m training.evaluate`
# on 1,000 samples: latent 89.5% → 95.5% confident, pixel 87.6% → 90.1%.
DEFAULT_AUTOGUIDANCE_SCALE = 2.0
# Autoguidance only where the noise level σ_t = √((1 − ᾱ_t)/ᾱ_t) lies in (0.28, 5.42], the interval Kynkäänniemi et
# al. 2024 (https://arxiv.org/abs/2404.07724, EDM2-XXL) found best: on our linear schedule the steps with
# 82 < t ≤ 579. Above it guiding mostly skews the digit histogram, below it changes little; outside it the guide's
# pass is skipped. Measured at SDE-DPM-Solver++-12, w = 2, guided every step → in the interval (`python -m
# training.evaluate <folder> --guidance_interval none|default`, 1,000 samples): see README "Guidance interval".
DEFAULT_AUTOGUIDANCE_INTERVAL = (0.28, 5.42)
