"""Saved tiny pipelines of every kind (our DDPM and DDIM schedulers) and how the loading tests sample them, also
in a fresh interpreter (``SAMPLE_SOURCE``): shared by the loading and publishing tests."""

from __future__ import annotations

import inspect

import torch

from pipelines.pipeline_ddpm import DDPMPipeline
from pipelines.pipeline_inpaint import DDPMInpaintPipeline
from pipelines.pipeline_latent_ddpm import LatentDDPMPipeline
from pipelines.scheduling_ddim import DDIMScheduler
from pipelines.scheduling_ddpm import DDPMScheduler
from pipelines.vae import VAE

from .models import tiny_unet

T, STEPS = 50, 4


def saved_pipelines() -> dict:
    """One of each pipeline (with our DDPM and DDIM schedulers), keyed by folder name."""
    torch.manual_seed(0)
    vae = VAE(
        sample_size=8,
        block_out_channels=(8, 8),
        latent_type="spatial",
        latent_channels=4,
        norm_num_groups=4,
        scaling_factor=0.5,
    )
    return {
        "ddpm": DDPMPipeline(tiny_unet(num_class_embeds=4), DDPMScheduler(num_train_timesteps=T), None),
        "ddim": DDPMPipeline(tiny_unet(), DDIMScheduler(num_train_timesteps=T), None),
        "latent": LatentDDPMPipeline(
            vae.eval(),
            tiny_unet(sample_size=2, channels=4, block_out_channels=(8,)),
            DDPMScheduler(num_train_timesteps=T),
            None,
        ),
        "inpaint": DDPMInpaintPipeline(tiny_unet(), DDPMScheduler(num_train_timesteps=T), None),
    }


def sample(pipe, name):
    generator = torch.Generator().manual_seed(0)
    common = {"num_inference_steps": STEPS, "output_type": "np", "generator": generator}
    if name == "inpaint":
        image = torch.linspace(0, 1, 64).reshape(1, 1, 8, 8)
        return pipe(image, (image > 0.5).float(), **common).images
    extra = {"class_labels": [1, 3], "guidance_scale": 2.0} if name == "ddpm" else {}
    return pipe(batch_size=2, **common, **extra).images


SAMPLE_SOURCE = f"import torch\ntorch.set_num_threads(1)\nSTEPS = {STEPS}\n" + inspect.getsource(sample)
