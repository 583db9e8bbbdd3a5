"""Tiny pipelines for the pipeline tests: a DDPMPipeline on a tiny UNet, seeded sampling, an autoguided pipeline."""

from __future__ import annotations

import torch
from diffusers import UNet2DModel

from pipelines.pipeline_ddpm import DDPMPipeline
from pipelines.pipeline_latent_ddpm import LatentDDPMPipeline
from pipelines.pipeline_vae import VAEPipeline
from pipelines.scheduling_ddpm import DDPMScheduler

from .models import tiny_unet, tiny_vae

T = 100  # training steps of the tiny schedulers
STEPS = 6


def make_pipe(unet=None, scheduler=None, pipeline_class=DDPMPipeline):
    pipe = pipeline_class(unet or tiny_unet(), scheduler or DDPMScheduler(num_train_timesteps=T), None)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sample(pipe, seed=0, **kwargs):
    kwargs = {"batch_size": 2, "num_inference_steps": STEPS, "output_type": "np", **kwargs}
    return pipe(generator=torch.Generator().manual_seed(seed), **kwargs)


def small_guide(seed: int = 5, sample_size: int = 8) -> UNet2DModel:
    """A smaller UNet of the same space, as autoguidance asks for."""
    return tiny_unet(seed=seed, sample_size=sample_size, block_out_channels=(4, 8))


def guided_pipe(unet=None, guide=None, scheduler=None):
    pipe = DDPMPipeline(
        unet or tiny_unet(), scheduler or DDPMScheduler(num_train_timesteps=T), guide_unet=guide or small_guide()
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build(kind: str):
    """A tiny saved-able pipeline of each kind: (pipeline, the component whose weights a test tampers with)."""
    if kind == "ddpm":
        return DDPMPipeline(
            tiny_unet(sample_size=8, channels=1, block_out_channels=(8,)), DDPMScheduler(num_train_timesteps=20), None
        ), "unet"
    if kind == "vae":
        return VAEPipeline(tiny_vae("vector")), "vae"
    return LatentDDPMPipeline(
        tiny_vae("spatial"),
        tiny_unet(sample_size=2, channels=4, block_out_channels=(8,)),
        DDPMScheduler(num_train_timesteps=20),
        None,
    ), "vae"


CLASSES = {"ddpm": DDPMPipeline, "vae": VAEPipeline, "latent": LatentDDPMPipeline}
