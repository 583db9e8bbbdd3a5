"""The sampler settings the bundled models are shown and measured with.

The app's Sample tab starts with these values and ``python -m training.evaluate`` measures with them by default,
so the figures in the model cards are the quality a visitor sees on first click.
"""

from .samplers import SAMPLERS

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
