"""From-scratch DDPM/DDIM schedulers, a from-scratch VAE, and diffusers-style pipelines."""

from .scheduling_ddpm import DDPMScheduler, DDPMSchedulerOutput

__all__ = ["DDPMScheduler", "DDPMSchedulerOutput"]
