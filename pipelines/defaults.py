"""The sampler settings the bundled models are shown and measured with.

The app's Sample tab starts with these values and ``python -m training.evaluate`` measures with them by default,
so the figures in the model cards are the quality a visitor sees on first click.
"""

DEFAULT_SAMPLER = "ddim"  # deterministic DDIM (η = 0): the fastest sampler of good quality
DEFAULT_DDIM_STEPS = 25  # DDIM steps out of the T = 1,000 the models were trained with
DEFAULT_DDPM_STEPS = 100  # ancestral DDPM needs more steps than DDIM for the same quality
DEFAULT_GUIDANCE_SCALE = 5.0  # classifier-free guidance w for the class-conditional model
